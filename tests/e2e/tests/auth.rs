//! Authentication, authorization and secrets at rest (issue 5), against the real binaries:
//! API keys on the MCP endpoint (missing, wrong, revoked, expired; scopes in every view),
//! the admin passcode on the REST API, the CLI and the web UI, `MCP_API_KEY`, rate limits,
//! and server secrets encrypted in the database file. Each refusal is asserted exactly.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mcpr_e2e::harness::{
    Api, Cluster, RawMcp, Router, bin, tool_text, wait_for, wait_initialize_status,
};
use mcpr_e2e::rmcp_client::{ConnectOptions, connect_http_with};
use serde_json::{Value, json};

const PASSCODE: &str = "correct horse battery staple";

fn mcpr(
    router: &Router,
    config_dir: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Output {
    let mut command = Command::new(bin("mcpr"));
    command
        .arg("--url")
        .arg(router.url())
        .args(args)
        .env_remove("MCPR_URL")
        .env_remove("MCPR_ADMIN_TOKEN")
        .env_remove("MCPR_API_KEY")
        .env_remove("MCP_API_KEY")
        .env("MCPR_CONFIG_DIR", config_dir);
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run mcpr")
}

fn stdout_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "mcpr failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn error_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn keys_close_the_mcp_endpoint_with_exact_refusals() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("alpha", &[]).await;
    api.wait_state("alpha", "running").await;
    let url = router.mcp_url("/mcp");

    // No key exists: open, as on loopback before authentication.
    RawMcp::new(&url).initialize().await;

    let (key, created) = api.create_key("laptop", None).await;
    assert!(key.starts_with("mcpr_") && key.len() >= 5 + 43, "{key}");
    assert_eq!(created["scopes"], json!(["*"]));
    assert_eq!(created["state"], "active");
    // Listed, never with the key.
    let (_, keys) = api.get("/api/v1/keys").await;
    assert!(!keys.to_string().contains(&key));
    assert_eq!(keys[0]["prefix"], key[..11]);

    // Missing: 401 with the challenge and a JSON-RPC error naming the problem.
    let (_, missing) = wait_initialize_status(&url, None, 401, Duration::from_secs(5)).await;
    assert_eq!(
        missing.headers["www-authenticate"],
        "Bearer realm=\"mcp-router\""
    );
    assert_eq!(missing.body["jsonrpc"], "2.0");
    assert!(
        error_message(&missing.body).starts_with("missing API key"),
        "{}",
        missing.body
    );
    // Every MCP route and method is behind it.
    for path in ["/mcp/all", "/mcp/p/alpha"] {
        let r = RawMcp::new(&router.mcp_url(path)).try_initialize().await;
        assert_eq!(r.status, 401, "{path}");
    }
    let wrong = RawMcp::with_key(&url, "mcpr_thisIsNotAKeyThatExistsAnywhere0000000000")
        .try_initialize()
        .await;
    assert_eq!(wrong.status, 401);
    assert!(
        error_message(&wrong.body).starts_with("unknown API key"),
        "{}",
        wrong.body
    );
    let basic = RawMcp::with_headers(&url, &[("authorization", "Basic dXNlcjpwdw==")])
        .try_initialize()
        .await;
    assert_eq!(basic.status, 401);

    // The key works as a bearer token, as X-API-Key, and through a real MCP client.
    let mut raw = RawMcp::with_key(&url, &key);
    raw.initialize().await;
    let listed = raw
        .call("list_providers", json!({}))
        .await
        .expect("list_providers");
    assert!(tool_text(&listed).contains("alpha"));
    RawMcp::with_headers(&url, &[("x-api-key", &key)])
        .initialize()
        .await;
    let client = connect_http_with(
        &router.mcp_url("/mcp/all"),
        &ConnectOptions {
            bearer_token: Some(key.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("rmcp client with the key");
    assert_eq!(
        client
            .call_tool_text("alpha__echo", json!({"text": "hi"}))
            .await
            .unwrap(),
        "hi"
    );
    client.close().await.unwrap();

    // Last use reaches the control plane, batched.
    let used = wait_for("last_used_at", Duration::from_secs(10), || {
        let api = api.clone();
        async move {
            let (_, keys) = api.get("/api/v1/keys").await;
            keys[0]["last_used_at"].as_str().map(str::to_owned)
        }
    })
    .await;
    assert!(used.starts_with("20"), "{used}");

    // Revoked: refused on the running gateway within a second, named as revoked, even on
    // a session opened before.
    let (revoked_status, revoked) = api
        .post(
            &format!("/api/v1/keys/{}/revoke", created["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(revoked_status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    let (took, refused) =
        wait_initialize_status(&url, Some(&key), 401, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    assert!(
        error_message(&refused.body).starts_with("the API key was revoked"),
        "{}",
        refused.body
    );
    let old_session = raw
        .post_bytes(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}).to_string())
        .await;
    assert_eq!(old_session.status, 401);

    // Expired: works until its time, then refused as expired.
    let (status, short) = api
        .post(
            "/api/v1/keys",
            json!({"name": "short", "expires_in_secs": 2}),
        )
        .await;
    assert_eq!(status, 201, "{short}");
    let short_key = short["key"].as_str().unwrap().to_owned();
    wait_initialize_status(&url, Some(&short_key), 200, Duration::from_secs(2)).await;
    let (_, expired) =
        wait_initialize_status(&url, Some(&short_key), 401, Duration::from_secs(5)).await;
    assert!(
        error_message(&expired.body).starts_with("the API key expired"),
        "{}",
        expired.body
    );
    let (_, keys) = api.get("/api/v1/keys").await;
    let short = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "short")
        .unwrap();
    assert_eq!(short["state"], "expired", "{keys}");
}

#[tokio::test]
async fn scopes_filter_every_view_and_refuse_what_they_do_not_grant() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("alpha", &[]).await;
    api.add_fixture("beta", &[]).await;
    api.wait_state("alpha", "running").await;
    api.wait_until("beta", "tools", |s| {
        s["status"]["tool_count"].as_u64() > Some(0)
    })
    .await;
    let (only_alpha, _) = api.create_key("alpha only", Some(&["alpha"])).await;
    let (beta_echo, _) = api.create_key("beta echo", Some(&["beta/echo"])).await;
    wait_initialize_status(&router.mcp_url("/mcp"), None, 401, Duration::from_secs(5)).await;

    // Hierarchical view, key for alpha.
    let mut h = RawMcp::with_key(&router.mcp_url("/mcp"), &only_alpha);
    h.initialize().await;
    let providers = h.call("list_providers", json!({})).await.unwrap();
    let names: Vec<&str> = providers["structuredContent"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha"]);
    let tools = h
        .call("list_tools", json!({"provider": "beta"}))
        .await
        .unwrap();
    assert_eq!(tools["isError"], true);
    assert!(
        tool_text(&tools).contains("forbidden") && tool_text(&tools).contains("\"beta\""),
        "{tools}"
    );
    let found = h
        .call("search_tools", json!({"query": "echo", "limit": 10}))
        .await
        .unwrap();
    let hits = found["structuredContent"]["results"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|r| r["provider"] == "alpha"), "{found}");
    let refused = h
        .call("call_tool", json!({"provider": "beta", "tool": "whoami"}))
        .await
        .unwrap();
    assert_eq!(refused["isError"], true);
    assert!(
        tool_text(&refused).contains("may not use tool \"whoami\" of provider \"beta\""),
        "{refused}"
    );
    // By its own name, with a provider argument: a JSON-RPC error.
    let direct = h
        .call("whoami", json!({"provider": "beta"}))
        .await
        .unwrap_err();
    assert!(
        direct["message"].as_str().unwrap().contains("forbidden"),
        "{direct}"
    );
    let ok = h
        .call("call_tool", json!({"provider": "alpha", "tool": "whoami"}))
        .await
        .unwrap();
    assert_eq!(tool_text(&ok), "alpha");
    // Running code is a scope of its own.
    let sandbox = h
        .call("python_sandbox", json!({"code": "print(1)"}))
        .await
        .unwrap();
    assert_eq!(sandbox["isError"], true);
    assert!(
        tool_text(&sandbox).contains("forbidden") && tool_text(&sandbox).contains("_sandbox"),
        "{sandbox}"
    );

    // Flat view.
    let mut flat = RawMcp::with_key(&router.mcp_url("/mcp/all"), &only_alpha);
    flat.initialize().await;
    let listed = flat.request("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().unwrap();
    assert!(!tools.is_empty());
    assert!(
        tools
            .iter()
            .all(|t| t["name"].as_str().unwrap().starts_with("alpha__")),
        "{listed}"
    );
    let error = flat
        .call("beta__echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert!(
        error["message"].as_str().unwrap().contains("forbidden"),
        "{error}"
    );

    // Transparent view: a forbidden provider is a 403 at the door.
    let door = RawMcp::with_key(&router.mcp_url("/mcp/p/beta"), &only_alpha)
        .try_initialize()
        .await;
    assert_eq!(door.status, 403, "{}", door.body);
    assert!(error_message(&door.body).contains("may not use provider \"beta\""));

    // A key for one tool sees only it.
    let mut one = RawMcp::with_key(&router.mcp_url("/mcp/p/beta"), &beta_echo);
    one.initialize().await;
    let listed = one.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo"]);
    assert_eq!(
        tool_text(&one.call("echo", json!({"text": "yes"})).await.unwrap()),
        "yes"
    );
    let error = one.call("whoami", json!({})).await.unwrap_err();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("may not use tool \"whoami\" of provider \"beta\""),
        "{error}"
    );
    let mut flat_one = RawMcp::with_key(&router.mcp_url("/mcp/all"), &beta_echo);
    flat_one.initialize().await;
    let listed = flat_one.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta__echo"]);

    // Scopes are validated.
    let (status, body) = api
        .post(
            "/api/v1/keys",
            json!({"name": "bad", "scopes": ["no such/"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "scopes");
}

#[tokio::test]
async fn admin_passcode_guards_the_api_and_the_cli_logs_in() {
    let router = Router::start_with(&[], &[("ADMIN_PASSCODE", PASSCODE)]).await;
    let api = router.api();
    let (status, body) = api.get("/api/v1/servers").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    for path in ["/api/v1/keys", "/api/v1/servers/x/logs"] {
        assert_eq!(api.get(path).await.0, 401, "{path}");
    }
    assert_eq!(
        api.post("/api/v1/servers", json!({"name": "x"})).await.0,
        401
    );
    let (status, _) = api.get("/api/v1/health").await;
    assert_eq!(status, 200);
    let (status, body) = api
        .post("/api/v1/login", json!({"passcode": "wrong"}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_message(&body), "wrong passcode");
    let token = api.login(PASSCODE).await;
    assert!(token.starts_with("mcpra_"));
    let admin = api.with_token(&token);
    assert_eq!(admin.get("/api/v1/servers").await.0, 200);
    assert_eq!(
        api.with_token("mcpra_nope").get("/api/v1/servers").await.0,
        401
    );

    // The CLI: refused without a token, then `mcpr login` keeps one (0600 in a 0700 dir).
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("mcpr");
    let refused = mcpr(&router, &dir, &["server", "list"], &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("mcpr login"),
        "{stderr}"
    );
    let login = mcpr(
        &router,
        &dir,
        &["login"],
        &[("MCPR_ADMIN_PASSCODE", PASSCODE)],
    );
    stdout_ok(&login);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("token")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    stdout_ok(&mcpr(&router, &dir, &["server", "list"], &[]));
    let bad = mcpr(
        &router,
        &config.path().join("other"),
        &["login"],
        &[("MCPR_ADMIN_PASSCODE", "nope")],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("wrong passcode"));

    // Key commands.
    let created = stdout_ok(&mcpr(
        &router,
        &dir,
        &[
            "key",
            "create",
            "ci",
            "--scope",
            "alpha",
            "--expires",
            "30d",
        ],
        &[],
    ));
    let key = created.trim().to_owned();
    assert!(key.starts_with("mcpr_"), "{created}");
    let list = stdout_ok(&mcpr(&router, &dir, &["key", "list"], &[]));
    assert!(
        list.contains("ci") && list.contains("alpha") && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(&key));
    let listed = stdout_ok(&mcpr(&router, &dir, &["--json", "key", "list"], &[]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert!(listed[0]["expires_at"].is_string());
    stdout_ok(&mcpr(&router, &dir, &["key", "revoke", "ci"], &[]));
    let list = stdout_ok(&mcpr(&router, &dir, &["key", "list"], &[]));
    assert!(list.contains("revoked"), "{list}");
    // Remove: a revoked key goes; an active one only with --force (issue 13).
    stdout_ok(&mcpr(&router, &dir, &["key", "create", "live"], &[]));
    let refused = mcpr(&router, &dir, &["key", "remove", "live"], &[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("API key \"live\" is still active: revoke it first"),
        "{said}"
    );
    let removed = stdout_ok(&mcpr(&router, &dir, &["key", "remove", "ci"], &[]));
    assert!(removed.starts_with("removed API key ci ("), "{removed}");
    stdout_ok(&mcpr(
        &router,
        &dir,
        &["key", "remove", "live", "--force"],
        &[],
    ));
    let listed = stdout_ok(&mcpr(&router, &dir, &["--json", "key", "list"], &[]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["name"] != "ci" && k["name"] != "live"),
        "{listed}"
    );
    let gone = mcpr(&router, &dir, &["key", "remove", "ci"], &[]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no API key \"ci\""));
    // `mcpr call` presents MCPR_API_KEY.
    api.with_token(&token).add_fixture("alpha", &[]).await;
    let (caller_key, _) = admin.create_key("caller", Some(&["alpha"])).await;
    api.with_token(&token).wait_state("alpha", "running").await;
    // (The gateway may learn that alpha runs a moment after the API says so.)
    let answer = wait_for(
        "mcpr call with MCPR_API_KEY",
        Duration::from_secs(10),
        || {
            let call = mcpr(
                &router,
                &dir,
                &["call", "alpha", "whoami"],
                &[("MCPR_API_KEY", caller_key.as_str())],
            );
            async move {
                call.status
                    .success()
                    .then(|| String::from_utf8_lossy(&call.stdout).trim().to_owned())
            }
        },
    )
    .await;
    assert_eq!(answer, "alpha");
    let call = mcpr(&router, &dir, &["call", "alpha", "whoami"], &[]);
    assert!(!call.status.success());
    let stderr = String::from_utf8_lossy(&call.stderr);
    assert!(stderr.contains("missing API key"), "{stderr}");

    stdout_ok(&mcpr(&router, &dir, &["logout"], &[]));
    assert!(!dir.join("token").exists());
    assert_eq!(
        admin.get("/api/v1/servers").await.0,
        200,
        "other sessions stay"
    );
}

#[tokio::test]
async fn web_ui_login_sets_a_strict_cookie_and_refuses_cross_site_writes() {
    let router = Router::start_with(&[], &[("ADMIN_PASSCODE", PASSCODE)]).await;
    let client = reqwest::Client::new();
    let base = router.url();
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"login-form\"") && !html.contains("<script>"));

    let (status, _) = router.api().get("/api/v1/session").await;
    assert_eq!(status, 401);
    let login = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"passcode": PASSCODE, "cookie": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("mcpr_session=mcpra_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let session_cookie = cookie.split(';').next().unwrap().to_owned();
    let login_body: Value = login.json().await.unwrap();
    let csrf = login_body["csrf"].as_str().unwrap().to_owned();

    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .header("cookie", &session_cookie)
            .send()
    };
    let session: Value = get("/api/v1/session").await.unwrap().json().await.unwrap();
    assert_eq!(session["csrf"], csrf);
    assert_eq!(get("/api/v1/servers").await.unwrap().status(), 200);
    // A write with the cookie but without the CSRF token: refused.
    let forged = client
        .post(format!("{base}/api/v1/keys"))
        .header("cookie", &session_cookie)
        .json(&json!({"name": "forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf");
    let wrong = client
        .post(format!("{base}/api/v1/keys"))
        .header("cookie", &session_cookie)
        .header("x-csrf-token", "guess")
        .json(&json!({"name": "forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let real = client
        .post(format!("{base}/api/v1/keys"))
        .header("cookie", &session_cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "from the UI"}))
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), 201);
    // Logout ends the session.
    let out = client
        .post(format!("{base}/api/v1/logout"))
        .header("cookie", &session_cookie)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(get("/api/v1/servers").await.unwrap().status(), 401);

    // Login attempts are rate limited per client address: 15 wrong ones at once, so that
    // how long each passcode check takes (argon2, slow on a loaded machine) cannot refill
    // the bucket meanwhile; the right passcode right after the first 429 is refused too.
    let api = router.api();
    let mut attempts: futures::stream::FuturesUnordered<_> = (0..15)
        .map(|_| {
            client
                .post(format!("{base}/api/v1/login"))
                .json(&json!({"passcode": "guess"}))
                .send()
        })
        .collect();
    let mut limited = None;
    while let Some(response) = futures::StreamExt::next(&mut attempts).await {
        let response = response.unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 401);
    }
    let limited = limited.expect("a 429 within 15 wrong attempts");
    assert!(limited.headers().contains_key("retry-after"));
    let (status, _) = api
        .post("/api/v1/login", json!({"passcode": PASSCODE}))
        .await;
    assert_eq!(status, 429, "the limit holds for the right passcode too");
}

#[tokio::test]
async fn non_loopback_needs_a_passcode_and_then_requires_keys() {
    let data = tempfile::tempdir().unwrap();
    let port = mcpr_e2e::harness::free_port();
    let output = Command::new(bin("mcpr"))
        .args([
            "up",
            "--host",
            "0.0.0.0",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("ADMIN_PASSCODE")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not a loopback address, without ADMIN_PASSCODE"),
        "{stderr}"
    );
    let output = Command::new(bin("mcpr-control-plane"))
        .args([
            "--http-listen",
            "0.0.0.0:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("ADMIN_PASSCODE")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());

    // With a passcode it starts, and MCP needs a key even before the first one exists.
    let router = Router::start_with(&["--host", "0.0.0.0"], &[("ADMIN_PASSCODE", PASSCODE)]).await;
    let refused = RawMcp::new(&router.mcp_url("/mcp")).try_initialize().await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let admin = router.api().with_token(&router.api().login(PASSCODE).await);
    let (key, _) = admin.create_key("remote", None).await;
    wait_initialize_status(
        &router.mcp_url("/mcp"),
        Some(&key),
        200,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn mcp_api_key_bootstraps_one_key_idempotently() {
    let key = "bootstrap-key-0123456789abcdef0123456789";
    let router = Router::start_with(&[], &[("MCP_API_KEY", key)]).await;
    let url = router.mcp_url("/mcp");
    let refused = RawMcp::new(&url).try_initialize().await;
    assert_eq!(refused.status, 401);
    RawMcp::with_key(&url, key).initialize().await;
    let (_, keys) = router.api().get("/api/v1/keys").await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["name"], "MCP_API_KEY");
    assert_eq!(keys[0]["scopes"], json!(["*"]));
    // Only the hash is stored.
    let data_dir = router.data_dir.clone();
    let (dir, guard) = router.stop();
    assert!(!db_bytes_contain(&data_dir, key.as_bytes()));
    let again = Router::start_in(dir, guard, &[], &[("MCP_API_KEY", key)]).await;
    let (_, keys) = again.api().get("/api/v1/keys").await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    RawMcp::with_key(&again.mcp_url("/mcp"), key)
        .initialize()
        .await;
}

/// A session on a transparent view once the gateway's snapshot shows the provider connected
/// (the API may say `running` a moment before the gateway knows).
async fn provider_session(url: &str) -> RawMcp {
    wait_for(
        "the provider through the gateway",
        Duration::from_secs(10),
        || async {
            let r = RawMcp::new(url).try_initialize().await;
            r.body.get("result").map(|_| ())
        },
    )
    .await;
    let mut raw = RawMcp::new(url);
    raw.initialize().await;
    raw
}

/// Whether `needle` occurs in the SQLite database files (main file and write-ahead log).
fn db_bytes_contain(data_dir: &std::path::Path, needle: &[u8]) -> bool {
    ["mcpr.db", "mcpr.db-wal"].iter().any(|file| {
        std::fs::read(data_dir.join(file))
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn server_secrets_are_encrypted_at_rest_and_still_reach_the_server() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("sec", &[]).await; // env FIXTURE_SECRET=s3cret-value
    api.add(json!({
        "name": "remote-sec",
        "runtime": {"kind": "remote", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer hdr-s3cret-value"}},
        "enabled": false,
    }))
    .await;
    api.wait_state("sec", "running").await;
    let mut raw = provider_session(&router.mcp_url("/mcp/p/sec")).await;
    let value = raw
        .call("get_env", json!({"name": "FIXTURE_SECRET"}))
        .await
        .unwrap();
    assert_eq!(tool_text(&value), "s3cret-value");
    let (_, shown) = api.get("/api/v1/servers/remote-sec").await;
    assert_eq!(shown["runtime"]["headers"]["Authorization"], "********");
    assert!(!shown.to_string().contains("hdr-s3cret"));
    let data_dir = router.data_dir.clone();
    let key_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(data_dir.join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(key_mode, 0o600);
    let (dir, guard) = router.stop();
    assert!(!db_bytes_contain(&data_dir, b"s3cret-value"));
    assert!(!db_bytes_contain(&data_dir, b"hdr-s3cret-value"));
    assert!(db_bytes_contain(&data_dir, b"enc:v1:"));
    // After a restart the secret still reaches the server; the log never shows it.
    let again = Router::start_in(dir, guard, &[], &[]).await;
    again.api().wait_state("sec", "running").await;
    let mut raw = provider_session(&again.mcp_url("/mcp/p/sec")).await;
    let value = raw
        .call("get_env", json!({"name": "FIXTURE_SECRET"}))
        .await
        .unwrap();
    assert_eq!(tool_text(&value), "s3cret-value");
    assert!(!again.proc.log().contains("s3cret-value"));
}

#[tokio::test]
async fn injection_strings_are_data_in_every_name_field() {
    let router = Router::start().await;
    let api = router.api();
    let evil = [
        "x'); DROP TABLE api_keys; --",
        "\" OR 1=1 --",
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
    ];
    for name in evil {
        // Key names are free text, stored and returned exactly.
        let (_, created) = api.create_key(name, None).await;
        assert_eq!(created["name"], name);
        // Server names and scopes are refused by validation, naming the field.
        let (status, body) = api
            .post(
                "/api/v1/servers",
                json!({"name": name, "runtime": {"kind": "process", "command": "true"}}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], "name");
        let (status, body) = api
            .post("/api/v1/keys", json!({"name": "k", "scopes": [name]}))
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], "scopes");
        // As a path segment: a clean 404, nothing revoked.
        let (status, _) = api
            .post(
                &format!("/api/v1/keys/{}/revoke", urlencode(name)),
                json!({}),
            )
            .await;
        assert!(status == 200 || status == 404, "{status}");
    }
    let (_, keys) = api.get("/api/v1/keys").await;
    let names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    for name in evil {
        assert!(names.contains(&name), "{names:?}");
    }
    let (status, servers) = api.get("/api/v1/servers").await;
    assert_eq!((status, servers), (200, json!([])));
    // The UI is static: nothing from the API is rendered into HTML by the server.
    let html = reqwest::get(router.url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("onerror"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let router = Router::start_with(
        &[],
        &[
            ("MCPR_RATE_LIMIT_KEY", "2/3"),
            ("MCPR_RATE_LIMIT_ADDRESS", "1000/1000"),
        ],
    )
    .await;
    let (key, _) = router.api().create_key("limited", None).await;
    let url = router.mcp_url("/mcp");
    wait_initialize_status(&url, None, 401, Duration::from_secs(5)).await;
    let client = RawMcp::with_key(&url, &key);
    let mut limited = None;
    for _ in 0..20 {
        let response = client.try_initialize().await;
        if response.status == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let limited = limited.expect("a 429 within 20 rapid requests at 2/s");
    assert!(limited.headers.contains_key("retry-after"));
    assert!(
        error_message(&limited.body).starts_with("rate limit exceeded for this API key"),
        "{}",
        limited.body
    );
    // The bucket refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.try_initialize().await.status, 200);

    // Per client address, before authentication.
    let router = Router::start_with(&[], &[("MCPR_RATE_LIMIT_ADDRESS", "1/2")]).await;
    let anon = RawMcp::new(&router.mcp_url("/mcp"));
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..4 {
            s.push(anon.try_initialize().await.status);
        }
        s
    };
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn revocation_reaches_every_gateway_of_a_cluster_within_a_second() {
    let mut cluster = Cluster::start(1, None).await;
    cluster.add_gateway();
    let api: Api = cluster.api();
    api.add_fixture("dist", &[]).await;
    api.wait_state("dist", "running").await;
    let (key, created) = api.create_key("cluster", Some(&["dist"])).await;
    for gateway in 0..2 {
        let url = cluster.mcp_url(gateway, "/mcp");
        wait_initialize_status(&url, None, 401, Duration::from_secs(10)).await;
        wait_initialize_status(&url, Some(&key), 200, Duration::from_secs(10)).await;
    }
    let start = Instant::now();
    let (status, _) = api
        .post(
            &format!("/api/v1/keys/{}/revoke", created["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    for gateway in 0..2 {
        let url = cluster.mcp_url(gateway, "/mcp");
        let (_, refused) =
            wait_initialize_status(&url, Some(&key), 401, Duration::from_secs(1)).await;
        assert!(error_message(&refused.body).starts_with("the API key was revoked"));
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
}

#[tokio::test]
async fn a_gateway_off_loopback_requires_keys_even_before_the_first_one() {
    let cluster = Cluster::start(0, None).await;
    let port = mcpr_e2e::harness::free_port();
    let mut command = Command::new(bin("mcpr-edge-gateway"));
    command.args([
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--control-plane",
        &format!("http://127.0.0.1:{}", cluster.grpc_port),
    ]);
    let _gateway = mcpr_e2e::harness::Proc::spawn("open-gateway", command);
    let url = format!("http://127.0.0.1:{port}/mcp");
    wait_for("the gateway to listen", Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    })
    .await;
    let (_, refused) = wait_initialize_status(&url, None, 401, Duration::from_secs(10)).await;
    assert!(error_message(&refused.body).starts_with("missing API key"));
    // The loopback gateway of the same cluster stays open while no key exists.
    RawMcp::new(&cluster.mcp_url(0, "/mcp")).initialize().await;
}

/// A request refused before its body was read (here, every byte of it still unsent) is
/// answered with `Connection: close`, and the connection is closed: hyper gives up on an
/// unread body, and a client that reused the connection for its retry with a token (the
/// Python SDK's OAuth flow under load) met a closed socket instead of an answer.
#[tokio::test]
async fn a_refusal_before_the_body_is_read_says_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let router = Router::start_with(&[], &[("MCP_API_KEY", "mcpr_the_only_key")]).await;
    let address = router.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 80\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the router closes the connection after its answer");
    read.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("missing api key"), "{answer}");
}
