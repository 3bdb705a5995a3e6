//! The official MCP conformance suite (`../shared/tools/conformance`, run through
//! `scripts/conformance`) against the conformance fixture server
//! (`tests/conformance-server`) called directly over streamable HTTP: every server
//! scenario of each spec version must pass, so that a failure through the gateway's
//! transparent view is the gateway's; then every scenario of 2025-11-25 and of 2026-07-28
//! through that view, with the fixture behind the gateway over stdio and over HTTP. Also a stdio smoke test of the same fixture,
//! the way the gateway runs it as a child process.
//!
//! The suite needs Node >= 22 (its wrapper installs one from PyPI when the machine's is
//! older). When it cannot run, these tests skip loudly, unless MCPR_REQUIRE_ALL=1.

use std::process::{Command, Stdio};
use std::time::Duration;

use mcpr_e2e::harness::{Proc, bin, wait_for, workspace_root};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The suite's wrapper: `CONFORMANCE`, or `../shared/tools/conformance` beside the workspace.
fn suite() -> std::path::PathBuf {
    std::env::var_os("CONFORMANCE")
        .map(Into::into)
        .unwrap_or_else(|| workspace_root().join("../shared/tools/conformance"))
}

/// Whether the suite can run here (present, and `conformance list` works, which unpacks
/// it and fetches Node on first use); `false` with a loud message when not required.
fn suite_available() -> bool {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let ready = READY.get_or_init(|| {
        let path = suite();
        if !path.exists() {
            return Err(format!("{} is missing", path.display()));
        }
        // Serialized across test processes: the first run unpacks the suite.
        let output = Command::new("flock")
            .arg("/tmp/mcpr-conformance-setup.lock")
            .arg(&path)
            .arg("list")
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "`{} list` failed: {}",
                path.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run {}: {e}", path.display())),
        }
    });
    match ready {
        Ok(()) => true,
        Err(why) => {
            assert!(
                !std::env::var("MCPR_REQUIRE_ALL").is_ok_and(|v| v == "1"),
                "MCPR_REQUIRE_ALL=1 but the conformance suite cannot run: {why}"
            );
            eprintln!("\n!!! SKIPPING conformance suite test: {why} !!!\n");
            false
        }
    }
}

/// Starts the fixture over HTTP on port 0; returns it and its `/mcp` URL.
async fn start_fixture(extra: &[&str]) -> (Proc, String) {
    let mut command = Command::new(bin("mcpr-conformance-server"));
    command.args(["--http", "127.0.0.1:0"]).args(extra);
    let proc = Proc::spawn("conformance-server", command);
    let url = wait_for("the fixture's address", Duration::from_secs(15), || {
        let log = proc.log();
        async move {
            log.lines()
                .find_map(|l| l.strip_prefix("listening on "))
                .map(str::to_owned)
        }
    })
    .await;
    (proc, url)
}

/// Runs `scripts/conformance URL VERSION` and asserts that every scenario passed.
async fn run_suite(version: &str) {
    if !suite_available() {
        return;
    }
    let (_fixture, url) = start_fixture(&[]).await;
    run_suite_at(&url, version, None).await;
}

/// The scenarios expected to fail when the router reaches the fixture over a legacy
/// connection, each with its reason in the file.
const LEGACY_UPSTREAM_EXPECTED: &str = "tests/e2e/conformance-legacy-upstream.yaml";

