//! `python_sandbox`: untrusted Python code, run in a fresh locked-down container.
//!
//! The gateway relays the tool call here as a `tools/call` for the reserved provider name
//! [`PROVIDER`] (provider names cannot start with '_'). Each call takes a container from a
//! warm pool (python already started, blocked reading its program from stdin), writes the
//! code, collects stdout and stderr up to a limit, and removes the container: a container
//! runs exactly one call. The pool is refilled in the background; it starts filling on the
//! first call (that one runs cold), so an agent that never sees a call holds no container.
//!
//! Limits, per call: wall time (`timeout`, default 30 s), memory (256 MiB, no swap),
//! processes (64), output (64 KiB per stream, truncation marked), no network, read-only root
//! with a small tmpfs on /tmp, no capabilities, user 65534.
//!
//! `libraries` (PyPI packages, `name` or `name==version`) are installed into an image of
//! their own, built once per set (`runtime::images::sandbox_libraries`; the build is the
//! only step with network); such a call runs cold in a container of that image.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mcpr_core::jsonrpc::{self, Message, RpcError, code};
use mcpr_core::model::NetworkPolicy;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, Semaphore};

use super::docker::{self, Attached, ContainerPlan, DockerRuntime, Launch};
use super::images::{self, Base, LibrariesError, Report};

/// The provider name under which gateways reach the sandbox.
pub const PROVIDER: &str = "_sandbox";
/// The tool's name.
pub const TOOL: &str = "python_sandbox";
/// At most this many `libraries` per call.
pub const MAX_LIBRARIES: usize = 20;

#[derive(Debug, Clone)]
pub struct SandboxLimits {
    pub default_timeout: Duration,
    pub max_timeout: Duration,
    pub memory_mb: u64,
    pub pids: u64,
    pub millicpus: u64,
    pub tmpfs_mb: u64,
    /// Bytes kept of stdout and of stderr each.
    pub output_bytes: usize,
    /// Calls running at once on this agent; more wait their turn.
    pub concurrent: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(120),
            memory_mb: 256,
            pids: 64,
            millicpus: 1000,
            tmpfs_mb: 64,
            output_bytes: 64 * 1024,
            concurrent: 16,
        }
    }
}

/// Reads the program's length, then the program, from stdin, and runs it as `__main__`.
/// Python is already up when a call arrives: that is what the warm pool buys.
const RUNNER: &str = "import sys\n\
n = int(sys.stdin.buffer.readline())\n\
src = sys.stdin.buffer.read(n)\n\
del n\n\
g = {'__name__': '__main__', '__builtins__': __builtins__}\n\
exec(compile(src, '<sandbox>', 'exec'), g)\n";

/// What one run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

pub struct Sandbox {
    docker: Arc<DockerRuntime>,
    pub limits: SandboxLimits,
    pool: Mutex<VecDeque<Attached>>,
    refill: Notify,
    filling: AtomicBool,
    running: Semaphore,
    /// Set on agent shutdown: no more containers are made.
    closed: AtomicBool,
    /// Held by the filler while it makes a container, so shutdown can wait for it.
    making: tokio::sync::Mutex<()>,
    /// Calls by outcome, in the order of [`RUN_OUTCOMES`].
    runs: [std::sync::atomic::AtomicU64; RUN_OUTCOMES.len()],
}

/// How a sandbox call ended, as the metrics label it: the code ran and exited 0; ran and
/// failed (an exception, a non-zero exit, out of memory); ran out of time; was refused for
/// its arguments; or found no sandbox to run in.
pub const RUN_OUTCOMES: [&str; 5] = ["ok", "failed", "timeout", "bad_arguments", "unavailable"];

impl Sandbox {
    pub fn new(docker: Arc<DockerRuntime>, limits: SandboxLimits) -> Arc<Sandbox> {
        Arc::new(Sandbox {
            running: Semaphore::new(limits.concurrent.max(1)),
            docker,
            limits,
            pool: Mutex::default(),
            refill: Notify::new(),
            filling: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            making: tokio::sync::Mutex::new(()),
            runs: Default::default(),
        })
    }

