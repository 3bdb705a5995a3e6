//! The `mcpr` admin commands against a running router, as a person or a script uses them.

use std::process::Command;

use mcpr_e2e::harness::{HttpFixture, RawMcp, Router, bin};
use mcpr_e2e::mcpr_cli::{fails, mcpr, ok};
use serde_json::{Value, json};

#[tokio::test]
async fn server_commands_import_and_call() {
    let router = Router::start().await;
    let fixture = bin("mcpr-fixture-server");
    let command_line = format!("{} --name 'cli one'", fixture.display());
    ok(&mcpr(
        &router,
        &[
            "server",
            "add",
            "one",
            "--command",
            &command_line,
            "--env",
            "TOKEN=abc",
            "--description",
            "first",
        ],
    ));
    router.api().wait_state("one", "running").await;

    // Quoting is split the shell's way: the fixture got one argument "cli one".
    let called = ok(&mcpr(&router, &["call", "one", "whoami"]));
    assert_eq!(called.trim(), "cli one");
    let sum = ok(&mcpr(
        &router,
        &[
            "--json",
            "call",
            "one",
            "add",
            "--args",
            r#"{"a": 20, "b": 22}"#,
        ],
    ));
    let sum: Value = serde_json::from_str(&sum).unwrap();
    assert_eq!(sum["structuredContent"]["sum"], 42);

    // Tables for people, JSON for scripts; secrets redacted in both.
    let table = ok(&mcpr(&router, &["server", "list"]));
    assert!(
        table.contains("one") && table.contains("running"),
        "{table}"
    );
    let listed: Value =
        serde_json::from_str(&ok(&mcpr(&router, &["--json", "server", "list"]))).unwrap();
    assert_eq!(listed[0]["name"], "one");
    assert_eq!(listed[0]["runtime"]["args"][1], "cli one");
    assert_eq!(listed[0]["runtime"]["env"]["TOKEN"], "********");
    let shown = ok(&mcpr(&router, &["server", "show", "one"]));
    assert!(shown.contains("first") && !shown.contains("abc"), "{shown}");
    let tools = ok(&mcpr(&router, &["server", "tools", "one"]));
    assert!(tools.contains("echo") && tools.contains("add"), "{tools}");
    let logs = ok(&mcpr(&router, &["server", "logs", "one"]));
    assert!(logs.contains("fixture server cli one ready"), "{logs}");

    // Import Claude Desktop's format: new ones created, existing names skipped.
    let remote = HttpFixture::start("far", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claude_desktop_config.json");
    let config = serde_json::json!({"mcpServers": {
        "one": {"command": "/bin/false"},
        "two": {"command": fixture, "args": ["--name", "two"], "env": {"A": "1"}, "autoApprove": []},
        "far": {"type": "http", "url": remote.url},
    }});
    std::fs::write(&file, config.to_string()).unwrap();
    let imported = ok(&mcpr(
        &router,
        &["--json", "import", file.to_str().unwrap()],
    ));
    let imported: Value = serde_json::from_str(&imported).unwrap();
    let mut created: Vec<&str> = imported["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    created.sort();
    assert_eq!(created, ["far", "two"], "{imported}");
    assert_eq!(imported["skipped"][0]["name"], "one");
    router.api().wait_state("two", "running").await;
    router.api().wait_state("far", "running").await;
    assert_eq!(ok(&mcpr(&router, &["call", "far", "whoami"])).trim(), "far");

    // Lifecycle.
    ok(&mcpr(&router, &["server", "disable", "two"]));
    assert_eq!(
        router.api().server("two").await["status"]["state"],
        "stopped"
    );
    ok(&mcpr(&router, &["server", "enable", "two"]));
    ok(&mcpr(&router, &["server", "restart", "two"]));
    ok(&mcpr(&router, &["server", "rm", "two"]));
    let (status, _) = router.api().get("/api/v1/servers/two").await;
    assert_eq!(status, 404);

    // Errors: one clear line, non-zero exit.
    let error = fails(&mcpr(&router, &["server", "show", "nope"]));
    assert!(error.contains("nope") && error.contains("404"), "{error}");
    let error = fails(&mcpr(
        &router,
        &["server", "add", "bad name", "--command", "x"],
    ));
    assert!(error.contains("name") && error.contains("422"), "{error}");
    let error = fails(&mcpr(&router, &["server", "add", "one", "--command", "x"]));
    assert!(error.contains("409"), "{error}");
    let error = fails(&mcpr(&router, &["call", "one", "echo", "--args", "[1]"]));
    assert!(error.contains("--args"), "{error}");
    let error = fails(&mcpr(
        &router,
        &["call", "one", "fail", "--args", r#"{"message": "boom"}"#],
    ));
    assert!(error.contains("boom"), "{error}");
    let gone = Command::new(bin("mcpr"))
        .args(["--url", "http://127.0.0.1:9", "server", "list"])
        .output()
        .unwrap();
    let error = fails(&gone);
    assert!(error.contains("cannot reach the router"), "{error}");
}

/// `mcpr server analyze` on a local checkout laid out like PyPI's `mcp-server-time` (its
/// sdist's `pyproject.toml` facts), and on a directory with nothing runnable.
#[tokio::test]
async fn server_analyze_reads_a_repository_and_says_what_it_found() {
    let router = Router::start().await;
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("pyproject.toml"),
        r#"[project]
name = "mcp-server-time"
version = "2025.9.25"
description = "A Model Context Protocol server providing tools for time queries and timezone conversions for LLMs"
requires-python = ">=3.10"
dependencies = ["mcp>=1.0.0", "pydantic>=2.0.0", "tzdata>=2024.2", "tzlocal>=5.3.1"]

[project.scripts]
mcp-server-time = "mcp_server_time:main"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"#,
    )
    .unwrap();
    let dir = repo.path().to_str().unwrap();
    let text = ok(&mcpr(&router, &["server", "analyze", dir]));
    assert!(text.contains("(from pyproject.toml, confidence"), "{text}");
    assert!(text.contains("  runs: uvx --from "), "{text}");
    assert!(text.contains(" mcp-server-time (process)\n"), "{text}");

    let analysis: Value =
        serde_json::from_str(&ok(&mcpr(&router, &["--json", "server", "analyze", dir]))).unwrap();
    let proposal = &analysis["proposals"][0];
    assert_eq!(proposal["runtime"]["command"], "uvx", "{analysis}");
    assert_eq!(proposal["evidence"], "pyproject", "{analysis}");
    let args = proposal["runtime"]["args"].as_array().unwrap();
    assert_eq!(args.last().unwrap(), "mcp-server-time", "{analysis}");

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("notes.txt"), "nothing to run here\n").unwrap();
    let text = ok(&mcpr(
        &router,
        &["server", "analyze", empty.path().to_str().unwrap()],
    ));
    assert!(text.starts_with("found no way to run this"), "{text}");
    assert!(text.contains("  server.json: "), "{text}");
}

/// `mcpr registry search` against an offline registry (`MCPR_REGISTRY_DIR`) holding
/// server.json documents in the MCP Registry's format.
#[tokio::test]
async fn registry_search_finds_servers_in_an_offline_registry() {
    let registry = tempfile::tempdir().unwrap();
    std::fs::write(
        registry.path().join("time.json"),
        r#"{"$schema": "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json",
 "name": "io.github.modelcontextprotocol/time",
 "description": "Time and timezone conversion capabilities",
 "version": "2025.9.25",
 "packages": [{"registryType": "pypi", "identifier": "mcp-server-time", "version": "2025.9.25",
               "transport": {"type": "stdio"}}]}"#,
    )
    .unwrap();
    std::fs::write(
        registry.path().join("github.json"),
        r#"{"name": "io.github.example/github",
 "description": "Repositories, issues and pull requests",
 "version": "1.2.0",
 "packages": [{"registryType": "npm", "identifier": "@example/server-github", "version": "1.2.0",
               "transport": {"type": "stdio"},
               "environmentVariables": [{"name": "GITHUB_TOKEN", "isRequired": true, "isSecret": true}]}]}"#,
    )
    .unwrap();
    let dir = registry.path().to_str().unwrap();
    let router = Router::start_with(&[], &[("MCPR_REGISTRY_DIR", dir)]).await;
    let text = ok(&mcpr(&router, &["registry", "search", "time"]));
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains("io.github.modelcontextprotocol/time"),
        "{text}"
    );
    assert!(text.contains("pypi:mcp-server-time"), "{text}");
    assert!(!text.contains("io.github.example/github"), "{text}");

    let found: Value = serde_json::from_str(&ok(&mcpr(
        &router,
        &["--json", "registry", "search", "issues"],
    )))
    .unwrap();
    let servers = found["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1, "{found}");
    assert_eq!(servers[0]["name"], "io.github.example/github", "{found}");

    let none = ok(&mcpr(&router, &["registry", "search", "nothing-like-this"]));
    assert!(none.starts_with("no server in "), "{none}");
}

