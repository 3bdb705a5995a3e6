//! `mcpr up` and `mcpr stdio`: the whole router in one process. The control plane, a node
//! agent and an edge gateway start through the same `start` functions and talk through the
//! same gRPC services (on loopback ports) as the distributed binaries do. Other processes
//! on the machine can reach those ports, so every call between the three carries a cluster
//! token made at random for this process: it lives in its memory only (never in a file, an
//! argument or a log line), and the gRPC servers refuse any call without it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Transport {
    Http,
    Stdio,
}

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// How MCP clients connect: HTTP (MCP, API and UI on one port) or stdio (MCP on
    /// stdin/stdout, API and UI on the port in the background).
    #[arg(long, env = "MCP_TRANSPORT", value_enum, default_value = "http")]
    pub transport: Transport,
    /// Address to listen on. Loopback by default: authentication is not built in yet.
    #[arg(long, env = "MCPR_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port for MCP, the REST API and the web UI.
    #[arg(long, env = "MCPR_PORT", default_value_t = 8000)]
    port: u16,
    /// Where the SQLite database lives.
    #[arg(long, env = "MCPR_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Use Postgres instead of SQLite: postgres://user:password@host/db
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Path of the hierarchical MCP view.
    #[arg(long, env = "MCP_PATH", default_value = "/mcp")]
    mcp_path: String,
    /// First restart delay after a server crashes, in milliseconds (doubles each time).
    #[arg(long, env = "MCPR_RESTART_BACKOFF_MS", default_value_t = 500)]
    restart_backoff_ms: u64,
    /// Longest wait for an upstream server's answer, in seconds.
    #[arg(long, env = "MCPR_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    request_timeout_secs: u64,
    /// Browser origins allowed besides loopback and the request's own host (comma-separated).
    #[arg(long, env = "MCPR_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Host names clients may use besides loopback ones (comma-separated; `*` for any).
    #[arg(long, env = "MCPR_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    #[command(flatten)]
    docker: mcpr_node_agent::runtime::DockerArgs,
}

impl UpArgs {
    pub fn options(&self) -> UpOptions {
        UpOptions {
            host: self.host.clone(),
            port: self.port,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone().filter(|u| !u.is_empty()),
            mcp_path: self.mcp_path.clone(),
            agent: mcpr_node_agent::Settings {
                backoff_base: Duration::from_millis(self.restart_backoff_ms.max(1)),
                request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
                docker: mcpr_node_agent::runtime::DockerSettings {
                    // The same router (same data) reaps what its previous run left behind.
                    owner: self.docker.docker_owner.clone().unwrap_or_else(|| {
                        mcpr_node_agent::docker_owner(
                            "local",
                            &self.database_url.clone().unwrap_or_else(|| {
                                std::path::absolute(&self.data_dir)
                                    .unwrap_or_else(|_| self.data_dir.clone())
                                    .display()
                                    .to_string()
                            }),
                        )
                    }),
                    ..self.docker.settings()
                },
                sandbox: self.docker.sandbox_limits(),
                ..Default::default()
            },
            allowed_origins: self.allowed_origins.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
        }
    }
}

pub struct UpOptions {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub mcp_path: String,
    pub agent: mcpr_node_agent::Settings,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
}

pub struct Router {
    pub gateway: Arc<mcpr_edge_gateway::Gateway>,
    pub agent: Arc<mcpr_node_agent::Agent>,
    pub http: axum::Router,
}

/// The id of `mcpr up`'s one node agent.
const LOCAL_AGENT: &str = "local";

