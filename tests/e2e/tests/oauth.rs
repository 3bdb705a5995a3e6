//! OAuth 2.1 (issue 5, items 3-4) against the real router: the built-in authorization server
//! (`MCP_OAUTH_ENABLED=true`) driven the way a client and a browser would drive it (the test
//! plays the admin on the consent page), the gateway as the resource server, the official
//! conformance suite's authorization-server scenarios, the official Python SDK's OAuth
//! client, and an external identity provider. Every refusal is asserted exactly.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use mcpr_e2e::harness::{
    Proc, RawMcp, Router, python, run_python, serve_files, tool_text, wait_for,
    wait_initialize_status, workspace_root,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// GETs `url` and reads its JSON body.
async fn get_json(url: impl reqwest::IntoUrl) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

const PASSCODE: &str = "correct horse battery staple";

fn oauth_env() -> Vec<(&'static str, &'static str)> {
    vec![("MCP_OAUTH_ENABLED", "true"), ("ADMIN_PASSCODE", PASSCODE)]
}

/// A browser that does not follow redirects (the test reads `Location` itself).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(
        uuid_bytes()
            .into_iter()
            .chain(uuid_bytes())
            .collect::<Vec<u8>>(),
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn uuid_bytes() -> Vec<u8> {
    Sha256::digest(format!("{:?}{}", std::time::Instant::now(), std::process::id()).as_bytes())
        .to_vec()
}

/// The value of `name` in a URL's query.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Owned query pairs as the borrowed pairs the helpers take.
fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A hidden form field of the consent page.
fn form_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The admin logged in to the web UI: the session cookie and its CSRF token.
struct Admin {
    cookie: String,
    csrf: String,
}

