//! Starts the real binaries for end-to-end tests: `mcpr up` (all-in-one), the three
//! distributed binaries, the rmcp fixture server; plus small HTTP helpers for the REST API
//! and raw MCP. Processes are killed when their handle drops; a failing test prints the
//! tail of each process's log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// `target/<profile>/NAME`, next to this test binary's `deps/` directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (cargo build --workspace --bins, as scripts/test does)",
        path.display()
    );
    path
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop, its stdout and stderr in a log file.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// Tests run on the base images `scripts/docker-images` builds (no registry here), unless
/// the runner's environment or the test itself names others: the defaults are registry
/// images, pulled on first use.
fn local_base_images(command: &mut Command) {
    let set: Vec<_> = command.get_envs().map(|(k, _)| k.to_owned()).collect();
    for (variable, local) in [
        ("MCPR_PYTHON_IMAGE", "mcpr/python:bookworm"),
        ("MCPR_NODE_IMAGE", "mcpr/node:bookworm"),
    ] {
        if std::env::var_os(variable).is_none() && !set.iter().any(|k| k == variable) {
            command.env(variable, local);
        }
    }
}

impl Proc {
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null());
        command.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        local_base_images(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
            _dir: Some(dir),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to 5 s for a clean exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// Waits until the process's log contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        let log = self.log.clone();
        wait_for(&format!("{} to log {needle:?}", self.name), timeout, || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|l| l.contains(needle))
                    .map(|_| ())
            }
        })
        .await
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit by itself; its exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let name = self.name.clone();
        wait_for(&format!("{name} to exit"), timeout, || {
            let status = self.child.try_wait().unwrap();
            async move { status }
        })
        .await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("----- last lines of {} -----", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A static file server (Python's `http.server`) for `dir` on `127.0.0.1:port`, answering;
/// its log names every request it served.
pub async fn serve_files(dir: &Path, port: u16) -> Proc {
    let mut command = Command::new("python3");
    command
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "-d",
        ])
        .arg(dir);
    let server = Proc::spawn("file-server", command);
    let url = format!("http://127.0.0.1:{port}/");
    wait_for("the file server", Duration::from_secs(15), || {
        let url = url.clone();
        async move {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        }
    })
    .await;
    server
}

/// `mcpr up` on a free port with its own data directory.
pub struct Router {
    pub proc: Proc,
    pub port: u16,
    pub data_dir: PathBuf,
    _data: Option<tempfile::TempDir>,
}

impl Router {
    pub async fn start() -> Router {
        Router::start_with(&[], &[]).await
    }

    /// Starts `mcpr up` with extra arguments and environment variables.
    pub async fn start_with(args: &[&str], envs: &[(&str, &str)]) -> Router {
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().to_owned();
        Router::start_in(data_dir, Some(data), args, envs).await
    }

    /// Starts `mcpr up` on an existing data directory (to test persistence).
    pub async fn start_in(
        data_dir: PathBuf,
        keep: Option<tempfile::TempDir>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Router {
        let port = free_port();
        let mut command = Command::new(bin("mcpr"));
        command
            .args(["up", "--port", &port.to_string(), "--data-dir"])
            .arg(&data_dir)
            .args(args)
            .env("MCPR_RESTART_BACKOFF_MS", "200")
            .env_remove("DATABASE_URL")
            .env_remove("MCPR_URL");
        for (k, v) in envs {
            command.env(k, v);
        }
        let proc = Proc::spawn("mcpr-up", command);
        let router = Router {
            proc,
            port,
            data_dir,
            _data: keep,
        };
        router.api().wait_healthy().await;
        router
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn mcp_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn api(&self) -> Api {
        Api::new(&self.url())
    }

    /// Stops the router and hands back its data directory (kept alive by the returned guard).
    pub fn stop(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.proc.terminate();
        (self.data_dir.clone(), self._data.take())
    }
}

/// The REST API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api::with_client(base, reqwest::Client::new())
    }

