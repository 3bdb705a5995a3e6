//! `mcpr server …`: register, change, list, show, start and stop MCP servers, their tools
//! and logs, through the REST API (`/api/v1/servers`, docs/API.md).

mod add_from;
mod analyze;
mod logs;
mod runtime;
mod show;

use std::time::Duration;

use anyhow::bail;
use serde_json::{Map, Value, json};

use crate::client::Admin;
use crate::output::{self, Table, clean, print_json, shorten, str_at};

pub use runtime::DockerOptions;
use runtime::{added_runtime, edited_runtime};
use show::{runtime_summary, server_details, servers_table};

// Parsed once per run: the size of `Add` (with its docker options) does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
pub enum ServerCommand {
    /// Register an MCP server: a local process (--command), a remote one (--remote URL), a
    /// locked-down container (--image, --npx, --uvx, or --command with --docker), or what the
    /// router proposes for a repository (--from URL) or an MCP Registry entry (--registry),
    /// reviewed first
    #[command(group(clap::ArgGroup::new("runtime").required(true).multiple(true).args(["command", "remote", "image", "npx", "uvx", "from", "registry"])))]
    Add {
        /// Name clients see it under (letters, digits, '-', '_')
        name: String,
        /// Command line to run, split like a shell would, e.g. "uvx mcp-server-time"
        #[arg(long, allow_hyphen_values = true)]
        command: Option<String>,
        /// Environment variable for the process or container (repeatable)
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory of the process (absolute path)
        #[arg(long, requires = "command")]
        cwd: Option<String>,
        /// URL of a remote streamable-HTTP MCP server instead of a process
        #[arg(long)]
        remote: Option<String>,
        /// HTTP header sent to the remote server (repeatable)
        #[arg(long = "header", value_name = "NAME=VALUE", requires = "remote")]
        header: Vec<String>,
        #[command(flatten)]
        docker: DockerOptions,
        /// Human description
        #[arg(long)]
        description: Option<String>,
        /// One upstream session for all clients, or one per client session
        #[arg(long, value_parser = ["shared", "per_client"])]
        session_mode: Option<String>,
        /// Run it only on agents with these labels (`--label` of mcpr-node-agent), e.g.
        /// zone=a,docker=true
        #[arg(long, value_name = "KEY=VALUE,…", value_delimiter = ',')]
        selector: Vec<String>,
        /// Register it without starting it
        #[arg(long)]
        disabled: bool,
        /// Wait until it runs (printing its progress: image pulls and builds) or fails
        #[arg(long, conflicts_with = "disabled")]
        wait: bool,
        /// With --wait (or --from, --registry): give up after this many seconds
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        wait_timeout: u64,
        /// With --from or --registry, which wait until the server runs (printing its
        /// progress: installs, image builds): return once it is saved
        #[arg(long, conflicts_with = "wait")]
        no_wait: bool,
        /// Analyze this repository (GitHub URL, `…/tree/REF/PATH`, any git URL, or an
        /// absolute local path) and add what it proposes, after review
        #[arg(long = "from", value_name = "URL", conflicts_with_all = ["command", "remote", "image", "npx", "uvx", "registry", "cwd", "header"])]
        from: Option<String>,
        /// Add this MCP Registry server (io.github.OWNER/NAME[@VERSION]), after review
        #[arg(long, value_name = "NAME[@VERSION]", conflicts_with_all = ["command", "remote", "image", "npx", "uvx", "cwd", "header"])]
        registry: Option<String>,
        /// With --from: the branch, tag or commit to read
        #[arg(long = "ref", value_name = "REF", requires = "from")]
        git_ref: Option<String>,
        /// With --from: the directory inside the repository
        #[arg(long, requires = "from")]
        path: Option<String>,
        /// With --from: which of several proposals to add (1 is the first listed)
        #[arg(long, value_name = "N", requires = "from")]
        pick: Option<usize>,
        /// With --from or --registry: prefer a host process or a container
        #[arg(long, value_parser = ["process", "docker"])]
        prefer: Option<String>,
        /// With --from or --registry: add the proposal without asking (scripts); required
        /// values must come with --env
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Change a registered server's description, session mode, environment or headers; the
    /// rest of its runtime, secrets included, stays as it is
    #[command(alias = "edit")]
    Update {
        name: String,
        /// Human description
        #[arg(long)]
        description: Option<String>,
        /// Set an environment variable of the process or container (repeatable)
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Set an HTTP header sent to the remote server (repeatable)
        #[arg(long = "header", value_name = "NAME=VALUE")]
        header: Vec<String>,
        /// One upstream session for all clients, or one per client session
        #[arg(long, value_parser = ["shared", "per_client"])]
        session_mode: Option<String>,
        /// Run it only on agents with these labels, e.g. zone=a (\"\": any agent); it moves
        /// when its agent no longer matches
        #[arg(long, value_name = "KEY=VALUE,…", value_delimiter = ',')]
        selector: Option<Vec<String>>,
    },
    /// List servers with their state
    #[command(alias = "ls")]
    List,
    /// Show one server in detail (its state, progress and last error)
    #[command(alias = "status")]
    Show { name: String },
    /// Delete a server (its process is stopped)
    #[command(alias = "remove", alias = "delete")]
    Rm { name: String },
    /// Enable (start) a server
    Enable { name: String },
    /// Disable (stop) a server
    Disable { name: String },
    /// Restart a server's process
    Restart { name: String },
    /// Print a server's recent log lines
    Logs {
        name: String,
        /// How many of the last lines to print
        #[arg(long, default_value_t = 200)]
        tail: usize,
        /// Keep printing new lines until Ctrl-C
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// List the tools a server offers
    Tools { name: String },
    /// Propose how to run an MCP server from a repository (GitHub URL, `…/tree/REF/PATH`,
    /// any git URL, or a local path), read by the router and never executed
    Analyze {
        // Not named `url`: clap would take it for the global `--url` (the router's address).
        /// GitHub URL, `…/tree/REF/PATH`, any git URL, or an absolute local path
        #[arg(value_name = "URL")]
        repository: String,
        /// Branch, tag or commit to read
        #[arg(long = "ref", value_name = "REF")]
        git_ref: Option<String>,
        /// Directory inside the repository
        #[arg(long)]
        path: Option<String>,
    },
}

/// `{"selector": {...}}` from `--selector zone=a,docker=true`.
fn placement(selector: &[String]) -> anyhow::Result<Value> {
    let labels =
        mcpr_core::placement::parse_labels(selector.iter().map(String::as_str), "--selector")?;
    Ok(json!({ "selector": labels }))
}

pub async fn run(admin: &Admin, cmd: ServerCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        ServerCommand::Add {
            name,
            command,
            env,
            cwd,
            remote,
            header,
            docker,
            description,
            session_mode,
            selector,
            disabled,
            wait,
            wait_timeout,
            no_wait,
            from,
            registry,
            git_ref,
            path,
            pick,
            prefer,
            yes,
        } => {
            let origin = match (&from, &registry) {
                (Some(url), _) => Some(add_from::Origin::Repository {
                    url,
                    git_ref: git_ref.as_deref(),
                    path: path.as_deref(),
                    pick,
                }),
                (None, Some(entry)) => Some(add_from::Origin::Registry { name: entry }),
                (None, None) => None,
            };
            // What comes from a repository or the registry is installed or built on its
            // first start, and that is where it goes wrong: wait for it unless told not to.
            let wait = wait || (origin.is_some() && !disabled && !no_wait);
            if no_wait && origin.is_none() {
                bail!(
                    "--no-wait goes with --from or --registry (the others do not wait unless --wait)"
                );
            }
            let mut body = match origin {
                Some(origin) => {
                    if docker.any_set() {
                        bail!(
                            "--from and --registry take the runtime the router proposes: drop the container flags (--image, --docker, --arg, --network, …)"
                        );
                    }
                    let review = add_from::Review {
                        env: &env,
                        yes,
                        json,
                        prefer: prefer.as_deref(),
                    };
                    add_from::reviewed_server(admin, &name, origin, &review).await?
                }
                None => {
                    if yes || prefer.is_some() {
                        bail!("--yes and --prefer go with --from or --registry");
                    }
                    let runtime = added_runtime(command, &env, cwd, remote, &header, &docker)?;
                    json!({"name": name, "runtime": runtime})
                }
            };
            body["enabled"] = json!(!disabled);
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            if let Some(mode) = session_mode {
                body["session_mode"] = Value::String(mode);
            }
            if !selector.is_empty() {
                body["placement"] = placement(&selector)?;
            }
            let server = admin.post(&["servers"], Some(&body), None).await?;
            if wait {
                let running =
                    wait_running(admin, &name, Duration::from_secs(wait_timeout), json).await?;
                if json {
                    return print_json(&running);
                }
                println!(
                    "server \"{}\" is running: {} tools",
                    clean(&name),
                    str_at(&running, &["status", "tool_count"])
                );
                return Ok(());
            }
            if json {
                return print_json(&server);
            }
            println!(
                "added server \"{}\": {}",
                clean(&name),
                clean(&runtime_summary(&server))
            );
            if disabled {
                println!(
                    "it is disabled; start it with: mcpr server enable {}",
                    output::shell_quote(&name)
                );
            } else {
                println!("it starts in the background; watch it with: mcpr server list");
            }
            let runtime = &server["runtime"];
            if runtime["npx"].is_string() || runtime["uvx"].is_string() {
                println!(
                    "its image is built on the first start (once); follow the build with: mcpr server logs {} -f (or add it with --wait)",
                    output::shell_quote(&name)
                );
            }
        }
        ServerCommand::Update {
            name,
            description,
            env,
            header,
            session_mode,
            selector,
        } => {
            let mut patch = Map::new();
            if let Some(selector) = selector {
                patch.insert("placement".into(), placement(&selector)?);
            }
            if let Some(d) = description {
                patch.insert("description".into(), Value::String(d));
            }
            if let Some(mode) = session_mode {
                patch.insert("session_mode".into(), Value::String(mode));
            }
            if !env.is_empty() || !header.is_empty() {
                let server = admin.get(&["servers", &name], Some(&name)).await?;
                patch.insert(
                    "runtime".into(),
                    edited_runtime(&server["runtime"], &env, &header)?,
                );
            }
            if patch.is_empty() {
                bail!(
                    "nothing to change: give --description, --session-mode, --selector, --env or --header"
                );
            }
            let server = admin
                .patch(&["servers", &name], &Value::Object(patch), Some(&name))
                .await?;
            if json {
                return print_json(&server);
            }
            println!(
                "updated server \"{}\": {}",
                clean(&name),
                clean(&runtime_summary(&server))
            );
        }
        ServerCommand::List => {
            let servers = admin.get(&["servers"], None).await?;
            if json {
                return print_json(&servers);
            }
            let servers = servers.as_array().cloned().unwrap_or_default();
            if servers.is_empty() {
                println!(
                    "no servers yet; add one with: mcpr server add NAME --command \"uvx mcp-server-time\""
                );
                return Ok(());
            }
            print!("{}", servers_table(&servers));
        }
        ServerCommand::Show { name } => {
            let server = admin.get(&["servers", &name], Some(&name)).await?;
            if json {
                return print_json(&server);
            }
            print!("{}", server_details(&server));
        }
        ServerCommand::Rm { name } => {
            admin.delete(&["servers", &name], Some(&name)).await?;
            if !json {
                println!("removed server \"{}\"", clean(&name));
            }
        }
        ServerCommand::Enable { name } => action(admin, &name, "enable", "enabled", json).await?,
        ServerCommand::Disable { name } => {
            action(admin, &name, "disable", "disabled", json).await?
        }
        ServerCommand::Restart { name } => {
            action(admin, &name, "restart", "restarting", json).await?
        }
        ServerCommand::Logs { name, tail, follow } => {
            logs::logs(admin, &name, tail, follow, json).await?
        }
        ServerCommand::Analyze {
            repository,
            git_ref,
            path,
        } => {
            analyze::analyze(
                admin,
                &repository,
                git_ref.as_deref(),
                path.as_deref(),
                json,
            )
            .await?
        }
        ServerCommand::Tools { name } => {
            let tools = admin.get(&["servers", &name, "tools"], Some(&name)).await?;
            if json {
                return print_json(&tools);
            }
            let tools = tools.as_array().cloned().unwrap_or_default();
            if tools.is_empty() {
                println!(
                    "\"{}\" reports no tools (yet); see: mcpr server show {}",
                    clean(&name),
                    output::shell_quote(&name)
                );
                return Ok(());
            }
            let mut table = Table::new(&["TOOL", "DESCRIPTION"]);
            for tool in &tools {
                let description = str_at(tool, &["description"]);
                let first_line = description.lines().next().unwrap_or("");
                table.row(vec![str_at(tool, &["name"]), shorten(first_line, 90)]);
            }
            print!("{}", table.render());
        }
    }
    Ok(())
}

async fn action(
    admin: &Admin,
    name: &str,
    verb: &str,
    done: &str,
    json: bool,
) -> anyhow::Result<()> {
    let server = admin
        .post(&["servers", name, verb], None, Some(name))
        .await?;
    if json {
        return print_json(&server);
    }
    println!(
        "{done} server \"{}\" (state: {})",
        clean(name),
        clean(&str_at(&server, &["status", "state"]))
    );
    Ok(())
}

/// Polls a server until it runs (its state `running`) or fails (`backoff`, `stopped`),
/// printing each new progress line (stderr with `--json`, so stdout stays one document).
async fn wait_running(
    admin: &Admin,
    name: &str,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut shown = String::new();
    loop {
        let server = admin.get(&["servers", name], Some(name)).await?;
        let progress = str_at(&server, &["status", "progress"]);
        if !progress.is_empty() && progress != shown {
            let line = format!(
                "  {}: {}",
                str_at(&server, &["status", "state"]),
                clean(&progress)
            );
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            shown = progress;
        }
        let state = str_at(&server, &["status", "state"]);
        match state.as_str() {
            "running" => return Ok(server),
            "backoff" | "stopped" => bail!(
                "server \"{}\" failed to start: {}",
                clean(name),
                clean(&str_at(&server, &["status", "last_error"]))
            ),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "server \"{}\" is not running after {} s (state {state}); watch it with: mcpr server list",
                clean(name),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