async fn admin_login(base: &str) -> Admin {
    let response = browser()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"passcode": PASSCODE, "cookie": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    Admin {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

async fn register(base: &str, body: Value) -> (u16, Value) {
    let response = browser()
        .post(format!("{base}/oauth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// GET the authorization endpoint as the admin's browser: (status, Location, body).
async fn authorize(
    base: &str,
    admin: Option<&Admin>,
    params: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let mut request = browser()
        .get(format!("{base}/oauth/authorize"))
        .query(params);
    if let Some(admin) = admin {
        request = request.header("cookie", &admin.cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap())
}

/// Submits the consent form; returns the redirect (`Location`) or the error page.
async fn decide(
    base: &str,
    admin: Option<&Admin>,
    form: &[(&str, &str)],
) -> Result<String, String> {
    let mut request = browser().post(format!("{base}/oauth/authorize")).form(form);
    if let Some(admin) = admin {
        request = request.header("cookie", &admin.cookie);
    }
    let response = request.send().await.unwrap();
    match response.headers().get("location") {
        Some(l) => Ok(l.to_str().unwrap().to_owned()),
        None => Err(response.text().await.unwrap()),
    }
}

/// Shows the consent page for `params` and approves it (granting `scope` when given).
async fn approve(
    base: &str,
    admin: Option<&Admin>,
    params: &[(&str, &str)],
    scope: Option<&str>,
) -> String {
    let (status, _, page) = authorize(base, admin, params).await;
    assert_eq!(status, 200, "{page}");
    let request_id = form_field(&page, "request_id");
    let csrf = form_field(&page, "csrf");
    let mut form = vec![
        ("request_id", request_id.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    decide(base, admin, &form)
        .await
        .expect("approval redirects")
}

async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = browser()
        .post(format!("{base}/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["cache-control"], "no-store");
    (status, response.json().await.unwrap())
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A public client registered with `scope` (or none), and a full authorization as the
/// admin: the token response.
async fn authorized_tokens(
    base: &str,
    admin: Option<&Admin>,
    client_scope: Option<&str>,
    ask: Option<&str>,
) -> (String, Value) {
    let mut body = json!({"client_name": "e2e client", "redirect_uris": [REDIRECT]});
    if let Some(scope) = client_scope {
        body["scope"] = json!(scope);
    }
    let (status, client) = register(base, body).await;
    assert_eq!(status, 201, "{client}");
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("state", "st4te"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(ask) = ask {
        params.push(("scope", ask));
    }
    let location = approve(base, admin, &params, None).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st4te"));
    let code = query_param(&location, "code").expect("a code");
    let (status, tokens) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    (client_id, tokens)
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header_of(jwt: &str) -> Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

fn error_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `initialize` with `token`; asserts a 401 whose message starts with `problem` and whose
/// challenge says `invalid_token` and points at the resource metadata.
async fn assert_token_refused(url: &str, token: &str, problem: &str) {
    let r = RawMcp::with_key(url, token).try_initialize().await;
    assert_eq!(r.status, 401, "{}", r.body);
    let message = error_message(&r.body);
    assert!(
        message.starts_with(&format!("invalid token: {problem}")),
        "{message}"
    );
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("resource_metadata=\""), "{challenge}");
}

#[tokio::test]
async fn oauth_flow_through_the_gateway_with_exact_refusals() {
    let router = Router::start_with(&[], &oauth_env()).await;
    let base = router.url();
    let api = router.api().with_token(&router.api().login(PASSCODE).await);
    api.add_fixture("alpha", &[]).await;
    api.add_fixture("beta", &[]).await;
    api.wait_state("alpha", "running").await;
    api.wait_state("beta", "running").await;
    let mcp = router.mcp_url("/mcp");

    // Discovery: 401 with the challenge, then RFC 9728 and RFC 8414 metadata.
    let r = RawMcp::new(&mcp).try_initialize().await;
    assert_eq!(r.status, 401);
    assert!(
        error_message(&r.body).starts_with("missing credentials"),
        "{}",
        r.body
    );
    let prm_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        r.headers["www-authenticate"],
        format!("Bearer realm=\"mcp-router\", resource_metadata=\"{prm_url}\"").as_str()
    );
    let prm: Value = get_json(&prm_url).await;
    assert_eq!(prm["resource"], mcp);
    assert_eq!(prm["authorization_servers"], json!([base]));
    let root_prm: Value = get_json(format!("{base}/.well-known/oauth-protected-resource")).await;
    assert_eq!(root_prm, prm);
    let meta: Value = get_json(format!("{base}/.well-known/oauth-authorization-server")).await;
    assert_eq!(meta["issuer"], base);
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["token_endpoint"], format!("{base}/oauth/token"));

    // The consent page is behind the admin login.
    let (status, client) = register(
        &base,
        json!({"client_name": "<b>Evil & Co</b>", "redirect_uris": [REDIRECT], "scope": "alpha"}),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("state", "xyz"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("scope", "alpha"),
    ];
    let (status, _, page) = authorize(&base, None, &params).await;
    assert_eq!(status, 401);
    assert!(page.contains("Log in to approve"), "{page}");
    let admin = admin_login(&base).await;
    let (status, _, page) = authorize(&base, Some(&admin), &params).await;
    assert_eq!(status, 200);
    // Client, redirect URI and scopes are shown, escaped.
    assert!(
        page.contains("&lt;b&gt;Evil &amp; Co&lt;/b&gt;") && !page.contains("<b>Evil"),
        "{page}"
    );
    assert!(
        page.contains(REDIRECT) && page.contains(&client_id) && page.contains("<code>alpha</code>"),
        "{page}"
    );
    let request_id = form_field(&page, "request_id");
    // A forged decision (wrong CSRF token) is refused and burns the request.
    let forged = decide(
        &base,
        Some(&admin),
        &[
            ("request_id", &request_id),
            ("csrf", "forged"),
            ("decision", "approve"),
        ],
    )
    .await;
    assert!(forged.unwrap_err().contains("missing or wrong CSRF token"));
    let again = decide(
        &base,
        Some(&admin),
        &[
            ("request_id", &request_id),
            ("csrf", &admin.csrf),
            ("decision", "approve"),
        ],
    )
    .await;
    assert!(
        again
            .unwrap_err()
            .contains("unknown, was already decided or expired")
    );
    // Scope escalation by the client: more than it registered.
    let (status, location, _) = authorize(
        &base,
        Some(&admin),
        &[
            params[0],
            params[1],
            params[2],
            params[3],
            params[4],
            params[5],
            ("scope", "*"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_scope"),
        "{location}"
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    // Scope escalation on the consent form: the admin may only narrow.
    let (_, _, page) = authorize(&base, Some(&admin), &params).await;
    let widened = decide(
        &base,
        Some(&admin),
        &[
            ("request_id", &form_field(&page, "request_id")),
            ("csrf", &form_field(&page, "csrf")),
            ("decision", "approve"),
            ("scope", "alpha beta"),
        ],
    )
    .await;
    assert!(
        widened
            .unwrap_err()
            .contains("must be a non-empty subset of the requested")
    );
    // Denied: back to the client with access_denied.
    let (_, _, page) = authorize(&base, Some(&admin), &params).await;
    let denied = decide(
        &base,
        Some(&admin),
        &[
            ("request_id", &form_field(&page, "request_id")),
            ("csrf", &form_field(&page, "csrf")),
            ("decision", "deny"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        query_param(&denied, "error").as_deref(),
        Some("access_denied")
    );

    // Redirect URI mismatch and open-redirect attempts: an error page, never a redirect.
    for evil in [
        "https://evil.example/callback",
        "http://127.0.0.1:9/callback/../x",
        "http://127.0.0.1:9/callbackx",
    ] {
        let (status, location, page) = authorize(
            &base,
            Some(&admin),
            &[
                params[0],
                params[1],
                ("redirect_uri", evil),
                params[3],
                params[4],
                params[5],
            ],
        )
        .await;
        assert_eq!((status, location), (400, None), "{evil}");
        assert!(
            page.contains("is not registered for this client (exact match required)"),
            "{page}"
        );
    }
    let (status, body) =
        register(&base, json!({"redirect_uris": ["http://evil.example/cb"]})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_redirect_uri"))
    );
    let (status, _, page) = authorize(
        &base,
        Some(&admin),
        &[params[0], ("client_id", "nobody"), params[2]],
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown client_id"), "{page}");
    // PKCE: S256 only.
    let (_, location, _) = authorize(
        &base,
        Some(&admin),
        &[
            params[0],
            params[1],
            params[2],
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "plain"),
        ],
    )
    .await;
    assert_eq!(
        query_param(&location.unwrap(), "error").as_deref(),
        Some("invalid_request")
    );

    // The real flow.
    let location = approve(&base, Some(&admin), &params, None).await;
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(base.as_str())
    );
    let code = query_param(&location, "code").unwrap();
    // PKCE mismatch and redirect mismatch burn nothing but are refused... the code is single
    // use, so they get their own codes.
    let (other_verifier, _) = pkce();
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &other_verifier),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("PKCE verification failed"),
        "{body}"
    );
    let code = query_param(&approve(&base, Some(&admin), &params, None).await, "code").unwrap();
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (
            400,
            Some("redirect_uri does not match the one of the authorization request")
        )
    );
    let code = query_param(&approve(&base, Some(&admin), &params, None).await, "code").unwrap();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let (status, tokens) = token(&base, &exchange).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "alpha");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let c = claims(&access);
    assert_eq!(
        (
            c["iss"].as_str(),
            c["aud"].as_str(),
            c["client_id"].as_str()
        ),
        (
            Some(base.as_str()),
            Some(mcp.as_str()),
            Some(client_id.as_str())
        )
    );
    assert_eq!(header_of(&access)["alg"], "ES256");
    // Code replay.
    let (status, body) = token(&base, &exchange).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("the code is unknown, already used or expired"))
    );

    // The token works through the gateway, within its scopes.
    let mut alpha = RawMcp::with_key(&router.mcp_url("/mcp/p/alpha"), &access);
    alpha.initialize().await;
    assert_eq!(
        tool_text(&alpha.call("whoami", json!({})).await.unwrap()),
        "alpha"
    );
    let beta = RawMcp::with_key(&router.mcp_url("/mcp/p/beta"), &access)
        .try_initialize()
        .await;
    assert_eq!(beta.status, 403);
    assert_eq!(
        beta.headers["www-authenticate"],
        format!("Bearer realm=\"mcp-router\", error=\"insufficient_scope\", scope=\"beta\", resource_metadata=\"{prm_url}\"").as_str()
    );
    assert!(
        error_message(&beta.body).contains("may not use provider \"beta\""),
        "{}",
        beta.body
    );
    let mut all = RawMcp::with_key(&router.mcp_url("/mcp"), &access);
    all.initialize().await;
    let refused = all
        .call("call_tool", json!({"provider": "beta", "tool": "whoami"}))
        .await;
    let refused = format!("{refused:?}");
    assert!(
        refused.contains("may not use") && refused.contains("beta"),
        "{refused}"
    );
    // On the flat view a refused call gets the same challenge, naming the scope that would
    // grant it (the authorization spec's step-up), for legacy and modern requests alike.
    let challenge = format!(
        "Bearer realm=\"mcp-router\", error=\"insufficient_scope\", scope=\"beta/whoami\", resource_metadata=\"{prm_url}\""
    );
    let call = |meta: Value| {
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "beta__whoami", "arguments": {}, "_meta": meta}})
            .to_string()
    };
    let mut flat = RawMcp::with_key(&router.mcp_url("/mcp/all"), &access);
    flat.initialize().await;
    let legacy = flat.post_bytes(call(json!({}))).await;
    let bearer = format!("Bearer {access}");
    let modern = RawMcp::with_headers(
        &router.mcp_url("/mcp/all"),
        &[
            ("authorization", bearer.as_str()),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "beta__whoami"),
        ],
    )
    .post_bytes(call(json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    })))
    .await;
    for refused in [legacy, modern] {
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.headers["www-authenticate"], challenge.as_str());
        assert_eq!(refused.body["error"]["data"]["scope"], "beta/whoami");
        assert!(
            error_message(&refused.body).contains("may not use tool \"whoami\""),
            "{}",
            refused.body
        );
    }

    // Forged tokens.
    let [h, p, s]: [&str; 3] = access.split('.').collect::<Vec<_>>().try_into().unwrap();
    let mut widened_claims = claims(&access);
    widened_claims["scope"] = json!("*");
    let widened_payload = URL_SAFE_NO_PAD.encode(widened_claims.to_string());
    assert_token_refused(
        &mcp,
        &format!("{h}.{widened_payload}.{s}"),
        "token signature is invalid",
    )
    .await;
    let mut sig = URL_SAFE_NO_PAD.decode(s).unwrap();
    sig[10] ^= 1;
    assert_token_refused(
        &mcp,
        &format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(&sig)),
        "token signature is invalid",
    )
    .await;
    let none = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string());
    assert_token_refused(
        &mcp,
        &format!("{none}.{widened_payload}."),
        "token algorithm \"none\" is not accepted",
    )
    .await;
    // HS256 "signed" with the public key (the JWKS document) as the HMAC secret.
    let jwks = reqwest::get(format!("{base}/oauth/jwks"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hs = URL_SAFE_NO_PAD
        .encode(json!({"alg": "HS256", "kid": header_of(&access)["kid"]}).to_string());
    for secret in [
        jwks.as_bytes().to_vec(),
        serde_json::from_str::<Value>(&jwks).unwrap()["keys"][0]
            .to_string()
            .into_bytes(),
    ] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(format!("{hs}.{widened_payload}").as_bytes());
        let forged = format!(
            "{hs}.{widened_payload}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_token_refused(&mcp, &forged, "token algorithm \"HS256\" is not accepted").await;
    }

    // Refresh: rotation, narrowing, escalation, reuse revokes the family.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
            ("scope", "alpha beta"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    // The refused escalation did not spend the token.
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("alpha")),
        "{body}"
    );

    let (_, tokens) = authorized_tokens(&base, Some(&admin), None, Some("alpha/whoami")).await;
    let cid = claims(tokens["access_token"].as_str().unwrap())["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("client_id", &cid),
        ],
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["scope"], "alpha/whoami");
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first);
    let mut narrow = RawMcp::with_key(
        &router.mcp_url("/mcp/p/alpha"),
        second["access_token"].as_str().unwrap(),
    );
    narrow.initialize().await;
    assert_eq!(
        tool_text(&narrow.call("whoami", json!({})).await.unwrap()),
        "alpha"
    );
    // Another tool of the provider: 403 with the challenge naming the tool's scope.
    let echo = narrow
        .post_bytes(
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}})
                .to_string(),
        )
        .await;
    assert_eq!(echo.status, 403, "{}", echo.body);
    assert!(
        echo.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\", scope=\"alpha/echo\""),
        "{:?}",
        echo.headers
    );
    assert!(
        error_message(&echo.body).contains("may not use tool \"echo\" of provider \"alpha\""),
        "{}",
        echo.body
    );
    // Reuse of the first refresh token: refused, and its family (the second one too) revoked.
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("client_id", &cid),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("refresh token reuse detected"),
        "{body}"
    );
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &second_refresh),
            ("client_id", &cid),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("the refresh token was revoked"))
    );
    // Another client cannot use someone's refresh token.
    let (_, tokens) = authorized_tokens(&base, Some(&admin), None, None).await;
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("the refresh token was issued to another client"))
    );
    // API keys keep working beside tokens.
    let (key, _) = api.create_key("k", None).await;
    wait_initialize_status(&mcp, Some(&key), 200, Duration::from_secs(5)).await;
}