    /// The REST API through a client of the test's making (e.g. one that trusts a test CA).
    pub fn with_client(base: &str, client: reqwest::Client) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            client,
        }
    }

    pub async fn wait_healthy(&self) {
        let url = format!("{}/api/v1/health", self.base);
        let client = self.client.clone();
        wait_for(
            "the router to answer /api/v1/health",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    client
                        .get(&url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await
    }

    /// `(status, body)` of any call.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let write = method != reqwest::Method::GET;
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        match body {
            Some(body) => request = request.json(&body),
            // As the CLI and the UI do: the API refuses writes that are not JSON.
            None if write => request = request.header("content-type", "application/json"),
            None => {}
        }
        let response = request.send().await.expect("REST call");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Registers a server; panics unless it is created.
    pub async fn add(&self, body: Value) -> Value {
        let (status, answer) = self.post("/api/v1/servers", body).await;
        assert_eq!(status, 201, "adding a server: {answer}");
        answer
    }

    /// Registers the fixture server over stdio under `name` (it reports `name` in `whoami`).
    pub async fn add_fixture(&self, name: &str, extra_args: &[&str]) -> Value {
        let mut args = vec!["--name", name];
        args.extend_from_slice(extra_args);
        self.add(json!({
            "name": name,
            "description": format!("fixture server {name}"),
            "runtime": {"kind": "process", "command": bin("mcpr-fixture-server"), "args": args, "env": {"FIXTURE_SECRET": "s3cret-value"}},
        }))
        .await
    }

    pub async fn server(&self, name: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/servers/{name}")).await;
        assert_eq!(status, 200, "GET server {name}: {body}");
        body
    }

    /// Waits until the server's status state is `state`; returns the server.
    pub async fn wait_state(&self, name: &str, state: &str) -> Value {
        self.wait_until(name, &format!("state {state}"), |s| {
            s["status"]["state"] == state
        })
        .await
    }

    /// Waits until the server reports an error (`status.last_error`); returns it.
    pub async fn wait_last_error(&self, name: &str, what: &str) -> String {
        let server = self
            .wait_until(name, what, |s| {
                s["status"]["last_error"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty())
            })
            .await;
        server["status"]["last_error"].as_str().unwrap().to_owned()
    }

    /// Waits until `check` holds for the server as the API shows it; returns the server.
    pub async fn wait_until(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let api = self.clone();
        let check = &check;
        wait_for(
            &format!("server {name}: {what}"),
            Duration::from_secs(20),
            || {
                let api = api.clone();
                async move {
                    let (status, body) = api.get(&format!("/api/v1/servers/{name}")).await;
                    (status == 200 && check(&body)).then_some(body)
                }
            },
        )
        .await
    }
}

/// The fixture server over streamable HTTP on a free port.
pub struct HttpFixture {
    pub proc: Proc,
    pub url: String,
}

impl HttpFixture {
    pub async fn start(name: &str, extra_args: &[&str]) -> HttpFixture {
        let port = free_port();
        let mut command = Command::new(bin("mcpr-fixture-server"));
        command
            .args(["--name", name, "--http", &format!("127.0.0.1:{port}")])
            .args(extra_args);
        let proc = Proc::spawn(&format!("fixture-{name}"), command);
        let url = format!("http://127.0.0.1:{port}/mcp");
        let client = reqwest::Client::new();
        wait_for(
            "the HTTP fixture to listen",
            Duration::from_secs(10),
            || {
                let client = client.clone();
                let url = url.clone();
                async move { client.get(&url).send().await.ok().map(|_| ()) }
            },
        )
        .await;
        HttpFixture { proc, url }
    }
}

/// A raw streamable-HTTP MCP client: exact control over headers and bodies.
pub struct RawMcp {
    pub url: String,
    pub session: Option<String>,
    client: reqwest::Client,
    next_id: u64,
}

pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl RawMcp {
    pub fn new(url: &str) -> RawMcp {
        RawMcp {
            url: url.to_owned(),
            session: None,
            client: reqwest::Client::new(),
            next_id: 1,
        }
    }

    /// POSTs raw bytes with the usual MCP headers (and the session, once there is one).
    pub async fn post_bytes(&self, body: impl Into<reqwest::Body>) -> RawResponse {
        let mut request = self
            .client
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body);
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.expect("POST to the gateway");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        RawResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn initialize(&mut self) -> Value {
        let response = self
            .post_bytes(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
                .to_string(),
            )
            .await;
        assert_eq!(response.status, 200, "initialize: {}", response.body);
        self.session = response
            .headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(self.session.is_some(), "initialize gave no Mcp-Session-Id");
        let ack = self
            .post_bytes(
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
            )
            .await;
        assert_eq!(ack.status, 202);
        response.body
    }

    /// Sends a request; returns the whole JSON-RPC response.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let response = self
            .post_bytes(
                json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
                    .to_string(),
            )
            .await;
        assert_eq!(response.status, 200, "{method}: {}", response.body);
        assert_eq!(response.body["id"], json!(self.next_id));
        response.body
    }

    /// `tools/call`; returns the result or the JSON-RPC error object as `Err`.
    pub async fn call(&mut self, name: &str, arguments: Value) -> Result<Value, Value> {
        let response = self
            .request("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        match response.get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(response["error"].clone()),
        }
    }
}