/// Runs the suite for `version` against `url` and asserts that every scenario passed, but
/// those listed in `expected_failures` (which must fail: a listed one that passes fails).
async fn run_suite_at(url: &str, version: &str, expected_failures: Option<&str>) {
    let mut args = vec![url.to_owned(), version.to_owned()];
    if let Some(file) = expected_failures {
        args.push("--expected-failures".into());
        args.push(workspace_root().join(file).display().to_string());
    }
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(workspace_root().join("scripts/conformance"))
            .args(&args)
            .env("CONFORMANCE", suite())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the conformance suite did not finish within 10 minutes")
    .expect("run scripts/conformance");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "conformance scenarios failed for {version} against the fixture at {url} ({:?}):\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(
        stdout.contains("0 failed") && stdout.contains("conformance: all passed"),
        "unexpected summary:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_directly() {
    run_suite("2025-11-25").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_directly() {
    run_suite("2026-07-28").await;
}

/// Runs the suite for `version` through the gateway's transparent view `/mcp/p/conf`, with
/// the fixture run by the router as a stdio child process (`shared` session).
async fn through_the_gateway_stdio(version: &str) {
    through_the_gateway_stdio_to(version, &[]).await;
}

/// Through the gateway to the stdio fixture started with `fixture_args`.
async fn through_the_gateway_stdio_to(version: &str, fixture_args: &[&str]) {
    if !suite_available() {
        return;
    }
    let router = mcpr_e2e::harness::Router::start().await;
    router.api().add(json!({"name": "conf", "runtime": {"kind": "process", "command": bin("mcpr-conformance-server"), "args": fixture_args}})).await;
    router.api().wait_state("conf", "running").await;
    run_suite_at(
        &router.mcp_url("/mcp/p/conf"),
        version,
        expected_through_a_legacy_connection(version, fixture_args),
    )
    .await;
}

/// Through the gateway with the fixture as a remote streamable-HTTP upstream. The fixture
/// closes `test_reconnection`'s POST stream after its first event (SEP-1699): the agent
/// resumes it with `Last-Event-ID` and the answer reaches the client.
async fn through_the_gateway_http(version: &str) {
    through_the_gateway_http_to(version, &[]).await;
}

/// Through the gateway to the HTTP fixture started with `fixture_args`.
async fn through_the_gateway_http_to(version: &str, fixture_args: &[&str]) {
    if !suite_available() {
        return;
    }
    let (_fixture, url) = start_fixture(fixture_args).await;
    let router = mcpr_e2e::harness::Router::start().await;
    router
        .api()
        .add(json!({"name": "conf", "runtime": {"kind": "remote", "url": url}}))
        .await;
    router.api().wait_state("conf", "running").await;
    run_suite_at(
        &router.mcp_url("/mcp/p/conf"),
        version,
        expected_through_a_legacy_connection(version, fixture_args),
    )
    .await;
}

/// The router opens a legacy connection to a fixture that accepts `initialize`: the
/// 2026-07-28 scenarios that need the fixture itself to negotiate 2026-07-28 fail there.
fn expected_through_a_legacy_connection(
    version: &str,
    fixture_args: &[&str],
) -> Option<&'static str> {
    (version == "2026-07-28" && !fixture_args.contains(&"--modern-only"))
        .then_some(LEGACY_UPSTREAM_EXPECTED)
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_through_the_gateway_stdio() {
    through_the_gateway_stdio("2025-11-25").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_through_the_gateway_http() {
    through_the_gateway_http("2025-11-25").await;
}

/// The modern era through the gateway: the fixture's upstream session is a legacy one
/// (the agent initializes it); modern requests travel over it with their `_meta`, and the
/// gateway answers `server/discover`, checks headers and removed methods itself.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_through_the_gateway_stdio() {
    through_the_gateway_stdio("2026-07-28").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_through_the_gateway_http() {
    through_the_gateway_http("2026-07-28").await;
}

/// Both eras' clients through the gateway to an upstream of the modern era alone (the
/// fixture with `--modern-only` refuses `initialize`): the agent finds it with
/// `server/discover` (over stdio on the server's restart, as the refusal ends it); legacy
/// clients get its input requests as server-to-client requests, their `logging/setLevel`
/// and `resources/subscribe` are kept by the agent.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_through_the_gateway_to_a_modern_only_upstream() {
    through_the_gateway_http_to("2025-11-25", &["--modern-only"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_through_the_gateway_to_a_modern_only_upstream() {
    through_the_gateway_http_to("2026-07-28", &["--modern-only"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25_through_the_gateway_to_a_modern_only_stdio_upstream() {
    through_the_gateway_stdio_to("2025-11-25", &["--modern-only"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28_through_the_gateway_to_a_modern_only_stdio_upstream() {
    through_the_gateway_stdio_to("2026-07-28", &["--modern-only"]).await;
}

/// A line-delimited JSON-RPC peer over the fixture's stdin and stdout.
struct StdioPeer {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl StdioPeer {
    fn start() -> StdioPeer {
        let mut child = tokio::process::Command::new(bin("mcpr-conformance-server"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the conformance fixture");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        StdioPeer {
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.stdout.next_line())
            .await
            .expect("no message within 10 s")
            .expect("read")
            .expect("the fixture closed stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }
}

/// Over stdio, both eras: a legacy session with a server-to-client sampling request and
/// progress notifications, then a 2026-07-28 InputRequiredResult round trip.
#[tokio::test]
async fn conformance_fixture_over_stdio() {
    let mut peer = StdioPeer::start();
    peer.send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "e2e", "version": "1"}
        }}),
    )
    .await;
    assert_eq!(peer.recv().await["result"]["protocolVersion"], "2025-11-25");
    peer.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    peer.send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "test_sampling", "arguments": {"prompt": "hi"}
        }}),
    )
    .await;
    let request = peer.recv().await;
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
    assert_eq!(request["params"]["messages"][0]["content"]["text"], "hi");
    peer.send(json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant",
        "content": {"type": "text", "text": "hello back"},
        "model": "test-model",
        "stopReason": "endTurn"
    }}))
    .await;
    let answer = peer.recv().await;
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "LLM response: hello back"
    );

    peer.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p1"}
        }}),
    )
    .await;
    let mut progress = Vec::new();
    let answer = loop {
        let message = peer.recv().await;
        if message["method"] == "notifications/progress" {
            assert_eq!(message["params"]["progressToken"], "p1");
            progress.push(message["params"]["progress"].as_f64().unwrap());
        } else {
            break message;
        }
    };
    assert_eq!(progress, [0.0, 50.0, 100.0]);
    assert_eq!(answer["id"], 3);

    // 2026-07-28 on the same stdio connection: per-request _meta, no session state.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}
    });
    peer.send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "test_input_required_result_elicitation", "arguments": {}, "_meta": meta
        }}),
    )
    .await;
    let first = peer.recv().await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    assert_eq!(
        first["result"]["inputRequests"]["user_name"]["method"],
        "elicitation/create"
    );
    peer.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "test_input_required_result_elicitation", "arguments": {}, "_meta": meta,
            "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Ann"}}}
        }}),
    )
    .await;
    let second = peer.recv().await;
    assert_eq!(
        second["result"]["content"][0]["text"], "Hello, Ann!",
        "{second}"
    );

    drop(peer.stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), peer.child.wait())
        .await
        .expect("the fixture did not exit when stdin closed")
        .expect("wait");
    assert!(status.success(), "{status}");
}
