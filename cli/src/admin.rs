//! Admin commands: `mcpr server …`, `mcpr import` (REST API under `/api/v1`, see
//! `docs/API.md`) and `mcpr call` (a tool call through the MCP endpoint, as a client would).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::output::{self, Table, clean, shell_join, shorten};

const PROTOCOL_VERSION: &str = "2025-06-18";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// Shared by all admin commands: where the router is and how to print.
pub struct Admin {
    client: reqwest::Client,
    base: Url,
}

impl Admin {
    /// `base_url` like `http://127.0.0.1:8000` (a missing `http://` is added).
    pub fn new(base_url: &str) -> anyhow::Result<Admin> {
        let trimmed = base_url.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let base =
            Url::parse(&with_scheme).map_err(|e| anyhow!("invalid router URL {trimmed:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("invalid router URL {trimmed:?}: expected http://HOST:PORT");
        }
        let client = mcpr_tls::http_client()?
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("mcpr-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Admin { client, base })
    }

    /// The base URL as the user would type it (no trailing slash).
    fn base_str(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `{base}/{segments…}`, each segment percent-encoded (a name cannot escape its place).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("checked in Admin::new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn api(&self, segments: &[&str]) -> Url {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    /// Sends a request, turning transport failures into one clear line.
    async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request.send().await.map_err(|e| self.transport_error(e))
    }

    fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        let base = self.base_str();
        if e.is_connect() {
            anyhow!("cannot reach the router at {base}: is it running? (start it with: mcpr up)")
        } else if e.is_timeout() {
            anyhow!("the router at {base} did not answer in time")
        } else {
            anyhow!(
                "request to the router at {base} failed: {}",
                mcpr_core::error_chain(&e)
            )
        }
    }

    /// Calls the REST API; a non-2xx answer becomes the formatted error line. `name` is the
    /// server the call is about (for `server "x" not found (404)`).
    async fn call_api(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        name: Option<&str>,
    ) -> anyhow::Result<Option<Value>> {
        let write = method != Method::GET;
        let mut request = self
            .client
            .request(method, self.api(segments))
            .header(ACCEPT, "application/json");
        if let Some(token) = crate::login::admin_token() {
            request = request.bearer_auth(token);
        }
        match body {
            Some(body) => request = request.json(body),
            // The API refuses writes that are not JSON, with or without a body.
            None if write => request = request.header(CONTENT_TYPE, "application/json"),
            None => {}
        }
        let response = self.send(request).await?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            bail!("{}", api_error_line(status.as_u16(), &text, name));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("the router answered with invalid JSON ({e})"))?;
        Ok(Some(value))
    }

    pub(crate) async fn get(&self, segments: &[&str], name: Option<&str>) -> anyhow::Result<Value> {
        Ok(self
            .call_api(Method::GET, segments, None, name)
            .await?
            .unwrap_or(Value::Null))
    }

    pub(crate) async fn post(
        &self,
        segments: &[&str],
        body: Option<&Value>,
        name: Option<&str>,
    ) -> anyhow::Result<Value> {
        Ok(self
            .call_api(Method::POST, segments, body, name)
            .await?
            .unwrap_or(Value::Null))
    }
}

/// One line for an error answer of the REST API (`{"error":{"status","code","field"?,"message"}}`),
/// e.g. `server "time" not found (404)` or `invalid name: must not be empty (422)`.
pub fn api_error_line(status: u16, body: &str, name: Option<&str>) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str);
    match (code, message, name) {
        (Some("not_found"), _, Some(name)) => {
            format!("server \"{}\" not found ({status})", clean(name))
        }
        (Some("invalid_field"), Some(message), _) => {
            format!("invalid {} ({status})", clean(message))
        }
        (_, Some(message), _) => format!("{} ({status})", clean(message)),
        _ => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let body = clean(&shorten(body.trim(), 200));
            let mut line = format!("the router answered {status} {reason}")
                .trim_end()
                .to_string();
            if !body.is_empty() {
                line.push_str(": ");
                line.push_str(&body);
            }
            line
        }
    }
}

