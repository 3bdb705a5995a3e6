//! `mcpr`: the MCP Router command line. `up` and `stdio` run the router; the other commands
//! are admin commands against its REST API (or, for `call`, its MCP endpoint).
//!
//! Layers, each importing only from those below it: the command groups (`up`, `stdio`,
//! `server`, `key`, `import`, `call`, `login`, `bench`, `cluster`, `audit`), then `client` (the HTTP client of
//! the admin API) and `credentials`, then `flags`, `output` and `prompt` (`scripts/check-layers`).

/// mimalloc: the data path allocates per message, and it is measurably faster than the
/// system allocator there (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod audit;
mod bench;
mod call;
mod client;
mod cluster;
mod credentials;
mod flags;
mod import;
mod key;
mod login;
mod output;
mod prompt;
mod registry;
mod server;
mod stdio;
mod tool;
mod up;

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use client::Admin;
use up::UpArgs;

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

// Parsed once per run: the size of `Server` (with `server add`'s flags) does not matter.
#[allow(clippy::large_enum_variant)]
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
        command: server::ServerCommand,
    },
    /// List a server's tools; disable, enable or rename them for every client.
    Tool {
        #[command(subcommand)]
        command: tool::ToolCommand,
    },
    /// Register the servers of a Claude Desktop style {"mcpServers": {...}} JSON file.
    Import { file: PathBuf },
    /// The cluster: control planes and the leader, agents, gateways (GET /api/v1/cluster).
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Search the MCP Registry (MCPR_REGISTRY_URL, or MCPR_REGISTRY_DIR offline).
    Registry {
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
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
    BenchSandbox(bench::sandbox::BenchSandboxArgs),
    /// Print the audit log: who called what, when, and how it went (--follow for new ones).
    Audit(audit::AuditArgs),
    /// Manage API keys for MCP clients.
    Key {
        #[command(subcommand)]
        command: key::KeyCommand,
    },
    /// Log in as admin (ADMIN_PASSCODE, prompted or from MCPR_ADMIN_PASSCODE); the token is
    /// kept in ~/.config/mcpr/token for the other admin commands.
    Login,
    /// Forget the admin token.
    Logout,
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
        Command::Up(args) => up::run(&args, tls).await,
        Command::Stdio { api_key, up } => {
            let bridge_to = url_given.then_some(cli.url.as_str());
            stdio::run(bridge_to, api_key, &up, tls).await
        }
        Command::Server { command } => server::run(&Admin::new(&cli.url)?, command, cli.json).await,
        Command::Cluster { command } => {
            cluster::run(&Admin::new(&cli.url)?, command, cli.json).await
        }
        Command::Registry { command } => {
            registry::run(&Admin::new(&cli.url)?, command, cli.json).await
        }
        Command::Tool { command } => tool::run(&Admin::new(&cli.url)?, command, cli.json).await,
        Command::Import { file } => import::run(&Admin::new(&cli.url)?, &file, cli.json).await,
        Command::Call {
            provider,
            tool,
            args,
        } => call::run(&Admin::new(&cli.url)?, &provider, &tool, &args, cli.json).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchSandbox(args) => bench::sandbox::run(args).await,
        Command::Audit(args) => audit::run(&Admin::new(&cli.url)?, args, cli.json).await,
        Command::Key { command } => key::run(&Admin::new(&cli.url)?, command, cli.json).await,
        Command::Login => login::run_login(&Admin::new(&cli.url)?).await,
        Command::Logout => login::run_logout(&Admin::new(&cli.url)?).await,
    }
}