/// The Python interpreter of the test virtualenv with the official MCP SDK (made by
/// `scripts/test`), or `None` (with a loud message) when it is missing and not required.
pub fn python() -> Option<PathBuf> {
    let path = std::env::var_os("MCPR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var("MCPR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!(
            "MCPR_REQUIRE_ALL=1 but {} is missing: run scripts/test",
            path.display()
        );
    }
    eprintln!(
        "\n!!! SKIPPING Python SDK test: {} is missing (scripts/test creates it) !!!\n",
        path.display()
    );
    None
}

/// Runs a Python script from `tests/python/` with arguments; returns its stdout.
pub async fn run_python(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let Some(python) = python() else {
        bail!("no python")
    };
    let path = workspace_root().join("tests/python").join(script);
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(&path)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("python script timed out")??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// The distributed form: `mcpr-control-plane`, `mcpr-node-agent`s and `mcpr-edge-gateway`s
/// as separate processes talking gRPC, each given the cluster's token
/// (`MCPR_CLUSTER_TOKEN`), as an operator would.
pub struct Cluster {
    pub control_plane: Proc,
    pub agents: Vec<Proc>,
    /// The relay port of each agent, in the order of `agents`.
    pub relay_ports: Vec<u16>,
    pub gateways: Vec<Proc>,
    pub api_port: u16,
    pub grpc_port: u16,
    pub gateway_ports: Vec<u16>,
    pub data: tempfile::TempDir,
    pub database_url: Option<String>,
    /// The `MCPR_CLUSTER_TOKEN` of every component.
    pub token: String,
    /// Extra environment of every component (e.g. `OTEL_*`), given at `start_with_env`.
    pub env: Vec<(String, String)>,
}

/// 32 random bytes, hex: a cluster token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut bytes,
    )
    .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives a component the cluster's token, and nothing the test runner's environment holds.
fn cluster_env(command: &mut Command, token: &str) {
    command
        .env("MCPR_CLUSTER_TOKEN", token)
        .env_remove("MCPR_CLUSTER_TOKEN_FILE")
        .env_remove("MCPR_INSECURE_GRPC");
}

impl Cluster {
    pub async fn start(agents: usize, database_url: Option<String>) -> Cluster {
        Cluster::start_with_env(agents, database_url, &[]).await
    }

    /// [`Cluster::start`] with `env` set on every component it starts, then and later.
    pub async fn start_with_env(
        agents: usize,
        database_url: Option<String>,
        env: &[(&str, &str)],
    ) -> Cluster {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let data = tempfile::tempdir().unwrap();
        let api_port = free_port();
        let grpc_port = free_port();
        let token = random_token();
        let control_plane = Cluster::spawn_control_plane(
            api_port,
            grpc_port,
            data.path(),
            database_url.as_deref(),
            &token,
            &env,
        );
        let mut cluster = Cluster {
            control_plane,
            agents: vec![],
            relay_ports: vec![],
            gateways: vec![],
            api_port,
            grpc_port,
            gateway_ports: vec![],
            data,
            database_url,
            token,
            env,
        };
        cluster.api().wait_healthy().await;
        for i in 0..agents {
            cluster.add_agent(&format!("agent-{i}"));
        }
        // Registered agents, so that placement sees all of them from the first server on.
        for agent in &cluster.agents {
            agent
                .wait_log("registered with the control plane", Duration::from_secs(20))
                .await;
        }
        cluster.add_gateway();
        cluster
    }

