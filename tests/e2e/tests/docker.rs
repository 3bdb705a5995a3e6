//! The `docker` runtime and `python_sandbox` against the real Docker Engine: containerized
//! servers called through the gateway, restarted when their container dies, removed without
//! leaks (also after the agent is killed), and the sandbox under attack. Images are built
//! locally (no registry) by `scripts/docker-images`, once, cached by tag.
//!
//! Each test gives its agent a unique owner label and counts only containers with it, so
//! the tests run side by side without seeing each other's containers.

use std::time::{Duration, Instant};

use mcpr_e2e::harness::{
    Cluster, DockerCleanup, FIXTURE_IMAGE, RawMcp, Router, containers_labelled, docker_inspect,
    docker_owner, docker_ready, wait_containers, wait_for,
};
use serde_json::{Value, json};

const OWNER: &str = "mcp-router.owner";
const SERVER_ID: &str = "mcp-router.server-id";
const ROLE: &str = "mcp-router.role";

fn fixture_spec(name: &str) -> Value {
    json!({
        "name": name,
        "runtime": {
            "kind": "docker",
            "image": FIXTURE_IMAGE,
            "args": ["--name", name],
            "env": {"FIXTURE_SECRET": "s3cret-in-env"},
            "memory_mb": 128,
            "pids": 64
        }
    })
}

async fn router(owner: &str, pool: &str) -> Router {
    Router::start_with(
        &[],
        &[("MCPR_DOCKER_OWNER", owner), ("MCPR_SANDBOX_POOL", pool)],
    )
    .await
}

