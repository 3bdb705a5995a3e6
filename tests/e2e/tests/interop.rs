//! The third-party interop matrix (issue 10): clients nobody here wrote, through every path
//! of the router, to servers nobody here wrote, with an API key required.
//!
//! Upstreams: `mcp-server-time`, `mcp-server-git` (on a temporary repository) and
//! `mcp-server-fetch` (fetching a page this test serves on loopback) from PyPI, run from the
//! test virtualenv's console scripts; a server written with the Python SDK's `MCPServer`
//! (tests/python/interop_server.py); one written with the TypeScript SDK's `McpServer`
//! (tests/ts/server.mjs), over stdio and over streamable HTTP (registered as `remote`).
//! Clients: the Python SDK 2.x `Client` in modes `legacy`, `auto` and `2026-07-28`, FastMCP's
//! `Client` (`BearerAuth`), the TypeScript SDK's `Client` (streamable HTTP, and
//! `StdioClientTransport` for the stdio paths). Paths: `/mcp` through `call_tool`, `/mcp`
//! by the tool's own name with `provider`, `/mcp/all`, `/mcp/p/NAME`, `mcpr stdio`
//! (in-process, on the router's data dir) and the `mcpr --url … stdio` bridge.
//!
//! Each cell (client × path × upstream) lists the upstream's tools and makes real calls whose
//! results it checks (time's `get_current_time` names the timezone asked, git's `git_status`
//! shows the repository's untracked file, fetch returns the page's text, the SDK servers'
//! `add` its structured sum and `count` its progress); on the transparent view it also reads
//! resources and gets prompts. One router serves the whole matrix, and one client process per
//! (client, path) runs every upstream's cell (tests/python/interop_client.py,
//! tests/ts/client.mjs). The run writes the table of cells to docs/INTEROP.md, then fails if
//! any cell failed. It needs the virtualenv of `scripts/setup-python` and the TypeScript SDK
//! (`TS_SDK`, or `../shared/tools/ts-sdk` beside the workspace, prints its node_modules);
//! without them it skips loudly, unless MCPR_REQUIRE_ALL=1 (as on CI), where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpr_e2e::harness::{Proc, Router, bin, free_port, python, wait_for, workspace_root};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The router's one API key (`MCP_API_KEY`): every HTTP client and the bridge present it.
const API_KEY: &str = "mcpr_interop_matrix_0123456789abcdef";

/// Clients, in the order of the table.
const CLIENTS: [(&str, &str); 5] = [
    (
        "python-sdk-legacy",
        "Python SDK `Client(url, mode=\"legacy\")`",
    ),
    (
        "python-sdk-auto",
        "Python SDK `Client(url)` (`mode=\"auto\"`)",
    ),
    (
        "python-sdk-2026-07-28",
        "Python SDK `Client(url, mode=\"2026-07-28\")`",
    ),
    ("fastmcp", "FastMCP `Client(url, auth=BearerAuth(key))`"),
    (
        "typescript-sdk",
        "TypeScript SDK `Client` (`StreamableHTTPClientTransport`; `StdioClientTransport` on the stdio paths)",
    ),
];

/// Paths, as the client scripts name them and as the table shows them.
const PATHS: [(&str, &str); 6] = [
    ("call_tool", "`/mcp` via `call_tool`"),
    ("direct", "`/mcp`, the tool's own name + `provider`"),
    ("all", "`/mcp/all`"),
    ("transparent", "`/mcp/p/NAME`"),
    ("stdio", "`mcpr stdio`"),
    ("bridge", "`mcpr --url … stdio`"),
];

/// Upstream providers, in the order of the table's columns.
const UPSTREAMS: [&str; 6] = ["time", "git", "fetch", "python-sdk", "ts-stdio", "ts-http"];

/// A phrase only the loopback page holds: fetch's answer must carry it.
const PAGE_PHRASE: &str = "ochre lantern 42 served on loopback";

/// Client processes at once: every one starts an SDK, the stdio ones a router too.
const PARALLEL_CLIENTS: usize = 3;

