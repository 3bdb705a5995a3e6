//! Attacks on exhaustion: batches, sessions, connections, malformed requests.
//!
//! Each test starts a real `mcpr up` with small limits (`MCPR_*` variables), makes the
//! attack, asserts the exact refusal, and shows that a legitimate client is served while
//! it runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcpr_e2e::harness::{RawMcp, Router};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A JSON-RPC error body.
fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A legitimate client's round trip on `path`: initialize and `tools/list`.
async fn serves(router: &Router, path: &str) {
    let mut mcp = RawMcp::new(&router.mcp_url(path));
    mcp.initialize().await;
    let tools = mcp.request("tools/list", json!({})).await;
    assert!(tools["result"]["tools"].is_array(), "{tools}");
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Issue 11's batch: 20,000 `tools/list` on `/mcp/all` (about 1 MB) grew the process to
/// 1.45 GB. Refused whole, naming the cap; the process stays small; a batch at the cap and
/// a legitimate client are served meanwhile.
#[tokio::test]
async fn a_long_batch_is_refused_naming_the_cap() {
    let router = Router::start().await;
    router.api().add_fixture("fx", &["--tools", "50"]).await;
    router.api().wait_state("fx", "running").await;
    let mut attacker = RawMcp::new(&router.mcp_url("/mcp/all"));
    attacker.initialize().await;
    let before = resident_kib(router.proc.pid());
    let batch = |n: usize| {
        let messages: Vec<Value> = (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "tools/list"}))
            .collect();
        Value::Array(messages).to_string()
    };
    let attack = batch(20_000);
    assert!(attack.len() > 900_000, "{} bytes", attack.len());
    let legitimate = async {
        for _ in 0..5 {
            serves(&router, "/mcp/all").await;
        }
    };
    let (refused, ()) = tokio::join!(attacker.post_bytes(attack), legitimate);
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        rpc_error(
            Value::Null,
            -32600,
            "batch of 20000 messages is over the limit of 64 (MCPR_MAX_BATCH)"
        )
    );
    let at_cap = attacker.post_bytes(batch(64)).await;
    assert_eq!(at_cap.status, 200, "{}", at_cap.body);
    let answers = at_cap.body.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 64);
    assert!(answers.iter().all(|a| a["result"]["tools"].is_array()));
    let grown = resident_kib(router.proc.pid()).saturating_sub(before);
    eprintln!("resident memory grew by {grown} KiB");
    assert!(grown < 100 * 1024, "grew by {grown} KiB");
}

/// An answer, or a batch of answers, over `MCPR_MAX_RESPONSE_BYTES` becomes an error naming
/// the cap; smaller ones go through.
#[tokio::test]
async fn an_oversized_response_is_refused_naming_the_cap() {
    let router = Router::start_with(&[], &[("MCPR_MAX_RESPONSE_BYTES", "2000")]).await;
    router.api().add_fixture("fx", &[]).await;
    router.api().wait_state("fx", "running").await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp/p/fx"));
    mcp.initialize().await;
    let big = "x".repeat(3000);
    let answer = mcp
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": big}}),
        )
        .await;
    let id = answer["id"].clone();
    let error = &answer["error"];
    assert_eq!(error["code"], -32005, "{answer}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.ends_with("is over the limit of 2000 bytes (MCPR_MAX_RESPONSE_BYTES)"),
        "{message}"
    );
    assert!(message.starts_with("response of "), "{message}");
    assert_eq!(answer, rpc_error(id, -32005, message));
    // Answers each small but together over the cap: the batch stops there.
    let pings: Vec<Value> = (0..60)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        .collect();
    let batch = mcp.post_bytes(Value::Array(pings).to_string()).await;
    assert_eq!(batch.status, 200);
    assert_eq!(batch.body["error"]["code"], -32005, "{}", batch.body);
    assert_eq!(batch.body["id"], Value::Null);
    // The same client, within the cap, is served.
    let echoed = mcp
        .call("echo", json!({"text": "small"}))
        .await
        .expect("echo");
    assert_eq!(echoed["content"][0]["text"], "small");
    let pings: Vec<Value> = (0..5)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        .collect();
    let batch = mcp.post_bytes(Value::Array(pings).to_string()).await;
    assert_eq!(
        batch.body.as_array().map(Vec::len),
        Some(5),
        "{}",
        batch.body
    );
}

/// A client of `key` on `/mcp`.
fn keyed(router: &Router, key: &str) -> RawMcp {
    RawMcp::with_key(&router.mcp_url("/mcp"), key)
}

/// The refusal of a session this gateway does not (or no longer) serve to this caller.
async fn assert_unknown_session(mcp: &RawMcp) {
    let response = mcp
        .post_bytes(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}).to_string())
        .await;
    assert_eq!(
        (response.status, response.body),
        (
            404,
            rpc_error(
                Value::Null,
                -32600,
                "unknown or expired session: initialize a new one"
            )
        )
    );
}