    fn spawn_control_plane(
        api_port: u16,
        grpc_port: u16,
        data_dir: &Path,
        database_url: Option<&str>,
        token: &str,
        env: &[(String, String)],
    ) -> Proc {
        let mut command = Command::new(bin("mcpr-control-plane"));
        cluster_env(&mut command, token);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        command
            .args([
                "--http-listen",
                &format!("127.0.0.1:{api_port}"),
                "--grpc-listen",
                &format!("127.0.0.1:{grpc_port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .env_remove("DATABASE_URL");
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        Proc::spawn("control-plane", command)
    }

    /// Starts the control plane again on the same ports and store.
    pub async fn restart_control_plane(&mut self) {
        self.control_plane.kill();
        self.control_plane = Cluster::spawn_control_plane(
            self.api_port,
            self.grpc_port,
            self.data.path(),
            self.database_url.as_deref(),
            &self.token,
            &self.env,
        );
        self.api().wait_healthy().await;
    }

    pub fn add_agent(&mut self, id: &str) {
        self.add_agent_with_env(id, &[]);
    }

    pub fn add_gateway(&mut self) {
        let port = free_port();
        let mut command = Command::new(bin("mcpr-edge-gateway"));
        cluster_env(&mut command, &self.token);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--control-plane",
            &format!("http://127.0.0.1:{}", self.grpc_port),
            "--id",
            &format!("gateway-{}", self.gateways.len()),
        ]);
        self.gateways.push(Proc::spawn(
            &format!("gateway-{}", self.gateways.len()),
            command,
        ));
        self.gateway_ports.push(port);
        // Listening before anyone calls it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "gateway on port {port} did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn api(&self) -> Api {
        Api::new(&format!("http://127.0.0.1:{}", self.api_port))
    }

    pub fn mcp_url(&self, gateway: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway_ports[gateway])
    }

    /// Waits until every gateway serves the control plane's current configuration version
    /// (the gateway's own `mcpr_gateway_config_version` on its `/metrics`), so that what the
    /// API just changed (a new key, a disabled server) holds for the next client request.
    /// `mcpr up` answers API writes only once its gateway serves them; separate gateways
    /// learn of a change a moment after the API's answer.
    pub async fn wait_gateways_current(&self) {
        let (status, cluster) = self.api().get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{cluster}");
        let wanted = cluster["config_version"].as_u64().expect("config_version");
        for port in &self.gateway_ports {
            let url = format!("http://127.0.0.1:{port}/metrics");
            wait_for(
                &format!("the gateway on port {port} at config version {wanted}"),
                Duration::from_secs(10),
                || async {
                    let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                    let served = text
                        .lines()
                        .find_map(|l| l.strip_prefix("mcpr_gateway_config_version "))?
                        .trim()
                        .parse::<f64>()
                        .ok()?;
                    (served >= wanted as f64).then_some(())
                },
            )
            .await;
        }
    }
}

/// A fresh, empty database on the Postgres named by `MCPR_TEST_DATABASE_URL` (scripts/test
/// starts one), or `None` with a loud message when none is configured and none is required.
pub fn fresh_postgres() -> Option<String> {
    let Ok(base) = std::env::var("MCPR_TEST_DATABASE_URL") else {
        if std::env::var("MCPR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("MCPR_REQUIRE_POSTGRES=1 but MCPR_TEST_DATABASE_URL is not set");
        }
        eprintln!(
            "\n!!! SKIPPING Postgres end-to-end test: set MCPR_TEST_DATABASE_URL=postgres://… (scripts/test does) !!!\n"
        );
        return None;
    };
    let name = format!("mcpr_e2e_{}_{}", std::process::id(), free_port());
    let status = Command::new("psql")
        .arg(&base)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql");
    assert!(status.success(), "creating database {name} on {base}");
    let (prefix, _) = base.rsplit_once('/').expect("URL ends in /DBNAME");
    Some(format!("{prefix}/{name}"))
}

/// The messages of one streamed (SSE) or plain JSON answer, read as they arrive.
pub struct Answer {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
    pub sse: bool,
    pub status: u16,
    plain: Option<Value>,
}

