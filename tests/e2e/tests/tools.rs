//! Per-tool settings (issue 13, item 4) against the real `mcpr up` with the fixture server:
//! a disabled tool is gone from every view's lists and searches and refused on call by
//! every name it has, with an error that says it is disabled, and clients hear
//! `notifications/tools/list_changed` (the official Python SDK client); name and description
//! overrides as every view shows them; the REST API's refusals (`mcpr tool …`: cli.rs).

use mcpr_e2e::harness::{RawMcp, Router, run_python};
use serde_json::{Value, json};

fn names(tools: &Value) -> Vec<String> {
    tools
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {tools}"))
        .iter()
        .map(|t| {
            t.as_str()
                .unwrap_or_else(|| t["name"].as_str().unwrap())
                .to_owned()
        })
        .collect()
}

fn has(list: &Value, name: &str) -> bool {
    names(list).iter().any(|n| n == name)
}

/// A refusal that names the tool and says it is disabled.
#[track_caller]
fn assert_disabled_refusal(what: &str, text: &str) {
    assert!(
        text.contains("\"echo\"") && text.contains("is disabled"),
        "{what}: the refusal must say the tool is disabled: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_tool_leaves_every_view_is_refused_by_every_name_and_comes_back() {
    if mcpr_e2e::harness::python().is_none() {
        return;
    }
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("fix", &[]).await;
    api.wait_state("fix", "running").await;

    let stdout = run_python("tool_toggle_client.py", &[&router.url(), "fix", "echo"])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));

    let before = &seen["before"];
    assert!(has(&before["flat_tools"], "fix__echo"), "{before}");
    assert!(has(&before["transparent_tools"], "echo"), "{before}");
    assert!(has(&before["list_tools"], "echo"), "{before}");
    assert!(has(&before["search_tools"], "fix/echo"), "{before}");
    assert_eq!(before["meta_call"]["isError"], false, "{before}");
    assert_eq!(before["flat_call"]["texts"], json!(["toggled"]), "{before}");
    let all_tools = before["provider_tool_count"].as_u64().unwrap();

    let off = &seen["disabled"];
    assert!(!has(&off["flat_tools"], "fix__echo"), "flat list: {off}");
    assert!(
        has(&off["flat_tools"], "fix__add"),
        "other tools stay: {off}"
    );
    assert!(
        !has(&off["transparent_tools"], "echo"),
        "transparent list: {off}"
    );
    assert!(!has(&off["list_tools"], "echo"), "list_tools: {off}");
    assert!(
        !has(&off["search_tools"], "fix/echo"),
        "search_tools: {off}"
    );
    assert_eq!(
        off["provider_tool_count"],
        all_tools - 1,
        "list_providers: {off}"
    );
    for call in ["flat_call", "transparent_call", "direct_call"] {
        assert_eq!(off[call]["code"], -32602, "{call}: {off}");
        assert_disabled_refusal(call, off[call]["message"].as_str().unwrap());
    }
    assert_eq!(off["meta_call"]["isError"], true, "call_tool: {off}");
    assert_disabled_refusal("call_tool", off["meta_call"]["texts"][0].as_str().unwrap());

    let on = &seen["enabled"];
    assert!(has(&on["flat_tools"], "fix__echo"), "{on}");
    assert!(has(&on["transparent_tools"], "echo"), "{on}");
    assert!(has(&on["search_tools"], "fix/echo"), "{on}");
    assert_eq!(on["provider_tool_count"], all_tools, "{on}");
    assert_eq!(on["flat_call"]["texts"], json!(["toggled"]), "{on}");
    assert_eq!(on["transparent_call"]["texts"], json!(["toggled"]), "{on}");
    assert_eq!(on["meta_call"]["isError"], false, "{on}");
    eprintln!(
        "list_changed after disable {} s, after enable {} s",
        off["notified_after_s"], on["notified_after_s"]
    );

    // The API shows the setting with the tool, and the admin's feed would too.
    assert_untouched_echo(&api).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn name_and_description_overrides_in_every_view_and_the_apis_refusals() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("fix", &[]).await;
    api.wait_state("fix", "running").await;
    let patch = |tool: &str, body: Value| {
        let api = api.clone();
        let path = format!("/api/v1/servers/fix/tools/{tool}");
        async move { api.call(reqwest::Method::PATCH, &path, Some(body)).await }
    };

    let (status, body) = patch(
        "echo",
        json!({"name": "say", "description": "Says it back"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"server": "fix", "tool": "echo", "enabled": true, "name": "say", "description": "Says it back"})
    );

    let mut flat = RawMcp::new(&router.mcp_url("/mcp/all"));
    flat.initialize().await;
    let listed = mcpr_e2e::harness::wait_for(
        "the flat view to show the override",
        std::time::Duration::from_secs(10),
        || {
            let mut client = RawMcp::new(&router.mcp_url("/mcp/all"));
            async move {
                client.initialize().await;
                let answer = client.request("tools/list", json!({})).await;
                let tools = answer["result"]["tools"].as_array()?.clone();
                tools.into_iter().find(|t| t["name"] == "fix__say")
            }
        },
    )
    .await;
    assert_eq!(listed["description"], "Says it back", "{listed}");
    assert!(
        listed["inputSchema"]["properties"]["text"].is_object(),
        "the rest is the upstream's: {listed}"
    );
    let answer = flat.request("tools/list", json!({})).await;
    assert!(!has(&answer["result"]["tools"], "fix__echo"), "{answer}");
    let said = flat
        .call("fix__say", json!({"text": "renamed"}))
        .await
        .expect("call by the new name");
    assert_eq!(said["content"][0]["text"], "renamed", "{said}");
    let old = flat
        .call("fix__echo", json!({"text": "x"}))
        .await
        .expect_err("the old name");
    assert!(
        old["message"]
            .as_str()
            .unwrap()
            .contains("offered as \"say\""),
        "{old}"
    );

    // The transparent view relays the upstream's own list: shown with the override too.
    let mut transparent = RawMcp::new(&router.mcp_url("/mcp/p/fix"));
    transparent.initialize().await;
    let answer = transparent.request("tools/list", json!({})).await;
    let say = answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "say")
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(say["description"], "Says it back");
    assert!(!has(&answer["result"]["tools"], "echo"), "{answer}");
    let said = transparent
        .call("say", json!({"text": "through"}))
        .await
        .expect("transparent call");
    assert_eq!(said["content"][0]["text"], "through", "{said}");

    // The hierarchical view: list_tools, search and call_tool by the new name.
    let mut hierarchical = RawMcp::new(&router.mcp_url("/mcp"));
    hierarchical.initialize().await;
    let found = hierarchical
        .call("search_tools", json!({"query": "says back"}))
        .await
        .unwrap();
    assert_eq!(
        found["structuredContent"]["results"][0]["tool"], "say",
        "{found}"
    );
    let called = hierarchical
        .call(
            "call_tool",
            json!({"provider": "fix", "tool": "say", "arguments": {"text": "meta"}}),
        )
        .await
        .unwrap();
    assert_eq!(called["content"][0]["text"], "meta", "{called}");

    // Refusals name what is wrong.
    let (status, body) = patch("add", json!({"name": "say"})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("name")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shown as \"say\" already"),
        "{body}"
    );
    let (status, body) = patch("add", json!({"name": "bad name!"})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("name")),
        "{body}"
    );
    let (status, body) = patch("add", json!({"colour": "red"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api
        .post("/api/v1/servers/fix/tools/nope/disable", json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (404, Some("tool")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("it lists: echo"),
        "{body}"
    );
    let (status, body) = api
        .post("/api/v1/servers/ghost/tools/echo/disable", json!({}))
        .await;
    assert_eq!(status, 404, "{body}");

    // "" restores the upstream's name.
    let (status, body) = patch("echo", json!({"name": "", "description": ""})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], Value::Null, "{body}");
    assert_untouched_echo(&api).await;
}

/// `GET …/tools` shows echo with no settings of the admin's.
async fn assert_untouched_echo(api: &mcpr_e2e::harness::Api) {
    let (status, tools) = api.get("/api/v1/servers/fix/tools").await;
    assert_eq!(status, 200, "{tools}");
    let echo = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap_or_else(|| panic!("no echo: {tools}"));
    assert_eq!(
        echo["mcpr"],
        json!({"enabled": true, "name": null, "description": null})
    );
}