/// Calls `tool` of `provider` through the hierarchical view; the result's text.
async fn call_text(mcp: &mut RawMcp, provider: &str, tool: &str, arguments: Value) -> String {
    let result = mcp
        .call(
            "call_tool",
            json!({"provider": provider, "tool": tool, "arguments": arguments}),
        )
        .await
        .unwrap_or_else(|e| panic!("{provider}.{tool}: {e}"));
    assert_ne!(result["isError"], true, "{provider}.{tool}: {result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn containerized_server_is_called_restarted_and_removed_without_leaks() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("lifecycle");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner, "0").await;
    let api = router.api();
    let added = api.add(fixture_spec("boxed")).await;
    let id = added["id"].as_str().unwrap().to_owned();
    api.wait_state("boxed", "running").await;

    let mine = [(OWNER, owner.as_str()), (SERVER_ID, id.as_str())];
    let first = containers_labelled(&mine);
    assert_eq!(first.len(), 1, "one container per shared server: {first:?}");
    // Locked down as promised.
    let config = docker_inspect(
        &first[0],
        "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.NetworkMode}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
    )
    .unwrap();
    assert_eq!(
        config,
        format!(
            "65534:65534 true none [ALL] [no-new-privileges] {} 64",
            128 * 1024 * 1024
        )
    );
    // Secrets are environment, never arguments.
    let args = docker_inspect(&first[0], "{{json .Args}} {{json .Path}}").unwrap();
    assert!(!args.contains("s3cret"), "{args}");

    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    assert_eq!(
        call_text(&mut mcp, "boxed", "whoami", json!({})).await,
        "boxed"
    );
    assert_eq!(
        call_text(
            &mut mcp,
            "boxed",
            "get_env",
            json!({"name": "FIXTURE_SECRET"})
        )
        .await,
        "s3cret-in-env"
    );

    // A dead container is replaced (with backoff) and the new one answers.
    let killed = std::process::Command::new("docker")
        .args(["kill", &first[0]])
        .output()
        .unwrap();
    assert!(killed.status.success());
    let server = api
        .wait_until("boxed", "restarted after its container was killed", |s| {
            s["status"]["state"] == "running" && s["status"]["restart_count"].as_u64() >= Some(1)
        })
        .await;
    assert!(
        server["status"]["last_error"]
            .as_str()
            .unwrap()
            .contains("killed"),
        "{server}"
    );
    let second = wait_containers(&mine, 1, "the replacement container alone").await;
    assert_ne!(second, first, "a new container replaced the killed one");
    let answer = wait_for(
        "the restarted server to answer",
        Duration::from_secs(10),
        || {
            let url = router.mcp_url("/mcp");
            async move {
                let mut mcp = RawMcp::new(&url);
                mcp.initialize().await;
                let result = mcp
                    .call(
                        "call_tool",
                        json!({"provider": "boxed", "tool": "whoami", "arguments": {}}),
                    )
                    .await
                    .ok()?;
                (result["isError"] != true).then(|| result["content"][0]["text"].clone())
            }
        },
    )
    .await;
    assert_eq!(answer, "boxed");

    // Disabled: container gone; enabled again: back.
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/servers/boxed",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_containers(&mine, 0, "no container for a disabled server").await;
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/servers/boxed",
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    api.wait_state("boxed", "running").await;
    wait_containers(&mine, 1, "the server's container after enabling it").await;

    // Deleted: back to the baseline, nothing of this agent left.
    let (status, body) = api
        .call(reqwest::Method::DELETE, "/api/v1/servers/boxed", None)
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    wait_containers(
        &[(OWNER, owner.as_str())],
        0,
        "no container after the server is deleted",
    )
    .await;
}

#[tokio::test]
async fn agent_killed_with_sigkill_reaps_its_orphans_when_it_starts_again() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("sigkill");
    let _cleanup = DockerCleanup(owner.clone());
    let mut cluster = Cluster::start(0, None).await;
    cluster.add_agent_with_env("boxes", &[("MCPR_DOCKER_OWNER", &owner)]);
    let api = cluster.api();
    let id = api.add(fixture_spec("orphan")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.wait_state("orphan", "running").await;
    let mine = [(OWNER, owner.as_str()), (SERVER_ID, id.as_str())];
    let before = wait_containers(&mine, 1, "the server's container").await;

    // SIGKILL: no chance to clean up; the container is an orphan.
    cluster.agents[0].kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        containers_labelled(&mine),
        before,
        "the orphan outlives its agent"
    );

    // The same agent again: the orphan is reaped, the server runs in a new container.
    cluster.add_agent_with_env("boxes", &[("MCPR_DOCKER_OWNER", &owner)]);
    let after = wait_for(
        "the orphan reaped and a new container started",
        Duration::from_secs(30),
        || async {
            let ids = containers_labelled(&mine);
            (ids.len() == 1 && ids != before).then_some(ids)
        },
    )
    .await;
    assert!(
        docker_inspect(&before[0], "{{.Id}}").is_none(),
        "orphan removed"
    );
    api.wait_until("orphan", "running on the restarted agent", |s| {
        s["status"]["state"] == "running"
    })
    .await;

    // The sandbox over the gRPC relay (the distributed form), answered by this agent.
    let url = cluster.mcp_url(0, "/mcp");
    let ran = wait_for(
        "python_sandbox through the gateway",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move {
                let mut mcp = RawMcp::new(&url);
                mcp.initialize().await;
                let result = mcp
                    .call("python_sandbox", json!({"code": "print(6 * 7)"}))
                    .await
                    .ok()?;
                (result["isError"] != true).then(|| result["structuredContent"].clone())
            }
        },
    )
    .await;
    assert_eq!(ran["stdout"], "42\n", "{ran}");

    // SIGTERM: the agent removes its containers before it exits.
    let status = cluster.agents[1].terminate();
    assert!(status.is_some(), "agent exits on SIGTERM");
    assert!(
        containers_labelled(&[(OWNER, owner.as_str())]).is_empty(),
        "no container left after a clean stop: {after:?}"
    );
}

/// Runs `code` in the sandbox; the structured result.
async fn sandbox(mcp: &mut RawMcp, code: &str, timeout: Option<f64>) -> Value {
    let mut arguments = json!({"code": code});
    if let Some(t) = timeout {
        arguments["timeout"] = json!(t);
    }
    let result = mcp
        .call("python_sandbox", arguments)
        .await
        .unwrap_or_else(|e| panic!("python_sandbox: {e}"));
    assert_ne!(result["isError"], true, "python_sandbox: {result}");
    result["structuredContent"].clone()
}

