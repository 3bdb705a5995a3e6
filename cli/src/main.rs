//! `mcpr`: the MCP Router command line. `up` and `stdio` run the router; the other commands
//! are admin commands against its REST API (or, for `call`, its MCP endpoint).

/// mimalloc: the data path allocates per message, and it is measurably faster than the
/// system allocator there (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod bench;
mod bench_sandbox;
mod bridge;
mod keys;
mod login;
mod output;
mod up;

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mcpr",
    version,
    about = "MCP Router: one MCP endpoint in front of many MCP servers"
)]
struct Cli {
    /// Where the router is (for admin commands).
    #[arg(
        long,
        global = true,
        env = "MCPR_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    url: String,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// TLS: the router's own certificate (`up`, `stdio`) and the authority to trust (all).
    #[command(flatten)]
    tls: mcpr_tls::TlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole router in this process (control plane, node agent, gateway; SQLite).
    Up(UpArgs),
    /// Serve MCP on stdin/stdout for desktop clients (Claude Desktop and others).
    ///
    /// With the global --url given on the command line, bridges stdio to the router already
    /// running there instead of running one in-process.
    Stdio {
        /// The API key the bridge sends to a router that requires one (with --url; read
        /// from MCPR_API_KEY, else MCP_API_KEY, as `mcpr call` does).
        #[arg(long, env = "MCPR_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        #[command(flatten)]
        up: UpArgs,
    },
    /// Manage registered MCP servers.
    Server {
        #[command(subcommand)]
        command: admin::ServerCommand,
    },
    /// Register the servers of a Claude Desktop style {"mcpServers": {...}} JSON file.
    Import { file: PathBuf },
    /// Call a provider's tool through the router's MCP endpoint.
    Call {
        provider: String,
        tool: String,
        /// Tool arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// Measure tool calls per second and latency through the router and directly.
    Bench(bench::BenchArgs),
    /// Measure python_sandbox round trips and docker server start-up through a running router
    BenchSandbox(bench_sandbox::BenchSandboxArgs),
    /// Manage API keys for MCP clients.
    Key {
        #[command(subcommand)]
        command: keys::KeyCommand,
    },
    /// Log in as admin (ADMIN_PASSCODE, prompted or from MCPR_ADMIN_PASSCODE); the token is
    /// kept in ~/.config/mcpr/token for the other admin commands.
    Login,
    /// Forget the admin token.
    Logout,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Transport {
    Http,
    Stdio,
}

#[derive(clap::Args, Debug)]
struct UpArgs {
    /// How MCP clients connect: HTTP (MCP, API and UI on one port) or stdio (MCP on
    /// stdin/stdout, API and UI on the port in the background).
    #[arg(long, env = "MCP_TRANSPORT", value_enum, default_value = "http")]
    transport: Transport,
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
    fn options(&self) -> up::UpOptions {
        up::UpOptions {
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

fn main() {
    let matches = Cli::command().get_matches();
    let url_given = matches.value_source("url") == Some(ValueSource::CommandLine);
    let key_given = matches
        .subcommand_matches("stdio")
        .is_some_and(|m| m.value_source("api_key") == Some(ValueSource::CommandLine));
    if key_given && !url_given {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--api-key is for the bridge to a router running elsewhere (mcpr --url URL stdio --api-key KEY); the router `mcpr stdio` runs in-process needs no key",
            )
            .exit();
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(cli, url_given)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    // Don't wait for background tasks (relay streams, children) to notice.
    runtime.shutdown_timeout(Duration::from_millis(200));
}

async fn run(cli: Cli, url_given: bool) -> anyhow::Result<()> {
    let tls = cli.tls.install()?;
    match cli.command {
        Command::Up(args) => {
            mcpr_core::telemetry::init_logging();
            mcpr_core::settings::Limits::install_from_env()?;
            let options = args.options();
            if args.transport == Transport::Stdio {
                return serve_stdio(&options, tls).await;
            }
            let listener = up::bind(&options).await?;
            let router = up::start(&options).await?;
            let scheme = match tls.as_ref().is_some_and(|t| t.serves()) {
                true => "https",
                false => "http",
            };
            up::banner(scheme, listener.local_addr()?, &options.mcp_path);
            let agent = router.agent.clone();
            tokio::select! {
                served = mcpr_tls::serve_http(listener, router.http, tls) => served?,
                _ = shutdown_signal() => {}
            }
            agent.shutdown().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        }
        Command::Stdio { api_key, up } => {
            mcpr_core::telemetry::init_logging();
            mcpr_core::settings::Limits::install_from_env()?;
            if url_given {
                let api_key = api_key
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .or_else(login::api_key);
                bridge::run(&cli.url, api_key.as_deref()).await
            } else {
                serve_stdio(&up.options(), tls).await
            }
        }
        Command::Server { command } => {
            admin::run_server(&admin::Admin::new(&cli.url)?, command, cli.json).await
        }
        Command::Import { file } => {
            admin::run_import(&admin::Admin::new(&cli.url)?, &file, cli.json).await
        }
        Command::Call {
            provider,
            tool,
            args,
        } => {
            admin::run_call(
                &admin::Admin::new(&cli.url)?,
                &provider,
                &tool,
                &args,
                cli.json,
            )
            .await
        }
        Command::Bench(args) => bench::run(args).await,
        Command::BenchSandbox(args) => bench_sandbox::run(args).await,
        Command::Key { command } => {
            keys::run_key(&admin::Admin::new(&cli.url)?, command, cli.json).await
        }
        Command::Login => login::run_login(&admin::Admin::new(&cli.url)?).await,
        Command::Logout => login::run_logout(&admin::Admin::new(&cli.url)?).await,
    }
}

/// The router in-process with MCP on stdin/stdout; API and UI on the port when it is free.
async fn serve_stdio(
    options: &up::UpOptions,
    tls: Option<std::sync::Arc<mcpr_tls::Tls>>,
) -> anyhow::Result<()> {
    let router = up::start(options).await?;
    match up::bind(options).await {
        Ok(listener) => {
            tracing::info!(addr = %listener.local_addr()?, "web UI and API listening");
            tokio::spawn(mcpr_tls::serve_http(listener, router.http, tls));
        }
        Err(e) => {
            tracing::warn!(error = %e, "web UI and API not served; MCP on stdio works regardless")
        }
    }
    let served = mcpr_edge_gateway::stdio::serve(
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
