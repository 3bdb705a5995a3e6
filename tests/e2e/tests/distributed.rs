//! The distributed form: control plane, node agents and an edge gateway as separate
//! processes linked over gRPC, as on several hosts.

use std::time::Duration;

use mcpr_e2e::harness::{Api, Cluster, Proc, bin, free_port, wait_for};
use mcpr_e2e::rmcp_client::connect_http;
use serde_json::json;

#[tokio::test]
async fn three_binaries_serve_and_the_gateway_outlives_the_control_plane() {
    let mut cluster = Cluster::start(1, None).await;
    let api = cluster.api();
    api.add_fixture("dist", &[]).await;
    let server = api.wait_state("dist", "running").await;
    assert_eq!(server["status"]["agent_id"], "agent-0");

    let url = cluster.mcp_url(0, "/mcp");
    let client = wait_for("the gateway to serve dist", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let client = connect_http(&url).await.ok()?;
            let text = client
                .call_tool_text("call_tool", json!({"provider": "dist", "tool": "whoami"}))
                .await
                .ok()?;
            (text == "dist").then_some(client)
        }
    })
    .await;

    // Ready for a load balancer: it has a snapshot to route by.
    let health = Api::new(&cluster.mcp_url(0, ""));
    let (status, body) = health.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(body["config_version"].as_u64().unwrap() > 0, "{body}");

    // Control plane gone: the gateway keeps serving from its last snapshot, for existing
    // and for new client sessions, and the agent keeps its servers running.
    cluster.control_plane.kill();
    assert_eq!(
        health.get("/healthz").await.0,
        200,
        "still ready on its last snapshot"
    );
    assert_eq!(
        client
            .call_tool_text("echo", json!({"provider": "dist", "text": "still here"}))
            .await
            .unwrap(),
        "still here"
    );
    let fresh = connect_http(&cluster.mcp_url(0, "/mcp/all")).await.unwrap();
    assert_eq!(
        fresh
            .call_tool_text("dist__add", json!({"a": 1, "b": 2}))
            .await
            .unwrap(),
        "3"
    );
    fresh.close().await.unwrap();

    // Back: agent and gateway reconnect; a newly added server reaches the gateway.
    cluster.restart_control_plane().await;
    api.wait_state("dist", "running").await;
    api.add_fixture("late", &[]).await;
    let text = wait_for(
        "the new server through the gateway",
        Duration::from_secs(15),
        || {
            let client = &client;
            async move {
                client
                    .call_tool_text("call_tool", json!({"provider": "late", "tool": "whoami"}))
                    .await
                    .ok()
            }
        },
    )
    .await;
    assert_eq!(text, "late");
    client.close().await.unwrap();
}

#[tokio::test]
async fn servers_spread_over_agents_and_move_when_an_agent_dies() {
    let mut cluster = Cluster::start(2, None).await;
    let api = cluster.api();
    api.add_fixture("one", &[]).await;
    api.add_fixture("two", &[]).await;
    let a = api.wait_state("one", "running").await["status"]["agent_id"].clone();
    let b = api.wait_state("two", "running").await["status"]["agent_id"].clone();
    assert_ne!(
        a, b,
        "the scheduler puts each server on the least loaded agent"
    );

    // Kill the agent running `one`: within the heartbeat timeout it moves to the other.
    let victim = if a == "agent-0" { 0 } else { 1 };
    cluster.agents[victim].kill();
    let moved = api
        .wait_until("one", "rescheduled on the surviving agent", |s| {
            s["status"]["state"] == "running" && s["status"]["agent_id"] == b
        })
        .await;
    assert_eq!(moved["status"]["agent_id"], b);
    let url = cluster.mcp_url(0, "/mcp/all");
    let text = wait_for(
        "one through the gateway after the move",
        Duration::from_secs(10),
        || {
            let url = url.clone();
            async move {
                let client = connect_http(&url).await.ok()?;
                client.call_tool_text("one__whoami", json!({})).await.ok()
            }
        },
    )
    .await;
    assert_eq!(text, "one");
}

#[tokio::test]
async fn control_plane_on_postgres() {
    let Some(url) = mcpr_e2e::harness::fresh_postgres() else {
        return;
    };
    let mut cluster = Cluster::start(1, Some(url)).await;
    let api = cluster.api();
    api.add_fixture("pg", &[]).await;
    let (status, _) = api
        .post(
            "/api/v1/servers",
            json!({"name": "pg", "runtime": {"kind": "process", "command": "x"}}),
        )
        .await;
    assert_eq!(status, 409, "the unique name holds on Postgres too");
    api.wait_state("pg", "running").await;
    let client = connect_http(&cluster.mcp_url(0, "/mcp/p/pg"))
        .await
        .unwrap();
    assert_eq!(
        client.call_tool_text("whoami", json!({})).await.unwrap(),
        "pg"
    );
    client.close().await.unwrap();
    // Stored in Postgres: a restarted control plane (with an empty data dir) still has it.
    cluster.restart_control_plane().await;
    let server = api.wait_state("pg", "running").await;
    assert_eq!(server["description"], "fixture server pg");
}

