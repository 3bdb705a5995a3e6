//! `mcpr-edge-gateway`: the MCP front door of a distributed MCP Router.

/// mimalloc: the data path allocates per message, and it is measurably faster than the
/// system allocator there (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "MCP Router edge gateway: serves MCP clients, relays to node agents"
)]
struct Args {
    /// Address to serve MCP on.
    #[arg(long, env = "MCPR_LISTEN", default_value = "127.0.0.1:8000")]
    listen: String,
    /// The control planes' gRPC URLs, separated by commas: the gateway follows one and
    /// moves to the next when it goes away.
    #[arg(
        long,
        env = "MCPR_CONTROL_PLANE",
        default_value = "http://127.0.0.1:50051"
    )]
    control_plane: String,
    /// Path of the hierarchical MCP view.
    #[arg(long, env = "MCP_PATH", default_value = "/mcp")]
    mcp_path: String,
    /// This gateway's id (for logs and the control plane).
    #[arg(long, env = "MCPR_GATEWAY_ID", default_value = "gateway")]
    id: String,
    /// Longest wait for an upstream answer, in seconds.
    #[arg(long, env = "MCPR_REQUEST_TIMEOUT_SECS", default_value_t = 130)]
    request_timeout_secs: u64,
    /// Browser origins allowed besides loopback and the request's own host (comma-separated).
    #[arg(long, env = "MCPR_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Host names clients may use besides loopback ones (comma-separated; `*` for any).
    #[arg(long, env = "MCPR_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Forget client sessions idle for this many seconds (overrides
    /// `MCPR_SESSION_IDLE_SECS`, default 3600).
    #[arg(long)]
    session_idle_secs: Option<u64>,
    /// Also serve `/metrics` on this address (open unless `MCPR_METRICS_TOKEN` is set). The
    /// MCP listener serves it too: open on loopback, else behind the token.
    #[arg(long, env = "MCPR_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    cluster: mcpr_tls::cluster::ClusterArgs,
    #[command(flatten)]
    tls: mcpr_tls::TlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut telemetry =
        mcpr_core::telemetry::init("mcpr-edge-gateway").map_err(anyhow::Error::msg)?;
    let args = Args::parse();
    let mut limits = *mcpr_core::settings::Limits::install_from_env()?;
    if let Some(secs) = args.session_idle_secs {
        limits.session_idle = Duration::from_secs(secs.max(1));
    }
    let tls = args.tls.install()?;
    if !args.mcp_path.starts_with('/') {
        anyhow::bail!("MCP_PATH must start with '/', got {:?}", args.mcp_path);
    }
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (--listen): {e}", args.listen))?;
    let config = mcpr_edge_gateway::Config {
        gateway_id: args.id,
        control_planes: mcpr_tls::control_planes::ControlPlanes::parse(
            &args.control_plane,
            "--control-plane (MCPR_CONTROL_PLANE)",
        )?,
        mcp_path: args.mcp_path,
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        host_policy: std::sync::Arc::new(mcpr_tls::host_policy::HostPolicy::for_listener(
            &args.listen,
            &args.allowed_hosts,
            &args.allowed_origins,
        )),
        limits,
        require_auth: !listener.local_addr()?.ip().is_loopback(),
        cluster_token: args.cluster.token()?,
    };
    let host_policy = config.host_policy.clone();
    let gateway = mcpr_edge_gateway::Gateway::start(config);
    let render = {
        let gateway = gateway.clone();
        mcpr_tls::metrics::with_process(move |out| gateway.render_metrics(out))
    };
    let loopback = listener.local_addr()?.ip().is_loopback();
    let metrics_listen = args.metrics_listen.as_deref();
    let metrics =
        mcpr_tls::metrics::setup(render, loopback, metrics_listen, &host_policy, tls.clone())
            .await?;
    let router = gateway.router().merge(metrics);
    tracing::info!(addr = %listener.local_addr()?, path = %gateway.config.mcp_path, "edge gateway listening");
    // The client address feeds the per-address rate limit (`auth.rs`).
    tokio::select! {
        served = mcpr_tls::serve_http(listener, router, tls) => served?,
        _ = mcpr_core::telemetry::terminated() => {}
    }
    // The spans of the last calls go out before the process does.
    telemetry.shutdown();
    Ok(())
}
