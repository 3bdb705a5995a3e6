//! `mcpr up` end to end: a real router process, the rmcp fixture server as upstream (over
//! stdio and over HTTP), driven by the rmcp client and by raw HTTP.

use std::time::{Duration, Instant};

use mcpr_e2e::harness::{HttpFixture, RawMcp, Router, bin, wait_for};
use mcpr_e2e::rmcp_client::{self, RpcError, connect_http, text_of};
use serde_json::{Value, json};

fn names(tools: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn added_server_is_visible_and_callable_in_every_view() {
    // The router's own environment (which may hold its secrets) must not reach servers.
    let router = Router::start_with(&[], &[("MCPR_LEAK_CANARY", "router-secret")]).await;
    let api = router.api();
    api.add_fixture("alpha", &[]).await;
    // Callable soon after being added. How soon (the target: within a second) is a figure
    // for a benchmark, not a timed assertion that fails on a loaded machine.
    let hierarchical = connect_http(&router.mcp_url("/mcp")).await.unwrap();
    let text = wait_for(
        "alpha's echo through call_tool",
        Duration::from_secs(10),
        || {
            let client = &hierarchical;
            async move {
                client
                    .call_tool_text(
                        "call_tool",
                        json!({"provider": "alpha", "tool": "echo", "arguments": {"text": "hi"}}),
                    )
                    .await
                    .ok()
            }
        },
    )
    .await;
    assert_eq!(text, "hi");

    // Hierarchical: only the meta-tools are listed.
    let meta = names(&hierarchical.list_tools().await.unwrap());
    assert_eq!(
        meta,
        [
            "call_tool",
            "list_providers",
            "list_tools",
            "python_sandbox",
            "search_tools"
        ]
    );
    let providers = hierarchical
        .call_tool("list_providers", json!({}))
        .await
        .unwrap();
    let listed = &providers["structuredContent"]["providers"];
    assert_eq!(listed[0]["name"], "alpha");
    assert_eq!(listed[0]["state"], "running");
    assert_eq!(listed[0]["tools"], 8);
    let tools = hierarchical
        .call_tool("list_tools", json!({"provider": "alpha"}))
        .await
        .unwrap();
    let tool_names = names(tools["structuredContent"]["tools"].as_array().unwrap());
    assert!(
        tool_names.contains(&"echo".to_owned()) && tool_names.contains(&"add".to_owned()),
        "{tool_names:?}"
    );
    let found = hierarchical
        .call_tool("search_tools", json!({"query": "add numbers sum"}))
        .await
        .unwrap();
    let results = found["structuredContent"]["results"].as_array().unwrap();
    assert_eq!(results[0]["provider"], "alpha");
    assert_eq!(results[0]["tool"], "add");
    assert!(results[0]["inputSchema"]["properties"]["a"].is_object());
    // A provider's tool by its own name with a `provider` argument.
    let sum = hierarchical
        .call_tool("add", json!({"provider": "alpha", "a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(sum["structuredContent"]["sum"], 42);
    hierarchical.close().await.unwrap();

    // Flat: provider__tool, fields untouched.
    let flat = connect_http(&router.mcp_url("/mcp/all")).await.unwrap();
    let flat_tools = flat.list_tools().await.unwrap();
    assert!(names(&flat_tools).contains(&"alpha__echo".to_owned()));
    let add = flat_tools
        .iter()
        .find(|t| t["name"] == "alpha__add")
        .unwrap();
    assert!(
        add["outputSchema"].is_object(),
        "outputSchema survives the flat view: {add}"
    );
    assert_eq!(
        flat.call_tool_text("alpha__whoami", json!({}))
            .await
            .unwrap(),
        "alpha"
    );
    flat.close().await.unwrap();

    // Transparent: exactly the upstream.
    let transparent = connect_http(&router.mcp_url("/mcp/p/alpha")).await.unwrap();
    assert_eq!(
        transparent.server_info().unwrap()["serverInfo"]["name"],
        "alpha"
    );
    assert_eq!(names(&transparent.list_tools().await.unwrap()).len(), 8);
    assert_eq!(
        transparent
            .call_tool_text("echo", json!({"text": "plain"}))
            .await
            .unwrap(),
        "plain"
    );
    // Secrets reach the process environment, and never the API.
    assert_eq!(
        transparent
            .call_tool_text("get_env", json!({"name": "FIXTURE_SECRET"}))
            .await
            .unwrap(),
        "s3cret-value"
    );
    assert_eq!(
        transparent
            .call_tool_text("get_env", json!({"name": "MCPR_LEAK_CANARY"}))
            .await
            .unwrap(),
        ""
    );
    assert_ne!(
        transparent
            .call_tool_text("get_env", json!({"name": "PATH"}))
            .await
            .unwrap(),
        ""
    );
    transparent.close().await.unwrap();
    let shown = api.server("alpha").await;
    assert!(!shown.to_string().contains("s3cret-value"), "{shown}");
    assert_eq!(shown["runtime"]["env"]["FIXTURE_SECRET"], "********");
}

#[tokio::test]
async fn crashed_upstream_gives_a_clear_error_then_comes_back() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("crashy", &[]).await;
    api.wait_state("crashy", "running").await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp/p/crashy"));
    mcp.initialize().await;
    assert_eq!(
        text_of(&mcp.call("echo", json!({"text": "before"})).await.unwrap()),
        "before"
    );

    // The crash call itself fails at once with the reason, never hangs.
    let started = Instant::now();
    let error = mcp.call("crash", json!({"code": 7})).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error["code"], -32001, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("status 7"),
        "{error}"
    );

    // While it is down: a clear JSON-RPC error, quickly.
    let started = Instant::now();
    let error = mcp.call("echo", json!({"text": "down"})).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("crashy") && message.contains("status 7"),
        "{error}"
    );

    // It comes back by itself and serves again, on the same client session.
    api.wait_until("crashy", "running again after a restart", |s| {
        s["status"]["state"] == "running" && s["status"]["restart_count"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(
        text_of(&mcp.call("echo", json!({"text": "after"})).await.unwrap()),
        "after"
    );
    let (_, logs) = api.get("/api/v1/servers/crashy/logs").await;
    let lines: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("exited with status 7")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("fixture server crashy ready")),
        "stderr is captured: {lines:?}"
    );
}

#[tokio::test]
async fn remote_http_upstream_lifecycle_and_persistence() {
    let fixture = HttpFixture::start("far", &[]).await;
    let router = Router::start().await;
    let api = router.api();
    api.add(json!({"name": "far", "runtime": {"kind": "remote", "url": fixture.url, "headers": {"X-Token": "t0ken"}}})).await;
    api.wait_state("far", "running").await;
    let client = connect_http(&router.mcp_url("/mcp/all")).await.unwrap();
    assert_eq!(
        client
            .call_tool_text("far__whoami", json!({}))
            .await
            .unwrap(),
        "far"
    );
    assert_eq!(
        client
            .call_tool_text("far__add", json!({"a": 1.5, "b": 2}))
            .await
            .unwrap(),
        "3.5"
    );

    // Disable: stopped, refused on call with a reason; enable: back.
    let (status, body) = api.post("/api/v1/servers/far/disable", json!({})).await;
    assert_eq!(
        (status, body["status"]["state"].as_str()),
        (200, Some("stopped"))
    );
    let refused = wait_for(
        "the gateway to see far disabled",
        Duration::from_secs(5),
        || {
            let client = &client;
            async move {
                client
                    .call_tool("far__echo", json!({"text": "x"}))
                    .await
                    .err()
            }
        },
    )
    .await;
    assert!(
        format!("{refused:#}").contains("\"far\" is disabled"),
        "{refused:#}"
    );
    api.post("/api/v1/servers/far/enable", json!({})).await;
    api.wait_state("far", "running").await;

    // Restart through the API bumps the generation; the server comes back running.
    let (status, _) = api.post("/api/v1/servers/far/restart", json!({})).await;
    assert_eq!(status, 202);
    api.wait_until("far", "restarted", |s| {
        s["status"]["state"] == "running" && s["status"]["restart_generation"] == 1
    })
    .await;
    assert_eq!(
        client
            .call_tool_text("far__echo", json!({"text": "restarted"}))
            .await
            .unwrap(),
        "restarted"
    );
    client.close().await.unwrap();

    // The registry survives a router restart (SQLite in the data dir).
    let (dir, guard) = router.stop();
    let again = Router::start_in(dir, guard, &[], &[]).await;
    let server = again.api().wait_state("far", "running").await;
    assert_eq!(server["runtime"]["url"], json!(fixture.url));
    assert_eq!(server["runtime"]["headers"]["X-Token"], "********");
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_loses_nothing() {
    let router = Router::start().await;
    let api = router.api();
    let original = api.add_fixture("keep", &[]).await;

    // Invalid specs: 422 naming the field.
    for (body, field) in [
        (
            json!({"name": "bad name", "runtime": {"kind": "process", "command": "x"}}),
            "name",
        ),
        (
            json!({"name": "a__b", "runtime": {"kind": "process", "command": "x"}}),
            "name",
        ),
        (
            json!({"name": "ok", "runtime": {"kind": "process", "command": ""}}),
            "runtime.command",
        ),
        (
            json!({"name": "ok", "runtime": {"kind": "remote", "url": "ftp://x"}}),
            "runtime.url",
        ),
        (
            json!({"name": "ok", "runtime": {"kind": "process", "command": "x", "env": {"1X": "y"}}}),
            "runtime.env.1X",
        ),
    ] {
        let (status, answer) = api.post("/api/v1/servers", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // Unknown fields and wrong shapes: 400 saying where.
    let (status, answer) = api
        .post(
            "/api/v1/servers",
            json!({"name": "x", "runtime": {"kind": "process", "command": "x"}, "bogus": 1}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bogus"),
        "{answer}"
    );
    // Duplicate: 409, the stored one untouched.
    let (status, answer) = api
        .post("/api/v1/servers", json!({"name": "keep", "description": "impostor", "runtime": {"kind": "process", "command": "/bin/false"}}))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "duplicate");
    let kept = api.server("keep").await;
    assert_eq!(kept["id"], original["id"]);
    assert_eq!(kept["description"], "fixture server keep");
    // Unknown server: 404.
    let (status, answer) = api.get("/api/v1/servers/nope").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // Hostile strings are data, not markup or SQL.
    let evil = "x'); DROP TABLE servers; --";
    let (status, _) = api.post("/api/v1/servers", json!({"name": "evil", "description": evil, "runtime": {"kind": "process", "command": "/bin/false"}})).await;
    assert_eq!(status, 201);
    assert_eq!(api.server("evil").await["description"], evil);
    let (_, all) = api.get("/api/v1/servers").await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    // MCP side: unknown provider / tool, malformed JSON-RPC, oversized body.
    api.wait_state("keep", "running").await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    let unknown = mcp
        .call("call_tool", json!({"provider": "nope", "tool": "echo"}))
        .await
        .unwrap();
    assert_eq!(unknown["isError"], true);
    assert!(
        text_of(&unknown).contains("unknown provider \"nope\""),
        "{unknown}"
    );
    let unknown = mcp
        .call("call_tool", json!({"provider": "keep", "tool": "nope"}))
        .await
        .unwrap();
    assert!(
        text_of(&unknown).contains("has no tool \"nope\""),
        "{unknown}"
    );
    let error = mcp
        .call("echo", json!({"provider": "nope", "text": "x"}))
        .await
        .unwrap_err();
    assert_eq!(error["code"], -32602);
    let error = mcp.call("no_such_tool", json!({})).await.unwrap_err();
    assert_eq!(error["code"], -32602);
    let malformed = mcp.post_bytes("{not json").await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["error"]["code"], -32700);
    let shapeless = mcp.post_bytes(r#"{"jsonrpc":"2.0","id":5}"#).await;
    assert_eq!(
        shapeless.body["error"]["code"], -32600,
        "{}",
        shapeless.body
    );
    let oversized = mcp
        .post_bytes(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
            "a".repeat(5 * 1024 * 1024)
        ))
        .await;
    assert_eq!(oversized.status, 413);
    assert_eq!(oversized.body["error"]["code"], -32600);
    let mut no_session = RawMcp::new(&router.mcp_url("/mcp"));
    assert_eq!(
        no_session
            .post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .await
            .status,
        400
    );
    no_session.session = Some("forged".into());
    assert_eq!(
        no_session
            .post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .await
            .status,
        404
    );
    let unknown_view = RawMcp::new(&router.mcp_url("/mcp/p/nope"))
        .post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
        .await;
    assert_eq!(unknown_view.status, 404);
    // Nothing was lost along the way, and the gateway still serves.
    assert_eq!(
        text_of(
            &mcp.call(
                "call_tool",
                json!({"provider": "keep", "tool": "echo", "arguments": {"text": "ok"}})
            )
            .await
            .unwrap()
        ),
        "ok"
    );
    let (_, all) = api.get("/api/v1/servers").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn deleting_a_server_stops_it() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("gone", &[]).await;
    api.wait_state("gone", "running").await;
    let client = connect_http(&router.mcp_url("/mcp/all")).await.unwrap();
    assert_eq!(
        client
            .call_tool_text("gone__echo", json!({"text": "x"}))
            .await
            .unwrap(),
        "x"
    );
    let (status, _) = api
        .call(reqwest::Method::DELETE, "/api/v1/servers/gone", None)
        .await;
    assert_eq!(status, 204);
    wait_for(
        "the tool to disappear from /mcp/all",
        Duration::from_secs(5),
        || {
            let client = &client;
            async move {
                client
                    .list_tools()
                    .await
                    .ok()
                    .filter(|t| t.is_empty())
                    .map(|_| ())
            }
        },
    )
    .await;
    let error = client
        .call_tool("gone__echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        error.downcast_ref::<RpcError>().map(|e| e.code),
        Some(-32602),
        "{error}"
    );
    // The fixture process is gone too.
    let fixture = bin("mcpr-fixture-server");
    wait_for(
        "the fixture process to exit",
        Duration::from_secs(5),
        || {
            let fixture = fixture.clone();
            async move {
                let out = std::process::Command::new("pgrep")
                    .arg("-f")
                    .arg(format!("{} --name gone", fixture.display()))
                    .output()
                    .unwrap();
                out.stdout.is_empty().then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn rmcp_client_over_stdio_to_mcpr_stdio() {
    // The data dir is shared with an HTTP router used to register the server; `mcpr stdio`
    // then reads the same registry (desktop clients start it on their own).
    let router = Router::start().await;
    router.api().add_fixture("desk", &[]).await;
    router.api().wait_state("desk", "running").await;
    let port = mcpr_e2e::harness::free_port().to_string();
    let data_dir = router.data_dir.to_str().unwrap().to_owned();
    let client = rmcp_client::connect_stdio(
        &bin("mcpr"),
        &["stdio", "--port", &port, "--data-dir", &data_dir],
        &[("RUST_LOG", "warn")],
    )
    .await
    .unwrap();
    assert_eq!(
        names(&client.list_tools().await.unwrap()),
        [
            "call_tool",
            "list_providers",
            "list_tools",
            "python_sandbox",
            "search_tools"
        ]
    );
    let text = wait_for("desk through mcpr stdio", Duration::from_secs(10), || {
        let client = &client;
        async move {
            client
                .call_tool_text("call_tool", json!({"provider": "desk", "tool": "whoami"}))
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(text, "desk");
    client.close().await.unwrap();

    // Bridge mode: stdio to the running HTTP router.
    let bridge = rmcp_client::connect_stdio(
        &bin("mcpr"),
        &["--url", &router.url(), "stdio"],
        &[("RUST_LOG", "warn")],
    )
    .await
    .unwrap();
    assert_eq!(
        bridge
            .call_tool_text("echo", json!({"provider": "desk", "text": "bridged"}))
            .await
            .unwrap(),
        "bridged"
    );
    bridge.close().await.unwrap();
}

/// Servers added at the same moment are all kept: each answered 201, and each is then in the
/// list (two writes at once once lost one: each re-read the store and the slower, older read
/// was kept last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_added_at_once_are_all_kept() {
    let router = Router::start().await;
    let api = router.api();
    let names: Vec<String> = (0..16).map(|i| format!("at-once-{i}")).collect();
    let adds = names.iter().map(|name| {
        api.post(
            "/api/v1/servers",
            json!({"name": name, "enabled": false,
                "runtime": {"kind": "process", "command": bin("mcpr-fixture-server"), "args": []}}),
        )
    });
    for (status, answer) in futures::future::join_all(adds).await {
        assert_eq!(status, 201, "{answer}");
    }
    let (status, list) = api.get("/api/v1/servers").await;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list
        .as_array()
        .or_else(|| list["servers"].as_array())
        .expect("a list of servers")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for name in &names {
        assert!(listed.contains(&name.as_str()), "{name} lost: {listed:?}");
        assert_eq!(api.server(name).await["name"], name.as_str());
    }
}