#[tokio::test]
async fn third_party_clients_reach_third_party_servers_on_every_path() {
    let Some(python) = python() else { return };
    let Some(node_modules) = ts_sdk() else { return };
    let started = Instant::now();
    let venv_bin = python
        .parent()
        .expect("the venv's bin directory")
        .to_owned();
    for server in ["mcp-server-time", "mcp-server-git", "mcp-server-fetch"] {
        assert!(
            venv_bin.join(server).exists(),
            "{} is missing: run scripts/setup-python (tests/python/requirements.txt pins it)",
            venv_bin.join(server).display()
        );
    }
    let work = tempfile::tempdir().unwrap();
    let ts_dir = stage_ts_scripts(work.path(), &node_modules);
    let repo = git_repository(&work.path().join("repo"));
    let page_url = serve_page().await;
    let ts_http_port = free_port();
    let ts_http = start_ts_http(&ts_dir, ts_http_port).await;

    let router = Router::start_with(&[], &[("MCP_API_KEY", API_KEY)]).await;
    let api = router.api();
    let python_str = python.to_str().unwrap();
    let servers = [
        json!({"name": "time", "description": "mcp-server-time (PyPI)",
               "runtime": {"kind": "process", "command": venv_bin.join("mcp-server-time"), "args": ["--local-timezone", "UTC"]}}),
        json!({"name": "git", "description": "mcp-server-git (PyPI)",
               "runtime": {"kind": "process", "command": venv_bin.join("mcp-server-git"), "args": ["--repository", &repo]}}),
        // The page is on loopback, which fetch refuses unless told; robots.txt is consulted
        // (the page server allows everything).
        json!({"name": "fetch", "description": "mcp-server-fetch (PyPI)",
               "runtime": {"kind": "process", "command": venv_bin.join("mcp-server-fetch"), "args": ["--allow-private-ips"]}}),
        json!({"name": "python-sdk", "description": "a Python SDK MCPServer",
               "runtime": {"kind": "process", "command": python_str, "args": [workspace_root().join("tests/python/interop_server.py")]}}),
        json!({"name": "ts-stdio", "description": "a TypeScript SDK McpServer over stdio",
               "runtime": {"kind": "process", "command": "node", "args": [ts_dir.join("server.mjs")]}}),
        json!({"name": "ts-http", "description": "a TypeScript SDK McpServer over streamable HTTP",
               "runtime": {"kind": "remote", "url": format!("http://127.0.0.1:{ts_http_port}/mcp")}}),
    ];
    for server in servers {
        api.add(server).await;
    }
    // Six servers start at once, five of them Python or Node: on a loaded machine that takes
    // longer than the harness's usual 20 s.
    for name in UPSTREAMS {
        let api = api.clone();
        wait_for(
            &format!("{name} to be running"),
            Duration::from_secs(120),
            || {
                let api = api.clone();
                async move {
                    let (status, server) = api.get(&format!("/api/v1/servers/{name}")).await;
                    (status == 200 && server["status"]["state"] == "running").then_some(())
                }
            },
        )
        .await;
    }

    let config = json!({
        "base_url": router.url(),
        "api_key": API_KEY,
        "mcpr": bin("mcpr"),
        "data_dir": router.data_dir,
        // The `mcpr stdio` a client starts runs every upstream afresh, all at once: under
        // the suite's load a Python server can take longer than the default 10 s to start
        // (seen: the first list answered "still starting"), and the first list must wait
        // for it. 30 s: inside the clients' 40 s bound on one request.
        "stdio_env": {"MCPR_STARTUP_GRACE_SECS": "30"},
        "upstreams": upstream_specs(&repo, &page_url),
    });
    let config_path = work.path().join("interop.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();

    let runs = run_clients(&python, &ts_dir, &config_path).await;
    let elapsed = started.elapsed();
    drop(ts_http);

    let doc = interop_table(&runs);
    std::fs::write(workspace_root().join("docs/INTEROP.md"), &doc)
        .expect("writing docs/INTEROP.md");
    let failures: Vec<String> = runs
        .iter()
        .flat_map(|run| {
            UPSTREAMS.iter().filter_map(move |upstream| {
                let cell = run.cell(upstream);
                (cell != "ok")
                    .then(|| format!("{} / {} / {upstream}: {cell}", run.client, run.path))
            })
        })
        .collect();
    eprintln!(
        "interop matrix: {} cells, {} failed, in {:.1} s",
        runs.len() * UPSTREAMS.len(),
        failures.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} interop cells failed (docs/INTEROP.md has the table):\n{}",
        failures.len(),
        runs.len() * UPSTREAMS.len(),
        failures.join("\n")
    );
}