    /// Calls so far by outcome ([`RUN_OUTCOMES`]).
    pub fn runs(&self) -> [u64; RUN_OUTCOMES.len()] {
        std::array::from_fn(|i| self.runs[i].load(Ordering::Relaxed))
    }

    /// Warm containers waiting for a call.
    pub fn pool_size(&self) -> usize {
        self.pool.lock().unwrap().len()
    }

    fn count_run(&self, outcome: &str) {
        if let Some(index) = RUN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.runs[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answers a JSON-RPC request for [`PROVIDER`]: `tools/list` and `tools/call`.
    pub async fn handle(self: &Arc<Self>, msg: Message) -> Message {
        let id = msg.id.clone().unwrap_or(Value::Null);
        let method = msg.method.clone().unwrap_or_default();
        match method.as_str() {
            "tools/call" => {
                let params = match msg.params_value() {
                    Ok(p) => p,
                    Err(e) => return Message::error(id, &e),
                };
                let arguments = params
                    .get("arguments")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let called = if mcpr_core::telemetry::enabled()
                    && !mcpr_core::telemetry::mcp::is_dropped()
                {
                    Box::pin(self.traced_call(&arguments)).await
                } else {
                    self.call(&arguments).await
                };
                self.count_run(match &called {
                    Ok(run) if run.timed_out => "timeout",
                    Ok(run) if run.exit_code == Some(0) && !run.oom_killed => "ok",
                    Ok(_) => "failed",
                    Err(CallError::BadArguments(_)) => "bad_arguments",
                    Err(CallError::Unavailable(_)) => "unavailable",
                });
                match called {
                    Ok(outcome) => Message::result(id, jsonrpc::to_raw(&tool_result(&outcome))),
                    Err(CallError::BadArguments(text)) => Message::result(
                        id,
                        jsonrpc::to_raw(
                            &json!({"content": [{"type": "text", "text": text}], "isError": true}),
                        ),
                    ),
                    Err(CallError::Unavailable(text)) => {
                        Message::error(id, &RpcError::new(code::UPSTREAM_UNAVAILABLE, text))
                    }
                }
            }
            "ping" => Message::result(id, jsonrpc::to_raw(&json!({}))),
            other => Message::error(id, &RpcError::method_not_found(other)),
        }
    }

    /// [`call`](Self::call) as an INTERNAL span `sandbox run` (inside the agent's span of the
    /// `tools/call`): how long the container took, and how it ended.
    async fn traced_call(
        self: &Arc<Self>,
        arguments: &Map<String, Value>,
    ) -> Result<RunOutcome, CallError> {
        use mcpr_core::telemetry::mcp;
        use tracing::Instrument as _;
        let span = mcp::operation_span("sandbox run".into(), mcp::Side::Internal, None);
        let outcome = self.call(arguments).instrument(span.clone()).await;
        match &outcome {
            Ok(run) => {
                if let Some(code) = run.exit_code {
                    mcp::set_int(&span, "process.exit.code", code);
                }
                if run.timed_out {
                    mcp::set(&span, "error.type", "timeout");
                } else if run.oom_killed {
                    mcp::set(&span, "error.type", "oom_killed");
                }
            }
            Err(CallError::BadArguments(_)) => mcp::set(&span, "error.type", "bad_arguments"),
            Err(CallError::Unavailable(_)) => mcp::set(&span, "error.type", "unavailable"),
        }
        outcome
    }

    /// Runs `arguments.code` (with `arguments.timeout` seconds and `arguments.libraries`,
    /// optional).
    pub async fn call(
        self: &Arc<Self>,
        arguments: &Map<String, Value>,
    ) -> Result<RunOutcome, CallError> {
        let code = match arguments.get("code") {
            Some(Value::String(code)) => code.clone(),
            _ => {
                return Err(CallError::BadArguments(
                    "python_sandbox: \"code\" must be a string".into(),
                ));
            }
        };
        let timeout = match arguments.get("timeout") {
            None | Some(Value::Null) => self.limits.default_timeout,
            Some(v) => match v.as_f64() {
                Some(secs) if secs > 0.0 && secs.is_finite() => {
                    Duration::from_secs_f64(secs).min(self.limits.max_timeout)
                }
                _ => {
                    return Err(CallError::BadArguments(format!(
                        "python_sandbox: \"timeout\" must be a positive number of seconds (at most {})",
                        self.limits.max_timeout.as_secs()
                    )));
                }
            },
        };
        let libraries =
            parse_libraries(arguments.get("libraries")).map_err(CallError::BadArguments)?;
        // Built (once per set) before taking a turn: a build does not hold up other calls.
        let libraries_image = if libraries.is_empty() {
            None
        } else {
            let image = images::sandbox_libraries(&self.docker, &libraries)
                .await
                .map_err(|e| match e {
                    LibrariesError::Unavailable(text) => {
                        CallError::Unavailable(format!("python_sandbox is unavailable: {text}"))
                    }
                    LibrariesError::Install(text) => CallError::BadArguments(format!(
                        "python_sandbox: cannot install libraries {}: {text}",
                        libraries.join(" ")
                    )),
                })?;
            Some(image)
        };
        let _turn = self
            .running
            .acquire()
            .await
            .expect("semaphore never closed");
        let container = match libraries_image {
            Some(image) => self
                .create(Some(image))
                .await
                .map_err(CallError::Unavailable)?,
            None => {
                self.start_filling();
                let warm = self.pool.lock().unwrap().pop_front();
                self.refill.notify_one();
                match warm {
                    Some(container) => container,
                    None => self.create(None).await.map_err(CallError::Unavailable)?,
                }
            }
        };
        let docker = self.docker.client().await.map_err(CallError::Unavailable)?;
        let id = container.id.clone();
        let outcome = self.run(docker, container, code.as_bytes(), timeout).await;
        // Removal is off the answer's path; the container never runs anything else.
        let remover = self.docker.clone();
        tokio::spawn(async move {
            if let Ok(docker) = remover.client().await {
                docker::remove(docker, &id).await;
            }
        });
        Ok(outcome)
    }

    async fn run(
        &self,
        docker: &bollard::Docker,
        mut container: Attached,
        code: &[u8],
        timeout: Duration,
    ) -> RunOutcome {
        let started = Instant::now();
        let limit = self.limits.output_bytes;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let (mut stdout_truncated, mut stderr_truncated) = (false, false);
        let mut program = format!("{}\n", code.len()).into_bytes();
        program.extend_from_slice(code);
        // A dead warm container fails here; its exit is what the caller sees.
        let _ = container.input.write_all(&program).await;
        let _ = container.input.flush().await;
        let collect = async {
            use bollard::container::LogOutput;
            while let Some(item) = container.output.next().await {
                let (buffer, truncated, message) = match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        (&mut stdout, &mut stdout_truncated, message)
                    }
                    Ok(LogOutput::StdErr { message }) => {
                        (&mut stderr, &mut stderr_truncated, message)
                    }
                    Ok(LogOutput::StdIn { .. }) => continue,
                    Err(_) => break,
                };
                let room = limit.saturating_sub(buffer.len());
                if message.len() > room {
                    *truncated = true;
                }
                buffer.extend_from_slice(&message[..message.len().min(room)]);
            }
        };
        let timed_out = tokio::time::timeout(timeout, collect).await.is_err();
        if timed_out {
            let _ = docker
                .kill_container(
                    &container.id,
                    None::<bollard::query_parameters::KillContainerOptions>,
                )
                .await;
        }
        let exit_code = match docker
            .wait_container(
                &container.id,
                None::<bollard::query_parameters::WaitContainerOptions>,
            )
            .next()
            .await
        {
            Some(Ok(response)) => Some(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
            _ => None,
        };
        let oom_killed =
            !timed_out && exit_code == Some(137) && docker::oom_killed(docker, &container.id).await;
        let text = |bytes: Vec<u8>, truncated: bool| {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if truncated {
                text.push_str(&format!("\n[output truncated at {limit} bytes]"));
            }
            text
        };
        RunOutcome {
            stdout: text(stdout, stdout_truncated),
            stderr: text(stderr, stderr_truncated),
            exit_code,
            duration_ms: started.elapsed().as_millis() as u64,
            timed_out,
            oom_killed,
            stdout_truncated,
            stderr_truncated,
        }
    }

    /// A new container of `image` (default: the python base image, pulled on first use),
    /// python started and waiting for its program.
    async fn create(&self, image: Option<String>) -> Result<Attached, String> {
        let image = match image {
            Some(image) => image,
            None => {
                images::ensure_base(&self.docker, Base::Python, Report::Agent)
                    .await
                    .map_err(|e| format!("python_sandbox is unavailable: {e}"))?
                    .name
            }
        };
        self.docker
            .run_attached(ContainerPlan {
                name: format!("mcpr-sandbox-{}", uuid::Uuid::new_v4().simple()),
                launch: Launch {
                    image,
                    entrypoint: Some(vec![
                        "python3".into(),
                        "-I".into(),
                        "-c".into(),
                        RUNNER.into(),
                    ]),
                    cmd: Some(vec![]),
                },
                env: vec!["HOME=/tmp".into(), "PYTHONDONTWRITEBYTECODE=1".into()],
                labels: self.docker.labels("sandbox"),
                memory_mb: self.limits.memory_mb,
                millicpus: self.limits.millicpus,
                pids: self.limits.pids,
                tmpfs_mb: self.limits.tmpfs_mb,
                network: NetworkPolicy::None,
                init: false,
            })
            .await
            .map_err(|e| format!("python_sandbox is unavailable: {e}"))
    }

    /// Stops refilling and waits for a container being made (agent shutdown); the caller
    /// then removes every container of the agent.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.refill.notify_one();
        let _made = self.making.lock().await;
        self.pool.lock().unwrap().clear();
    }

