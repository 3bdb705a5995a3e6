//! `mcpr-node-agent`: runs MCP servers on this host for a distributed MCP Router.

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
    about = "MCP Router node agent: runs MCP servers and relays gateways' calls to them"
)]
struct Args {
    /// This agent's unique id (default: the host name).
    #[arg(long, env = "MCPR_AGENT_ID")]
    id: Option<String>,
    /// The control planes' gRPC URLs, separated by commas: the agent follows one and
    /// moves to the next when it goes away.
    #[arg(
        long,
        env = "MCPR_CONTROL_PLANE",
        default_value = "http://127.0.0.1:50051"
    )]
    control_plane: String,
    /// Address of the relay service that gateways connect to.
    #[arg(long, env = "MCPR_RELAY_LISTEN", default_value = "127.0.0.1:50061")]
    relay_listen: String,
    /// The relay URL gateways should dial, when it differs from the listen address.
    #[arg(long, env = "MCPR_RELAY_ADVERTISE")]
    advertise: Option<String>,
    /// Placement labels, KEY=VALUE separated by commas (repeatable): a server with a
    /// selector runs only on agents that have every label it names; `docker=false` keeps
    /// container servers off this host.
    #[arg(
        long = "label",
        env = "MCPR_AGENT_LABELS",
        value_name = "KEY=VALUE,…",
        value_delimiter = ','
    )]
    labels: Vec<String>,
    /// First restart delay after a crash, in milliseconds (doubles up to --backoff-max-ms).
    #[arg(long, env = "MCPR_RESTART_BACKOFF_MS", default_value_t = 500)]
    backoff_ms: u64,
    #[arg(long, env = "MCPR_RESTART_BACKOFF_MAX_MS", default_value_t = 30_000)]
    backoff_max_ms: u64,
    /// How long a request may wait for its upstream answer, in seconds.
    #[arg(long, env = "MCPR_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    request_timeout_secs: u64,
    /// Serve the relay off loopback with neither MCPR_CLUSTER_TOKEN nor mutual TLS, on a
    /// network you trust: anyone who reaches it can call every tool.
    #[arg(long, env = "MCPR_INSECURE_GRPC")]
    insecure_grpc: bool,
    /// Serve `/metrics` (Prometheus text format) on this address: open unless
    /// `MCPR_METRICS_TOKEN` is set, then behind it as a bearer token. Off by default: the
    /// agent has no other HTTP listener.
    #[arg(long, env = "MCPR_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    docker: mcpr_node_agent::runtime::DockerArgs,
    #[command(flatten)]
    cluster: mcpr_tls::cluster::ClusterArgs,
    #[command(flatten)]
    tls: mcpr_tls::TlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut telemetry =
        mcpr_core::telemetry::init("mcpr-node-agent").map_err(anyhow::Error::msg)?;
    let args = Args::parse();
    let tls = args.tls.install()?;
    let cluster_token = args.cluster.token()?;
    let id = args.id.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "agent".into())
    });
    let listener = TcpListener::bind(&args.relay_listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {} (--relay-listen): {e}",
            args.relay_listen
        )
    })?;
    mcpr_tls::cluster::check_grpc_listener(
        listener.local_addr()?,
        "--relay-listen",
        tls.as_deref(),
        cluster_token.as_ref(),
        args.insecure_grpc,
    )?;
    let settings = mcpr_node_agent::Settings {
        backoff_base: Duration::from_millis(args.backoff_ms),
        backoff_max: Duration::from_millis(args.backoff_max_ms.max(args.backoff_ms)),
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        docker: args.docker.settings(),
        sandbox: args.docker.sandbox_limits(),
        ..Default::default()
    };
    let metrics_token = mcpr_core::metrics::metrics_token_from_env(|k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?;
    let labels = mcpr_core::placement::parse_labels(
        args.labels.iter().map(String::as_str),
        "--label (MCPR_AGENT_LABELS)",
    )?;
    let config = mcpr_node_agent::Config {
        agent_id: id,
        labels,
        control_planes: mcpr_tls::control_planes::ControlPlanes::parse(
            &args.control_plane,
            "--control-plane (MCPR_CONTROL_PLANE)",
        )?,
        advertise_url: args.advertise,
        settings,
        tls: tls.clone(),
        cluster_token,
    };
    let agent = mcpr_node_agent::start(config, listener).await?;
    if let Some(addr) = &args.metrics_listen {
        let metrics_agent = agent.clone();
        let render = mcpr_tls::metrics::with_process(move |out| metrics_agent.render_metrics(out));
        mcpr_tls::metrics::serve_dedicated(addr, render, metrics_token, tls).await?;
    }
    shutdown_signal().await;
    tracing::info!("stopping servers");
    // Stops the servers and removes this agent's containers.
    agent.shutdown().await;
    // Give children a moment to be reaped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    telemetry.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