/// What each upstream's cell does, for the client scripts: the tools it must list, the calls
/// it makes and what their results must hold, progress, resources and prompts.
fn upstream_specs(repo: &str, page_url: &str) -> Value {
    let sdk_server = |name: &str, about: &str, greeting: &str| {
        json!({
            "name": name,
            "tools": ["add", "count"],
            "calls": [{"tool": "add", "arguments": {"a": 2, "b": 40}, "expect": "42", "structured": {"sum": 42}}],
            "progress": {"tool": "count", "arguments": {"steps": 3}, "expect": "counted 3"},
            "resources": [{"uri": "interop://about", "expect": about}],
            "prompts": [{"name": "greet", "arguments": {"name": "Ada"}, "expect": format!("Say hello to Ada, from the {greeting} server")}],
        })
    };
    json!([
        {
            "name": "time",
            "tools": ["get_current_time", "convert_time"],
            "calls": [{"tool": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}, "expect": "Asia/Tokyo"}],
        },
        {
            "name": "git",
            "tools": ["git_status", "git_log", "git_diff_unstaged"],
            // The repository has one commit and one untracked file.
            "calls": [{"tool": "git_status", "arguments": {"repo_path": repo}, "expect": "untracked-notes.txt"}],
        },
        {
            "name": "fetch",
            "tools": ["fetch"],
            "calls": [{"tool": "fetch", "arguments": {"url": page_url}, "expect": PAGE_PHRASE}],
            "prompts": [{"name": "fetch", "arguments": {"url": page_url}, "expect": PAGE_PHRASE}],
        },
        sdk_server("python-sdk", "Python SDK MCPServer", "Python SDK"),
        sdk_server("ts-stdio", "TypeScript SDK McpServer", "TypeScript SDK"),
        sdk_server("ts-http", "TypeScript SDK McpServer", "TypeScript SDK"),
    ])
}

/// What one client process (one client on one path) reported.
struct ClientRun {
    client: &'static str,
    path: &'static str,
    library: String,
    cells: BTreeMap<String, String>,
}

impl ClientRun {
    fn cell(&self, upstream: &str) -> &str {
        self.cells.get(upstream).map_or(
            "the client reported nothing for this upstream",
            String::as_str,
        )
    }
}

/// Runs every (client, path) process, a few at a time, and gathers their cells.
async fn run_clients(python: &Path, ts_dir: &Path, config: &Path) -> Vec<ClientRun> {
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL_CLIENTS));
    // An in-process `mcpr stdio` starts every upstream again: one at a time.
    let stdio_slot = Arc::new(tokio::sync::Semaphore::new(1));
    let mut jobs = Vec::new();
    for (client, _) in CLIENTS {
        for (path, _) in PATHS {
            let mut command = match client {
                "typescript-sdk" => {
                    let mut node = tokio::process::Command::new("node");
                    node.arg(ts_dir.join("client.mjs")).arg(config).arg(path);
                    node
                }
                _ => {
                    let mut py = tokio::process::Command::new(python);
                    py.arg(workspace_root().join("tests/python/interop_client.py"))
                        .arg(config)
                        .arg(client)
                        .arg(path);
                    py
                }
            };
            command
                .env_remove("MCPR_URL")
                .env_remove("MCPR_API_KEY")
                .env_remove("MCP_API_KEY")
                .kill_on_drop(true);
            let slots = slots.clone();
            let stdio_slot = stdio_slot.clone();
            jobs.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                let _stdio = match path {
                    "stdio" => Some(stdio_slot.acquire_owned().await.unwrap()),
                    _ => None,
                };
                run_client(client, path, command).await
            }));
        }
    }
    let mut runs = Vec::new();
    for job in jobs {
        runs.push(job.await.expect("a client job panicked"));
    }
    runs
}

