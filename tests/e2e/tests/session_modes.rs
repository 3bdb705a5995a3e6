//! `session_mode`: `shared` multiplexes every client on one upstream session (one
//! process); `per_client` gives each client session its own (and for stdio its own process),
//! ended with the client session.

use std::time::Duration;

use mcpr_e2e::harness::{RawMcp, Router, bin, wait_for};
use mcpr_e2e::rmcp_client::text_of;
use serde_json::json;

fn fixture_processes(name: &str) -> usize {
    let pattern = format!(
        "{} --name {name} --stateful",
        bin("mcpr-fixture-server").display()
    );
    let out = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(pattern)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

async fn counts(client: &mut RawMcp, times: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..times {
        seen.push(text_of(&client.call("counter", json!({})).await.unwrap()));
    }
    seen
}

/// DELETEs the client's session, and waits for the `per_client` process it had to exit
/// (two of `each` stay: the server's own and the other client's).
async fn end_session(client: &RawMcp) {
    let ended = reqwest::Client::new()
        .delete(&client.url)
        .header("mcp-session-id", client.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status().as_u16(), 204);
    wait_for(
        "the ended client's process to exit",
        Duration::from_secs(5),
        || async { (fixture_processes("each") == 2).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn shared_and_per_client_sessions() {
    let router = Router::start().await;
    let api = router.api();
    for (name, mode) in [("one", "shared"), ("each", "per_client")] {
        api.add(json!({
            "name": name,
            "session_mode": mode,
            "runtime": {"kind": "process", "command": bin("mcpr-fixture-server"), "args": ["--name", name, "--stateful"]},
        }))
        .await;
        api.wait_state(name, "running").await;
    }

    // shared: both clients advance one counter.
    let mut a = RawMcp::new(&router.mcp_url("/mcp/p/one"));
    let mut b = RawMcp::new(&router.mcp_url("/mcp/p/one"));
    a.initialize().await;
    b.initialize().await;
    assert_eq!(counts(&mut a, 2).await, ["1", "2"]);
    assert_eq!(counts(&mut b, 2).await, ["3", "4"]);
    assert_eq!(fixture_processes("one"), 1);

    // per_client: each client session has its own upstream process and state.
    let mut a = RawMcp::new(&router.mcp_url("/mcp/p/each"));
    let mut b = RawMcp::new(&router.mcp_url("/mcp/p/each"));
    a.initialize().await;
    b.initialize().await;
    assert_eq!(counts(&mut a, 2).await, ["1", "2"]);
    assert_eq!(counts(&mut b, 3).await, ["1", "2", "3"]);
    assert_eq!(counts(&mut a, 1).await, ["3"]);
    // The server's own session (for its tool list) plus one per client.
    assert_eq!(fixture_processes("each"), 3);

    // Ending a client session ends its upstream session and process.
    end_session(&a).await;
    assert_eq!(
        counts(&mut b, 1).await,
        ["4"],
        "the other client's session is untouched"
    );

    // The same on the views of every provider: a session of /mcp/all that used `each` has
    // its own process, which its DELETE ends.
    let mut flat = RawMcp::new(&router.mcp_url("/mcp/all"));
    flat.initialize().await;
    for expected in ["1", "2"] {
        let result = flat.call("each__counter", json!({})).await.unwrap();
        assert_eq!(text_of(&result), expected);
    }
    assert_eq!(fixture_processes("each"), 3);
    end_session(&flat).await;

    // Disabling the server ends every session it has.
    api.post("/api/v1/servers/each/disable", json!({})).await;
    wait_for(
        "every process of the disabled server to exit",
        Duration::from_secs(5),
        || async { (fixture_processes("each") == 0).then_some(()) },
    )
    .await;
}