/// The official conformance suite's authorization-server scenarios (metadata endpoint,
/// authorization code grant) against the built-in server of the real router. The suite acts
/// as the client and waits for a browser to complete the authorization: the test is that
/// browser, logging in as the admin and approving on the consent page.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_authorization_server_scenarios() {
    let suite = std::env::var_os("CONFORMANCE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/tools/conformance"));
    if !suite.exists() {
        assert!(
            !std::env::var("MCPR_REQUIRE_ALL").is_ok_and(|v| v == "1"),
            "MCPR_REQUIRE_ALL=1 but the conformance suite is missing at {}",
            suite.display()
        );
        eprintln!(
            "\n!!! SKIPPING conformance authorization test: {} is missing !!!\n",
            suite.display()
        );
        return;
    }
    let router = Router::start_with(&[], &oauth_env()).await;
    let base = router.url();
    let port = mcpr_e2e::harness::free_port();
    let callback = format!("http://127.0.0.1:{port}/callback");
    let (status, client) = register(
        &base,
        json!({"client_name": "conformance suite", "redirect_uris": [callback]}),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    let client_id = client["client_id"].as_str().unwrap();
    let mut suite_proc = tokio::process::Command::new("flock")
        .arg("/tmp/mcpr-conformance-setup.lock")
        .arg(&suite)
        .args(["authorization", "--url", &base, "--client-id", client_id])
        .args([
            "--resource",
            &router.mcp_url("/mcp"),
            "--port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the conformance suite");
    let mut lines = BufReader::new(suite_proc.stdout.take().unwrap()).lines();
    let mut output = String::new();
    // The suite prints the authorization URL for a browser, then waits for the callback.
    let prefix = format!("{base}/oauth/authorize?");
    let authorization_url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            output.push_str(&line);
            output.push('\n');
            if line.starts_with(&prefix) {
                return line;
            }
        }
        panic!("the suite ended without an authorization URL:\n{output}");
    })
    .await
    .expect("no authorization URL from the suite within 120 s");
    let params: Vec<(String, String)> = authorization_url
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), percent_decode(v))
        })
        .collect();
    let params: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let admin = admin_login(&base).await;
    let location = approve(&base, Some(&admin), &params, None).await;
    assert!(location.starts_with(&callback), "{location}");
    let answer = reqwest::get(&location).await.unwrap();
    assert_eq!(answer.status(), 200);
    while let Some(line) = lines.next_line().await.unwrap() {
        output.push_str(&line);
        output.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(60), suite_proc.wait())
        .await
        .expect("the suite did not finish")
        .unwrap();
    assert!(
        status.success(),
        "conformance authorization scenarios failed:\n{output}"
    );
    for scenario in [
        "authorization-server-metadata-endpoint",
        "authorization-code-grant",
    ] {
        assert!(
            output.contains(&format!("=== Running scenario: {scenario} ===")),
            "{output}"
        );
    }
    assert!(output.contains("Total: 3 passed, 0 failed"), "{output}");
    eprintln!("{output}");
}