impl Answer {
    /// The next JSON-RPC message, or `None` when the answer is over.
    pub async fn next(&mut self) -> Option<Value> {
        use futures::StreamExt;
        if !self.sse {
            if let Some(plain) = self.plain.take() {
                return Some(plain);
            }
            let mut all = Vec::new();
            while let Some(Ok(chunk)) = self.body.next().await {
                all.extend_from_slice(&chunk);
            }
            return if all.is_empty() {
                None
            } else {
                serde_json::from_slice(&all).ok()
            };
        }
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue;
                }
                return serde_json::from_str(&data.join("\n")).ok();
            }
            match tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("no SSE event within 20 s")
            {
                Some(Ok(chunk)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                _ => return None,
            }
        }
    }

    /// The next SSE event with its `id:` field.
    pub async fn next_with_id(&mut self) -> Option<(u64, Value)> {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let id = event
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .and_then(|v| v.trim().parse().ok());
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if let (Some(id), false) = (id, data.is_empty()) {
                    return serde_json::from_str(&data.join("\n")).ok().map(|v| (id, v));
                }
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("no SSE event within 20 s")
            {
                Some(Ok(chunk)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                _ => return None,
            }
        }
    }

    /// Every remaining message.
    pub async fn all(mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(m) = self.next().await {
            out.push(m);
        }
        out
    }
}

impl RawMcp {
    /// Sends a request and returns its answer as a stream of messages (SSE accepted).
    pub async fn stream(&mut self, method: &str, params: Value) -> (u64, Answer) {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut request = self
            .client
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.expect("POST to the gateway");
        let status = response.status().as_u16();
        let sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let answer = Answer {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            sse,
            status,
            plain: None,
        };
        (id, answer)
    }

    /// Opens the session's GET stream.
    pub async fn open_stream(&self) -> Answer {
        self.get_stream(None).await
    }

    /// Reopens the session's GET stream after event `last_event_id`.
    pub async fn open_stream_from(&self, last_event_id: u64) -> Answer {
        self.get_stream(Some(last_event_id)).await
    }

    async fn get_stream(&self, last_event_id: Option<u64>) -> Answer {
        let mut request = self
            .client
            .get(&self.url)
            .header("accept", "text/event-stream");
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last.to_string());
        }
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.expect("GET the session stream");
        let status = response.status().as_u16();
        Answer {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            sse: true,
            status,
            plain: None,
        }
    }

    /// Sends a JSON-RPC message (e.g. an answer to a server request) and returns the status.
    pub async fn send(&self, message: Value) -> u16 {
        self.post_bytes(message.to_string()).await.status
    }
}

// ---- Docker (tests/e2e/tests/docker.rs) -------------------------------------------------

/// Whether the Docker-dependent tests can run: a daemon answers and the images they need
/// are built (by `scripts/docker-images`, cached by tag, serialized across test processes).
/// Without a daemon: `false` with a loud message, or a panic when `MCPR_REQUIRE_DOCKER=1`.
pub fn docker_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        let required = std::env::var("MCPR_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
        let daemon = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !daemon {
            assert!(
                !required,
                "MCPR_REQUIRE_DOCKER=1 but no Docker daemon answers `docker version`"
            );
            eprintln!(
                "\n!!! SKIPPING Docker end-to-end test: no Docker daemon reachable (set MCPR_REQUIRE_DOCKER=1 to fail instead) !!!\n"
            );
            return false;
        }
        let status = Command::new("flock")
            .arg("/tmp/mcpr-docker-images.lock")
            .arg(workspace_root().join("scripts/docker-images"))
            .args(["python", "fixture"])
            .env("MCPR_FIXTURE_BIN", bin("mcpr-fixture-server"))
            .status()
            .expect("scripts/docker-images");
        assert!(status.success(), "scripts/docker-images failed");
        true
    })
}

/// The fixture server's image, made by `scripts/docker-images fixture`.
pub const FIXTURE_IMAGE: &str = "mcpr/fixture-server:test";

/// A unique owner label for one test's agent, so tests running side by side never see or
/// reap each other's containers.
pub fn docker_owner(test: &str) -> String {
    format!("e2e-{test}-{}-{}", std::process::id(), free_port())
}