#[tokio::test]
async fn sandbox_contains_hostile_code() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("attack");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner, "2").await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    let tools = mcp.request("tools/list", json!({})).await;
    assert!(
        tools["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "python_sandbox"),
        "{tools}"
    );

    let ok = sandbox(&mut mcp, "print(1)", None).await;
    assert_eq!(ok["stdout"], "1\n", "{ok}");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["timed_out"], false);

    // Errors come back as the program's own: traceback on stderr, exit status 1.
    let raised = sandbox(&mut mcp, "raise ValueError('boom')", None).await;
    assert_eq!(raised["exit_code"], 1, "{raised}");
    assert!(
        raised["stderr"]
            .as_str()
            .unwrap()
            .contains("ValueError: boom")
    );

    // Infinite loop: killed at the wall time limit.
    let started = Instant::now();
    let looped = sandbox(&mut mcp, "while True: pass", Some(2.0)).await;
    assert_eq!(looped["timed_out"], true, "{looped}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // Fork bomb: the pids limit stops it (fork fails), and the call still returns.
    let started = Instant::now();
    let bomb = sandbox(
        &mut mcp,
        "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time; time.sleep(30)\n        n += 1\nexcept OSError as e:\n    print('fork failed after', n, type(e).__name__)\n",
        Some(10.0),
    )
    .await;
    let out = bomb["stdout"].as_str().unwrap();
    assert!(out.contains("fork failed after"), "{bomb}");
    let forks: u64 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(forks < 64, "at most 64 processes: {bomb}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // Memory hog: OOM-killed at 256 MB, and reported.
    let hog = sandbox(
        &mut mcp,
        "chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))\n",
        Some(20.0),
    )
    .await;
    assert_eq!(hog["oom_killed"], true, "{hog}");
    assert_eq!(hog["timed_out"], false, "{hog}");

    // No network: neither a connection out nor name resolution.
    let net = sandbox(
        &mut mcp,
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    print('connected')\nexcept OSError as e:\n    print('blocked', e)\ntry:\n    socket.getaddrinfo('pypi.org', 443)\n    print('resolved')\nexcept OSError as e:\n    print('no dns', e)\n",
        None,
    )
    .await;
    let out = net["stdout"].as_str().unwrap();
    assert!(out.contains("blocked") && out.contains("no dns"), "{net}");
    assert!(
        !out.contains("connected") && !out.contains("resolved"),
        "{net}"
    );

    // Read-only root, writable /tmp, non-root user.
    let fs = sandbox(
        &mut mcp,
        "import os\nfor path in ['/etc/evil', '/usr/evil', '/evil', '/home/evil']:\n    try:\n        open(path, 'w').write('x')\n        print('wrote', path)\n    except OSError as e:\n        print('denied', path, e.strerror)\nopen('/tmp/ok', 'w').write('fine')\nprint('tmp', open('/tmp/ok').read())\nprint('uid', os.getuid())\n",
        None,
    )
    .await;
    let out = fs["stdout"].as_str().unwrap();
    assert!(!out.contains("wrote"), "{fs}");
    assert_eq!(out.matches("denied").count(), 4, "{fs}");
    assert!(
        out.contains("tmp fine") && out.contains("uid 65534"),
        "{fs}"
    );

    // The host is not visible: not the workspace, not the router's data, not the socket.
    let host = router.data_dir.display().to_string();
    let probe = format!(
        "import os\nfor path in [{:?}, {:?}, '/var/run/docker.sock', '/root/.cargo']:\n    print(path, os.path.exists(path))\n",
        mcpr_e2e::harness::workspace_root().display().to_string(),
        host
    );
    let seen = sandbox(&mut mcp, &probe, None).await;
    let out = seen["stdout"].as_str().unwrap();
    assert_eq!(out.matches(" False").count(), 4, "{seen}");

    // Output is capped and the cut is marked.
    let loud = sandbox(&mut mcp, "print('x' * 200000)", None).await;
    assert_eq!(loud["stdout_truncated"], true, "{}", loud["stderr"]);
    assert!(loud["stdout"].as_str().unwrap().len() < 70 * 1024);
    assert!(
        loud["stdout"]
            .as_str()
            .unwrap()
            .ends_with("[output truncated at 65536 bytes]")
    );

    // Bad arguments are a tool error the model can read.
    let bad = mcp
        .call("python_sandbox", json!({"code": 3}))
        .await
        .unwrap();
    assert_eq!(bad["isError"], true, "{bad}");

    // A clean stop removes the warm pool too.
    let mut router = router;
    router.proc.terminate();
    assert!(containers_labelled(&[(OWNER, owner.as_str())]).is_empty());
}

#[tokio::test]
async fn sandbox_answers_20_concurrent_calls_and_leaves_no_container() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("concurrent");
    let _cleanup = DockerCleanup(owner.clone());
    let mut router = router(&owner, "2").await;
    let url = router.mcp_url("/mcp");
    let calls = (0..20).map(|i| {
        let url = url.clone();
        tokio::spawn(async move {
            let mut mcp = RawMcp::new(&url);
            mcp.initialize().await;
            sandbox(&mut mcp, &format!("print({i} * {i})"), None).await
        })
    });
    let results = futures::future::join_all(calls).await;
    for (i, result) in results.into_iter().enumerate() {
        let result = result.unwrap();
        assert_eq!(result["stdout"], format!("{}\n", i * i), "{result}");
    }
    // Every used container removed; only the warm pool (2, never used) remains.
    let sandboxes = [(OWNER, owner.as_str()), (ROLE, "sandbox")];
    let warm = wait_containers(&sandboxes, 2, "only the warm pool left").await;
    for id in &warm {
        assert_eq!(
            docker_inspect(id, "{{.State.Status}}").as_deref(),
            Some("running")
        );
    }
    // And on a clean stop, not even those.
    router.proc.terminate();
    assert!(containers_labelled(&[(OWNER, owner.as_str())]).is_empty());
}