    /// Keeps the pool full from now on (once per agent).
    fn start_filling(self: &Arc<Self>) {
        if self.docker.settings.sandbox_pool == 0 || self.filling.swap(true, Ordering::SeqCst) {
            return;
        }
        // The agent (and so its sandbox) lives as long as the process.
        let this = self.clone();
        tokio::spawn(async move {
            let mut retry = Duration::from_secs(1);
            loop {
                let wanted = this.docker.settings.sandbox_pool;
                if this.pool.lock().unwrap().len() >= wanted {
                    this.refill.notified().await;
                    continue;
                }
                let making = this.making.lock().await;
                if this.closed.load(Ordering::SeqCst) {
                    return;
                }
                let made = this.create(None).await;
                drop(making);
                match made {
                    Ok(container) => {
                        this.pool.lock().unwrap().push_back(container);
                        retry = Duration::from_secs(1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot refill the sandbox pool");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }
}

/// `libraries`: absent, null or a list of at most [`MAX_LIBRARIES`] PyPI requirements,
/// each a PEP 508 name with an optional `==VERSION`. Returned canonical (names lowercased,
/// runs of `-_.` as one `-`, as PyPI compares them), sorted and without repeats, so that
/// one set has one image whatever order or spelling it came in.
pub fn parse_libraries(value: Option<&Value>) -> Result<Vec<String>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(
                "python_sandbox: \"libraries\" must be a list of PyPI package names".into(),
            );
        }
    };
    if items.len() > MAX_LIBRARIES {
        return Err(format!(
            "python_sandbox: \"libraries\" lists {} packages; at most {MAX_LIBRARIES}",
            items.len()
        ));
    }
    let mut requirements: Vec<(String, Option<String>)> = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.as_str() else {
            return Err(format!(
                "python_sandbox: \"libraries\" entry {item} is not a string"
            ));
        };
        let (name, version) = parse_requirement(text).ok_or_else(|| {
            format!(
                "python_sandbox: \"libraries\" entry {text:?} is not a PyPI package: expected NAME or NAME==VERSION (letters, digits, '.', '_', '-')"
            )
        })?;
        match requirements.iter().find(|(known, _)| *known == name) {
            Some((_, known)) if *known != version => {
                return Err(format!(
                    "python_sandbox: \"libraries\" lists {name} twice, with different versions"
                ));
            }
            Some(_) => {}
            None => requirements.push((name, version)),
        }
    }
    let mut canonical: Vec<String> = requirements
        .into_iter()
        .map(|(name, version)| match version {
            Some(version) => format!("{name}=={version}"),
            None => name,
        })
        .collect();
    canonical.sort();
    Ok(canonical)
}

/// A PEP 508 name (canonicalized) and an optional exact PEP 440 version.
fn parse_requirement(text: &str) -> Option<(String, Option<String>)> {
    let (name, version) = match text.split_once("==") {
        Some((name, version)) => (name, Some(version)),
        None => (text, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let version_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.len() <= 64
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '!' | '+' | '_' | '-'))
    });
    if !(name_ok && version_ok) {
        return None;
    }
    let mut canonical = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '.' | '_' | '-') {
            if !canonical.ends_with('-') {
                canonical.push('-');
            }
        } else {
            canonical.push(c.to_ascii_lowercase());
        }
    }
    Some((canonical, version.map(str::to_owned)))
}