/// The official Python SDK's OAuth client (`mcp.client.auth.OAuthClientProvider`) completes
/// the whole flow against the gateway by itself; the script plays the admin on the consent
/// page (`tests/python/oauth_sdk.py`), then calls a tool, twice (the second time with the
/// stored tokens, no second consent).
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_oauth_client_completes_the_flow() {
    if python().is_none() {
        return;
    }
    let router = Router::start_with(&[], &oauth_env()).await;
    let api = router.api().with_token(&router.api().login(PASSCODE).await);
    api.add_fixture("alpha", &[]).await;
    api.wait_state("alpha", "running").await;
    let out = run_python("oauth_sdk.py", &[&router.url(), PASSCODE, "alpha"])
        .await
        .unwrap();
    let v: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["whoami"], json!(["alpha", "alpha"]), "{v}");
    assert_eq!(
        v["consents"],
        json!([{"shows_redirect_uri": true, "shows_client_name": true, "scope": "*", "csrf_is_the_session_csrf": true}]),
        "{v}"
    );
    let base = router.url();
    assert_eq!(
        v["token"],
        json!({"iss": base, "aud": router.mcp_url("/mcp"), "scope": "*", "client_id": v["client_id"], "has_refresh_token": true}),
        "{v}"
    );
    assert_eq!(v["sdk"]["warnings"], json!([]), "{v}");
}