/// `mcpr tool list|disable|enable|set` (issue 13): the table, the one-line reports, the
/// gateway refusing the disabled tool, and errors as one line.
#[tokio::test(flavor = "multi_thread")]
async fn mcpr_tool_list_disable_enable_and_set() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("fix", &[]).await;
    api.wait_state("fix", "running").await;

    let listed = ok(&mcpr(&router, &["tool", "list", "fix"]));
    let echo_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("echo "))
            .unwrap_or_else(|| panic!("no echo row:\n{text}"))
            .to_owned()
    };
    assert!(listed.starts_with("TOOL"), "{listed}");
    assert!(echo_line(&listed).contains("enabled"), "{listed}");

    let disabled = ok(&mcpr(&router, &["tool", "disable", "fix", "echo"]));
    assert!(
        disabled.contains("tool echo of server fix disabled"),
        "{disabled}"
    );
    let listed = ok(&mcpr(&router, &["tool", "list", "fix"]));
    assert!(echo_line(&listed).contains("disabled"), "{listed}");
    // The router refuses the call by the tool's name, saying why.
    let mut flat = RawMcp::new(&router.mcp_url("/mcp/all"));
    flat.initialize().await;
    let refused = mcpr_e2e::harness::wait_for(
        "the gateway to refuse the disabled tool",
        std::time::Duration::from_secs(10),
        || {
            let url = router.mcp_url("/mcp/all");
            async move {
                let mut client = RawMcp::new(&url);
                client.initialize().await;
                client.call("fix__echo", json!({"text": "x"})).await.err()
            }
        },
    )
    .await;
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("is disabled"), "{message}");

    let enabled = ok(&mcpr(&router, &["tool", "enable", "fix", "echo"]));
    assert!(
        enabled.contains("tool echo of server fix enabled"),
        "{enabled}"
    );
    let set = ok(&mcpr(
        &router,
        &["tool", "set", "fix", "echo", "--name", "say"],
    ));
    assert!(set.contains("shown as say"), "{set}");
    let json_list: Value =
        serde_json::from_str(&ok(&mcpr(&router, &["--json", "tool", "list", "fix"]))).unwrap();
    let echo = json_list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    assert_eq!(echo["mcpr"]["name"], "say", "{echo}");
    assert!(echo_line(&ok(&mcpr(&router, &["tool", "list", "fix"]))).contains("say"));

    // Errors are one clear line.
    let unknown = mcpr(&router, &["tool", "disable", "fix", "nope"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("server \"fix\" has no tool \"nope\""),
        "{stderr}"
    );
    let nothing = mcpr(&router, &["tool", "set", "fix", "echo"]);
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to set"));
}
