//! Attacks on untrusted upstream bytes, scopes and tokens.
//!
//! Each test makes the attack against a real `mcpr up` with the real fixture server as the
//! upstream, asserts the exact refusal (or the exact log notice), and shows that legitimate
//! calls go on. The JWT attacks (forged, `alg: none`, HMAC with the public key, tampered,
//! expired, foreign audience and issuer) are in `tests/oauth.rs`, unchanged since
//! verification moved to the `jsonwebtoken` crate.

use std::process::Command;
use std::time::Duration;

use mcpr_e2e::harness::{RawMcp, Router, bin, tool_text, wait_for, wait_initialize_status};
use serde_json::{Value, json};

/// `(stream, line)` of a server's log as the API shows it.
async fn log_lines(router: &Router, server: &str) -> Vec<(String, String)> {
    let (status, logs) = router
        .api()
        .get(&format!("/api/v1/servers/{server}/logs?tail=2000"))
        .await;
    assert_eq!(status, 200, "{logs}");
    logs.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["stream"].as_str().unwrap().to_owned(),
                l["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn count(lines: &[(String, String)], stream: &str, line: &str) -> usize {
    lines
        .iter()
        .filter(|(s, l)| s == stream && l == line)
        .count()
}

/// A server writes `0xff` and a line that is not JSON on stdout and on stderr, before it
/// serves and before every answer (`--bad-bytes`). Every such line is skipped with a notice
/// in the server's log; calls keep working, the server is never restarted, and what it
/// logs afterwards still arrives (before, the first `0xff` ended the reader for good: the
/// call hung, and the server died of a broken pipe or lost its log).
#[tokio::test]
async fn bad_bytes_on_stdout_and_stderr_are_skipped_and_reading_goes_on() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("garbled", &["--bad-bytes"]).await;
    api.wait_state("garbled", "running").await;

    let mut mcp = RawMcp::new(&router.mcp_url("/mcp/p/garbled"));
    mcp.initialize().await;
    for i in 0..3 {
        let text = format!("call {i}");
        let result = mcp.call("echo", json!({"text": text})).await.unwrap();
        assert_eq!(tool_text(&result), text, "{result}");
    }
    let logged = mcp
        .call(
            "log_stderr",
            json!({"line": "still logging after the bad bytes"}),
        )
        .await
        .unwrap();
    assert_eq!(tool_text(&logged), "logged");

    let lines = wait_for(
        "the line logged after the bad bytes",
        Duration::from_secs(10),
        || async {
            let lines = log_lines(&router, "garbled").await;
            (count(&lines, "stderr", "still logging after the bad bytes") == 1).then_some(lines)
        },
    )
    .await;
    // Once at start, once before each of the four calls: on both streams.
    let not_utf8 = "skipped a line that is not UTF-8 (1 byte): \\xff";
    for stream in ["stdout", "stderr"] {
        assert_eq!(count(&lines, stream, not_utf8), 5, "{stream}: {lines:?}");
        assert_eq!(
            count(&lines, stream, "fixture garbage"),
            5,
            "{stream}: {lines:?}"
        );
    }
    assert_eq!(
        count(&lines, "stderr", "fixture server garbled ready"),
        1,
        "{lines:?}"
    );
    let server = api.server("garbled").await;
    assert_eq!(server["status"]["state"], "running", "{server}");
    assert_eq!(server["status"]["restart_count"], 0, "{server}");

    // `mcpr server logs` shows the same notices.
    let output = Command::new(bin("mcpr"))
        .args(["--url", &router.url(), "server", "logs", "garbled"])
        .env_remove("MCPR_URL")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains(not_utf8), "{shown}");
    assert!(
        shown.contains("still logging after the bad bytes"),
        "{shown}"
    );
}

fn tool_names(listed: &Value) -> Vec<String> {
    listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A key scoped to one server neither sees `python_sandbox` in `/mcp`'s `tools/list` nor
/// may call it (the exact refusal); keys whose scopes grant it (`_sandbox`, `*`) see it.
#[tokio::test]
async fn python_sandbox_is_neither_listed_to_nor_callable_by_a_key_scoped_to_one_server() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("alpha", &[]).await;
    api.wait_state("alpha", "running").await;
    let (only_alpha, _) = api.create_key("alpha only", Some(&["alpha"])).await;
    let (sandbox, _) = api
        .create_key("alpha and sandbox", Some(&["alpha", "_sandbox"]))
        .await;
    let (everything, _) = api.create_key("everything", None).await;
    let url = router.mcp_url("/mcp");
    wait_initialize_status(&url, Some(&everything), 200, Duration::from_secs(5)).await;

    let meta = ["list_providers", "list_tools", "search_tools", "call_tool"];
    let mut scoped = RawMcp::with_key(&url, &only_alpha);
    scoped.initialize().await;
    assert_eq!(
        tool_names(&scoped.request("tools/list", json!({})).await),
        meta
    );
    let refused = scoped
        .call("python_sandbox", json!({"code": "print(1)"}))
        .await
        .unwrap();
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(
        tool_text(&refused),
        "forbidden: this API key or token may not use provider \"_sandbox\" (not in its scopes)"
    );
    // What the key is for still works.
    let ok = scoped
        .call("call_tool", json!({"provider": "alpha", "tool": "whoami"}))
        .await
        .unwrap();
    assert_eq!(tool_text(&ok), "alpha");

    for key in [&sandbox, &everything] {
        let mut granted = RawMcp::with_key(&url, key);
        granted.initialize().await;
        let names = tool_names(&granted.request("tools/list", json!({})).await);
        assert_eq!(names[..4], meta);
        assert_eq!(names[4..], ["python_sandbox"]);
    }
}

/// A scope such as `every/*` would make a key that silently grants nothing (scopes match
/// exactly): the API refuses it with 422 and the reason, the CLI fails with it, and no key
/// is made.
#[tokio::test]
async fn a_pattern_scope_is_refused_at_key_creation_with_the_reason() {
    let router = Router::start().await;
    let api = router.api();
    let reason = "scope \"every/*\" grants nothing: scopes are matched exactly, not as patterns; \"every\" grants every tool of provider \"every\"";
    let (status, body) = api
        .post(
            "/api/v1/keys",
            json!({"name": "patterned", "scopes": ["alpha", "every/*"]}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"error": {"status": 422, "code": "invalid_field", "field": "scopes",
                "message": format!("scopes: {reason}")}})
        )
    );

    let output = Command::new(bin("mcpr"))
        .args(["--url", &router.url(), "key", "create", "patterned"])
        .args(["--scope", "every/*"])
        .env_remove("MCPR_URL")
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("invalid scopes: {reason} (422)")),
        "{stderr}"
    );

    let (status, keys) = api.get("/api/v1/keys").await;
    assert_eq!(status, 200);
    assert_eq!(keys, json!([]), "no key was made");
    // The exact scope the reason suggests is accepted.
    api.create_key("every tool of every", Some(&["every"]))
        .await;
}
