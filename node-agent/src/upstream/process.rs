//! The `process` runtime: an MCP server as a child process speaking line-delimited JSON-RPC
//! on stdin/stdout (MCP stdio transport), with stderr captured as the server's log.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;

use super::{Connection, UpstreamEvent};
use crate::logs::LogSink;

pub struct ProcessSpec<'a> {
    pub command: &'a str,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a str>,
}

/// Variables a server inherits from the agent: what launchers such as `npx` and `uvx` need
/// to find themselves, their caches and the network. Nothing else crosses over: the agent's
/// own secrets (`DATABASE_URL`, keys) must never reach third-party servers.
const INHERITED_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
];
/// The proxy settings a server inherits (and image builds get as build arguments).
pub const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];
const INHERITED_PREFIXES: &[&str] = &["LC_", "XDG_", "NPM_CONFIG_", "npm_config_", "UV_", "PIP_"];

fn inherited_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(key, _)| {
        (INHERITED_VARS.contains(&key.as_str()) || PROXY_VARS.contains(&key.as_str()))
            || INHERITED_PREFIXES.iter().any(|p| key.starts_with(p))
    })
}

/// Starts the child and wires its pipes to a [`Connection`]. The child is killed when the
/// connection closes (or the agent drops it).
pub fn spawn(
    spec: ProcessSpec<'_>,
    logs: LogSink,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    request_timeout: Duration,
) -> Result<Arc<Connection>, String> {
    let mut command = Command::new(spec.command);
    command
        .args(spec.args)
        .env_clear()
        .envs(inherited_env())
        .envs(spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = spec.cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "command not found: {} (is it installed and on PATH?)",
            spec.command
        ),
        _ => format!("cannot start {}: {e}", spec.command),
    })?;
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let conn = super::lines::connect(stdin, stdout, logs.clone(), events, request_timeout);
    conn.set_launch(format!("{} {}", spec.command, spec.args.join(" ")));

    // stderr: the server's log.
    tokio::spawn(super::lines::read_log(stderr, logs.clone()));

    // The child's exit closes the session; closing or dropping the connection kills the
    // child, and `Connection::gone` resolves once it has exited.
    let exit_conn = Arc::downgrade(&conn);
    let exit_logs = logs.clone();
    let mut closed = conn.closed.subscribe();
    let (exited, exited_rx) = tokio::sync::watch::channel(false);
    let _ = conn.exited.set(exited_rx);
    tokio::spawn(async move {
        let mut child = child;
        tokio::select! {
            status = child.wait() => {
                let reason = match status {
                    Ok(s) => match s.code() {
                        Some(code) => format!("process exited with status {code}"),
                        None => format!("process was killed ({s})"),
                    },
                    Err(e) => format!("lost track of the process: {e}"),
                };
                exit_logs.line("agent", format!("pid {pid}: {reason}"));
                if let Some(conn) = exit_conn.upgrade() {
                    conn.close(reason);
                }
            }
            // Closed, or dropped (the sender goes with the connection).
            _ = async { closed.wait_for(|reason| reason.is_some()).await.map(|_| ()) } => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        let _ = exited.send(true);
    });
    logs.line("agent", format!("started {} (pid {pid})", spec.command));
    Ok(conn)
}
