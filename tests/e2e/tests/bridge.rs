//! `mcpr --url URL stdio`, the bridge from a stdio client to a router running elsewhere
//! (cli/src/stdio/bridge.rs), driven line by line as a desktop client drives it: the API key it
//! sends (`--api-key`, `MCPR_API_KEY`, `MCP_API_KEY`), every refusal of the router answered on
//! the id of the request it refuses, a session the router forgot opened again unseen, and the
//! session's GET stream relayed. (Third-party clients over the bridge: interop.rs.)

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcpr_e2e::harness::{Api, Proc, RawMcp, Router, bin, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

const KEY: &str = "mcpr_bridge_test_key_0123456789abcdef";

/// A bridge process and its stdio, as a desktop client holds them.
struct Bridge {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    log: tempfile::NamedTempFile,
}

impl Bridge {
    /// `mcpr --url URL stdio ARGS…` with `envs` (and no key from the test's environment).
    fn start(url: &str, args: &[&str], envs: &[(&str, &str)]) -> Bridge {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = tokio::process::Command::new(bin("mcpr"));
        command
            .args(["--url", url, "stdio"])
            .args(args)
            .env_remove("MCPR_API_KEY")
            .env_remove("MCP_API_KEY")
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .kill_on_drop(true);
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("starting the bridge");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Bridge {
            child,
            stdin,
            stdout,
            log,
        }
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next line on stdout, as JSON; panics after 20 s (a client would hang there).
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.stdout.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no answer from the bridge within 20 s; its log:\n{}",
                    self.log()
                )
            })
            .unwrap()
            .unwrap_or_else(|| panic!("the bridge closed stdout; its log:\n{}", self.log()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends a request and returns the message that answers it (skipping notifications).
    async fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let message = self.next().await;
            if message.get("method").is_none() {
                assert_eq!(
                    message["id"],
                    json!(id),
                    "an answer to another request: {message}"
                );
                return message;
            }
        }
    }

    async fn initialize(&mut self) -> Value {
        let answer = self
            .request(
                1,
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bridge-test", "version": "1"}}),
            )
            .await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        answer
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The log once it holds `needle`, or as it is after 10 s.
    async fn log_once_it_holds(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || tokio::time::Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes stdin, as a client that quits does: the bridge ends, cleanly and soon.
    async fn close(mut self) {
        drop(self.stdin);
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the bridge ends within 10 s of its stdin closing")
            .unwrap();
        assert!(
            status.success(),
            "bridge exit: {status}; log:\n{}",
            std::fs::read_to_string(self.log.path()).unwrap_or_default()
        );
    }
}

/// The JSON-RPC error of an answer, checked to be on `id`.
#[track_caller]
fn error_on(answer: &Value, id: i64) -> (i64, String) {
    assert_eq!(
        answer["id"],
        json!(id),
        "the refusal must answer request {id}: {answer}"
    );
    let error = &answer["error"];
    assert!(error.is_object(), "an error was expected: {answer}");
    (
        error["code"].as_i64().unwrap(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn without_a_key_every_request_gets_the_routers_401_on_its_own_id() {
    let router = Router::start_with(&[], &[("MCP_API_KEY", KEY)]).await;
    let mut bridge = Bridge::start(&router.url(), &[], &[]);
    let (code, message) = error_on(&bridge.initialize().await, 1);
    assert_eq!(code, -32003, "{message}");
    assert!(
        message.contains("missing API key") && message.contains("--api-key or MCPR_API_KEY"),
        "the router's message and how to give the bridge a key: {message}"
    );
    // The refused notifications/initialized is logged, not answered: the next line on
    // stdout answers the next request.
    let (_, message) = error_on(&bridge.request(2, "tools/list", json!({})).await, 2);
    assert!(message.contains("missing API key"), "{message}");
    // The bridge forwards each line on its own task, so the notification's log line may
    // come after the next request's answer: wait for it rather than read once.
    let log = bridge
        .log_once_it_holds("the router refused a message of the client")
        .await;
    assert!(
        log.contains("the router refused a message of the client")
            && log.contains("notifications/initialized"),
        "{log}"
    );

    // A wrong key: the router's reason, on the id.
    let mut wrong = Bridge::start(
        &router.url(),
        &["--api-key", "mcpr_not_a_key_of_this_router_000"],
        &[],
    );
    let (code, message) = error_on(&wrong.initialize().await, 1);
    assert_eq!(code, -32003, "{message}");
    assert!(message.contains("--api-key or MCPR_API_KEY"), "{message}");
    bridge.close().await;
    wrong.close().await;
}

#[tokio::test]
async fn the_key_comes_from_the_flag_or_the_environment() {
    let router = Router::start_with(&[], &[("MCP_API_KEY", KEY)]).await;
    // (how, the bridge's arguments, its environment)
    let flag = ["--api-key", KEY];
    let by_flag = (&flag[..], &[][..]);
    let by_mcpr_env = (&[][..], &[("MCPR_API_KEY", KEY)][..]);
    let by_mcp_env = (&[][..], &[("MCP_API_KEY", KEY)][..]);
    for (way, (args, envs)) in [
        ("--api-key", by_flag),
        ("MCPR_API_KEY", by_mcpr_env),
        ("MCP_API_KEY", by_mcp_env),
    ] {
        let mut bridge = Bridge::start(&router.url(), args, envs);
        let init = bridge.initialize().await;
        assert_eq!(
            init["result"]["serverInfo"]["name"], "mcp-router",
            "{way}: {init}"
        );
        let tools = bridge.request(2, "tools/list", json!({})).await;
        assert!(
            tools["result"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "{way}: {tools}"
        );
        bridge.close().await;
    }

    // `--api-key` means the bridge: without --url it is a mistake, said as such.
    let output = std::process::Command::new(bin("mcpr"))
        .args(["stdio", "--api-key", KEY])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--api-key is for the bridge"), "{stderr}");
}

#[tokio::test]
async fn refusals_of_the_router_answer_the_request_they_refuse() {
    // 403: a key whose scopes do not include the provider of /mcp/p/NAME.
    let router = Router::start_with(
        &[],
        &[("MCP_API_KEY", KEY), ("MCPR_RATE_LIMIT_KEY", "0.01/3")],
    )
    .await;
    let api = router.api();
    let (scoped, _) = api.create_key("only-other", Some(&["other"])).await;
    api.add_fixture("fixture", &[]).await;
    let mut bridge = Bridge::start(
        &router.mcp_url("/mcp/p/fixture"),
        &["--api-key", &scoped],
        &[],
    );
    let (code, message) = error_on(&bridge.initialize().await, 1);
    assert_eq!(code, -32003, "{message}");
    assert!(
        message.contains("may not use provider \"fixture\""),
        "{message}"
    );
    bridge.close().await;

    // 404 from the route, before any session: an unknown provider.
    let mut bridge = Bridge::start(&router.mcp_url("/mcp/p/no-such"), &["--api-key", KEY], &[]);
    let (_, message) = error_on(&bridge.initialize().await, 1);
    assert!(
        message.contains("unknown provider \"no-such\""),
        "{message}"
    );
    bridge.close().await;

    // 429: a key may make three requests at once (burst 3), then one per 100 s. Its own key,
    // so that the requests above do not count.
    let (limited, _) = api.create_key("limited", None).await;
    let mut bridge = Bridge::start(&router.url(), &["--api-key", &limited], &[]);
    bridge.initialize().await;
    let mut refused = None;
    for id in 2..6 {
        let answer = bridge.request(id, "tools/list", json!({})).await;
        if answer.get("error").is_some() {
            refused = Some(error_on(&answer, id));
            break;
        }
    }
    let (code, message) = refused.expect("the rate limit refuses a request");
    assert_eq!(code, -32004, "{message}");
    assert!(
        message.contains("rate limit exceeded") && message.contains("retry after"),
        "{message}"
    );
    bridge.close().await;
}

#[tokio::test]
async fn an_unreachable_or_failing_router_is_an_error_on_the_id() {
    // Nothing listens.
    let mut bridge = Bridge::start(&format!("http://127.0.0.1:{}", free_port()), &[], &[]);
    let (code, message) = error_on(&bridge.initialize().await, 1);
    assert_eq!(code, -32001, "{message}");
    assert!(
        message.contains("cannot reach the router at http://127.0.0.1:"),
        "{message}"
    );
    let (_, message) = error_on(&bridge.request(2, "tools/list", json!({})).await, 2);
    assert!(message.contains("cannot reach the router"), "{message}");
    bridge.close().await;

    // A proxy in front of the router that answers 503 with a plain body.
    let url = serve_status(
        "503 Service Unavailable",
        "upstream router down for maintenance",
    )
    .await;
    let mut bridge = Bridge::start(&url, &[], &[]);
    let (code, message) = error_on(&bridge.initialize().await, 1);
    assert_eq!(code, -32001, "{message}");
    assert!(
        message.contains("503") && message.contains("upstream router down for maintenance"),
        "{message}"
    );
    bridge.close().await;
}

#[tokio::test]
async fn a_session_the_router_forgot_is_opened_again_unseen() {
    // The router comes back on the same port and data, but with another session key, so the
    // bridge's session id means nothing to it any more (404).
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = start_router(port, data.path(), "first-session-key-0123456789abcdef").await;
    let url = format!("http://127.0.0.1:{port}");
    let mut bridge = Bridge::start(&url, &[], &[]);
    let init = bridge.initialize().await;
    assert!(init.get("result").is_some(), "{init}");
    assert!(
        bridge
            .request(2, "tools/list", json!({}))
            .await
            .get("result")
            .is_some()
    );

    first.terminate();
    let _second = start_router(port, data.path(), "second-session-key-0123456789abcdef").await;
    let answer = bridge.request(3, "tools/list", json!({})).await;
    assert!(
        answer["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "the request goes through in a new session: {answer}"
    );
    assert!(
        bridge
            .log()
            .contains("the router no longer knew the session"),
        "{}",
        bridge.log()
    );
    bridge.close().await;
}

#[tokio::test]
async fn the_sessions_get_stream_reaches_the_client() {
    let router = Router::start().await;
    router.api().add(json!({"name": "conf", "runtime": {"kind": "process", "command": bin("mcpr-conformance-server")}})).await;
    router.api().wait_state("conf", "running").await;
    let url = router.mcp_url("/mcp/p/conf");
    let mut bridge = Bridge::start(&url, &[], &[]);
    assert!(bridge.initialize().await.get("result").is_some());
    // The GET stream is open once the router counts it: poll with another client's change
    // until the bridge relays one.
    let mut actor = RawMcp::new(&url);
    actor.initialize().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let changed = loop {
        actor
            .request(
                "tools/call",
                json!({"name": "test_trigger_tool_change", "arguments": {}}),
            )
            .await;
        // next_line is cancel-safe: a line cut by the timeout is read whole next time.
        match tokio::time::timeout(Duration::from_millis(500), bridge.stdout.next_line()).await {
            Ok(Ok(Some(line))) => {
                let message: Value = serde_json::from_str(&line).unwrap();
                if message["method"] == "notifications/tools/list_changed" {
                    break message;
                }
            }
            Ok(other) => panic!(
                "the bridge's stdout ended: {other:?}; log:\n{}",
                bridge.log()
            ),
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "no list change reached the bridge's client within 20 s; log:\n{}",
            bridge.log()
        );
    };
    assert!(changed.get("id").is_none(), "{changed}");
    bridge.close().await;
}

/// `mcpr up` on `port` and `data`, with `session_key` sealing its session ids.
async fn start_router(port: u16, data: &Path, session_key: &str) -> Proc {
    let mut command = std::process::Command::new(bin("mcpr"));
    command
        .args(["up", "--port", &port.to_string(), "--data-dir"])
        .arg(data)
        .env("MCPR_SESSION_KEY", session_key)
        .env_remove("DATABASE_URL")
        .env_remove("MCPR_URL")
        .env_remove("MCP_API_KEY");
    let proc = Proc::spawn("mcpr-up", command);
    Api::new(&format!("http://127.0.0.1:{port}"))
        .wait_healthy()
        .await;
    proc
}

/// An HTTP server on loopback answering every request with `status` and a plain `body`.
async fn serve_status(status: &'static str, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}
