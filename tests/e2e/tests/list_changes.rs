//! Lists on a fresh start and list change notifications (issue 10, item 3), against the real
//! `mcpr up`: a list waits for providers that are still starting (at most 10 s, then it
//! names them in `_meta["mcpr/startingProviders"]`), and every view tells its clients when
//! what it shows changes — legacy sessions on their GET stream, modern clients on
//! `subscriptions/listen` — with raw clients and with the official Python SDK client.

use std::time::{Duration, Instant};

use mcpr_e2e::harness::{Answer, RawMcp, Router, bin, python, run_python};
use serde_json::{Value, json};

const TOOLS_CHANGED: &str = "notifications/tools/list_changed";

/// Reads the stream until a notification `method` arrives (other messages are skipped).
async fn next_notification(stream: &mut Answer, method: &str) -> Value {
    loop {
        let message = stream
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before {method}"));
        if message["method"] == method {
            return message;
        }
    }
}

/// Nothing at all arrives on the stream for `quiet`.
async fn assert_quiet(stream: &mut Answer, quiet: Duration, what: &str) {
    if let Ok(message) = tokio::time::timeout(quiet, stream.next()).await {
        panic!("{what}: expected nothing, got {message:?}");
    }
}

async fn tool_names(client: &mut RawMcp) -> Vec<String> {
    let answer = client.request("tools/list", json!({})).await;
    names(&answer["result"]["tools"])
}

