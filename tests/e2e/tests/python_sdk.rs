//! The official MCP Python SDK (PyPI `mcp` 2.x, pinned in tests/python/requirements.txt)
//! against the real router, over streamable HTTP (all three views) and over stdio
//! (`mcpr stdio` started by the SDK's stdio client).
//!
//! The clients are tests/python/sdk_http.py and tests/python/sdk_stdio.py: they print one JSON
//! object with what the SDK observed, and these tests assert on it. They need the virtualenv
//! made by `scripts/setup-python` (`scripts/test` runs it); without it they skip loudly,
//! unless MCPR_REQUIRE_ALL=1 (as on CI), where they fail.

use mcpr_e2e::harness::{Router, bin, free_port, python, run_python};
use serde_json::{Value, json};

/// The fixture server's tools, in the order it lists them.
const FIXTURE_TOOLS: [&str; 8] = [
    "echo",
    "add",
    "whoami",
    "get_env",
    "slow",
    "log_stderr",
    "crash",
    "fail",
];

/// The protocol version the SDK settles on with the router, over HTTP and over stdio
/// (`mcpr stdio`): it probes `server/discover` first, which the router answers, so it
/// speaks the stateless 2026-07-28 era.
const PROTOCOL_VERSION: &str = "2026-07-28";

/// Runs a script of tests/python and parses the one JSON object it prints.
async fn observe(script: &str, args: &[&str]) -> Value {
    let stdout = run_python(script, args)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} did not print one JSON object ({e}):\n{stdout}"))
}

