//! Attacks on the HTTP surface: DNS rebinding, cross-site requests, secrets on edit, files at rest, outbound fetches.
//!
//! Each test makes the attack against a real `mcpr up` (open on loopback, the default
//! setup), asserts the exact refusal, and shows that a legitimate client gets through.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcpr_e2e::harness::{RawMcp, Router, bin, serve_files, tool_text};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that sends exactly the headers it is given (the test plays the browser).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `(status, JSON body)` of a request.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request to the router");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Runs `mcpr --url ROUTER ARGS…`; its output, once it succeeded.
fn mcpr(router: &Router, args: &[&str]) -> String {
    let output = Command::new(bin("mcpr"))
        .arg("--url")
        .arg(router.url())
        .args(args)
        .env_remove("MCPR_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "mcpr {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The request gets the API's 403 with `code` and `message`.
async fn assert_refused(request: reqwest::RequestBuilder, code: &str, message: &str) {
    assert_eq!(send(request).await, (403, api_error(code, message)));
}

/// The API's refusal body.
fn api_error(code: &str, message: &str) -> Value {
    json!({"error": {"status": 403, "code": code, "message": message}})
}

/// The MCP routes' refusal body (JSON-RPC, like every refusal of the transport).
fn rpc_error(message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": message}})
}

/// `/mcp` still answers a legitimate client.
async fn mcp_answers(router: &Router) {
    mcp_answers_with(RawMcp::new(&router.mcp_url("/mcp"))).await
}

/// With OAuth on, MCP needs a credential: an API key the admin made.
async fn mcp_answers_with_a_key(router: &Router) {
    let (key, _) = router.api().create_key("legitimate client", None).await;
    mcp_answers_with(RawMcp::with_key(&router.mcp_url("/mcp"), &key)).await
}

async fn mcp_answers_with(mut mcp: RawMcp) {
    let init = mcp.initialize().await;
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    let tools = mcp.request("tools/list", json!({})).await;
    assert!(tools["result"]["tools"].is_array(), "{tools}");
}

fn names(servers: &Value) -> Vec<String> {
    servers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The curl of issue 11: a page on a rebound name (`evil.com` → 127.0.0.1) registers a
/// server whose command the router would run. Refused on its Host; the Origin alone is
/// refused too; the same request from the router's own name goes through.
#[tokio::test]
async fn dns_rebinding_cannot_register_a_server() {
    let router = Router::start().await;
    let base = router.url();
    let port = router.port;
    let marker = std::env::temp_dir().join(format!("mcpr-pwned-{}-{port}", std::process::id()));
    let payload = json!({"name": "pwn", "runtime": {"kind": "process", "command": "/bin/sh",
        "args": ["-c", format!("id>{}", marker.display())]}});
    let evil_host = format!("evil.com:{port}");
    let evil_origin = format!("http://evil.com:{port}");
    assert_refused(
        client()
            .post(format!("{base}/api/v1/servers"))
            .header("host", &evil_host)
            .header("origin", &evil_origin)
            .header("content-type", "application/json")
            .body(payload.to_string()),
        "host_not_allowed",
        &format!("host \"evil.com:{port}\" is not allowed (set MCPR_ALLOWED_HOSTS)"),
    )
    .await;
    // The router's own Host with the rebound page's Origin: refused on the Origin.
    assert_refused(
        client()
            .post(format!("{base}/api/v1/servers"))
            .header("origin", &evil_origin)
            .json(&payload),
        "origin_not_allowed",
        &format!("origin \"http://evil.com:{port}\" is not allowed (set MCPR_ALLOWED_ORIGINS)"),
    )
    .await;
    let api = router.api();
    let (_, servers) = api.get("/api/v1/servers").await;
    assert_eq!(servers, json!([]), "nothing was registered");
    assert!(!marker.exists(), "{} was written", marker.display());

    // A legitimate client (the CLI's way: no Origin, the router's own name) registers one.
    let (status, created) = send(
        client()
            .post(format!("{base}/api/v1/servers"))
            .header("host", format!("localhost:{port}"))
            .json(&json!({"name": "legit", "runtime": {"kind": "process", "command": bin("mcpr-fixture-server"), "args": ["--name", "legit"]}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    api.wait_state("legit", "running").await;
    mcp_answers(&router).await;
    assert!(!marker.exists());
}

/// Cross-site `text/plain` POSTs (a form or a CORS-simple fetch needs no preflight) to the
/// body-less actions: refused with 403 whatever the page (here a loopback one, which the
/// Origin policy lets through), and without any content type at all too.
#[tokio::test]
async fn simple_cross_site_posts_cannot_disable_enable_or_restart() {
    let router = Router::start().await;
    let base = router.url();
    let api = router.api();
    api.add_fixture("victim", &[]).await;
    let running = api.wait_state("victim", "running").await;
    let restarts = running["status"]["restart_count"].clone();
    for verb in ["disable", "enable", "restart"] {
        let path = format!("/api/v1/servers/victim/{verb}");
        assert_refused(
            client()
                .post(format!("{base}{path}"))
                .header("origin", "http://localhost:3000")
                .header("content-type", "text/plain;charset=UTF-8")
                .body("x"),
            "content_type",
            &format!(
                "POST {path} needs content-type application/json, got \"text/plain;charset=UTF-8\" (cross-site request refused)"
            ),
        )
        .await;
        let (status, body) = send(client().post(format!("{base}{path}"))).await;
        assert_eq!(status, 403, "{verb}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!(
                "POST {path} needs content-type application/json, got none (cross-site request refused)"
            )
        );
    }
    let server = api.server("victim").await;
    assert_eq!(server["enabled"], true);
    assert_eq!(server["status"]["state"], "running");
    assert_eq!(server["status"]["restart_count"], restarts);
    // The CLI's way (the JSON content type, no body) works.
    let (status, body) = send(
        client()
            .post(format!("{base}/api/v1/servers/victim/disable"))
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(false)), "{body}");
    mcpr(&router, &["server", "enable", "victim"]);
    api.wait_state("victim", "running").await;
    mcp_answers(&router).await;
}

/// The first API key locks every keyless client out, so creating one is an attack of its
/// own: from another site (Origin), as a simple request (form-encoded, text/plain), refused;
/// the keyless client keeps working, and the admin's own request creates the key.
#[tokio::test]
async fn cross_site_requests_cannot_create_an_api_key() {
    let router = Router::start().await;
    let base = router.url();
    let port = router.port;
    let keys = format!("{base}/api/v1/keys");
    assert_refused(
        client()
            .post(&keys)
            .header("origin", "https://evil.example")
            .json(&json!({"name": "lockout"})),
        "origin_not_allowed",
        "origin \"https://evil.example\" is not allowed (set MCPR_ALLOWED_ORIGINS)",
    )
    .await;
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let (status, body) = send(
            client()
                .post(&keys)
                .header("origin", format!("http://127.0.0.1:{port}"))
                .header("content-type", content_type)
                .body(r#"{"name": "lockout"}"#),
        )
        .await;
        assert_eq!(status, 403, "{content_type}: {body}");
        assert_eq!(body["error"]["code"], "content_type", "{body}");
    }
    let (_, listed) = router.api().get("/api/v1/keys").await;
    assert_eq!(listed, json!([]));
    mcp_answers(&router).await;
    let (key, _) = router.api().create_key("admin's own", None).await;
    assert!(key.starts_with("mcpr_"), "{key}");
}

/// A rebound name cannot read anything either: the UI, the API, OAuth, the metadata
/// documents and MCP all answer 403 to a Host the listener is not known by.
#[tokio::test]
async fn a_rebound_host_reads_nothing_on_any_route() {
    let router = Router::start_with(&[], &[("MCP_OAUTH_ENABLED", "true")]).await;
    let base = router.url();
    let port = router.port;
    let evil = format!("evil.com:{port}");
    let refused = format!("host \"{evil}\" is not allowed (set MCPR_ALLOWED_HOSTS)");
    for path in [
        "/",
        "/ui/app.js",
        "/api/v1/servers",
        "/api/v1/session",
        "/api/v1/no-such-route",
        "/oauth/jwks",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, body) =
            send(client().get(format!("{base}{path}")).header("host", &evil)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body, api_error("host_not_allowed", &refused), "{path}");
        let (status, _) = send(client().get(format!("{base}{path}"))).await;
        assert_ne!(status, 403, "{path} with the router's own Host");
    }
    let (status, body) = send(
        client()
            .post(format!("{base}/oauth/register"))
            .header("host", &evil)
            .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"]})),
    )
    .await;
    assert_eq!(
        (status, body),
        (403, api_error("host_not_allowed", &refused))
    );
    for (method, path) in [
        (reqwest::Method::GET, "/mcp"),
        (reqwest::Method::GET, "/mcp/all"),
        (reqwest::Method::DELETE, "/mcp"),
        (
            reqwest::Method::GET,
            "/.well-known/oauth-protected-resource/mcp",
        ),
    ] {
        let (status, body) = send(
            client()
                .request(method.clone(), format!("{base}{path}"))
                .header("host", &evil)
                .header("accept", "text/event-stream")
                .header("mcp-session-id", "x"),
        )
        .await;
        assert_eq!(
            (status, body),
            (403, rpc_error(&refused)),
            "{method} {path}"
        );
    }
    let (status, page) = send(client().get(format!("{base}/"))).await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("MCP Router"), "{page}");
    let (status, servers) = send(
        client()
            .get(format!("{base}/api/v1/servers"))
            .header("host", format!("localhost:{port}")),
    )
    .await;
    assert_eq!((status, servers), (200, json!([])));
    mcp_answers_with_a_key(&router).await;
}

/// Without ADMIN_PASSCODE there is no login, yet a browser's writes need the CSRF token
/// that only a page of the router's own origin can read (`GET /api/v1/session`). Scripts
/// and the CLI, which send no cookie and no Origin, are not asked for it.
#[tokio::test]
async fn browser_writes_need_the_csrf_token_on_an_open_instance() {
    let router = Router::start().await;
    let base = router.url();
    let own_origin = format!("http://127.0.0.1:{}", router.port);
    let body = json!({"name": "from-ui", "runtime": {"kind": "process", "command": "/bin/false"}, "enabled": false});
    let refused = api_error(
        "csrf",
        "missing or wrong X-CSRF-Token header (cross-site request refused)",
    );
    let post = || client().post(format!("{base}/api/v1/servers")).json(&body);
    assert_eq!(
        send(post().header("origin", &own_origin)).await,
        (403, refused.clone())
    );
    assert_eq!(
        send(post().header("cookie", "mcpr_session=mcpra_stale")).await,
        (403, refused.clone())
    );
    assert_eq!(
        send(post().header("sec-fetch-site", "same-site")).await,
        (403, refused.clone())
    );
    assert_eq!(
        send(
            post()
                .header("origin", &own_origin)
                .header("x-csrf-token", "guess")
        )
        .await,
        (403, refused)
    );
    let (status, session) = router.api().get("/api/v1/session").await;
    assert_eq!(status, 200);
    assert_eq!(session["auth"], false);
    let csrf = session["csrf"].as_str().expect("a CSRF token").to_owned();
    let (status, created) = send(
        post()
            .header("origin", &own_origin)
            .header("x-csrf-token", &csrf),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (_, servers) = router.api().get("/api/v1/servers").await;
    assert_eq!(names(&servers), ["from-ui"]);
    router.api().add_fixture("script", &[]).await;
    mcp_answers(&router).await;
}

/// `GET` shows secrets as `********`; sending that back (`PATCH` with the same runtime)
/// means "unchanged", through the API and through `mcpr server update`. A placeholder with
/// nothing stored behind it is refused. The web UI has no edit form (it adds, enables,
/// disables, restarts and deletes), so it cannot write a placeholder back.
#[tokio::test]
async fn a_server_read_and_written_back_keeps_its_secrets() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("sec", &[]).await; // env FIXTURE_SECRET=s3cret-value
    api.wait_state("sec", "running").await;
    let shown = api.server("sec").await;
    assert_eq!(shown["runtime"]["env"]["FIXTURE_SECRET"], "********");

    let mut runtime = shown["runtime"].clone();
    runtime["env"]["ADDED"] = json!("added-value");
    let (status, patched) = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/servers/sec",
            Some(json!({"description": "edited", "runtime": runtime})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["runtime"]["env"]["FIXTURE_SECRET"], "********");
    let mut generation = 0;
    assert_eq!(
        fresh_env(&router, &mut generation, &["FIXTURE_SECRET", "ADDED"]).await,
        ["s3cret-value", "added-value"]
    );

    // The CLI reads the server and writes its runtime back with one variable changed.
    let said = mcpr(
        &router,
        &["server", "update", "sec", "--env", "ADDED=from-cli"],
    );
    assert!(said.starts_with("updated server \"sec\""), "{said}");
    assert_eq!(
        fresh_env(&router, &mut generation, &["FIXTURE_SECRET", "ADDED"]).await,
        ["s3cret-value", "from-cli"]
    );

    // A placeholder for a variable that has no stored value: refused, nothing changes.
    let mut runtime = shown["runtime"].clone();
    runtime["env"]["NEVER_SET"] = json!("********");
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/servers/sec",
            Some(json!({"runtime": runtime})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "runtime.env.NEVER_SET");
    assert_eq!(
        body["error"]["message"],
        "runtime.env.NEVER_SET: is the redacted placeholder \"********\" and no value is stored under this name: send the real value"
    );
    // Nor does a new server take a placeholder copied from another one.
    let (status, body) = api
        .post(
            "/api/v1/servers",
            json!({"name": "copy", "runtime": shown["runtime"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "runtime.env.FIXTURE_SECRET");
    assert_eq!(
        fresh_env(&router, &mut generation, &["FIXTURE_SECRET"]).await,
        ["s3cret-value"]
    );
}

/// The values of `names` in the environment of a process of `sec` started after this call
/// from what is stored: it is restarted first (`generation` counts the restarts).
async fn fresh_env(router: &Router, generation: &mut u64, names: &[&str]) -> Vec<String> {
    let api = router.api();
    let (status, body) = api
        .call(reqwest::Method::POST, "/api/v1/servers/sec/restart", None)
        .await;
    assert_eq!(status, 202, "{body}");
    *generation += 1;
    let wanted = *generation;
    api.wait_until("sec", &format!("running restart {wanted}"), |s| {
        s["status"]["state"] == "running" && s["status"]["restart_generation"] == wanted
    })
    .await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp/p/sec"));
    mcp.initialize().await;
    let mut values = Vec::new();
    for name in names {
        values.push(tool_text(
            &mcp.call("get_env", json!({"name": name})).await.unwrap(),
        ));
    }
    values
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The directory is 0700, the database, its WAL files and the keys 0600.
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for file in [
        "mcpr.db",
        "mcpr.db-wal",
        "mcpr.db-shm",
        "master.key",
        "session.key",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}

/// The database, its WAL files and the keys are the owner's alone: a new data directory is
/// made 0700 with 0600 files, and one an earlier version left 0755/0644 is tightened at
/// start (and the log says so).
#[tokio::test]
async fn the_data_directory_is_private() {
    let root = tempfile::tempdir().unwrap();
    let fresh = root.path().join("new/data");
    let router = Router::start_in(fresh.clone(), None, &[], &[]).await;
    router.api().add_fixture("one", &[]).await;
    assert_private(&fresh);
    drop(router);

    let old = root.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for (file, contents) in [
        ("mcpr.db", ""),
        ("session.key", "an old session key of 32 bytes or more"),
    ] {
        std::fs::write(old.join(file), contents).unwrap();
        std::fs::set_permissions(old.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let router = Router::start_in(old.clone(), None, &[], &[]).await;
    router.api().add_fixture("two", &[]).await;
    assert_private(&old);
    let log = router.proc.log();
    for (path, was) in [
        (old.clone(), "0755"),
        (old.join("mcpr.db"), "0644"),
        (old.join("session.key"), "0644"),
    ] {
        let path = path.display().to_string();
        assert!(
            log.lines().any(
                |l| l.contains("tightened the permissions of the data directory")
                    && l.contains(&format!("{path} "))
                    && l.contains(was)
            ),
            "no tightening of {path} logged:\n{log}"
        );
    }
    mcp_answers(&router).await;
}

/// A tiny HTTP server on `127.0.0.2` that answers every request with a redirect to
/// `location`; counts the requests.
async fn redirector(location: String) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let location = location.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, hits)
}

/// The consent page's answer for a client whose `client_id` is a metadata document URL.
async fn authorize_page(base: &str, client_id: &str) -> (u16, String) {
    let response = client()
        .get(format!("{base}/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Anyone may name a URL as `client_id`, which the router then fetches: not from loopback
/// (by address, by a name that resolves there, or by a redirect there), unless the
/// development switch allows it, and then the document is fetched and used.
#[tokio::test]
async fn oauth_client_metadata_is_not_fetched_from_private_addresses() {
    let docs = tempfile::tempdir().unwrap();
    let port = mcpr_e2e::harness::free_port();
    let client_id = format!("http://127.0.0.1:{port}/client.json");
    std::fs::write(
        docs.path().join("client.json"),
        json!({"client_id": client_id, "client_name": "Loopback Doc Client", "redirect_uris": ["http://127.0.0.1:9/callback"]}).to_string(),
    )
    .unwrap();
    let documents = serve_files(docs.path(), port).await;
    let fetched = || documents.log().matches("GET /client.json").count();
    let (redirect_port, redirected) = redirector(client_id.clone()).await;
    let via_redirect = format!("http://127.0.0.2:{redirect_port}/client.json");

    let oauth = [
        ("MCP_OAUTH_ENABLED", "true"),
        ("OAUTH_ALLOW_HTTP_CLIENT_METADATA", "true"),
        // The redirector's address is allowed; where it points is not.
        ("MCPR_OAUTH_ALLOW_PRIVATE_FETCH", "127.0.0.2"),
    ];
    let router = Router::start_with(&[], &oauth).await;
    let base = router.url();
    let loopback_refused = "127.0.0.1 is a loopback address, which the router does not fetch client metadata from (MCPR_OAUTH_ALLOW_PRIVATE_FETCH=1 allows it for development)";
    let (status, page) = authorize_page(&base, &client_id).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains(&format!(
            "client metadata document &quot;{client_id}&quot;: {loopback_refused}"
        )) || page.contains(&format!(
            "client metadata document \"{client_id}\": {loopback_refused}"
        )),
        "{page}"
    );
    let (status, page) =
        authorize_page(&base, &format!("https://localhost:{port}/client.json")).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("localhost resolves to no address the router may fetch from")
            && page.contains(loopback_refused),
        "{page}"
    );
    let (status, page) = authorize_page(&base, &via_redirect).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains(&format!(
            "redirect to {client_id} refused: {loopback_refused}"
        )),
        "{page}"
    );
    assert_eq!(
        redirected.load(Ordering::SeqCst),
        1,
        "the redirector was asked once"
    );
    assert_eq!(
        fetched(),
        0,
        "the loopback document server was never reached"
    );
    mcp_answers_with_a_key(&router).await;

    // With the development switch the same document is fetched and names the client.
    let switch = [
        ("MCP_OAUTH_ENABLED", "true"),
        ("OAUTH_ALLOW_HTTP_CLIENT_METADATA", "true"),
        ("MCPR_OAUTH_ALLOW_PRIVATE_FETCH", "1"),
    ];
    let development = Router::start_with(&[], &switch).await;
    let (status, page) = authorize_page(&development.url(), &client_id).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Loopback Doc Client"), "{page}");
    assert_eq!(fetched(), 1);
    assert!(
        development
            .proc
            .log()
            .contains("MCPR_OAUTH_ALLOW_PRIVATE_FETCH is set")
    );
}