/// Splits a command line with POSIX-shell-like rules: whitespace separates words, `'…'` is
/// literal, `"…"` allows `\"`, `\\`, `\$` and `` \` ``, and a backslash outside quotes
/// escapes the next character.
pub fn split_command(line: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => bail!("unterminated ' quote in {line:?}"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => bail!("unterminated \" quote in {line:?}"),
                        },
                        Some(c) => word.push(c),
                        None => bail!("unterminated \" quote in {line:?}"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => bail!("a trailing backslash in {line:?} escapes nothing"),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `KEY=VALUE` for `--env`: split at the first `=`; the key must not be empty.
pub fn parse_env(item: &str) -> anyhow::Result<(String, String)> {
    match item.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        Some(_) => bail!("--env {item:?}: the name before '=' is empty (expected KEY=VALUE)"),
        None => bail!("--env {item:?}: missing '=' (expected KEY=VALUE)"),
    }
}

/// `Name=value` or `Name: value` for `--header` (header names contain neither `=` nor `:`).
pub fn parse_header(item: &str) -> anyhow::Result<(String, String)> {
    let Some(at) = item.find(['=', ':']) else {
        bail!("--header {item:?}: missing '=' (expected NAME=VALUE)");
    };
    let (key, value) = (item[..at].trim(), &item[at + 1..]);
    if key.is_empty() {
        bail!("--header {item:?}: the name before '=' is empty (expected NAME=VALUE)");
    }
    let value = if item.as_bytes()[at] == b':' {
        value.trim_start()
    } else {
        value
    };
    Ok((key.to_string(), value.to_string()))
}

/// `server add` options of the `docker` runtime (docs/DOCKER.md).
#[derive(clap::Args, Debug, Default)]
pub struct DockerOptions {
    /// Run this image in a container (--command then overrides its entrypoint)
    #[arg(long)]
    image: Option<String>,
    /// Run this npm package in a container (an image built once from MCPR_NODE_IMAGE)
    #[arg(long)]
    npx: Option<String>,
    /// Run this PyPI package in a container (an image built once from MCPR_PYTHON_IMAGE)
    #[arg(long)]
    uvx: Option<String>,
    /// Run --command in a container of the python base image instead of on the host
    #[arg(long, requires = "command")]
    docker: bool,
    /// Argument for the container's program (repeatable)
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Container network: none (default) or egress
    #[arg(long, value_parser = ["none", "egress"])]
    network: Option<String>,
    /// Container memory limit in MiB (default 512)
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Container CPU limit, e.g. 0.5 (default 1)
    #[arg(long)]
    cpus: Option<f64>,
    /// Most processes in the container (default 256)
    #[arg(long)]
    pids: Option<u64>,
}

impl DockerOptions {
    fn wanted(&self) -> bool {
        self.image.is_some() || self.npx.is_some() || self.uvx.is_some() || self.docker
    }

    /// The `docker` runtime JSON; `command` (already split) overrides the entrypoint.
    fn runtime(&self, command: Option<Vec<String>>) -> anyhow::Result<Value> {
        let mut runtime = json!({"kind": "docker"});
        for (key, value) in [
            ("image", &self.image),
            ("npx", &self.npx),
            ("uvx", &self.uvx),
        ] {
            if let Some(value) = value {
                runtime[key] = json!(value);
            }
        }
        let mut args = Vec::new();
        if let Some(mut words) = command {
            if words.is_empty() {
                bail!("--command is empty");
            }
            runtime["command"] = json!(words.remove(0));
            args = words;
        }
        args.extend(self.args.iter().cloned());
        runtime["args"] = json!(args);
        if let Some(network) = &self.network {
            runtime["network"] = json!(network);
        }
        if let Some(memory) = self.memory_mb {
            runtime["memory_mb"] = json!(memory);
        }
        if let Some(cpus) = self.cpus {
            if !(cpus > 0.0 && cpus.is_finite()) {
                bail!("--cpus must be a positive number, got {cpus}");
            }
            runtime["millicpus"] = json!((cpus * 1000.0).round() as u64);
        }
        if let Some(pids) = self.pids {
            runtime["pids"] = json!(pids);
        }
        Ok(runtime)
    }
}

// Parsed once per run: the size of `Add` (with its docker options) does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
pub enum ServerCommand {
    /// Register an MCP server: a local process (--command), a remote one (--remote URL), or
    /// a locked-down container (--image, --npx, --uvx, or --command with --docker)
    #[command(group(clap::ArgGroup::new("runtime").required(true).multiple(true).args(["command", "remote", "image", "npx", "uvx"])))]
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
        /// Register it without starting it
        #[arg(long)]
        disabled: bool,
        /// Wait until it runs (printing its progress: image pulls and builds) or fails
        #[arg(long, conflicts_with = "disabled")]
        wait: bool,
        /// With --wait: give up after this many seconds
        #[arg(long, value_name = "SECS", default_value_t = 600, requires = "wait")]
        wait_timeout: u64,
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
}

pub async fn run_server(admin: &Admin, cmd: ServerCommand, json: bool) -> anyhow::Result<()> {
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
            disabled,
            wait,
            wait_timeout,
        } => {
            let env_map = || -> anyhow::Result<Option<Value>> {
                if env.is_empty() {
                    return Ok(None);
                }
                let mut map = Map::new();
                for item in &env {
                    let (k, v) = parse_env(item)?;
                    map.insert(k, Value::String(v));
                }
                Ok(Some(Value::Object(map)))
            };
            let runtime = match (command, remote) {
                (command, None) if docker.wanted() => {
                    if cwd.is_some() {
                        bail!("--cwd is for processes on the host; a container starts in /tmp");
                    }
                    let words = command
                        .map(|line| split_command(&line).map_err(|e| anyhow!("--command: {e}")))
                        .transpose()?;
                    let mut runtime = docker.runtime(words)?;
                    if let Some(env) = env_map()? {
                        runtime["env"] = env;
                    }
                    runtime
                }
                (_, Some(_)) if docker.wanted() => {
                    bail!("--remote cannot run in a container: drop --image/--npx/--uvx/--docker")
                }
                (_, Some(_)) if !env.is_empty() => {
                    bail!("--env is for processes and containers; a remote server takes --header")
                }
                (Some(line), None) => {
                    let mut words = split_command(&line)
                        .map_err(|e| anyhow!("--command: {e}"))?
                        .into_iter();
                    let command = words.next().ok_or_else(|| anyhow!("--command is empty"))?;
                    let mut runtime = json!({"kind": "process", "command": command, "args": words.collect::<Vec<_>>()});
                    if let Some(env) = env_map()? {
                        runtime["env"] = env;
                    }
                    if let Some(cwd) = cwd {
                        runtime["cwd"] = Value::String(cwd);
                    }
                    runtime
                }
                (None, Some(remote)) => {
                    let mut runtime = json!({"kind": "remote", "url": remote});
                    if !header.is_empty() {
                        let mut map = Map::new();
                        for item in &header {
                            let (k, v) = parse_header(item)?;
                            map.insert(k, Value::String(v));
                        }
                        runtime["headers"] = Value::Object(map);
                    }
                    runtime
                }
                _ => bail!("give exactly one of --command or --remote"),
            };
            let mut body = json!({"name": name, "runtime": runtime, "enabled": !disabled});
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            if let Some(mode) = session_mode {
                body["session_mode"] = Value::String(mode);
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
        } => {
            let mut patch = Map::new();
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
                bail!("nothing to change: give --description, --session-mode, --env or --header");
            }
            let server = admin
                .call_api(
                    Method::PATCH,
                    &["servers", &name],
                    Some(&Value::Object(patch)),
                    Some(&name),
                )
                .await?
                .unwrap_or(Value::Null);
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
            admin
                .call_api(Method::DELETE, &["servers", &name], None, Some(&name))
                .await?;
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
            logs(admin, &name, tail, follow, json).await?
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

/// The runtime as `GET` showed it, with `env` or `header` pairs set. Its other secrets are
/// still the redacted placeholder, which the API reads as "unchanged".
fn edited_runtime(runtime: &Value, env: &[String], header: &[String]) -> anyhow::Result<Value> {
    let mut runtime = runtime.clone();
    let remote = runtime["kind"] == "remote";
    let (field, pairs): (_, anyhow::Result<Vec<(String, String)>>) =
        match (remote, env.is_empty(), header.is_empty()) {
            (false, _, true) => ("env", env.iter().map(|i| parse_env(i)).collect()),
            (true, true, _) => ("headers", header.iter().map(|i| parse_header(i)).collect()),
            (false, _, false) => {
                bail!("--header is for remote servers; a process or container takes --env")
            }
            (true, false, _) => {
                bail!("--env is for processes and containers; a remote server takes --header")
            }
        };
    let pairs = pairs?;
    let Some(object) = runtime.as_object_mut() else {
        bail!("the router showed no runtime for this server");
    };
    let map = object
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    for (key, value) in pairs {
        map[key] = Value::String(value);
    }
    Ok(runtime)
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

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The string at a path of object keys, or "" (numbers and booleans are shown too).
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
            if json {
                eprintln!("{}", clean(&progress));
            } else {
                println!("{}", clean(&progress));
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

fn str_at(value: &Value, path: &[&str]) -> String {
    let mut v = value;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `uvx mcp-server-time` for a process, the URL for a remote server.
fn runtime_summary(server: &Value) -> String {
    let runtime = &server["runtime"];
    match runtime["kind"].as_str() {
        Some("process") => {
            let mut words = vec![str_at(runtime, &["command"])];
            words.extend(
                runtime["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
            shell_join(&words)
        }
        Some("remote") => str_at(runtime, &["url"]),
        Some("docker") => {
            let mut words = Vec::new();
            for key in ["image", "npx", "uvx"] {
                if let Some(value) = runtime[key].as_str() {
                    words.push(format!("{key}:{value}"));
                }
            }
            words.extend(runtime["command"].as_str().map(String::from));
            words.extend(
                runtime["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
            shell_join(&words)
        }
        _ => String::new(),
    }
}

fn servers_table(servers: &[Value]) -> String {
    let mut table = Table::new(&[
        "NAME",
        "STATE",
        "TOOLS",
        "RESTARTS",
        "KIND",
        "COMMAND/URL",
        "PROGRESS OR LAST ERROR",
    ]);
    for s in servers {
        let mut state = str_at(s, &["status", "state"]);
        if s["enabled"] == Value::Bool(false) && state != "stopped" {
            state = format!("{state} (disabled)");
        }
        // While starting, what it is doing (an image build step) says more than an old error.
        let progress = str_at(s, &["status", "progress"]);
        let note = if progress.is_empty() {
            str_at(s, &["status", "last_error"])
        } else {
            progress
        };
        table.row(vec![
            str_at(s, &["name"]),
            state,
            str_at(s, &["status", "tool_count"]),
            str_at(s, &["status", "restart_count"]),
            str_at(s, &["runtime", "kind"]),
            shorten(&runtime_summary(s), 48),
            shorten(&note, 60),
        ]);
    }
    table.render()
}

fn server_details(s: &Value) -> String {
    let runtime = &s["runtime"];
    let pairs_of = |key: &str| -> String {
        let Some(map) = runtime[key].as_object() else {
            return String::new();
        };
        map.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("name", str_at(s, &["name"])),
        ("description", str_at(s, &["description"])),
        (
            "enabled",
            if s["enabled"] == Value::Bool(false) {
                "no".into()
            } else {
                "yes".into()
            },
        ),
        ("state", str_at(s, &["status", "state"])),
        ("session mode", str_at(s, &["session_mode"])),
        ("kind", str_at(runtime, &["kind"])),
    ];
    match runtime["kind"].as_str() {
        Some("remote") => {
            rows.push(("url", str_at(runtime, &["url"])));
            rows.push(("headers", pairs_of("headers")));
        }
        Some("docker") => {
            rows.push(("runs", runtime_summary(s)));
            rows.push(("env", pairs_of("env")));
            let or_default = |key: &str, default: &str| {
                let value = str_at(runtime, &[key]);
                if value.is_empty() {
                    format!("{default} (default)")
                } else {
                    value
                }
            };
            rows.push(("network", or_default("network", "none")));
            let limit = or_default;
            rows.push(("memory MiB", limit("memory_mb", "512")));
            rows.push(("millicpus", limit("millicpus", "1000")));
            rows.push(("pids", limit("pids", "256")));
        }
        _ => {
            rows.push(("command", runtime_summary(s)));
            rows.push(("env", pairs_of("env")));
            rows.push(("cwd", str_at(runtime, &["cwd"])));
        }
    }
    rows.extend([
        ("agent", str_at(s, &["status", "agent_id"])),
        ("tools", str_at(s, &["status", "tool_count"])),
        ("restarts", str_at(s, &["status", "restart_count"])),
        ("last error", str_at(s, &["status", "last_error"])),
        ("progress", str_at(s, &["status", "progress"])),
        ("created", str_at(s, &["created_at"])),
        ("updated", str_at(s, &["updated_at"])),
        ("id", str_at(s, &["id"])),
    ]);
    output::key_values(&rows)
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct LogLine {
    #[serde(default)]
    at_ms: i64,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    line: String,
}

/// Where `logs --follow` is: the newest timestamp printed and how many lines with exactly
/// that timestamp were printed (the API has no sequence numbers; timestamps do not go back).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LogCursor {
    last_ms: i64,
    seen_at_last: usize,
}

/// The lines of `batch` (oldest first) not printed yet, moving the cursor past them.
fn fresh_lines<'a>(batch: &'a [LogLine], cursor: &mut Option<LogCursor>) -> Vec<&'a LogLine> {
    let mut fresh = Vec::new();
    let mut same = 0;
    for entry in batch {
        if let Some(c) = cursor {
            if entry.at_ms < c.last_ms {
                continue;
            }
            if entry.at_ms == c.last_ms {
                same += 1;
                if same <= c.seen_at_last {
                    continue;
                }
            }
        }
        fresh.push(entry);
    }
    if let Some(last) = batch
        .last()
        .filter(|l| cursor.is_none_or(|c| l.at_ms >= c.last_ms))
    {
        let seen_at_last = batch.iter().filter(|e| e.at_ms == last.at_ms).count();
        *cursor = Some(LogCursor {
            last_ms: last.at_ms,
            seen_at_last,
        });
    }
    fresh
}

async fn fetch_logs(admin: &Admin, name: &str, tail: usize) -> anyhow::Result<Vec<LogLine>> {
    let mut url = admin.api(&["servers", name, "logs"]);
    url.query_pairs_mut().append_pair("tail", &tail.to_string());
    let response = admin
        .send(admin.client.get(url).header(ACCEPT, "application/json"))
        .await?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| admin.transport_error(e))?;
    if !status.is_success() {
        bail!("{}", api_error_line(status.as_u16(), &text, Some(name)));
    }
    serde_json::from_str(&text)
        .map_err(|e| anyhow!("the router answered with unexpected logs JSON ({e})"))
}

fn print_log_lines(lines: &[&LogLine], json: bool) -> anyhow::Result<()> {
    for l in lines {
        if json {
            println!("{}", serde_json::to_string(l)?);
        } else {
            println!(
                "{} {:<6} {}",
                output::clock_utc(l.at_ms),
                clean(&l.stream),
                output::clean_line(&l.line)
            );
        }
    }
    Ok(())
}

async fn logs(
    admin: &Admin,
    name: &str,
    tail: usize,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let first = fetch_logs(admin, name, tail).await?;
    if json && !follow {
        return print_json(&serde_json::to_value(&first)?);
    }
    let mut cursor = None;
    print_log_lines(&fresh_lines(&first, &mut cursor), json)?;
    if !follow {
        return Ok(());
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            fetch_logs(admin, name, tail.max(1000)).await
        };
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            batch = next => print_log_lines(&fresh_lines(&batch?, &mut cursor), json)?,
        }
    }
}

/// `mcpr import FILE`: reads Claude Desktop's `{"mcpServers": {...}}` JSON and POSTs it to
/// `/api/v1/import`; prints created and skipped.
pub async fn run_import(admin: &Admin, file: &Path, json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not valid JSON: {e}", file.display()))?;
    let Some(servers) = doc.get("mcpServers").filter(|m| m.is_object()) else {
        bail!(
            "{} has no \"mcpServers\" object (expected Claude Desktop's format: {{\"mcpServers\": {{NAME: {{\"command\": …}}}}}})",
            file.display()
        );
    };
    let report = admin
        .post(&["import"], Some(&json!({"mcpServers": servers})), None)
        .await?;
    if json {
        return print_json(&report);
    }
    let created: Vec<String> = report["created"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let skipped = report["skipped"].as_array().cloned().unwrap_or_default();
    for name in &created {
        println!("created  {}", clean(name));
    }
    for s in &skipped {
        println!(
            "skipped  {}: {}",
            clean(&str_at(s, &["name"])),
            clean(&str_at(s, &["reason"]))
        );
    }
    println!("{} created, {} skipped", created.len(), skipped.len());
    Ok(())
}

/// The JSON-RPC response with `id` in a message or batch, if there is one.
pub fn find_response(message: Value, id: u64) -> Option<Value> {
    match message {
        Value::Array(items) => items.into_iter().find_map(|m| find_response(m, id)),
        Value::Object(ref map)
            if map.get("id") == Some(&json!(id))
                && (map.contains_key("result") || map.contains_key("error")) =>
        {
            Some(message)
        }
        _ => None,
    }
}

/// The `result` of a JSON-RPC response, or its error as one line.
pub fn rpc_result(response: Value) -> anyhow::Result<Value> {
    if let Some(error) = response.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        let code = error.get("code").map(|c| c.to_string()).unwrap_or_default();
        bail!("{} (JSON-RPC error {code})", clean(message));
    }
    Ok(response.get("result").cloned().unwrap_or(Value::Null))
}

/// The text of a `CallToolResult`: text contents joined by newlines; other contents as a
/// short placeholder; `structuredContent` when there is no content.
pub fn call_result_text(result: &Value) -> String {
    let contents = result["content"].as_array().cloned().unwrap_or_default();
    if contents.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        return serde_json::to_string_pretty(structured).unwrap_or_default();
    }
    let describe = |c: &Value| -> String {
        let mime = str_at(c, &["mimeType"]);
        match c["type"].as_str() {
            Some("text") => str_at(c, &["text"]),
            Some(kind @ ("image" | "audio")) => format!(
                "[{kind} {mime}, {} bytes of base64]",
                str_at(c, &["data"]).len()
            ),
            Some("resource") if c["resource"]["text"].is_string() => {
                str_at(c, &["resource", "text"])
            }
            Some("resource") => format!("[resource {}]", str_at(c, &["resource", "uri"])),
            Some("resource_link") => format!("[resource link {}]", str_at(c, &["uri"])),
            _ => c.to_string(),
        }
    };
    contents.iter().map(describe).collect::<Vec<_>>().join("\n")
}

/// `mcpr call PROVIDER TOOL --args JSON`: one tool call through the MCP endpoint
/// `{base}/mcp/p/{provider}`, as an MCP client does it (initialize, initialized, tools/call,
/// then DELETE the session).
pub async fn run_call(
    admin: &Admin,
    provider: &str,
    tool: &str,
    args_json: &str,
    json: bool,
) -> anyhow::Result<()> {
    let arguments: Value = if args_json.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(args_json).map_err(|e| anyhow!("--args is not a JSON object: {e}"))?
    };
    if !arguments.is_object() {
        bail!(
            "--args is not a JSON object: got {}",
            shorten(&arguments.to_string(), 60)
        );
    }
    let url = admin.url(&["mcp", "p", provider]);
    let mut session = McpSession {
        admin,
        url,
        provider,
        id: None,
        version: None,
    };
    let outcome = session.call(tool, arguments).await;
    session.close().await;
    let result = outcome?;
    if json {
        print_json(&result)?;
    } else {
        let text = call_result_text(&result);
        if result["isError"] != Value::Bool(true) && !text.is_empty() {
            println!(
                "{}",
                text.lines()
                    .map(output::clean_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    if result["isError"] == Value::Bool(true) {
        let text = call_result_text(&result);
        if text.trim().is_empty() {
            bail!("tool \"{}\" reported an error", clean(tool));
        }
        bail!("tool \"{}\" failed: {}", clean(tool), clean(text.trim()));
    }
    Ok(())
}

struct McpSession<'a> {
    admin: &'a Admin,
    url: Url,
    provider: &'a str,
    id: Option<String>,
    version: Option<String>,
}

impl McpSession<'_> {
    async fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcpr-cli", "version": env!("CARGO_PKG_VERSION")},
        }});
        let init = rpc_result(
            self.post(&init, Some(1))
                .await?
                .context("initialize got no answer")?,
        )
        .map_err(|e| anyhow!("initialize failed: {e}"))?;
        self.version = Some(
            init["protocolVersion"]
                .as_str()
                .unwrap_or(PROTOCOL_VERSION)
                .to_string(),
        );
        self.post(
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            None,
        )
        .await?;
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
        let answer = self
            .post(&call, Some(2))
            .await?
            .context("tools/call got no answer")?;
        rpc_result(answer)
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(id) = self.id.as_deref().and_then(|v| v.parse().ok()) {
            headers.insert(SESSION_HEADER, id);
        }
        if let Some(version) = self.version.as_deref().and_then(|v| v.parse().ok()) {
            headers.insert(VERSION_HEADER, version);
        }
        headers
    }

    /// POSTs one message; for a request (`id`), returns the response found in the JSON or
    /// SSE body.
    async fn post(&mut self, message: &Value, id: Option<u64>) -> anyhow::Result<Option<Value>> {
        let request = self
            .admin
            .client
            .post(self.url.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .headers(self.headers())
            .body(message.to_string());
        let request = match crate::login::api_key() {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = self.admin.send(request).await?;
        let status = response.status();
        if let Some(session) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.id = Some(session.to_string());
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            if status == StatusCode::NOT_FOUND && serde_json::from_str::<Value>(&body).is_err() {
                bail!(
                    "no MCP provider \"{}\" at {} (404)",
                    clean(self.provider),
                    self.url
                );
            }
            // A JSON-RPC error body names the problem like an API error does.
            bail!("{}", api_error_line(status.as_u16(), &body, None));
        }
        let Some(id) = id else { return Ok(None) };
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if is_sse {
            let mut parser = mcpr_core::sse::SseParser::default();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.admin.transport_error(e))?;
                if let Some(found) = events_response(parser.push(&chunk), id) {
                    return Ok(Some(found));
                }
            }
            return Ok(events_response(parser.finish(), id));
        }
        let text = response
            .text()
            .await
            .map_err(|e| self.admin.transport_error(e))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("the MCP endpoint answered with invalid JSON ({e})"))?;
        Ok(find_response(value, id))
    }

    /// Ends the session (best effort: a server may not support DELETE).
    async fn close(&self) {
        if self.id.is_some() {
            let request = self
                .admin
                .client
                .delete(self.url.clone())
                .headers(self.headers());
            let _ = tokio::time::timeout(Duration::from_secs(5), request.send()).await;
        }
    }
}