/// Signing keys survive a restart (a token from before still has a valid signature), and
/// the gateway checks the audience and the expiry of such a token: on the same data
/// directory, the first run issues tokens for another resource, the second for this one
/// with a one-second lifetime.
#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_survive_restarts_and_audience_and_expiry_are_checked() {
    let issuer = ("OAUTH_ISSUER", "http://issuer.test");
    let first = Router::start_with(
        &[],
        &[
            ("MCP_OAUTH_ENABLED", "true"),
            issuer,
            ("OAUTH_AUDIENCE", "https://elsewhere.example/mcp"),
        ],
    )
    .await;
    // No ADMIN_PASSCODE (loopback): the consent page needs no login, its form its own token.
    let (_, tokens) = authorized_tokens(&first.url(), None, None, None).await;
    let elsewhere = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&elsewhere)["aud"], "https://elsewhere.example/mcp");
    let jwks_before: Value = get_json(format!("{}/oauth/jwks", first.url())).await;
    let (data_dir, keep) = first.stop();

    let second = Router::start_in(
        data_dir,
        keep,
        &[],
        &[
            ("MCP_OAUTH_ENABLED", "true"),
            issuer,
            ("OAUTH_AUDIENCE", "http://resource.test/mcp"),
            ("OAUTH_TOKEN_EXPIRY", "1"),
        ],
    )
    .await;
    let jwks_after: Value = get_json(format!("{}/oauth/jwks", second.url())).await;
    assert_eq!(jwks_after, jwks_before);
    let mcp = second.mcp_url("/mcp");
    // Signature verified with the key from before the restart; then the audience refuses it.
    assert_token_refused(
        &mcp,
        &elsewhere,
        "token audience [\"https://elsewhere.example/mcp\"] is not this resource (want [\"http://resource.test/mcp\"])",
    )
    .await;
    let (_, tokens) = authorized_tokens(&second.url(), None, None, None).await;
    let short = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(tokens["expires_in"], 1);
    wait_initialize_status(&mcp, Some(&short), 200, Duration::from_secs(5)).await;
    // Past its expiry and the 10 s clock leeway.
    let exp = claims(&short)["exp"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    tokio::time::sleep(Duration::from_secs((exp + 11 - now).max(0) as u64)).await;
    assert_token_refused(&mcp, &short, "token expired").await;
}

/// An external identity provider (`tests/python/oauth_issuer.py`, a real RS256 issuer with
/// discovery and JWKS) instead of the built-in server: its tokens are accepted with the
/// right issuer and audience, the `groups` claim maps to scopes, and everything else is
/// refused with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn external_identity_provider_tokens_map_a_claim_to_scopes() {
    let Some(python) = python() else { return };
    let mut command = std::process::Command::new(python);
    command.arg(workspace_root().join("tests/python/oauth_issuer.py"));
    let idp = Proc::spawn("oauth-issuer", command);
    let issuer = wait_for("the issuer's address", Duration::from_secs(15), || {
        let log = idp.log();
        async move {
            log.lines()
                .find_map(|l| l.strip_prefix("issuer "))
                .map(str::to_owned)
        }
    })
    .await;
    let router = Router::start_with(
        &[],
        &[
            ("OAUTH_EXTERNAL_ISSUER", issuer.as_str()),
            ("OAUTH_EXTERNAL_AUDIENCE", "api://mcp-router"),
            ("OAUTH_SCOPES_CLAIM", "groups"),
            ("OAUTH_SCOPE_MAP", "mcp-admins=*;alpha-users=alpha"),
        ],
    )
    .await;
    let api = router.api();
    api.add_fixture("alpha", &[]).await;
    api.add_fixture("beta", &[]).await;
    api.wait_state("alpha", "running").await;
    api.wait_state("beta", "running").await;
    let mint = |claims: Value| {
        let issuer = issuer.clone();
        async move {
            let answer: Value = reqwest::Client::new()
                .post(format!("{issuer}/mint"))
                .json(&claims)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["token"].as_str().unwrap().to_owned()
        }
    };
    // The resource metadata names the external issuer; there is no built-in server.
    let prm: Value = get_json(router.mcp_url("/.well-known/oauth-protected-resource/mcp")).await;
    assert_eq!(prm["authorization_servers"], json!([issuer]));
    let built_in = reqwest::get(router.mcp_url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap();
    assert_eq!(built_in.status(), 404);

    let alpha_user =
        mint(json!({"sub": "ann", "aud": "api://mcp-router", "groups": ["alpha-users"]})).await;
    let alpha_url = router.mcp_url("/mcp/p/alpha");
    let beta_url = router.mcp_url("/mcp/p/beta");
    wait_initialize_status(&alpha_url, Some(&alpha_user), 200, Duration::from_secs(5)).await;
    let mut alpha = RawMcp::with_key(&alpha_url, &alpha_user);
    alpha.initialize().await;
    assert_eq!(
        tool_text(&alpha.call("whoami", json!({})).await.unwrap()),
        "alpha"
    );
    let beta = RawMcp::with_key(&beta_url, &alpha_user)
        .try_initialize()
        .await;
    assert_eq!(beta.status, 403);
    assert!(
        beta.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\", scope=\"beta\"")
    );
    let admin = mint(
        json!({"sub": "bob", "aud": ["other", "api://mcp-router"], "groups": ["mcp-admins", "x"]}),
    )
    .await;
    let mut beta = RawMcp::with_key(&beta_url, &admin);
    beta.initialize().await;
    assert_eq!(
        tool_text(&beta.call("whoami", json!({})).await.unwrap()),
        "beta"
    );
    // A group that maps to nothing may use nothing.
    let nobody =
        mint(json!({"sub": "eve", "aud": "api://mcp-router", "groups": ["visitors"]})).await;
    assert_eq!(
        RawMcp::with_key(&alpha_url, &nobody)
            .try_initialize()
            .await
            .status,
        403
    );

    let wrong_aud =
        mint(json!({"sub": "ann", "aud": "api://another-api", "groups": ["mcp-admins"]})).await;
    assert_token_refused(
        &alpha_url,
        &wrong_aud,
        "token audience [\"api://another-api\"] is not this resource (want [\"api://mcp-router\"])",
    )
    .await;
    let wrong_iss = mint(
        json!({"iss": "http://evil.example", "aud": "api://mcp-router", "groups": ["mcp-admins"]}),
    )
    .await;
    assert_token_refused(
        &alpha_url,
        &wrong_iss,
        "token issuer \"http://evil.example\" is not trusted",
    )
    .await;
    let expired =
        mint(json!({"aud": "api://mcp-router", "groups": ["mcp-admins"], "exp": 1_000_000_000}))
            .await;
    assert_token_refused(&alpha_url, &expired, "token expired").await;
    let endless =
        mint(json!({"aud": "api://mcp-router", "groups": ["mcp-admins"], "exp": null})).await;
    assert_token_refused(&alpha_url, &endless, "token has no expiry (exp)").await;
}