fn names(tools: &Value) -> Vec<String> {
    tools
        .as_array()
        .unwrap_or_else(|| panic!("not a tool list: {tools}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The fixture server, started by a shell that first sleeps `delay` (a server slow to
/// start, as `uvx` fetching a package is).
fn slow_fixture(name: &str, delay: &str) -> Value {
    let script = format!("sleep {delay}; exec \"$0\" --name {name}");
    json!({
        "name": name,
        "runtime": {"kind": "process", "command": "sh",
                    "args": ["-c", script, bin("mcpr-fixture-server")]},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_flat_views_get_stream_hears_a_server_added_disabled_enabled_and_removed() {
    let router = Router::start().await;
    let api = router.api();
    let mut client = RawMcp::new(&router.mcp_url("/mcp/all"));
    let init = client.initialize().await;
    assert_eq!(
        init["result"]["capabilities"]["tools"]["listChanged"],
        json!(true),
        "{init}"
    );
    let mut stream = client.open_stream().await;
    assert_eq!(stream.status, 200);
    assert!(tool_names(&mut client).await.is_empty());

    api.add_fixture("alpha", &[]).await;
    next_notification(&mut stream, TOOLS_CHANGED).await;
    assert!(
        tool_names(&mut client)
            .await
            .contains(&"alpha__echo".to_owned()),
        "added"
    );

    let (status, body) = api.post("/api/v1/servers/alpha/disable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    next_notification(&mut stream, TOOLS_CHANGED).await;
    assert!(tool_names(&mut client).await.is_empty(), "disabled");

    let (status, body) = api.post("/api/v1/servers/alpha/enable", json!({})).await;
    assert_eq!(status, 200, "{body}");
    next_notification(&mut stream, TOOLS_CHANGED).await;
    // Listed as soon as it is announced: the list waits for it to start if need be.
    assert!(
        tool_names(&mut client)
            .await
            .contains(&"alpha__echo".to_owned()),
        "enabled"
    );

    let (status, body) = api
        .call(reqwest::Method::DELETE, "/api/v1/servers/alpha", None)
        .await;
    assert_eq!(status, 204, "{body}");
    next_notification(&mut stream, TOOLS_CHANGED).await;
    assert!(tool_names(&mut client).await.is_empty(), "removed");
}

/// A transparent view hears when its upstream's list changes (the Python SDK server adds a
/// tool and says so); the transparent view of another provider hears nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_transparent_view_hears_its_upstreams_list_change_and_no_other() {
    let Some(python) = python() else { return };
    let router = Router::start().await;
    let api = router.api();
    let script = mcpr_e2e::harness::workspace_root().join("tests/python/changing_server.py");
    api.add(json!({"name": "changing", "runtime": {"kind": "process", "command": python, "args": [script]}}))
        .await;
    api.add_fixture("other", &[]).await;
    api.wait_state("changing", "running").await;
    api.wait_state("other", "running").await;

    let mut changing = RawMcp::new(&router.mcp_url("/mcp/p/changing"));
    changing.initialize().await;
    let mut changing_stream = changing.open_stream().await;
    let mut other = RawMcp::new(&router.mcp_url("/mcp/p/other"));
    other.initialize().await;
    let mut other_stream = other.open_stream().await;
    assert_eq!(tool_names(&mut changing).await, ["grow"]);

    let grown = changing.call("grow", json!({"name": "fresh"})).await;
    assert!(grown.is_ok(), "{grown:?}");
    next_notification(&mut changing_stream, TOOLS_CHANGED).await;
    assert_eq!(tool_names(&mut changing).await, ["grow", "fresh"]);
    assert_quiet(
        &mut other_stream,
        Duration::from_secs(3),
        "another provider's view",
    )
    .await;

    // The flat view shows the new tool too, from the agent's fresh list.
    let mut flat = RawMcp::new(&router.mcp_url("/mcp/all"));
    flat.initialize().await;
    let flat_tools = tool_names(&mut flat).await;
    assert!(
        flat_tools.contains(&"changing__fresh".to_owned()),
        "{flat_tools:?}"
    );
}

/// A modern (2026-07-28) client's `subscriptions/listen` on `/mcp` hears a server added.
#[tokio::test(flavor = "multi_thread")]
async fn a_modern_listen_on_the_hierarchical_view_hears_a_server_added() {
    let router = Router::start().await;
    let mut listener = RawMcp::with_headers(
        &router.mcp_url("/mcp"),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "subscriptions/listen"),
        ],
    );
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let (id, mut stream) = listener
        .stream(
            "subscriptions/listen",
            json!({"_meta": meta, "notifications": {"toolsListChanged": true, "promptsListChanged": true}}),
        )
        .await;
    assert_eq!(stream.status, 200);
    assert!(stream.sse, "a listen answers with an event stream");
    let ack = stream.next().await.expect("the acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    // The views of every provider offer tools only: prompts are not acknowledged.
    assert_eq!(
        ack["params"]["notifications"]["toolsListChanged"],
        json!(true)
    );
    assert_eq!(
        ack["params"]["notifications"]["promptsListChanged"],
        json!(false)
    );

    router.api().add_fixture("beta", &[]).await;
    let changed = next_notification(&mut stream, TOOLS_CHANGED).await;
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        json!(id),
        "{changed}"
    );
}

/// Right after a slow server is added, a list waits for it and shows its tools, on every
/// view; `list_tools(provider)` too.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_right_after_adding_a_slow_server_waits_for_its_tools() {
    let router = Router::start().await;
    let api = router.api();
    let mut flat = RawMcp::new(&router.mcp_url("/mcp/all"));
    flat.initialize().await;

    api.add(slow_fixture("slowpoke", "3")).await;
    let started = Instant::now();
    let answer = flat.request("tools/list", json!({})).await;
    let waited = started.elapsed();
    let tools = names(&answer["result"]["tools"]);
    assert!(
        tools.contains(&"slowpoke__echo".to_owned()),
        "{tools:?} after {waited:?}"
    );
    assert!(answer["result"].get("_meta").is_none(), "{answer}");
    assert!(
        waited >= Duration::from_secs(2),
        "answered in {waited:?}: did it wait?"
    );
    eprintln!("flat tools/list waited {waited:?} for a server sleeping 3 s");

    api.add(slow_fixture("sloth", "3")).await;
    let mut hierarchical = RawMcp::new(&router.mcp_url("/mcp"));
    hierarchical.initialize().await;
    let listed = hierarchical
        .call("list_tools", json!({"provider": "sloth"}))
        .await
        .expect("list_tools answers");
    assert_eq!(listed["structuredContent"]["state"], "running", "{listed}");
    assert!(
        names(&listed["structuredContent"]["tools"]).contains(&"echo".to_owned()),
        "{listed}"
    );

    api.add(slow_fixture("snail", "3")).await;
    let mut transparent = RawMcp::new(&router.mcp_url("/mcp/p/snail"));
    // initialize waits too (it needs the upstream's capabilities).
    transparent.initialize().await;
    assert!(
        tool_names(&mut transparent)
            .await
            .contains(&"echo".to_owned())
    );
}

/// A server that never finishes starting holds a list up for the grace period only; the
/// answer names it, on the flat, hierarchical and transparent views.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_starts_is_named_after_the_grace_period() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("ready", &[]).await;
    api.wait_state("ready", "running").await;
    // Never answers `initialize`: it stays starting.
    api.add(json!({"name": "stuck", "runtime": {"kind": "process", "command": "sleep", "args": ["600"]}}))
        .await;
    api.wait_state("stuck", "starting").await;

    let mut flat = RawMcp::new(&router.mcp_url("/mcp/all"));
    flat.initialize().await;
    let started = Instant::now();
    let answer = flat.request("tools/list", json!({})).await;
    let waited = started.elapsed();
    eprintln!("flat tools/list answered after {waited:?} with a server stuck starting");
    assert!(
        (Duration::from_secs(8)..Duration::from_secs(15)).contains(&waited),
        "answered after {waited:?}"
    );
    assert_eq!(
        answer["result"]["_meta"]["mcpr/startingProviders"],
        json!(["stuck"]),
        "{answer}"
    );
    assert!(names(&answer["result"]["tools"]).contains(&"ready__echo".to_owned()));

    let mut hierarchical = RawMcp::new(&router.mcp_url("/mcp"));
    hierarchical.initialize().await;
    let listed = hierarchical
        .call("list_tools", json!({"provider": "stuck"}))
        .await
        .expect("list_tools answers");
    assert_eq!(
        listed["structuredContent"]["starting_providers"],
        json!(["stuck"]),
        "{listed}"
    );
    assert_eq!(
        listed["_meta"]["mcpr/startingProviders"],
        json!(["stuck"]),
        "{listed}"
    );
    let text = listed["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("still starting"), "{text}");
    // A list that does not concern it does not wait.
    let started = Instant::now();
    hierarchical
        .call("list_tools", json!({"provider": "ready"}))
        .await
        .expect("list_tools answers");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A handshake on the transparent view needs the upstream's capabilities, which a server
    // that never started has not given; a modern request needs none.
    let modern = RawMcp::with_headers(
        &router.mcp_url("/mcp/p/stuck"),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ],
    );
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let answer = modern
        .post_bytes(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}})
                .to_string(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["result"]["tools"], json!([]), "{}", answer.body);
    assert_eq!(
        answer.body["result"]["_meta"]["mcpr/startingProviders"],
        json!(["stuck"]),
        "{}",
        answer.body
    );
}