async fn lists(mcp: &mut RawMcp) {
    let tools = mcp.request("tools/list", json!({})).await;
    assert!(tools["result"]["tools"].is_array(), "{tools}");
}

/// Sessions are capped per credential and in total, the least recently used evicted (its
/// id then gets 404, not resumed from its seal); a session belongs to the key that created
/// it, also after a restart, when the sealed id is all there is.
#[tokio::test]
async fn sessions_are_capped_and_bound_to_their_credential() {
    let envs = [
        ("MCPR_MAX_SESSIONS", "3"),
        ("MCPR_MAX_SESSIONS_PER_CREDENTIAL", "2"),
    ];
    let router = Router::start_with(&[], &envs).await;
    let (key_a, _) = router.api().create_key("a", None).await;
    let (key_b, _) = router.api().create_key("b", None).await;
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    let mut a1 = keyed(&router, &key_a);
    a1.initialize().await;
    pause().await;
    let mut a2 = keyed(&router, &key_a);
    a2.initialize().await;
    pause().await;
    lists(&mut a1).await;
    pause().await;
    // A third session of key a: its least recently used one (a2) goes.
    let mut a3 = keyed(&router, &key_a);
    a3.initialize().await;
    assert_unknown_session(&a2).await;
    pause().await;
    let mut b1 = keyed(&router, &key_b);
    b1.initialize().await;
    pause().await;
    // The fourth session in all: the least recently used of all (a1) goes.
    let mut b2 = keyed(&router, &key_b);
    b2.initialize().await;
    assert_unknown_session(&a1).await;
    for mcp in [&mut a3, &mut b1, &mut b2] {
        lists(mcp).await;
    }

    // Key b naming a session of key a: 404, as if it did not exist; no key at all: 401.
    let mut stolen = keyed(&router, &key_b);
    stolen.session = a3.session.clone();
    assert_unknown_session(&stolen).await;
    let mut anonymous = RawMcp::new(&router.mcp_url("/mcp"));
    anonymous.session = a3.session.clone();
    let response = anonymous
        .post_bytes(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .await;
    assert_eq!(response.status, 401, "{}", response.body);
    lists(&mut a3).await;

    // After a restart only the seal knows the session: it still belongs to key a.
    let (data_dir, keep) = router.stop();
    let router = Router::start_in(data_dir, keep, &[], &envs).await;
    let mut stolen = keyed(&router, &key_b);
    stolen.session = a3.session.clone();
    assert_unknown_session(&stolen).await;
    let mut resumed = keyed(&router, &key_a);
    resumed.session = a3.session.clone();
    lists(&mut resumed).await;
}

/// A session unused for `MCPR_SESSION_IDLE_SECS` expires (404); one in use does not.
#[tokio::test]
async fn idle_sessions_expire() {
    let router = Router::start_with(&[], &[("MCPR_SESSION_IDLE_SECS", "2")]).await;
    let mut idle = RawMcp::new(&router.mcp_url("/mcp"));
    idle.initialize().await;
    let mut busy = RawMcp::new(&router.mcp_url("/mcp"));
    busy.initialize().await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        lists(&mut busy).await;
    }
    assert_unknown_session(&idle).await;
    // Initializing anew is what the client does then.
    idle.initialize().await;
    lists(&mut idle).await;
}

/// Reads until the peer closes (or `limit`): what arrived, and how long it took.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {limit:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

