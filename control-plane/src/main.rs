//! `mcpr-control-plane`: the control plane of a distributed MCP Router.

/// mimalloc: the data path allocates per message, and it is measurably faster than the
/// system allocator there (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "MCP Router control plane: store, REST API, web UI, gRPC for gateways and agents"
)]
struct Args {
    /// Address of the REST API and web UI.
    #[arg(long, env = "MCPR_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: String,
    /// Address of the gRPC services (gateways and agents connect here).
    #[arg(long, env = "MCPR_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    grpc_listen: String,
    /// Where the SQLite database lives.
    #[arg(long, env = "MCPR_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Use Postgres instead of SQLite: postgres://user:password@host/db
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Serve gRPC off loopback with neither MCPR_CLUSTER_TOKEN nor mutual TLS, on a network
    /// you trust: anyone who reaches it can read server secrets.
    #[arg(long, env = "MCPR_INSECURE_GRPC")]
    insecure_grpc: bool,
    #[command(flatten)]
    cluster: mcpr_tls::cluster::ClusterArgs,
    /// Browser origins allowed besides loopback and the request's own host (comma-separated).
    #[arg(long, env = "MCPR_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Host names clients may use besides loopback ones (comma-separated; `*` for any).
    #[arg(long, env = "MCPR_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Also serve `/metrics` on this address (open unless `MCPR_METRICS_TOKEN` is set). The
    /// HTTP listener serves it too: open on loopback, else behind the token.
    #[arg(long, env = "MCPR_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    tls: mcpr_tls::TlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut telemetry =
        mcpr_core::telemetry::init("mcpr-control-plane").map_err(anyhow::Error::msg)?;
    let args = Args::parse();
    mcpr_core::settings::Limits::install_from_env()?;
    let tls = args.tls.install()?;
    let cluster_token = args.cluster.token()?;
    let grpc = TcpListener::bind(&args.grpc_listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (--grpc-listen): {e}", args.grpc_listen)
    })?;
    mcpr_tls::cluster::check_grpc_listener(
        grpc.local_addr()?,
        "--grpc-listen",
        tls.as_deref(),
        cluster_token.as_ref(),
        args.insecure_grpc,
    )?;
    let http = TcpListener::bind(&args.http_listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (--http-listen): {e}", args.http_listen)
    })?;
    let mut security = mcpr_control_plane::Security::from_env(|k| std::env::var(k).ok())?;
    security.check_listen(&args.http_listen, "the REST API and the web UI")?;
    let http_addr = http.local_addr()?;
    security
        .oauth
        .set_public_address(&http_addr.ip().to_string(), http_addr.port());
    let config = mcpr_control_plane::Config {
        data_dir: args.data_dir,
        database_url: args.database_url,
        security,
        cluster_token,
    };
    let cp = mcpr_control_plane::ControlPlane::start(&config, grpc, tls.as_deref()).await?;
    tracing::info!(addr = %http.local_addr()?, tls = tls.as_ref().is_some_and(|t| t.serves()), "control plane HTTP (API, UI) listening");
    let host_policy = std::sync::Arc::new(mcpr_tls::host_policy::HostPolicy::for_listener(
        &args.http_listen,
        &args.allowed_hosts,
        &args.allowed_origins,
    ));
    let cp = std::sync::Arc::new(cp);
    let render = {
        let cp = cp.clone();
        mcpr_tls::metrics::with_process(move |out| cp.render_metrics(out))
    };
    let loopback = http_addr.ip().is_loopback();
    let metrics_listen = args.metrics_listen.as_deref();
    let metrics =
        mcpr_tls::metrics::setup(render, loopback, metrics_listen, &host_policy, tls.clone())
            .await?;
    let router = cp.http_router(&host_policy).merge(metrics);
    tokio::select! {
        served = mcpr_tls::serve_http(http, router, tls) => served?,
        _ = mcpr_core::telemetry::terminated() => {}
    }
    // The spans of the last calls go out before the process does.
    telemetry.shutdown();
    Ok(())
}