/// Starts the three components; returns the gateway and the HTTP router (API, UI, MCP).
pub async fn start(options: &UpOptions) -> anyhow::Result<Router> {
    if !options.mcp_path.starts_with('/') {
        anyhow::bail!("MCP_PATH must start with '/', got {:?}", options.mcp_path);
    }
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let mut security = mcpr_control_plane::Security::from_env(|k| std::env::var(k).ok())?;
    security.check_listen(&options.host, "the REST API, the web UI and MCP")?;
    security
        .oauth
        .set_public_address(&options.host, options.port);
    let cluster_token = mcpr_tls::cluster::ClusterToken::random();
    let cp_config = mcpr_control_plane::Config {
        data_dir: options.data_dir.clone(),
        database_url: options.database_url.clone(),
        security,
        cluster_token: Some(cluster_token.clone()),
    };
    let control_plane =
        // The in-process links (config watch, agent registration) stay on loopback in plain
        // gRPC, guarded by the token: TLS of `mcpr up` is on its one public port.
        mcpr_control_plane::ControlPlane::start(
            &cp_config,
            TcpListener::bind(loopback).await?,
            None,
        )
        .await?;
    let control_planes = mcpr_tls::control_planes::ControlPlanes::parse(
        &format!("http://{}", control_plane.grpc_addr),
        "the in-process control plane",
    )?;
    let agent_config = mcpr_node_agent::Config {
        agent_id: LOCAL_AGENT.into(),
        // One agent, no constraints: a server with a selector stays unplaced here.
        labels: Default::default(),
        control_planes: control_planes.clone(),
        advertise_url: None,
        settings: options.agent.clone(),
        tls: None,
        cluster_token: Some(cluster_token.clone()),
    };
    // One port, one policy: the API, the UI, OAuth and MCP answer the same Hosts and Origins.
    let host_policy = Arc::new(mcpr_tls::host_policy::HostPolicy::for_listener(
        &options.host,
        &options.allowed_hosts,
        &options.allowed_origins,
    ));
    let relay_listener = TcpListener::bind(loopback).await?;
    let relay_url = format!("http://{}", relay_listener.local_addr()?);
    let agent = mcpr_node_agent::start(agent_config, relay_listener).await?;
    let local: Arc<dyn mcpr_core::relay::LocalAgent> = agent.clone();
    let gateway = mcpr_edge_gateway::Gateway::start_with_local_agent(
        mcpr_edge_gateway::Config {
            gateway_id: "local".into(),
            control_planes,
            mcp_path: options.mcp_path.clone(),
            cluster_token: Some(cluster_token),
            host_policy: host_policy.clone(),
            ..Default::default()
        },
        Some((relay_url, local)),
    );
    let audit = control_plane.audit.clone();
    gateway.report_audit_locally(Arc::new(move |report| audit.ingest(report)));
    if !gateway.wait_for_snapshot(Duration::from_secs(10)).await {
        anyhow::bail!(
            "the gateway got no configuration from the in-process control plane within 10 s"
        );
    }
    // Served once the gateway knows its agent: a call at once (the sandbox) finds it.
    if !gateway
        .wait_for_agent(LOCAL_AGENT, Duration::from_secs(10))
        .await
    {
        anyhow::bail!(
            "the in-process node agent was not registered with the control plane within 10 s"
        );
    }
    // One `/metrics` for the three components and the process: open on loopback, else
    // behind MCPR_METRICS_TOKEN.
    let control_plane = Arc::new(control_plane);
    let render = {
        let (control_plane, gateway, agent) =
            (control_plane.clone(), gateway.clone(), agent.clone());
        mcpr_tls::metrics::with_process(move |out| {
            control_plane.render_metrics(out);
            gateway.render_metrics(out);
            agent.render_metrics(out);
        })
    };
    let loopback = mcpr_tls::host_policy::is_loopback_host(&options.host);
    let metrics = mcpr_tls::metrics::setup(render, loopback, None, &host_policy, None).await?;
    let http = control_plane
        .http_router(&host_policy)
        .layer(axum::middleware::from_fn_with_state(
            (control_plane.clone(), gateway.clone()),
            served_before_answered,
        ))
        .merge(gateway.router())
        .merge(metrics);
    Ok(Router {
        gateway,
        agent,
        http,
    })
}