/// Client ID metadata documents: a `client_id` that is a URL names a JSON document listing
/// the client's redirect URIs, fetched by the authorization server (plain http to loopback
/// only with `OAUTH_ALLOW_HTTP_CLIENT_METADATA=true`, and from a loopback address only with
/// `MCPR_OAUTH_ALLOW_PRIVATE_FETCH=1`, as here). A document that does not name itself, or a
/// redirect URI it does not list, is refused.
#[tokio::test(flavor = "multi_thread")]
async fn client_id_metadata_documents_are_fetched_and_checked() {
    let docs = tempfile::tempdir().unwrap();
    let port = mcpr_e2e::harness::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let client_id = format!("{origin}/client.json");
    std::fs::write(
        docs.path().join("client.json"),
        json!({"client_id": client_id, "client_name": "Metadata Doc Client", "redirect_uris": [REDIRECT]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        docs.path().join("impostor.json"),
        json!({"client_id": "https://someone.else/client.json", "redirect_uris": [REDIRECT]})
            .to_string(),
    )
    .unwrap();
    let _server = serve_files(docs.path(), port).await;
    let router = Router::start_with(
        &[],
        &[
            ("MCP_OAUTH_ENABLED", "true"),
            ("OAUTH_ALLOW_HTTP_CLIENT_METADATA", "true"),
            ("MCPR_OAUTH_ALLOW_PRIVATE_FETCH", "1"),
        ],
    )
    .await;
    let base = router.url();
    let (verifier, challenge) = pkce();
    let params = |client: &str, redirect: &str| -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let client = client_id.as_str();
    let (status, _, page) = authorize(
        &base,
        None,
        &borrowed(&params(client, "http://127.0.0.1:9/elsewhere")),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("is not registered for this client (exact match required)"),
        "{page}"
    );
    let impostor = format!("{origin}/impostor.json");
    let (status, _, page) = authorize(&base, None, &borrowed(&params(&impostor, REDIRECT))).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("does not name itself as its client_id"),
        "{page}"
    );
    let missing = format!("{origin}/missing.json");
    let (status, _, page) = authorize(&base, None, &borrowed(&params(&missing, REDIRECT))).await;
    assert_eq!(status, 400);
    assert!(page.contains("HTTP 404"), "{page}");

    let location = approve(&base, None, &borrowed(&params(client, REDIRECT)), None).await;
    let code = query_param(&location, "code").unwrap();
    let (status, tokens) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", client),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["client_id"],
        client_id
    );
    // The consent page named the client from its document.
    let (_, _, page) = authorize(&base, None, &borrowed(&params(client, REDIRECT))).await;
    assert!(page.contains("Metadata Doc Client"), "{page}");

    // Without the development switch, plain http metadata URLs are not fetched.
    let strict = Router::start_with(&[], &[("MCP_OAUTH_ENABLED", "true")]).await;
    let (status, _, page) =
        authorize(&strict.url(), None, &borrowed(&params(client, REDIRECT))).await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown client_id"), "{page}");
}