/// Ids of the containers (running or not) whose labels include every `key=value` given.
pub fn containers_labelled(labels: &[(&str, &str)]) -> Vec<String> {
    let mut command = Command::new("docker");
    command.args(["ps", "-aq", "--no-trunc"]);
    for (key, value) in labels {
        command.args(["--filter", &format!("label={key}={value}")]);
    }
    let output = command.output().expect("docker ps");
    assert!(output.status.success(), "docker ps failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `docker inspect -f FORMAT ID`, trimmed; `None` when the container is gone.
pub fn docker_inspect(id: &str, format: &str) -> Option<String> {
    let output = Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .expect("docker inspect");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Waits until the containers labelled `labels` are exactly `count`; returns their ids.
pub async fn wait_containers(labels: &[(&str, &str)], count: usize, what: &str) -> Vec<String> {
    wait_for(what, Duration::from_secs(30), || async {
        let ids = containers_labelled(labels);
        (ids.len() == count).then_some(ids)
    })
    .await
}

impl Cluster {
    /// Starts a node agent `id` with extra environment variables (e.g. `MCPR_DOCKER_OWNER`,
    /// or another `MCPR_CLUSTER_TOKEN`).
    pub fn add_agent_with_env(&mut self, id: &str, envs: &[(&str, &str)]) {
        let relay_port = free_port();
        let mut command = Command::new(bin("mcpr-node-agent"));
        cluster_env(&mut command, &self.token);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.args([
            "--id",
            id,
            "--control-plane",
            &format!("http://127.0.0.1:{}", self.grpc_port),
            "--relay-listen",
            &format!("127.0.0.1:{relay_port}"),
            "--backoff-ms",
            "200",
        ]);
        for (k, v) in envs {
            command.env(k, v);
        }
        self.agents.push(Proc::spawn(id, command));
        self.relay_ports.push(relay_port);
    }
}

// --- authentication (issue 5) ------------------------------------------------------------

impl Api {
    /// The same API, sending `Authorization: Bearer TOKEN` (an admin token) on every call.
    pub fn with_token(&self, token: &str) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        Api {
            base: self.base.clone(),
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    /// Exchanges the admin passcode for an admin token; panics unless it is accepted.
    pub async fn login(&self, passcode: &str) -> String {
        let (status, body) = self
            .post("/api/v1/login", json!({"passcode": passcode}))
            .await;
        assert_eq!(status, 200, "login: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates an API key (`scopes` `None`: all); returns the key and its description.
    pub async fn create_key(&self, name: &str, scopes: Option<&[&str]>) -> (String, Value) {
        let mut body = json!({"name": name});
        if let Some(scopes) = scopes {
            body["scopes"] = json!(scopes);
        }
        let (status, created) = self.post("/api/v1/keys", body).await;
        assert_eq!(status, 201, "creating key {name}: {created}");
        (created["key"].as_str().expect("key").to_owned(), created)
    }
}

impl RawMcp {
    /// A raw client sending `headers` on every request (e.g. `authorization`).
    pub fn with_headers(url: &str, headers: &[(&str, &str)]) -> RawMcp {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        RawMcp {
            url: url.to_owned(),
            session: None,
            client: reqwest::Client::builder()
                .default_headers(map)
                .build()
                .unwrap(),
            next_id: 1,
        }
    }

    /// A raw client presenting the API key `key` as a bearer token.
    pub fn with_key(url: &str, key: &str) -> RawMcp {
        RawMcp::with_headers(url, &[("authorization", &format!("Bearer {key}"))])
    }

    /// POSTs an `initialize` (no session): the whole response, for status checks.
    pub async fn try_initialize(&self) -> RawResponse {
        self.post_bytes(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
            .to_string(),
        )
        .await
    }
}

/// Polls `initialize` on `url` with `key` until it answers `status`; returns how long that
/// took and the response.
pub async fn wait_initialize_status(
    url: &str,
    key: Option<&str>,
    status: u16,
    timeout: Duration,
) -> (Duration, RawResponse) {
    let client = match key {
        Some(key) => RawMcp::with_key(url, key),
        None => RawMcp::new(url),
    };
    let start = Instant::now();
    loop {
        let response = client.try_initialize().await;
        if response.status == status {
            return (start.elapsed(), response);
        }
        if start.elapsed() > timeout {
            panic!(
                "{url}: initialize still answers {} ({}) after {timeout:?}, expected {status}",
                response.status, response.body
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Removes every container labelled with `owner` when dropped, so that a failing Docker
/// test (whose router is then killed without a chance to clean up) leaks nothing.
pub struct DockerCleanup(pub String);

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let ids = containers_labelled(&[("mcp-router.owner", &self.0)]);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
    }
}

/// The text of a tool result (`content[0].text`).
pub fn tool_text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