/// Runs one client process; a process that fails or prints no report fails all its cells.
async fn run_client(
    client: &'static str,
    path: &'static str,
    mut command: tokio::process::Command,
) -> ClientRun {
    let started = Instant::now();
    // The scripts bound each connection and cell themselves (30 s + 45 s a cell).
    let output = tokio::time::timeout(Duration::from_secs(360), command.output()).await;
    let (library, cells) = match output {
        Ok(Ok(output)) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !stderr.trim().is_empty() {
                eprintln!(
                    "----- {client} on {path}: stderr -----\n{}",
                    stderr.trim_end()
                );
            }
            match serde_json::from_str::<Value>(stdout.trim()) {
                Ok(report) if output.status.success() => (
                    report["library"].as_str().unwrap_or("?").to_owned(),
                    serde_json::from_value(report["cells"].clone()).unwrap_or_default(),
                ),
                _ => {
                    let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
                    let why = format!(
                        "the client process failed ({}): {}",
                        output.status,
                        tail.into_iter().rev().collect::<Vec<_>>().join(" ")
                    );
                    (String::new(), every_upstream(&why))
                }
            }
        }
        Ok(Err(e)) => (
            String::new(),
            every_upstream(&format!("cannot start the client: {e}")),
        ),
        Err(_) => (
            String::new(),
            every_upstream("the client process timed out after 360 s"),
        ),
    };
    eprintln!(
        "{client} on {path}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ClientRun {
        client,
        path,
        library,
        cells,
    }
}

fn every_upstream(why: &str) -> BTreeMap<String, String> {
    UPSTREAMS
        .iter()
        .map(|u| (u.to_string(), why.to_owned()))
        .collect()
}

/// docs/INTEROP.md: one table per client, a row per path, a column per upstream.
fn interop_table(runs: &[ClientRun]) -> String {
    let pins = std::fs::read_to_string(workspace_root().join("tests/python/requirements.txt"))
        .unwrap_or_default();
    let pin = |name: &str| {
        pins.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}==")))
            .unwrap_or("?")
            .to_owned()
    };
    let mut doc = String::from(
        "# Interop matrix\n\n\
         Written by `tests/e2e/tests/interop.rs` on each run of the test suite (`scripts/test`);\n\
         do not edit it by hand. Each cell is one client, on one path through the router, to one\n\
         upstream server, with an API key required: it lists the upstream's tools and makes real\n\
         calls whose results it checks (time's `get_current_time`, git's `git_status` on a\n\
         temporary repository, fetch of a page served on loopback, the SDK servers' structured\n\
         `add` and a `count` that reports progress); on `/mcp/p/NAME` it also reads resources and\n\
         gets prompts. `ok`, or what the client saw fail.\n\n",
    );
    doc.push_str(&format!(
        "Upstreams: `time` = mcp-server-time {}, `git` = mcp-server-git {}, `fetch` = \
         mcp-server-fetch {} (PyPI); `python-sdk` = an `MCPServer` of mcp {} \
         (tests/python/interop_server.py); `ts-stdio`, `ts-http` = a TypeScript SDK `McpServer` \
         (tests/ts/server.mjs) over stdio and over streamable HTTP (a `remote` server).\n",
        pin("mcp-server-time"),
        pin("mcp-server-git"),
        pin("mcp-server-fetch"),
        pin("mcp"),
    ));
    for (client, title) in CLIENTS {
        let rows: Vec<&ClientRun> = runs.iter().filter(|r| r.client == client).collect();
        let library = rows
            .iter()
            .map(|r| r.library.as_str())
            .find(|l| !l.is_empty())
            .unwrap_or("?");
        doc.push_str(&format!("\n## {client}: {title}, {library}\n\n| path |"));
        for upstream in UPSTREAMS {
            doc.push_str(&format!(" {upstream} |"));
        }
        doc.push_str("\n|---|");
        doc.push_str(&"---|".repeat(UPSTREAMS.len()));
        doc.push('\n');
        for (path, label) in PATHS {
            let Some(run) = rows.iter().find(|r| r.path == path) else {
                continue;
            };
            doc.push_str(&format!("| {label} |"));
            for upstream in UPSTREAMS {
                doc.push_str(&format!(" {} |", table_cell(run.cell(upstream))));
            }
            doc.push('\n');
        }
    }
    doc
}