fn events_response(events: Vec<String>, id: u64) -> Option<Value> {
    events
        .into_iter()
        .filter_map(|data| serde_json::from_str::<Value>(&data).ok())
        .find_map(|m| find_response(m, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_commands_like_a_shell() {
        assert_eq!(
            split_command("uvx mcp-server-time").unwrap(),
            ["uvx", "mcp-server-time"]
        );
        assert_eq!(
            split_command("  npx -y   @scope/pkg  ").unwrap(),
            ["npx", "-y", "@scope/pkg"]
        );
        assert_eq!(
            split_command(r#"run "a b" 'c "d"' e\ f"#).unwrap(),
            ["run", "a b", "c \"d\"", "e f"]
        );
        assert_eq!(
            split_command(r#"x "q\"uote" "back\\slash" "keep\n""#).unwrap(),
            ["x", "q\"uote", "back\\slash", "keep\\n"]
        );
        assert_eq!(split_command(r#"x '' """#).unwrap(), ["x", "", ""]);
        assert_eq!(split_command("a'b'\"c\"d").unwrap(), ["abcd"]);
        assert!(split_command("").unwrap().is_empty());
        assert!(
            split_command("x 'open")
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
        assert!(
            split_command("x \"open")
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
        assert!(split_command("x \\").is_err());
    }

    #[test]
    fn split_and_join_round_trip() {
        let words = ["cmd", "a b", "it's", "", "$HOME", "x\"y"];
        assert_eq!(split_command(&shell_join(&words)).unwrap(), words);
    }

    #[test]
    fn parses_env_pairs() {
        assert_eq!(parse_env("TZ=UTC").unwrap(), ("TZ".into(), "UTC".into()));
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("EMPTY=").unwrap(), ("EMPTY".into(), "".into()));
        let missing = parse_env("TZ").unwrap_err().to_string();
        assert!(
            missing.contains("missing '='") && missing.contains("TZ"),
            "{missing}"
        );
        assert!(parse_env("=x").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn parses_headers_with_equals_or_colon() {
        assert_eq!(
            parse_header("Authorization=Bearer a=b").unwrap(),
            ("Authorization".into(), "Bearer a=b".into())
        );
        assert_eq!(
            parse_header("Authorization: Bearer x").unwrap(),
            ("Authorization".into(), "Bearer x".into())
        );
        assert!(
            parse_header("NoSeparator")
                .unwrap_err()
                .to_string()
                .contains("missing '='")
        );
    }

    #[test]
    fn formats_api_errors() {
        let not_found =
            r#"{"error":{"status":404,"code":"not_found","message":"no server named \"time\""}}"#;
        assert_eq!(
            api_error_line(404, not_found, Some("time")),
            "server \"time\" not found (404)"
        );
        assert_eq!(
            api_error_line(404, not_found, None),
            "no server named \"time\" (404)"
        );
        let invalid = r#"{"error":{"status":422,"code":"invalid_field","field":"name","message":"name: must not be empty"}}"#;
        assert_eq!(
            api_error_line(422, invalid, None),
            "invalid name: must not be empty (422)"
        );
        let dup = r#"{"error":{"status":409,"code":"duplicate","field":"name","message":"a server named \"x\" already exists"}}"#;
        assert_eq!(
            api_error_line(409, dup, None),
            "a server named \"x\" already exists (409)"
        );
        assert_eq!(
            api_error_line(502, "upstream\nboom", None),
            "the router answered 502 Bad Gateway: upstream boom"
        );
        assert_eq!(
            api_error_line(500, "", None),
            "the router answered 500 Internal Server Error"
        );
        let hostile = r#"{"error":{"status":400,"code":"bad_request","message":"bad \u001b[31m"}}"#;
        assert_eq!(api_error_line(400, hostile, None), "bad \\u{1b}[31m (400)");
    }

    #[test]
    fn finds_the_response_among_messages() {
        let events = vec![
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#.to_string(),
            r#"{"jsonrpc":"2.0","id":1,"result":{"other":true}}"#.to_string(),
            r#"[{"jsonrpc":"2.0","id":2,"result":{"content":[]}}]"#.to_string(),
        ];
        assert_eq!(
            events_response(events.clone(), 2).unwrap()["result"],
            json!({"content": []})
        );
        assert!(events_response(events, 3).is_none());
        let err = rpc_result(
            json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"unknown tool"}}),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "unknown tool (JSON-RPC error -32602)"
        );
    }

    #[test]
    fn renders_call_results() {
        let result = json!({"content": [{"type": "text", "text": "one"}, {"type": "image", "mimeType": "image/png", "data": "AAAA"}, {"type": "text", "text": "two"}]});
        assert_eq!(
            call_result_text(&result),
            "one\n[image image/png, 4 bytes of base64]\ntwo"
        );
        assert_eq!(
            call_result_text(&json!({"content": [], "structuredContent": {"a": 1}})),
            "{\n  \"a\": 1\n}"
        );
    }

    #[test]
    fn follows_logs_without_repeating() {
        let l = |at_ms, line: &str| LogLine {
            at_ms,
            stream: "stderr".into(),
            line: line.into(),
        };
        let mut cursor = None;
        let first = vec![l(1, "a"), l(2, "b"), l(2, "c")];
        assert_eq!(fresh_lines(&first, &mut cursor).len(), 3);
        assert_eq!(
            cursor,
            Some(LogCursor {
                last_ms: 2,
                seen_at_last: 2
            })
        );
        assert!(fresh_lines(&first, &mut cursor).is_empty());
        let second = vec![
            l(0, "older"),
            l(1, "a"),
            l(2, "b"),
            l(2, "c"),
            l(2, "d"),
            l(3, "e"),
        ];
        let lines: Vec<&str> = fresh_lines(&second, &mut cursor)
            .iter()
            .map(|x| x.line.as_str())
            .collect();
        assert_eq!(lines, ["d", "e"]);
        assert!(fresh_lines(&[], &mut cursor).is_empty());
        assert_eq!(
            cursor,
            Some(LogCursor {
                last_ms: 3,
                seen_at_last: 1
            })
        );
    }

    #[test]
    fn urls_encode_names() {
        let admin = Admin::new("127.0.0.1:8000/").unwrap();
        assert_eq!(
            admin.api(&["servers", "a/b"]).as_str(),
            "http://127.0.0.1:8000/api/v1/servers/a%2Fb"
        );
        assert_eq!(
            admin.url(&["mcp", "p", "time"]).as_str(),
            "http://127.0.0.1:8000/mcp/p/time"
        );
        assert_eq!(admin.base_str(), "http://127.0.0.1:8000");
        assert!(Admin::new("ftp://x").is_err());
    }
}