/// No Docker: docker servers and the sandbox say so clearly; process servers still work.
#[tokio::test]
async fn without_docker_the_errors_are_clear_and_the_rest_works() {
    let router =
        Router::start_with(&[], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]).await;
    let api = router.api();
    api.add(fixture_spec("nodocker")).await;
    api.add_fixture("plain", &[]).await;
    let error = api
        .wait_last_error("nodocker", "failing with a clear error")
        .await;
    assert!(
        error.contains("Docker is not reachable at unix:///nonexistent/docker.sock"),
        "{error}"
    );
    api.wait_state("plain", "running").await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    assert_eq!(
        call_text(&mut mcp, "plain", "whoami", json!({})).await,
        "plain"
    );
    let result = mcp
        .call("python_sandbox", json!({"code": "print(1)"}))
        .await
        .unwrap();
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("Docker is not reachable"), "{text}");
}

/// An image that is not on the host (and no registry to pull it from) is named in status.
#[tokio::test]
async fn a_missing_image_is_named_in_the_status() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("missing");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner, "0").await;
    let api = router.api();
    api.add(
        json!({"name": "ghost", "runtime": {"kind": "docker", "image": "mcpr/no-such-image:1"}}),
    )
    .await;
    let server = api
        .wait_until("ghost", "failing with the image's name", |s| {
            s["status"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("mcpr/no-such-image:1"))
        })
        .await;
    let error = server["status"]["last_error"].as_str().unwrap();
    assert!(error.contains("is not on this host"), "{error}");
    assert!(error.contains("scripts/docker-images"), "{error}");
    let (status, invalid) = api
        .post(
            "/api/v1/servers",
            json!({"name": "bad", "runtime": {"kind": "docker", "uvx": "a", "npx": "b"}}),
        )
        .await;
    assert_eq!(status, 422, "{invalid}");
    assert_eq!(invalid["error"]["field"], "runtime", "{invalid}");
}

/// A base image that is neither here nor pullable: status, the sandbox and
/// `mcpr server add --wait` name it and both ways out.
#[tokio::test]
async fn an_unpullable_base_image_names_both_ways_out() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("nobase");
    let _cleanup = DockerCleanup(owner.clone());
    let missing = "mcpr-e2e/no-such-python:none";
    let router = Router::start_with(
        &[],
        &[
            ("MCPR_DOCKER_OWNER", owner.as_str()),
            ("MCPR_SANDBOX_POOL", "0"),
            ("MCPR_PYTHON_IMAGE", missing),
        ],
    )
    .await;
    let ways_out = |error: &str| {
        for part in [
            missing,
            "cannot be pulled",
            "scripts/docker-images python",
            "MCPR_PYTHON_IMAGE",
        ] {
            assert!(error.contains(part), "{part:?} in {error}");
        }
    };
    let api = router.api();
    api.add(json!({"name": "nobase", "runtime": {"kind": "docker", "command": "python3"}}))
        .await;
    ways_out(
        &api.wait_last_error("nobase", "failing on its base image")
            .await,
    );

    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    let result = mcp
        .call("python_sandbox", json!({"code": "print(1)"}))
        .await
        .unwrap();
    assert_eq!(result["isError"], true, "{result}");
    ways_out(result["content"][0]["text"].as_str().unwrap());

    let output = std::process::Command::new(mcpr_e2e::harness::bin("mcpr"))
        .arg("--url")
        .arg(router.url())
        .args([
            "server",
            "add",
            "waited",
            "--docker",
            "--command",
            "python3",
            "--wait",
        ])
        .env_remove("MCPR_URL")
        .output()
        .expect("run mcpr");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "--wait fails with the server: {stderr}"
    );
    assert!(
        stderr.contains("server \"waited\" failed to start"),
        "{stderr}"
    );
    ways_out(&stderr);
}