/// A cell's text, safe inside a Markdown table row.
fn table_cell(text: &str) -> String {
    const MAX_CHARS: usize = 400;
    let flat = text.replace('|', "\\|").replace(['\n', '\r'], " ");
    match flat.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

/// The TypeScript SDK's node_modules (from `TS_SDK` or `../shared/tools/ts-sdk`), with Node
/// able to run; `None` with a loud message when missing and not required.
fn ts_sdk() -> Option<PathBuf> {
    let tool = std::env::var_os("TS_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/tools/ts-sdk"));
    let found = (|| {
        let node = Command::new("node").arg("--version").output();
        if !node.as_ref().is_ok_and(|o| o.status.success()) {
            return Err("node is not on PATH".to_owned());
        }
        if !tool.exists() {
            return Err(format!("{} is missing (set TS_SDK)", tool.display()));
        }
        // Serialized across test processes: the first run unpacks the SDK.
        let output = Command::new("flock")
            .arg("/tmp/mcpr-ts-sdk-setup.lock")
            .arg(&tool)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        match output.status.success() && dir.join("@modelcontextprotocol/sdk").exists() {
            true => Ok(dir),
            false => Err(format!(
                "{} did not print a node_modules with @modelcontextprotocol/sdk: {}",
                tool.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        }
    })();
    match found {
        Ok(dir) => Some(dir),
        Err(why) => {
            assert!(
                !std::env::var("MCPR_REQUIRE_ALL").is_ok_and(|v| v == "1"),
                "MCPR_REQUIRE_ALL=1 but the TypeScript SDK cannot run: {why}"
            );
            eprintln!("\n!!! SKIPPING interop test: {why} !!!\n");
            None
        }
    }
}

/// tests/ts/*.mjs copied into `work/ts` beside a `node_modules` link to the SDK: ES modules
/// resolve packages from a node_modules beside or above the script, and none is committed.
fn stage_ts_scripts(work: &Path, node_modules: &Path) -> PathBuf {
    let dir = work.join("ts");
    std::fs::create_dir_all(&dir).unwrap();
    for script in ["server.mjs", "client.mjs"] {
        std::fs::copy(
            workspace_root().join("tests/ts").join(script),
            dir.join(script),
        )
        .unwrap_or_else(|e| panic!("copying tests/ts/{script}: {e}"));
    }
    std::os::unix::fs::symlink(node_modules, dir.join("node_modules")).unwrap();
    dir
}

/// A git repository with one commit and one untracked file; its path.
fn git_repository(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("README.md"), "interop test repository\n").unwrap();
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=interop",
                "-c",
                "user.email=interop@example.com",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "first commit"]);
    std::fs::write(dir.join("untracked-notes.txt"), "not committed\n").unwrap();
    dir.canonicalize().unwrap().to_str().unwrap().to_owned()
}

/// Serves the page fetch reads (and a robots.txt allowing it) on a loopback port, for the
/// life of the test; returns the page's URL. Plain text: fetch turns HTML into Markdown with
/// readabilipy, which runs `npm install` when Node is on PATH, and no npm registry is
/// reachable here.
async fn serve_page() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/page.txt", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match path {
                    "/robots.txt" => ("200 OK", "User-agent: *\nAllow: /\n".to_owned()),
                    "/page.txt" => (
                        "200 OK",
                        format!(
                            "Interop page\n\nThe fetch server read this page: {PAGE_PHRASE}.\n"
                        ),
                    ),
                    _ => ("404 Not Found", "not found\n".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

/// The TypeScript SDK server over streamable HTTP on `port`, listening.
async fn start_ts_http(ts_dir: &Path, port: u16) -> Proc {
    let mut command = Command::new("node");
    command
        .arg(ts_dir.join("server.mjs"))
        .args(["--http", &port.to_string()]);
    let proc = Proc::spawn("ts-http-server", command);
    wait_for(
        "the TypeScript SDK HTTP server to listen",
        Duration::from_secs(20),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    proc
}