/// The client's token never reaches an upstream server: a remote upstream (the official
/// Python SDK's MCPServer, `tests/python/oauth_upstream.py`) reports the headers of the call
/// the router made for a client that authenticated with an access token; only the headers
/// configured on the server are there.
#[tokio::test(flavor = "multi_thread")]
async fn client_tokens_are_never_forwarded_upstream() {
    let Some(python) = python() else { return };
    let port = mcpr_e2e::harness::free_port();
    let mut command = std::process::Command::new(python);
    command
        .arg(workspace_root().join("tests/python/oauth_upstream.py"))
        .arg(port.to_string());
    let upstream = Proc::spawn("oauth-upstream", command);
    let url = format!("http://127.0.0.1:{port}/mcp");
    upstream
        .wait_log("Uvicorn running", Duration::from_secs(30))
        .await;
    let router = Router::start_with(&[], &[("MCP_OAUTH_ENABLED", "true")]).await;
    let api = router.api();
    api.add(json!({"name": "hdr", "runtime": {"kind": "remote", "url": url, "headers": {"X-Upstream-Key": "configured"}}}))
        .await;
    api.wait_state("hdr", "running").await;
    let (_, tokens) = authorized_tokens(&router.url(), None, None, None).await;
    let access = tokens["access_token"].as_str().unwrap();
    let mut client = RawMcp::with_key(&router.mcp_url("/mcp/p/hdr"), access);
    client.initialize().await;
    let seen: Value = serde_json::from_str(&tool_text(
        &client.call("seen_headers", json!({})).await.unwrap(),
    ))
    .unwrap();
    assert_eq!(seen["x-upstream-key"], "configured", "{seen}");
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert!(!seen.to_string().contains(access), "{seen}");
}

/// The distributed form: the control plane (the authorization server) and an edge gateway
/// (the resource server) as separate processes. The gateway learns the issuer's keys and the
/// resource from its configuration snapshot over gRPC, points clients at the control plane,
/// and accepts its tokens without calling it.
#[tokio::test(flavor = "multi_thread")]
async fn distributed_gateway_verifies_the_control_planes_tokens() {
    let free = mcpr_e2e::harness::free_port;
    let (api_port, grpc_port, gateway_port) = (free(), free(), free());
    let data = tempfile::tempdir().unwrap();
    let issuer = format!("http://127.0.0.1:{api_port}");
    let resource = format!("http://127.0.0.1:{gateway_port}/mcp");
    let mut command = std::process::Command::new(mcpr_e2e::harness::bin("mcpr-control-plane"));
    command
        .args(["--http-listen", &format!("127.0.0.1:{api_port}")])
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("DATABASE_URL")
        .env("MCP_OAUTH_ENABLED", "true")
        .env("OAUTH_AUDIENCE", &resource);
    let _control_plane = Proc::spawn("control-plane", command);
    mcpr_e2e::harness::Api::new(&issuer).wait_healthy().await;
    let mut command = std::process::Command::new(mcpr_e2e::harness::bin("mcpr-edge-gateway"));
    command
        .args(["--listen", &format!("127.0.0.1:{gateway_port}")])
        .args(["--control-plane", &format!("http://127.0.0.1:{grpc_port}")])
        .args(["--id", "gateway-0"]);
    let _gateway = Proc::spawn("gateway", command);
    wait_for(
        "the gateway to listen",
        Duration::from_secs(20),
        || async move {
            std::net::TcpStream::connect(("127.0.0.1", gateway_port))
                .ok()
                .map(|_| ())
        },
    )
    .await;

    // The gateway's challenge points at its own metadata, which names the control plane.
    let challenge = wait_initialize_status(&resource, None, 401, Duration::from_secs(20))
        .await
        .1;
    let prm_url =
        format!("http://127.0.0.1:{gateway_port}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        challenge.headers["www-authenticate"],
        format!("Bearer realm=\"mcp-router\", resource_metadata=\"{prm_url}\"").as_str()
    );
    let prm: Value = get_json(&prm_url).await;
    assert_eq!(prm["resource"], resource);
    assert_eq!(prm["authorization_servers"], json!([issuer]));
    let meta: Value = get_json(format!("{issuer}/.well-known/oauth-authorization-server")).await;
    assert_eq!(meta["issuer"], issuer);

    let (_, tokens) = authorized_tokens(&issuer, None, None, None).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["aud"], resource);
    wait_initialize_status(&resource, Some(access), 200, Duration::from_secs(5)).await;
    let (signed, signature) = access.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[0] ^= 1;
    let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
    assert_token_refused(&resource, &tampered, "token signature is invalid").await;
}