fn sorted(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// A successful tool result with exactly these texts and this structured content.
#[track_caller]
fn assert_success(what: &str, result: &Value, texts: &[&str], structured: Value) {
    assert_eq!(result["isError"], json!(false), "{what}: {result}");
    assert_eq!(
        result["content_types"],
        json!(vec!["text"; texts.len()]),
        "{what}: {result}"
    );
    assert_eq!(result["texts"], json!(texts), "{what}: {result}");
    assert_eq!(result["structuredContent"], structured, "{what}: {result}");
}

/// A result whose one text block is JSON equal to its structuredContent (the meta-tools).
#[track_caller]
fn structured(what: &str, result: &Value) -> Value {
    assert_eq!(result["isError"], json!(false), "{what}: {result}");
    let texts = strings(&result["texts"]);
    assert_eq!(texts.len(), 1, "{what}: one text block expected: {result}");
    let parsed: Value = serde_json::from_str(&texts[0])
        .unwrap_or_else(|e| panic!("{what}: text is not JSON ({e}): {result}"));
    assert_eq!(
        parsed, result["structuredContent"],
        "{what}: the text and structuredContent differ"
    );
    result["structuredContent"].clone()
}

#[track_caller]
fn assert_session(what: &str, view: &Value, server_name: &str) {
    assert_eq!(
        view["protocol_version"], PROTOCOL_VERSION,
        "{what}: negotiated protocol version"
    );
    assert_eq!(
        view["server_info"]["name"], server_name,
        "{what}: serverInfo {}",
        view["server_info"]
    );
    assert!(
        view["server_info"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{what}: serverInfo {}",
        view["server_info"]
    );
}

/// What `common.exercise_hierarchical` observed, through `/mcp` or `mcpr stdio`.
#[track_caller]
fn assert_hierarchical(what: &str, view: &Value, provider: &str) {
    assert_session(what, view, "mcp-router");
    assert_eq!(
        sorted(strings(&view["tools"])),
        [
            "call_tool",
            "list_providers",
            "list_tools",
            "python_sandbox",
            "search_tools"
        ],
        "{what}: tools/list must show exactly the meta-tools"
    );

    let providers = structured(&format!("{what} list_providers"), &view["list_providers"]);
    assert_eq!(
        providers,
        json!({"providers": [{"name": provider, "description": format!("fixture server {provider}"), "state": "running", "tools": 8}]}),
        "{what}: list_providers"
    );

    let listed = structured(&format!("{what} list_tools"), &view["list_tools"]);
    assert_eq!(listed["provider"], provider, "{what}: list_tools {listed}");
    assert_eq!(listed["state"], "running", "{what}: list_tools {listed}");
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, FIXTURE_TOOLS, "{what}: list_tools {provider}");
    let add = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add")
        .unwrap();
    assert_eq!(
        add["outputSchema"]["required"],
        json!(["sum"]),
        "{what}: list_tools keeps add's outputSchema: {add}"
    );

    let search = structured(&format!("{what} search_tools"), &view["search_tools"]);
    assert_eq!(
        search["query"], "add two numbers",
        "{what}: search_tools {search}"
    );
    let results = search["results"].as_array().unwrap();
    assert!(
        !results.is_empty(),
        "{what}: search_tools found nothing: {search}"
    );
    assert_eq!(
        (&results[0]["provider"], &results[0]["tool"]),
        (&json!(provider), &json!("add")),
        "{what}: best match: {search}"
    );
    assert_eq!(
        results[0]["description"], "Add two numbers and return their sum",
        "{what}: {search}"
    );
    assert_eq!(
        results[0]["inputSchema"]["required"],
        json!(["a", "b"]),
        "{what}: {search}"
    );

    assert_success(
        &format!("{what} call_tool echo"),
        &view["call_tool_echo"],
        &["hello from the python sdk"],
        Value::Null,
    );
    assert_success(
        &format!("{what} call_tool add"),
        &view["call_tool_add"],
        &["5"],
        json!({"sum": 5}),
    );
    assert_success(
        &format!("{what} echo with a provider argument"),
        &view["direct_echo"],
        &["called directly"],
        Value::Null,
    );

    let unknown_provider = &view["unknown_provider"];
    assert_eq!(
        unknown_provider["isError"],
        json!(true),
        "{what}: {unknown_provider}"
    );
    let message = strings(&unknown_provider["texts"]).join("\n");
    assert!(
        message.contains("unknown provider") && message.contains("\"no-such-provider\""),
        "{what}: unknown provider: {message}"
    );

    let unknown_tool = &view["unknown_tool"];
    assert_eq!(
        unknown_tool["code"],
        json!(-32602),
        "{what}: a provider's tool without a provider argument: {unknown_tool}"
    );
    assert!(
        unknown_tool["message"]
            .as_str()
            .unwrap()
            .contains("\"echo\""),
        "{what}: {unknown_tool}"
    );
}

/// The SDK may warn only that `echo` (called directly on the hierarchical view) is not in the
/// view's tools/list, so it cannot check its output schema: that is by design.
#[track_caller]
fn assert_only_expected_warnings(observed: &Value) {
    assert_eq!(observed["sdk"]["package"], "mcp");
    assert!(
        observed["sdk"]["version"]
            .as_str()
            .unwrap()
            .starts_with("2."),
        "SDK version {}",
        observed["sdk"]["version"]
    );
    let unexpected: Vec<String> = strings(&observed["sdk"]["warnings"])
        .into_iter()
        .filter(|w| !w.contains("Tool echo not listed by server"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the SDK logged warnings: {unexpected:#?}"
    );
}

#[tokio::test]
async fn python_sdk_over_streamable_http_in_every_view() {
    if python().is_none() {
        return;
    }
    const PROVIDER: &str = "pyhttp";
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture(PROVIDER, &[]).await;
    api.wait_state(PROVIDER, "running").await;

    let observed = observe("sdk_http.py", &[&router.url(), PROVIDER]).await;
    assert_only_expected_warnings(&observed);

    assert_hierarchical("/mcp", &observed["hierarchical"], PROVIDER);

    // Flat: every tool as PROVIDER__tool, with the provider's schemas.
    let flat = &observed["flat"];
    assert_session("/mcp/all", flat, "mcp-router");
    assert_eq!(
        sorted(strings(&flat["tools"])),
        sorted(FIXTURE_TOOLS.iter().map(|t| format!("{PROVIDER}__{t}"))),
        "/mcp/all tools/list"
    );
    let add_tool = &flat["add_tool"];
    assert_eq!(
        add_tool["description"], "Add two numbers and return their sum",
        "{add_tool}"
    );
    assert_eq!(
        add_tool["inputSchema"]["required"],
        json!(["a", "b"]),
        "{add_tool}"
    );
    assert_eq!(
        add_tool["outputSchema"],
        json!({"type": "object", "properties": {"sum": {"type": "number", "description": "a + b"}}, "required": ["sum"]}),
        "the flat view keeps add's outputSchema (the SDK validates structuredContent against it)"
    );
    assert_success("/mcp/all echo", &flat["echo"], &["flat hello"], Value::Null);
    assert_success("/mcp/all add", &flat["add"], &["5"], json!({"sum": 5}));
    assert_success(
        "/mcp/all add (float)",
        &flat["add_float"],
        &["3.25"],
        json!({"sum": 3.25}),
    );
    assert_eq!(
        flat["unknown_tool"]["code"],
        json!(-32602),
        "/mcp/all unknown tool: {}",
        flat["unknown_tool"]
    );
    assert!(
        flat["unknown_tool"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_tool"),
        "{}",
        flat["unknown_tool"]
    );

    // Transparent: the provider as it is, its own serverInfo and tools.
    let transparent = &observed["transparent"];
    assert_session("/mcp/p", transparent, PROVIDER);
    let (status, mut api_tools) = api.get(&format!("/api/v1/servers/{PROVIDER}/tools")).await;
    assert_eq!(status, 200, "{api_tools}");
    // The API adds the router's own settings of each tool (`mcpr`: enabled, overrides);
    // with none set, the rest is the upstream's tool as it listed it.
    for tool in api_tools.as_array_mut().expect("a list of tools") {
        let settings = tool
            .as_object_mut()
            .and_then(|t| t.remove("mcpr"))
            .expect("each tool has its mcpr settings");
        assert_eq!(
            settings,
            json!({"enabled": true, "name": null, "description": null})
        );
    }
    assert_eq!(
        transparent["tools"], api_tools,
        "/mcp/p/{PROVIDER} tools/list must equal the provider's tools as the API shows them"
    );
    let names: Vec<String> = transparent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, FIXTURE_TOOLS, "/mcp/p/{PROVIDER} tools/list");
    assert_eq!(
        strings(&transparent["tools_again"]),
        FIXTURE_TOOLS,
        "a second tools/list in the same session"
    );
    assert_success(
        "/mcp/p whoami",
        &transparent["whoami"],
        &[PROVIDER],
        Value::Null,
    );
    assert_success(
        "/mcp/p echo",
        &transparent["echo"],
        &["transparent hello"],
        Value::Null,
    );
    assert_success(
        "/mcp/p add",
        &transparent["add"],
        &["42"],
        json!({"sum": 42}),
    );
    let fail = &transparent["fail"];
    assert_eq!(
        (&fail["isError"], &fail["texts"]),
        (&json!(true), &json!(["deliberate failure"])),
        "/mcp/p fail: {fail}"
    );
    assert_eq!(
        transparent["unknown_tool"]["code"],
        json!(-32602),
        "/mcp/p unknown tool: {}",
        transparent["unknown_tool"]
    );
    assert!(
        transparent["unknown_tool"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_tool"),
        "{}",
        transparent["unknown_tool"]
    );
}

#[tokio::test]
async fn python_sdk_over_stdio_to_mcpr_stdio() {
    if python().is_none() {
        return;
    }
    // The data dir is shared with an HTTP router used to register the server; `mcpr stdio`,
    // started by the SDK's stdio client, reads the same registry.
    const PROVIDER: &str = "pystdio";
    let router = Router::start().await;
    router.api().add_fixture(PROVIDER, &[]).await;
    router.api().wait_state(PROVIDER, "running").await;
    let mcpr = bin("mcpr");
    let data_dir = router.data_dir.to_str().unwrap().to_owned();
    let port = free_port().to_string();

    let observed = observe(
        "sdk_stdio.py",
        &[mcpr.to_str().unwrap(), &data_dir, &port, PROVIDER],
    )
    .await;
    assert_only_expected_warnings(&observed);
    let stdio = &observed["stdio"];
    assert_success(
        "mcpr stdio whoami",
        &stdio["whoami"],
        &[PROVIDER],
        Value::Null,
    );
    assert!(
        stdio["ready_after_attempts"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{}",
        stdio["ready_after_attempts"]
    );
    assert_hierarchical("mcpr stdio", stdio, PROVIDER);
}

/// The API key the era test's router requires (the interop client presents it).
const ERA_API_KEY: &str = "mcpr_python_sdk_eras_0123456789abcdef";

/// Issue 10 item 1: a server written with the Python SDK 2.x speaks both eras and refuses the
/// 2026-07-28 envelope on a connection opened with `initialize`, which is how the agent opens
/// it. Python SDK clients in every mode (`auto` picks 2026-07-28 against the router) list and
/// call its tools through `/mcp` (the `call_tool` meta-tool; the tool's own name is the
/// interop matrix's),
/// `/mcp/all` and `/mcp/p/NAME`; its progress reaches them; on `/mcp/p/NAME` they read its
/// resource and get its prompt. Its elicitation mid-call reaches a client that declared the
/// capability (a modern one as an `InputRequiredResult`, through the era bridge) and comes
/// back answered; a client that declared none gets the call back with an error naming
/// elicitation instead of a hang. Cells run tests/python/interop_client.py against
/// tests/python/interop_server.py, as the interop matrix does.
#[tokio::test]
async fn python_sdk_clients_reach_a_python_sdk_server_on_every_view_in_every_mode() {
    let Some(python) = python() else { return };
    const PROVIDER: &str = "python-sdk";
    let router = Router::start_with(&[], &[("MCP_API_KEY", ERA_API_KEY)]).await;
    let api = router.api();
    let root = mcpr_e2e::harness::workspace_root();
    api.add(json!({
        "name": PROVIDER,
        "runtime": {"kind": "process", "command": python, "args": [root.join("tests/python/interop_server.py")]},
    }))
    .await;
    api.wait_state(PROVIDER, "running").await;

    let spec = json!({
        "name": PROVIDER,
        "tools": ["add", "count", "confirm"],
        "calls": [{"tool": "add", "arguments": {"a": 2, "b": 40}, "expect": "42", "structured": {"sum": 42}}],
        "progress": {"tool": "count", "arguments": {"steps": 3}, "expect": "counted 3"},
        "elicit": [{"tool": "confirm", "arguments": {"question": "Proceed?"}, "expect": "the client answered yes"}],
        "resources": [{"uri": "interop://about", "expect": "Python SDK MCPServer"}],
        "prompts": [{"name": "greet", "arguments": {"name": "Ada"}, "expect": "Say hello to Ada, from the Python SDK server"}],
    });
    let work = tempfile::tempdir().unwrap();
    let config = |elicitation: Value| {
        json!({
            "base_url": router.url(),
            "api_key": ERA_API_KEY,
            "mcpr": bin("mcpr"),
            "data_dir": router.data_dir,
            "upstreams": [spec],
            "elicitation": elicitation,
        })
    };
    let answering = work.path().join("answering.json");
    std::fs::write(&answering, config(json!({"answer": "yes"})).to_string()).unwrap();
    let silent = work.path().join("silent.json");
    std::fs::write(&silent, config(Value::Null).to_string()).unwrap();

    let mut cells = Vec::new();
    for mode in ["legacy", "auto", "2026-07-28"] {
        for path in ["call_tool", "all", "transparent"] {
            cells.push((mode, path, &answering));
        }
        // Without the capability, on a hierarchical and the transparent view.
        cells.push((mode, "call_tool", &silent));
        cells.push((mode, "transparent", &silent));
    }
    // One client at a time: the provider's one `shared` stdio session cannot tell whose call
    // a server-to-client request belongs to when calls overlap (it goes to the newest), so a
    // client without the capability could be handed another client's elicitation.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let runs: Vec<_> = cells
        .into_iter()
        .map(|(mode, path, config)| {
            let slots = slots.clone();
            let config = config.to_str().unwrap().to_owned();
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let client = format!("python-sdk-{mode}");
                let report = observe("interop_client.py", &[&config, &client, path]).await;
                let declared = if config.ends_with("answering.json") {
                    "elicitation declared"
                } else {
                    "no elicitation"
                };
                (format!("{client} on {path}, {declared}"), report)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for run in runs {
        let (what, report) = run.await.expect("a client run panicked");
        let cell = &report["cells"][PROVIDER];
        if cell != "ok" {
            failures.push(format!("{what}: {cell}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