/// How long a change's answer may wait for the gateway to serve it.
const SERVED_WITHIN: Duration = Duration::from_secs(2);

/// In one process, the answer to a change through the API (or the UI) comes once the gateway
/// serves it: a script that adds a server or a key and lists or calls at once sees it, never
/// the configuration from before. Bounded: a gateway slower than `SERVED_WITHIN` only delays
/// the answer that long. (In a cluster the gateways follow within the propagation delay,
/// `mcpr_gateway_snapshot_propagation_delay_seconds`.)
async fn served_before_answered(
    axum::extract::State((control_plane, gateway)): axum::extract::State<(
        Arc<mcpr_control_plane::ControlPlane>,
        Arc<mcpr_edge_gateway::Gateway>,
    )>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let reads_only = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let response = next.run(request).await;
    if !reads_only && response.status().is_success() {
        let version = control_plane.config_version();
        if !gateway.wait_for_version(version, SERVED_WITHIN).await {
            tracing::warn!(
                version,
                "the gateway did not serve a change within 2 s of its answer"
            );
        }
    }
    response
}

pub async fn bind(options: &UpOptions) -> anyhow::Result<TcpListener> {
    let addr = format!("{}:{}", options.host, options.port);
    TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (use --port to pick another port)"))
}

pub fn banner(scheme: &str, addr: SocketAddr, mcp_path: &str) {
    eprintln!("MCP Router is up");
    eprintln!("  MCP (hierarchical): {scheme}://{addr}{mcp_path}");
    eprintln!("  MCP (flat):         {scheme}://{addr}/mcp/all");
    eprintln!("  MCP (one provider): {scheme}://{addr}/mcp/p/NAME");
    eprintln!("  web UI:             {scheme}://{addr}/");
    eprintln!("  REST API:           {scheme}://{addr}/api/v1");
}

/// `mcpr up`: the router in this process, serving MCP, the API and the UI on one port until
/// Ctrl-C or SIGTERM (or MCP on stdin/stdout with `--transport stdio`).
pub async fn run(args: &UpArgs, tls: Option<Arc<mcpr_tls::Tls>>) -> anyhow::Result<()> {
    let mut telemetry = mcpr_core::telemetry::init("mcpr").map_err(anyhow::Error::msg)?;
    mcpr_core::settings::Limits::install_from_env()?;
    let options = args.options();
    if args.transport == Transport::Stdio {
        return serve_stdio(&options, tls).await;
    }
    let listener = bind(&options).await?;
    let router = start(&options).await?;
    let scheme = match tls.as_ref().is_some_and(|t| t.serves()) {
        true => "https",
        false => "http",
    };
    banner(scheme, listener.local_addr()?, &options.mcp_path);
    let agent = router.agent.clone();
    tokio::select! {
        served = mcpr_tls::serve_http(listener, router.http, tls) => served?,
        _ = shutdown_signal() => {}
    }
    agent.shutdown().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    telemetry.shutdown();
    Ok(())
}

/// The router in-process with MCP on stdin/stdout; API and UI on the port when it is free.
pub async fn serve_stdio(
    options: &UpOptions,
    tls: Option<Arc<mcpr_tls::Tls>>,
) -> anyhow::Result<()> {
    let router = start(options).await?;
    match bind(options).await {
        Ok(listener) => {
            tracing::info!(addr = %listener.local_addr()?, "web UI and API listening");
            tokio::spawn(mcpr_tls::serve_http(listener, router.http, tls));
        }
        Err(e) => {
            tracing::warn!(error = %e, "web UI and API not served; MCP on stdio works regardless")
        }
    }
    let served = mcpr_edge_gateway::transport::stdio::serve(
        router.gateway.clone(),
        tokio::io::stdin(),
        tokio::io::stdout(),
    )
    .await;
    router.agent.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    served.map_err(Into::into)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