/// Slowloris: headers that never end, and a body that never comes, are cut off after
/// their timeouts; a connection with nothing running is closed when idle, but an open SSE
/// stream is not. A legitimate client is served throughout.
#[tokio::test]
async fn slow_headers_and_bodies_are_cut_off() {
    let router = Router::start_with(
        &[],
        &[
            ("MCPR_HEADER_TIMEOUT_SECS", "1"),
            ("MCPR_BODY_TIMEOUT_SECS", "1"),
            ("MCPR_IDLE_TIMEOUT_SECS", "2"),
        ],
    )
    .await;
    let address: SocketAddr = format!("127.0.0.1:{}", router.port).parse().unwrap();
    let host = format!("127.0.0.1:{}", router.port);

    let mut headers = TcpStream::connect(address).await.unwrap();
    headers
        .write_all(format!("POST /mcp HTTP/1.1\r\nHost: {host}\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = TcpStream::connect(address).await.unwrap();
    body.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n\
             accept: application/json\r\ncontent-length: 100\r\n\r\n{{\"jsonrpc\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Nothing sent at all after connecting: the first request's headers are late too.
    let mut silent = TcpStream::connect(address).await.unwrap();
    serves(&router, "/mcp").await;

    let (received, took) = read_until_closed(&mut headers, Duration::from_secs(5)).await;
    assert_eq!(received, "", "no answer to half a request");
    assert!(took <= Duration::from_secs(3), "closed after {took:?}");
    let (received, _) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert_eq!(received, "");
    let (received, took) = read_until_closed(&mut body, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 408 "), "{received}");
    let answer: Value =
        serde_json::from_str(received.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap();
    assert_eq!(
        answer,
        rpc_error(
            Value::Null,
            -32600,
            "request body not received within 1 s (MCPR_BODY_TIMEOUT_SECS)"
        )
    );
    assert!(took <= Duration::from_secs(3), "answered after {took:?}");

    // Keep-alive: a finished request's connection is closed once idle.
    let mut kept = TcpStream::connect(address).await.unwrap();
    kept.write_all(format!("GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
    let started = Instant::now();
    read_until_closed(&mut kept, Duration::from_secs(6)).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));

    // An open GET stream of a session is a request running: never idle.
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    let stream = reqwest::Client::new()
        .get(router.mcp_url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", mcp.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = stream.bytes_stream();
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::next(&mut events),
    );
    assert!(
        next.await.is_err(),
        "the stream ended or sent something unasked"
    );
    serves(&router, "/mcp").await;
}

/// Opens a connection from `source` (another loopback address than the legitimate
/// client's) to `address`.
async fn connect_from(source: &str, address: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(address).await.unwrap()
}

/// Issue 11's 20,000 idle sockets, scaled down: from one address, past
/// `MCPR_MAX_CONNECTIONS_PER_IP` (its default, 512) they are closed at once, while the
/// health check and MCP answer other clients; closing one makes room for one.
#[tokio::test]
async fn idle_sockets_past_the_per_address_cap_are_refused() {
    let router = Router::start().await;
    let address: SocketAddr = format!("127.0.0.1:{}", router.port).parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..512 {
        held.push(connect_from("127.0.0.2", address).await);
    }
    // The accept loop counts them before the next ones come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..1000 {
        let mut refused = connect_from("127.0.0.2", address).await;
        let (received, took) = read_until_closed(&mut refused, Duration::from_secs(2)).await;
        assert_eq!(received, "");
        assert!(took < Duration::from_secs(1), "closed after {took:?}");
    }
    let (status, health) = router.api().get("/api/v1/health").await;
    assert_eq!(status, 200, "{health}");
    serves(&router, "/mcp").await;
    // The held ones are still served.
    let host = format!("127.0.0.1:{}", router.port);
    let mut first = held.remove(0);
    first
        .write_all(
            format!("GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (received, _) = read_until_closed(&mut first, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200 "), "{received}");
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One closed, one more may come.
    let mut again = connect_from("127.0.0.2", address).await;
    again
        .write_all(
            format!("GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (received, _) = read_until_closed(&mut again, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200 "), "{received}");
}

/// `params: [1,2]` on `/mcp/p/time`, which the upstream never answered (the client waited
/// for the request timeout): refused at the gateway at once, -32602, in both eras.
#[tokio::test]
async fn params_that_are_not_an_object_are_refused_at_once() {
    let router = Router::start().await;
    router.api().add_fixture("time", &[]).await;
    router.api().wait_state("time", "running").await;
    let url = router.mcp_url("/mcp/p/time");
    let mut legacy = RawMcp::new(&url);
    legacy.initialize().await;
    let started = Instant::now();
    let refused = legacy
        .post_bytes(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": [1, 2]})
                .to_string(),
        )
        .await;
    assert_eq!(
        (refused.status, refused.body),
        (
            400,
            rpc_error(json!(7), -32602, "params of tools/call must be an object")
        )
    );
    let modern = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .body(
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": [1, 2]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(modern.status(), 400);
    assert_eq!(
        modern.json::<Value>().await.unwrap(),
        rpc_error(json!(8), -32602, "params of tools/call must be an object")
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let echoed = legacy
        .call("echo", json!({"text": "hi"}))
        .await
        .expect("echo");
    assert_eq!(echoed["content"][0]["text"], "hi");
}

/// A limit that makes no sense stops the start with an error naming the variable, instead
/// of being found out under attack.
#[tokio::test]
async fn an_invalid_limit_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(mcpr_e2e::harness::bin("mcpr"))
        .args([
            "up",
            "--port",
            &mcpr_e2e::harness::free_port().to_string(),
            "--data-dir",
        ])
        .arg(data.path())
        .env("MCPR_MAX_BATCH", "0")
        .env_remove("DATABASE_URL")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .expect("mcpr up exits")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: invalid MCPR_MAX_BATCH=\"0\": must be at least 1"),
        "{stderr}"
    );
}