#[tokio::test]
async fn the_authorization_endpoints_are_rate_limited_per_address() {
    let mut env = oauth_env();
    env.push(("MCPR_RATE_LIMIT_AUTH", "0.1/5"));
    let router = Router::start_with(&[], &env).await;
    let base = router.url();
    let client = json!({
        "client_name": "flood",
        "redirect_uris": ["http://127.0.0.1:9/callback"],
        "token_endpoint_auth_method": "none",
    });
    for attempt in 0..5 {
        let (status, body) = register(&base, client.clone()).await;
        assert_eq!(
            status, 201,
            "registration {attempt} within the burst: {body}"
        );
    }
    let response = browser()
        .post(format!("{base}/oauth/register"))
        .json(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // The token endpoint shares the address's bucket; metadata and keys stay readable.
    let status = browser()
        .post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 429);
    for path in ["/.well-known/oauth-authorization-server", "/oauth/jwks"] {
        let status = browser()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
}

/// Issue 13: the admin lists the clients that registered and the consents given, and
/// revokes them. Through the real flow: a revoked consent's refresh token is refused and its
/// access token fails at the gateway; a revoked client is refused at the token endpoint and
/// its tokens fail too; another client's tokens keep working; both are audited.
#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_consent_or_a_client_stops_its_tokens() {
    let router = Router::start_with(&[], &oauth_env()).await;
    let base = router.url();
    let api = router.api().with_token(&router.api().login(PASSCODE).await);
    let admin = admin_login(&base).await;
    let mcp = router.mcp_url("/mcp");
    let (first, first_tokens) = authorized_tokens(&base, Some(&admin), None, None).await;
    let (second, second_tokens) = authorized_tokens(&base, Some(&admin), None, None).await;
    let (third, third_tokens) = authorized_tokens(&base, Some(&admin), None, None).await;
    let access = |t: &Value| t["access_token"].as_str().unwrap().to_owned();
    let refresh = |t: &Value| t["refresh_token"].as_str().unwrap().to_owned();
    for t in [&first_tokens, &second_tokens, &third_tokens] {
        wait_initialize_status(&mcp, Some(&access(t)), 200, Duration::from_secs(5)).await;
    }

    let (status, clients) = api.get("/api/v1/oauth/clients").await;
    assert_eq!(status, 200, "{clients}");
    let client = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == first.as_str())
        .unwrap_or_else(|| panic!("{first} not in {clients}"))
        .clone();
    assert_eq!(client["client_name"], "e2e client");
    assert_eq!(client["redirect_uris"], json!([REDIRECT]));
    assert_eq!(client["state"], "active");
    assert!(
        client["registered_at"].is_string() && client["last_used_at"].is_string(),
        "{client}"
    );
    let (status, consents) = api.get("/api/v1/oauth/consents").await;
    assert_eq!(status, 200, "{consents}");
    let consent = consents
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == first.as_str())
        .unwrap_or_else(|| panic!("no consent of {first} in {consents}"))
        .clone();
    assert_eq!(consent["subject"], "admin");
    assert_eq!(consent["scopes"], json!(["*"]));
    assert_eq!(consent["state"], "active");
    let consent_id = consent["id"].as_str().unwrap().to_owned();
    assert_eq!(
        claims(&access(&first_tokens))["consent_id"],
        consent_id.as_str()
    );

    // The consent: refresh refused, access token refused at the gateway.
    let (status, revoked) = api
        .post(
            &format!("/api/v1/oauth/consents/{consent_id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    let (took, _) = wait_initialize_status(
        &mcp,
        Some(&access(&first_tokens)),
        401,
        Duration::from_secs(5),
    )
    .await;
    eprintln!("consent revocation reached the gateway in {took:?}");
    assert_token_refused(
        &mcp,
        &access(&first_tokens),
        "token revoked: an administrator revoked the consent it was issued under",
    )
    .await;
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh(&first_tokens)),
            ("client_id", &first),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(body["error_description"], "the refresh token was revoked");

    // The client: token endpoint refuses it, its access token fails.
    let (status, revoked) = api
        .post(&format!("/api/v1/oauth/clients/{second}/revoke"), json!({}))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    let (took, _) = wait_initialize_status(
        &mcp,
        Some(&access(&second_tokens)),
        401,
        Duration::from_secs(5),
    )
    .await;
    eprintln!("client revocation reached the gateway in {took:?}");
    assert_token_refused(
        &mcp,
        &access(&second_tokens),
        "token revoked: an administrator revoked its OAuth client",
    )
    .await;
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh(&second_tokens)),
            ("client_id", &second),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (_, consents) = api.get("/api/v1/oauth/consents").await;
    assert!(
        consents
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["client_id"] == second.as_str())
            .all(|c| c["state"] == "revoked"),
        "{consents}"
    );

    // The third client was not touched: its tokens work and refresh.
    wait_initialize_status(
        &mcp,
        Some(&access(&third_tokens)),
        200,
        Duration::from_secs(5),
    )
    .await;
    let (status, body) = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh(&third_tokens)),
            ("client_id", &third),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Unknown ids: 404 naming them.
    let (status, body) = api
        .post("/api/v1/oauth/consents/mcpg_nope/revoke", json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_message(&body), "no OAuth consent \"mcpg_nope\"");

    // Both revocations are admin changes in the audit log (beside the refused one above,
    // which is newer: each is looked up by its target).
    for (method, target) in [
        ("oauth.consent.revoke", consent_id.as_str()),
        ("oauth.client.revoke", second.as_str()),
    ] {
        let record = wait_for(
            "the revocation's audit record",
            Duration::from_secs(10),
            || {
                let api = api.clone();
                async move {
                    let (_, page) = api.get(&format!("/api/v1/audit?method={method}")).await;
                    page["records"]
                        .as_array()?
                        .iter()
                        .find(|r| r["target"] == target)
                        .cloned()
                }
            },
        )
        .await;
        assert_eq!(record["who_kind"], "admin", "{record}");
        assert_eq!(record["outcome"], "ok", "{record}");
    }
}