#[tokio::test]
async fn a_session_survives_the_gateway_that_created_it() {
    let mut cluster = Cluster::start(1, None).await;
    cluster.add_gateway();
    let api = cluster.api();
    api.add_fixture("keep", &[]).await;
    api.wait_state("keep", "running").await;
    let first = cluster.mcp_url(0, "/mcp/p/keep");
    let second = cluster.mcp_url(1, "/mcp/p/keep");
    for url in [&first, &second] {
        let url = url.clone();
        wait_for("each gateway to know keep", Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let mut probe = mcpr_e2e::harness::RawMcp::new(&url);
                let r = probe.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"p","version":"1"}}}"#).await;
                probe.session = None;
                (r.status == 200).then_some(())
            }
        })
        .await;
    }

    // The session is made on gateway 0 ...
    let mut client = mcpr_e2e::harness::RawMcp::new(&first);
    client.initialize().await;
    let session = client.session.clone().unwrap();
    assert_eq!(
        mcpr_e2e::rmcp_client::text_of(
            &client.call("echo", json!({"text": "on 0"})).await.unwrap()
        ),
        "on 0"
    );
    // ... gateway 0 goes away, and the client goes on with the same Mcp-Session-Id on
    // gateway 1, without any sticky routing.
    cluster.gateways[0].kill();
    client.url = second.clone();
    assert_eq!(
        mcpr_e2e::rmcp_client::text_of(
            &client.call("echo", json!({"text": "on 1"})).await.unwrap()
        ),
        "on 1"
    );
    assert_eq!(client.session.as_deref(), Some(session.as_str()));

    // A forged or tampered id is refused; a session of another view is not usable here.
    let mut forged = mcpr_e2e::harness::RawMcp::new(&second);
    forged.session = Some(format!("{session}x"));
    assert_eq!(
        forged
            .post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .await
            .status,
        404
    );
    let mut elsewhere = mcpr_e2e::harness::RawMcp::new(&cluster.mcp_url(1, "/mcp/all"));
    elsewhere.session = Some(session.clone());
    assert_eq!(
        elsewhere
            .post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .await
            .status,
        404
    );

    // DELETE ends it for good on this gateway.
    let deleted = reqwest::Client::new()
        .delete(&second)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert_eq!(
        client
            .post_bytes(r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#)
            .await
            .status,
        404
    );
}

/// A gateway that never reached a control plane has nothing to route by: its health check
/// says so (503), so that a load balancer or a readiness probe sends it no traffic.
#[tokio::test]
async fn a_gateway_without_a_snapshot_is_not_ready() {
    let port = free_port();
    let nowhere = free_port();
    let mut command = std::process::Command::new(bin("mcpr-edge-gateway"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--control-plane", &format!("http://127.0.0.1:{nowhere}")])
        .env("MCPR_CLUSTER_TOKEN", mcpr_e2e::harness::random_token());
    let _gateway = Proc::spawn("gateway", command);
    wait_for(
        "the gateway to listen",
        Duration::from_secs(20),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        },
    )
    .await;
    let (status, body) = Api::new(&format!("http://127.0.0.1:{port}"))
        .get("/healthz")
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "waiting_for_config");
    assert_eq!(body["config_version"], 0);
}

/// Placement constraints with one control plane on SQLite: agents with labels
/// (`MCPR_AGENT_LABELS`), a server whose selector names one of them, then moved by a new
/// selector; one naming no agent stays unplaced and says why.
#[tokio::test]
async fn a_selector_places_a_server_by_agent_labels_and_moves_it() {
    let mut cluster = Cluster::start(0, None).await;
    cluster.add_agent_with_env("agent-a", &[("MCPR_AGENT_LABELS", "zone=a")]);
    cluster.add_agent_with_env("agent-b", &[("MCPR_AGENT_LABELS", "zone=b,docker=false")]);
    for agent in &cluster.agents {
        agent
            .wait_log("registered with the control plane", Duration::from_secs(20))
            .await;
    }
    let api = cluster.api();
    let mut body = json!({
        "name": "picky",
        "runtime": {"kind": "process", "command": bin("mcpr-fixture-server"), "args": ["--name", "picky"]},
        "placement": {"selector": {"zone": "b"}},
    });
    api.add(body.clone()).await;
    let placed = api.wait_state("picky", "running").await;
    assert_eq!(placed["status"]["agent_id"], "agent-b", "{placed}");
    assert_eq!(placed["placement"], json!({"selector": {"zone": "b"}}));
    body["name"] = json!("nowhere");
    body["placement"] = json!({"selector": {"zone": "q", "gpu": "1"}});
    api.add(body).await;
    let unplaced = api
        .wait_until("nowhere", "unplaced", |s| s["unplaced"].is_string())
        .await;
    assert_eq!(unplaced["unplaced"], "no agent matches gpu=1,zone=q");
    let (_, cluster_status) = api.get("/api/v1/cluster").await;
    assert_eq!(
        cluster_status["unplaced"],
        json!([{"name": "nowhere", "reason": "no agent matches gpu=1,zone=q"}])
    );

    let (status, moved) = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/servers/picky",
            Some(json!({"placement": {"selector": {"zone": "a"}}})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let moved = api
        .wait_until("picky", "running on agent-a", |s| {
            s["status"]["state"] == "running" && s["status"]["agent_id"] == "agent-a"
        })
        .await;
    assert!(moved.get("unplaced").is_none(), "{moved}");
    let url = cluster.mcp_url(0, "/mcp/all");
    let text = wait_for(
        "picky through the gateway after its move",
        Duration::from_secs(15),
        || {
            let url = url.clone();
            async move {
                let client = connect_http(&url).await.ok()?;
                client.call_tool_text("picky__whoami", json!({})).await.ok()
            }
        },
    )
    .await;
    assert_eq!(text, "picky");
    // The unplaced one: the gateway neither waits for it nor hides why.
    let client = connect_http(&url).await.unwrap();
    let refused = format!(
        "{:#}",
        client
            .call_tool_text("nowhere__whoami", json!({}))
            .await
            .unwrap_err()
    );
    assert!(
        refused.contains("no agent matches gpu=1,zone=q"),
        "{refused}"
    );
    client.close().await.unwrap();
}