#[derive(Debug)]
pub enum CallError {
    /// The caller's mistake: a tool error the model can act on.
    BadArguments(String),
    /// No sandbox here (no Docker, no image): the gateway may try another agent.
    Unavailable(String),
}

/// The tool result: a readable summary for models, every field as structured content.
fn tool_result(outcome: &RunOutcome) -> Value {
    let mut text = String::new();
    if outcome.timed_out {
        text.push_str("[killed: wall time limit reached]\n");
    }
    if outcome.oom_killed {
        text.push_str("[killed: out of memory]\n");
    }
    text.push_str(&format!(
        "exit code: {}\n",
        outcome
            .exit_code
            .map_or("none".to_owned(), |c| c.to_string())
    ));
    if !outcome.stdout.is_empty() {
        text.push_str(&format!("stdout:\n{}\n", outcome.stdout));
    }
    if !outcome.stderr.is_empty() {
        text.push_str(&format!("stderr:\n{}\n", outcome.stderr));
    }
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": outcome,
        "isError": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_validated_and_canonical() {
        assert_eq!(parse_libraries(None), Ok(vec![]));
        assert_eq!(parse_libraries(Some(&json!(null))), Ok(vec![]));
        assert_eq!(
            parse_libraries(Some(&json!(["Six", "python_dateutil==2.9.0.post0", "six"]))),
            Ok(vec!["python-dateutil==2.9.0.post0".into(), "six".into()])
        );
        assert_eq!(
            parse_libraries(Some(&json!(["zope.interface", "A__b"]))),
            Ok(vec!["a-b".into(), "zope-interface".into()])
        );
        let bad = parse_libraries(Some(&json!(["six", "not a package!"]))).unwrap_err();
        assert!(bad.contains("\"not a package!\""), "{bad}");
        for entry in [
            "six>=1",
            "six==",
            "-six",
            "six-",
            "six; os_name",
            "six==1 ",
            "six[x]",
            "",
            "a@b",
        ] {
            assert!(parse_libraries(Some(&json!([entry]))).is_err(), "{entry:?}");
        }
        assert!(parse_libraries(Some(&json!("six"))).is_err());
        assert!(
            parse_libraries(Some(&json!([1])))
                .unwrap_err()
                .contains("1")
        );
        let many: Vec<String> = (0..=MAX_LIBRARIES).map(|i| format!("p{i}")).collect();
        assert!(
            parse_libraries(Some(&json!(many)))
                .unwrap_err()
                .contains("at most 20")
        );
        assert!(
            parse_libraries(Some(&json!(["six==1.16.0", "Six==1.17.0"])))
                .unwrap_err()
                .contains("twice")
        );
    }
}