/// The official Python SDK client hears the list change: a legacy session on `/mcp/all`
/// (the SDK's `message_handler`, fed by its GET stream) and a 2026-07-28 client listening on
/// `/mcp` (`Client.listen`).
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_client_hears_list_changes() {
    if python().is_none() {
        return;
    }
    let router = Router::start().await;
    let fixture = |name: &str| {
        json!({"name": name, "runtime": {"kind": "process",
               "command": bin("mcpr-fixture-server"), "args": ["--name", name]}})
        .to_string()
    };
    let legacy = run_python(
        "list_changed_client.py",
        &[
            "legacy",
            &router.mcp_url("/mcp/all"),
            &router.url(),
            &fixture("gamma"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let legacy: Value = serde_json::from_str(legacy.trim()).expect("one JSON object");
    assert_eq!(legacy["before"], json!([]), "{legacy}");
    assert!(
        legacy["after"]
            .as_array()
            .unwrap()
            .contains(&json!("gamma__echo")),
        "{legacy}"
    );
    eprintln!(
        "legacy SDK client notified after {} s",
        legacy["notified_after_s"]
    );

    let modern = run_python(
        "list_changed_client.py",
        &[
            "auto",
            &router.mcp_url("/mcp"),
            &router.url(),
            &fixture("delta"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let modern: Value = serde_json::from_str(modern.trim()).expect("one JSON object");
    assert_eq!(modern["protocol_version"], "2026-07-28", "{modern}");
    assert!(
        modern["provider_tools"]
            .as_array()
            .unwrap()
            .contains(&json!("echo")),
        "{modern}"
    );
    eprintln!(
        "modern SDK client notified after {} s",
        modern["notified_after_s"]
    );
}

/// What a desktop client meets on every launch: `mcpr stdio` starts its servers as the
/// client connects. `list_tools(provider)` sent at once waits for the server and lists its
/// tools, and the client hears `notifications/tools/list_changed` on stdout when it starts.
#[tokio::test(flavor = "multi_thread")]
async fn mcpr_stdio_lists_a_server_still_starting_and_announces_it() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    // The data dir is shared with an HTTP router used to register the server.
    let router = Router::start().await;
    router.api().add(slow_fixture("desk", "2")).await;
    let port = mcpr_e2e::harness::free_port().to_string();
    let data_dir = router.data_dir.to_str().unwrap().to_owned();
    let mut child = tokio::process::Command::new(bin("mcpr"))
        .args(["stdio", "--port", &port, "--data-dir", &data_dir])
        .env("RUST_LOG", "warn")
        .env_remove("MCPR_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start mcpr stdio");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    for line in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "desk", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "list_tools", "arguments": {"provider": "desk"}}}),
    ] {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
    let mut listed = None;
    let mut announced = false;
    while listed.is_none() || !announced {
        let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("nothing more on stdout within 20 s (listed: {listed:?}, announced: {announced})"))
            .unwrap()
            .expect("stdout open");
        let message: Value = serde_json::from_str(&line).expect("JSON-RPC on stdout");
        if message["id"] == 1 {
            let capabilities = &message["result"]["capabilities"];
            assert_eq!(
                capabilities["tools"]["listChanged"],
                json!(true),
                "{message}"
            );
        } else if message["id"] == 2 {
            listed = Some((message, started.elapsed()));
        } else if message["method"] == TOOLS_CHANGED {
            announced = true;
        }
    }
    let (listed, waited) = listed.unwrap();
    eprintln!("list_tools over mcpr stdio answered after {waited:?}");
    let result = &listed["result"];
    assert_ne!(result["isError"], json!(true), "{listed}");
    assert_eq!(result["structuredContent"]["state"], "running", "{listed}");
    assert!(
        names(&result["structuredContent"]["tools"]).contains(&"echo".to_owned()),
        "{listed}"
    );
}