/// With the default base image (a registry image) the sandbox works on any host: pulled
/// where a registry answers, else the local image from `scripts/docker-images`, said so.
#[tokio::test]
async fn the_default_base_image_works_with_or_without_a_registry() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("defaultbase");
    let _cleanup = DockerCleanup(owner.clone());
    let router = Router::start_with(
        &[],
        &[
            ("MCPR_DOCKER_OWNER", owner.as_str()),
            ("MCPR_SANDBOX_POOL", "0"),
            ("MCPR_PYTHON_IMAGE", "python:3.13-slim"),
        ],
    )
    .await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    let ran = sandbox(
        &mut mcp,
        "import sys; print(sys.version_info[0])",
        Some(60.0),
    )
    .await;
    assert_eq!(ran["stdout"], "3\n", "{ran}");
    let log = router.proc.log();
    let fell_back = log.contains("image python:3.13-slim cannot be pulled")
        && log.contains("using mcpr/python:bookworm, built by scripts/docker-images");
    let pulled = log.contains("image python:3.13-slim pulled");
    assert!(fell_back || pulled, "the log says which image runs: {log}");
}

/// `mcpr server add` registers docker specs, and the server runs and answers.
#[tokio::test]
async fn cli_adds_a_containerized_server() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("cli");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner, "0").await;
    let mcpr = |args: &[&str]| {
        let output = std::process::Command::new(mcpr_e2e::harness::bin("mcpr"))
            .arg("--url")
            .arg(router.url())
            .args(args)
            .env_remove("MCPR_URL")
            .output()
            .expect("run mcpr");
        assert!(
            output.status.success(),
            "mcpr {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let added = mcpr(&[
        "server",
        "add",
        "clibox",
        "--image",
        FIXTURE_IMAGE,
        "--arg",
        "--name",
        "--arg",
        "clibox",
        "--env",
        "FIXTURE_SECRET=from-cli",
        "--memory-mb",
        "96",
        "--cpus",
        "0.5",
        "--pids",
        "32",
        "--wait",
    ]);
    // --wait returns once it runs.
    let server = router.api().server("clibox").await;
    assert_eq!(server["status"]["state"], "running", "{server}");
    assert!(
        added.contains(&format!(
            "server \"clibox\" is running: {} tools",
            server["status"]["tool_count"]
        )),
        "{added}"
    );
    assert_eq!(
        server["runtime"],
        json!({"kind": "docker", "image": FIXTURE_IMAGE, "args": ["--name", "clibox"],
               "env": {"FIXTURE_SECRET": "********"}, "network": "none",
               "memory_mb": 96, "millicpus": 500, "pids": 32})
    );
    let shown = mcpr(&["server", "show", "clibox"]);
    assert!(
        shown.contains("millicpus") && shown.contains("500"),
        "{shown}"
    );
    assert!(
        !shown.contains("from-cli"),
        "secrets are not shown: {shown}"
    );
    let called = mcpr(&[
        "call",
        "clibox",
        "get_env",
        "--args",
        r#"{"name":"FIXTURE_SECRET"}"#,
    ]);
    assert_eq!(called.trim(), "from-cli");
    let id = server["id"].as_str().unwrap();
    let containers = containers_labelled(&[(OWNER, owner.as_str()), (SERVER_ID, id)]);
    assert_eq!(
        docker_inspect(
            &containers[0],
            "{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
        )
        .as_deref(),
        Some("500000000 32")
    );
}

/// `per_client`: each client session gets a container of its own; all go with the server.
#[tokio::test]
async fn per_client_sessions_get_containers_of_their_own() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("perclient");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner, "0").await;
    let api = router.api();
    let mut spec = fixture_spec("perclient");
    spec["session_mode"] = json!("per_client");
    let id = api.add(spec).await["id"].as_str().unwrap().to_owned();
    api.wait_state("perclient", "running").await;
    let mine = [(OWNER, owner.as_str()), (SERVER_ID, id.as_str())];
    let shared = containers_labelled(&mine).len();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
        mcp.initialize().await;
        assert_eq!(
            call_text(&mut mcp, "perclient", "whoami", json!({})).await,
            "perclient"
        );
        clients.push(mcp);
    }
    wait_containers(&mine, shared + 2, "one more container per client session").await;
    let (status, body) = api
        .call(reqwest::Method::DELETE, "/api/v1/servers/perclient", None)
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    wait_containers(&mine, 0, "no container after the server is deleted").await;
}
