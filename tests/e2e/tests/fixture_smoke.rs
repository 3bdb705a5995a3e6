//! Smoke test of the fixture server and of the rmcp client helpers: the
//! fixture (`mcpr-fixture-server`) is driven directly, over stdio and over
//! streamable HTTP, without the gateway in between.
//!
//! Needs the fixture binary: `cargo build -p mcpr-fixture-server`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use mcpr_e2e::rmcp_client::{McpClient, RpcError, connect_http, connect_stdio};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `target/<profile>/mcpr-fixture-server`, next to this test's `deps/` directory.
fn fixture_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join(format!(
        "mcpr-fixture-server{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        bin.exists(),
        "{} not found; build it first: cargo build -p mcpr-fixture-server",
        bin.display()
    );
    bin
}

/// Starts the fixture with `--http 127.0.0.1:0 ARGS...` and returns the child
/// and the URL from its `listening on ...` line.
async fn spawn_http_fixture(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(fixture_bin())
        .args(["--http", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn fixture");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("fixture did not print its address in time")
    .expect("read fixture stdout");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from fixture: {line:?}"))
        .to_owned();
    (child, url)
}

fn names(tools: &[Value]) -> Vec<&str> {
    tools.iter().filter_map(|t| t["name"].as_str()).collect()
}

/// The checks shared by every transport.
async fn exercise(client: &McpClient, expected_name: &str, generated: usize) {
    let tools = client.list_tools().await.expect("tools/list");
    let names = names(&tools);
    for expected in [
        "echo",
        "add",
        "whoami",
        "get_env",
        "slow",
        "log_stderr",
        "crash",
        "fail",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(tools.len(), 8 + generated, "{names:?}");
    if generated > 0 {
        assert!(names.contains(&format!("gen_{}", generated - 1).as_str()));
    }
    let add = tools.iter().find(|t| t["name"] == "add").unwrap();
    assert_eq!(add["description"], "Add two numbers and return their sum");
    assert_eq!(add["inputSchema"]["required"], json!(["a", "b"]));
    assert_eq!(add["outputSchema"]["properties"]["sum"]["type"], "number");

    assert_eq!(
        client
            .call_tool_text("echo", json!({"text": "hello, world"}))
            .await
            .unwrap(),
        "hello, world"
    );

    let sum = client
        .call_tool("add", json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(
        sum["content"],
        json!([{"type": "text", "text": "5"}]),
        "{sum}"
    );
    assert_eq!(sum["structuredContent"], json!({"sum": 5}), "{sum}");
    assert_ne!(sum["isError"], json!(true));

    assert_eq!(
        client.call_tool_text("whoami", Value::Null).await.unwrap(),
        expected_name
    );

    let failed = client
        .call_tool("fail", json!({"message": "nope"}))
        .await
        .unwrap();
    assert_eq!(failed["isError"], json!(true));
    let err = client
        .call_tool_text("fail", json!({"message": "nope"}))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");

    let err = client
        .call_tool("no_such_tool", json!({}))
        .await
        .unwrap_err();
    let rpc = err
        .downcast_ref::<RpcError>()
        .unwrap_or_else(|| panic!("not an RpcError: {err:#}"));
    assert_eq!(rpc.code, -32602, "{rpc}");
    assert!(format!("{err:#}").contains("-32602"), "{err:#}");

    let info = client.server_info().expect("server info");
    assert_eq!(info["serverInfo"]["name"], expected_name, "{info}");
    assert_eq!(info["protocolVersion"], "2025-06-18", "{info}");
}

#[tokio::test]
async fn fixture_over_stdio() {
    let client = connect_stdio(
        &fixture_bin(),
        &["--name", "smoke-stdio", "--tools", "3", "--page-size", "4"],
        &[("FIXTURE_SMOKE_VAR", "from the test")],
    )
    .await
    .expect("connect over stdio");
    assert!(client.pid().is_some());
    exercise(&client, "smoke-stdio", 3).await;
    assert_eq!(
        client
            .call_tool_text("get_env", json!({"name": "FIXTURE_SMOKE_VAR"}))
            .await
            .unwrap(),
        "from the test"
    );
    assert_eq!(
        client
            .call_tool_text("slow", json!({"ms": 50}))
            .await
            .unwrap(),
        "slept 50"
    );
    client.close().await.expect("close");
}

#[tokio::test]
async fn fixture_crash_over_stdio_is_an_error() {
    let client = connect_stdio(&fixture_bin(), &[], &[])
        .await
        .expect("connect over stdio");
    let err = client
        .call_tool("crash", json!({"code": 5}))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<RpcError>().is_none(), "{err:#}");
    let _ = client.close().await;
}

#[tokio::test]
async fn fixture_over_http() {
    let (mut child, url) = spawn_http_fixture(&["--name", "smoke-http", "--tools", "2"]).await;
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    let client = connect_http(&url).await.expect("connect over HTTP");
    exercise(&client, "smoke-http", 2).await;
    client.close().await.expect("close");
    child.kill().await.expect("kill fixture");
}

#[tokio::test]
async fn fixture_over_stateless_http() {
    let (mut child, url) = spawn_http_fixture(&[
        "--name",
        "smoke-stateless",
        "--stateless",
        "--page-size",
        "3",
    ])
    .await;
    let client = connect_http(&url).await.expect("connect over HTTP");
    exercise(&client, "smoke-stateless", 0).await;
    client.close().await.expect("close");
    child.kill().await.expect("kill fixture");
}

#[tokio::test]
async fn fixture_crash_over_http_is_an_error() {
    let (mut child, url) = spawn_http_fixture(&[]).await;
    let client = connect_http(&url).await.expect("connect over HTTP");
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        client.call_tool("crash", json!({})),
    )
    .await
    .expect("a crash must fail the call, not hang it")
    .unwrap_err();
    assert!(err.downcast_ref::<RpcError>().is_none(), "{err:#}");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("fixture exits")
        .expect("wait fixture");
    assert_eq!(status.code(), Some(3));
    let _ = client.close().await;
}
