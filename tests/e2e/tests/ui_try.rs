//! "Try a tool" on the web UI's Tools page (`#/tools`, `control-plane/ui/trytool.js`), in a
//! real browser (headless Chromium over WebDriver, `mcpr_e2e::browser`) against `mcpr up`
//! with the fixture server (`--rich`: an image result, a schema with every kind of field)
//! as upstream. The form made from a tool's schema calls the tool through the gateway and
//! shows what a client gets: text, structured content, an image, resource links, embedded
//! resources, `isError` results, JSON-RPC errors, the duration; raw JSON mode; the python
//! sandbox (with Docker). With a passcode and an API key (credentials required), the
//! logged-in admin still tries tools with an admin MCP token, which a plain request without
//! a credential cannot, and which logging out ends. Screenshots `try-*` in
//! `target/ui-screenshots/`.

use std::time::Duration;

use mcpr_e2e::browser::Browser;
use mcpr_e2e::harness::{
    DockerCleanup, RawMcp, Router, docker_owner, docker_ready, wait_for, wait_initialize_status,
};
use serde_json::{Value, json};

const PASSCODE: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(20);
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// Waits for the tool explorer to list `tool` (as `server__tool`), opens its try form with
/// the Try button beside its card; checks that focus moved into the form.
async fn open_try(browser: &Browser, tool: &str) {
    browser
        .wait(
            &format!("the explorer to list {tool}"),
            &format!(
                "const b = document.querySelector('[data-try=\"{tool}\"] > button.try-open'); return !!b && b.offsetParent !== null"
            ),
            WAIT,
        )
        .await;
    browser
        .click(&format!("[data-try=\"{tool}\"] > button.try-open"))
        .await;
    browser
        .wait(
            &format!("the try form of {tool}, with focus inside it"),
            &format!(
                "const p = document.getElementById('try-panel'); return !p.hidden && document.getElementById('try-title').textContent === 'Try {tool}' && p.contains(document.activeElement)"
            ),
            WAIT,
        )
        .await;
}

/// Logs in on the login form the page shows, and waits until the pages show.
async fn log_in(browser: &Browser) {
    browser.type_into("#l-passcode", PASSCODE).await;
    browser.click("#l-submit").await;
    browser
        .wait(
            "logged in",
            "return document.getElementById('login').hidden && !document.body.classList.contains('locked')",
            WAIT,
        )
        .await;
}

/// Clicks Call and waits for the result region to show `needle`; answers its text.
async fn call_and_wait(browser: &Browser, needle: &str) -> String {
    browser.click("#try-submit").await;
    wait_result(browser, needle).await
}

async fn wait_result(browser: &Browser, needle: &str) -> String {
    let text = browser
        .wait(
            &format!("the result to show {needle:?}"),
            &format!(
                "const r = document.getElementById('try-result'); return r.innerText.includes({needle:?}) && r.innerText"
            ),
            WAIT,
        )
        .await;
    text.as_str().unwrap_or_default().to_owned()
}

/// The outcome of the shown result (`ok`, `tool-error`, `rpc-error`) and its duration text.
async fn outcome(browser: &Browser) -> (String, String) {
    let value = browser
        .js(
            "const o = document.querySelector('#try-result [data-outcome]'); return o ? [o.dataset.outcome, (o.querySelector('.try-took') || {}).textContent || ''] : null",
            json!([]),
        )
        .await;
    (
        value[0].as_str().unwrap_or_default().to_owned(),
        value[1].as_str().unwrap_or_default().to_owned(),
    )
}

fn assert_took(took: &str) {
    let ok = took
        .strip_prefix("took ")
        .is_some_and(|rest| rest.ends_with(" ms") || rest.ends_with(" s"));
    assert!(ok, "the duration is shown: {took:?}");
}

/// Sets a `<select>` to the option whose text is `text` (as a user's pick), by JS.
async fn pick(browser: &Browser, css: &str, text: &str) {
    let picked = browser
        .js(
            "const s = document.querySelector(arguments[0]); const o = [...s.options].find((o) => o.textContent === arguments[1]); if (!o) return false; s.value = o.value; s.dispatchEvent(new Event('change')); return true",
            json!([css, text]),
        )
        .await;
    assert_eq!(picked, true, "{css} has an option {text:?}");
}

#[tokio::test]
async fn the_form_calls_tools_through_the_gateway_and_shows_every_kind_of_result() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("fx", &["--rich"]).await;
    api.wait_state("fx", "running").await;
    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    browser.goto(&format!("{}/#/tools", router.url())).await;

    // The generated form: echo's one required string field, labelled with the tool's name.
    open_try(&browser, "fx__echo").await;
    let field = browser
        .js(
            "const a = document.activeElement; return [a.id, a.getAttribute('aria-label'), a.type, a.closest('label').innerText]",
            json!([]),
        )
        .await;
    assert_eq!(
        field[0], "try-arg-text",
        "focus on the first field: {field}"
    );
    assert!(
        field[1].as_str().unwrap().contains("fx__echo")
            && field[1].as_str().unwrap().contains("required"),
        "the field's label names the tool and says required: {field}"
    );
    assert!(field[3].as_str().unwrap().contains("required"), "{field}");
    let live = browser
        .js(
            "return document.getElementById('try-result').getAttribute('aria-live')",
            json!([]),
        )
        .await;
    assert_eq!(live, "polite", "results are announced");
    // A required field left empty is refused before any call.
    browser.click("#try-submit").await;
    browser
        .wait(
            "the required field's error",
            "return document.getElementById('e-try-arg-text').textContent === 'required' && document.getElementById('try-arg-text').getAttribute('aria-invalid') === 'true'",
            WAIT,
        )
        .await;
    // Keyboard: type, Enter submits.
    browser
        .type_into("#try-arg-text", "hello <b>there</b>")
        .await;
    browser.press(ENTER).await;
    let text = wait_result(&browser, "hello <b>there</b>").await;
    assert!(text.contains("Content 1: text"), "{text}");
    let (kind, took) = outcome(&browser).await;
    assert_eq!(kind, "ok");
    assert_took(&took);
    let bolded = browser
        .js(
            "return document.querySelectorAll('#try-result b').length",
            json!([]),
        )
        .await;
    assert_eq!(bolded, 0, "server text is text, never HTML");
    browser.screenshot("try-echo").await;

    // Raw JSON mode: the form's arguments as JSON, edited and sent as they are.
    browser.click("#try-raw").await;
    let raw = browser
        .js(
            "return document.getElementById('try-json').value",
            json!([]),
        )
        .await;
    let raw: Value = serde_json::from_str(raw.as_str().unwrap()).unwrap();
    assert_eq!(raw, json!({"text": "hello <b>there</b>"}));
    let focused = browser
        .js("return document.activeElement.id", json!([]))
        .await;
    assert_eq!(focused, "try-json");
    browser.clear("#try-json").await;
    browser
        .type_into("#try-json", r#"{"text": "sent raw"}"#)
        .await;
    call_and_wait(&browser, "sent raw").await;
    // A JSON-RPC error: echo without its argument (-32602 from the server).
    browser.clear("#try-json").await;
    browser.type_into("#try-json", "{}").await;
    let text = call_and_wait(&browser, "JSON-RPC error -32602").await;
    assert!(
        text.contains("text"),
        "the error names the argument: {text}"
    );
    let (kind, took) = outcome(&browser).await;
    assert_eq!(kind, "rpc-error");
    assert_took(&took);
    browser.screenshot("try-rpc-error").await;
    // Not JSON: refused in the page.
    browser.clear("#try-json").await;
    browser.type_into("#try-json", "{nope").await;
    browser.click("#try-submit").await;
    browser
        .wait(
            "the raw JSON error",
            "return document.getElementById('e-try-json').textContent.startsWith('not JSON')",
            WAIT,
        )
        .await;

    // An isError result shows as a tool error.
    open_try(&browser, "fx__fail").await;
    browser.type_into("#try-arg-message", "it broke").await;
    let text = call_and_wait(&browser, "it broke").await;
    assert!(text.contains("Tool error (isError: true)"), "{text}");
    assert_eq!(outcome(&browser).await.0, "tool-error");
    browser.screenshot("try-fail").await;

    // Every kind of field: typed values reach the tool as their JSON types.
    open_try(&browser, "fx__arguments").await;
    let kinds = browser
        .js(
            "return [...document.querySelectorAll('#try-fields [data-arg]')].map((e) => [e.dataset.arg, e.tagName, e.type || '', e.getAttribute('aria-required') || '']).sort((a, b) => a[0] < b[0] ? -1 : 1)",
            json!([]),
        )
        .await;
    assert_eq!(
        kinds,
        json!([
            ["color", "SELECT", "select-one", ""],
            ["count", "INPUT", "number", "true"],
            ["loud", "SELECT", "select-one", ""],
            ["options", "TEXTAREA", "textarea", ""],
            ["ratio", "INPUT", "number", ""],
            ["tags", "TEXTAREA", "textarea", ""],
            ["title", "INPUT", "text", "true"]
        ]),
        "a control per schema type"
    );
    browser.type_into("#try-arg-title", "a title").await;
    browser.type_into("#try-arg-count", "2.5").await;
    browser.click("#try-submit").await;
    browser
        .wait(
            "the integer field's error",
            "return document.getElementById('e-try-arg-count').textContent === 'must be a whole number'",
            WAIT,
        )
        .await;
    browser.clear("#try-arg-count").await;
    browser.type_into("#try-arg-count", "3").await;
    browser.type_into("#try-arg-ratio", "0.25").await;
    pick(&browser, "#try-arg-loud", "true").await;
    pick(&browser, "#try-arg-color", "blue").await;
    browser.type_into("#try-arg-tags", r#"["a", "b"]"#).await;
    browser
        .type_into("#try-arg-options", r#"{"depth": 2}"#)
        .await;
    call_and_wait(&browser, "Structured content").await;
    let structured = browser
        .js(
            "return document.querySelector('#try-result [data-content=\"structured\"] pre').textContent",
            json!([]),
        )
        .await;
    let structured: Value = serde_json::from_str(structured.as_str().unwrap()).unwrap();
    assert_eq!(
        structured,
        json!({"received": {"title": "a title", "count": 3, "ratio": 0.25, "loud": true, "color": "blue", "tags": ["a", "b"], "options": {"depth": 2}}})
    );
    browser.screenshot("try-arguments").await;
    browser.color_scheme("dark").await;
    browser.resize(390, 900).await;
    browser.screenshot("try-arguments-390-dark").await;
    browser.color_scheme("light").await;
    browser.resize(1280, 1000).await;

    // An image, a resource link and an embedded resource.
    open_try(&browser, "fx__picture").await;
    let no_fields = browser
        .js(
            "return !document.getElementById('try-no-fields').hidden && document.activeElement.id",
            json!([]),
        )
        .await;
    assert_eq!(no_fields, "try-submit", "no fields: focus on Call");
    browser.press(ENTER).await;
    wait_result(&browser, "two red, two blue").await;
    let image = browser
        .wait(
            "the image to load",
            "const i = document.querySelector('#try-result img.try-image'); return i && i.complete && i.naturalWidth > 0 && [i.naturalWidth, i.getAttribute('alt'), i.src.slice(0, 22)]",
            WAIT,
        )
        .await;
    assert_eq!(image[0], 8, "the 8x8 PNG rendered: {image}");
    assert!(image[1].as_str().unwrap().contains("image/png"), "{image}");
    assert_eq!(image[2], "data:image/png;base64,");
    let text = browser
        .js(
            "return document.getElementById('try-result').innerText",
            json!([]),
        )
        .await;
    let text = text.as_str().unwrap();
    for needle in [
        "resource link",
        "fixture://squares.png",
        "embedded resource",
        "fixture://notes.txt",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    browser.screenshot("try-picture").await;
    browser.color_scheme("dark").await;
    browser.screenshot("try-picture-dark").await;
    browser.color_scheme("light").await;
    browser.resize(390, 900).await;
    browser.screenshot("try-picture-390").await;
    let overflow = browser
        .js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            json!([]),
        )
        .await;
    assert_eq!(overflow, 0, "nothing wider than a phone's screen");
    browser.resize(1280, 1000).await;

    // Escape closes the form and gives focus back to the Try button.
    browser.press(ESCAPE).await;
    browser
        .wait(
            "the form closed, focus back on Try",
            "return document.getElementById('try-panel').hidden && document.activeElement.matches('[data-try=\"fx__picture\"] > button.try-open')",
            WAIT,
        )
        .await;

    // The UI sent an admin MCP token, yet the router stays open and lists no key.
    let (status, keys) = api.get("/api/v1/keys").await;
    assert_eq!((status, keys), (200, json!([])));
    wait_initialize_status(&router.mcp_url("/mcp"), None, 200, WAIT).await;
}

#[tokio::test]
async fn python_sandbox_runs_from_the_tools_page() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("ui_try");
    let _cleanup = DockerCleanup(owner.clone());
    let router = Router::start_with(
        &[],
        &[
            ("MCPR_DOCKER_OWNER", owner.as_str()),
            ("MCPR_SANDBOX_POOL", "1"),
        ],
    )
    .await;
    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    browser.goto(&format!("{}/#/tools", router.url())).await;
    browser
        .wait(
            "the Run Python button",
            "return document.getElementById('try-sandbox-open').offsetParent !== null",
            WAIT,
        )
        .await;
    browser.click("#try-sandbox-open").await;
    browser
        .wait(
            "the code field, focused",
            "return document.activeElement.id === 'try-code' && document.activeElement.getAttribute('aria-label').includes('python_sandbox')",
            WAIT,
        )
        .await;
    browser.type_into("#try-code", "print(1+1)").await;
    browser.click("#try-submit").await;
    let ran = browser
        .wait(
            "the sandbox's exit code and stdout",
            "const c = document.getElementById('try-exit-code'); const o = document.querySelector('#try-result .try-stdout'); return c && o && [c.textContent, o.textContent, document.getElementById('try-limits').textContent]",
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(ran, json!(["0", "2\n", "none"]), "stdout 2, exit code 0");
    browser.screenshot("try-sandbox").await;

    // A failing program: its stderr and exit code as the sandbox reports them.
    browser.clear("#try-code").await;
    browser
        .type_into(
            "#try-code",
            "import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)",
        )
        .await;
    browser.click("#try-submit").await;
    let failed = browser
        .wait(
            "the failing run",
            "const c = document.getElementById('try-exit-code'); const e = document.querySelector('#try-result .try-stderr'); return c && c.textContent === '3' && e.textContent",
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(failed, "oops\n");
    browser.color_scheme("dark").await;
    browser.screenshot("try-sandbox-dark").await;
}

#[tokio::test]
async fn with_credentials_required_the_admin_tries_tools_and_logout_ends_the_token() {
    let router = Router::start_with(&[], &[("ADMIN_PASSCODE", PASSCODE)]).await;
    let admin = router.api().with_token(&router.api().login(PASSCODE).await);
    admin.add_fixture("fx", &[]).await;
    admin.wait_state("fx", "running").await;
    admin.create_key("ci", None).await;
    // Credentials are required now: a request without one is refused.
    for path in ["/mcp", "/mcp/p/fx"] {
        let refused = RawMcp::new(&router.mcp_url(path)).try_initialize().await;
        assert_eq!(refused.status, 401, "{path}: {}", refused.body);
    }
    // Minting needs the admin.
    let (status, _) = router
        .api()
        .post("/api/v1/session/mcp-token", json!({}))
        .await;
    assert_eq!(status, 401, "no admin, no MCP token");
    // The CLI's admin token mints one that works at once (`mcpr up` answers once the
    // gateway serves it), is no API key, and expires within 15 minutes.
    let (status, minted) = admin.post("/api/v1/session/mcp-token", json!({})).await;
    assert_eq!(status, 200, "{minted}");
    let cli_token = minted["token"].as_str().unwrap().to_owned();
    assert!(cli_token.starts_with("mcprm_"), "{minted}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let expires = minted["expires_at_ms"].as_i64().unwrap();
    assert!(
        expires > now_ms && expires <= now_ms + 15 * 60 * 1000 + 5_000,
        "{minted}"
    );
    let accepted = RawMcp::with_key(&router.mcp_url("/mcp/p/fx"), &cli_token)
        .try_initialize()
        .await;
    assert_eq!(
        accepted.status, 200,
        "right after the answer: {}",
        accepted.body
    );
    let (_, keys) = admin.get("/api/v1/keys").await;
    assert_eq!(
        keys.as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].clone())
            .collect::<Vec<_>>(),
        [json!("ci")],
        "the MCP token is not an API key"
    );

    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    browser.goto(&format!("{}/#/tools", router.url())).await;
    browser
        .wait(
            "the login form",
            "const l = document.getElementById('login'); return !l.hidden && l.offsetHeight > 0",
            WAIT,
        )
        .await;
    log_in(&browser).await;
    open_try(&browser, "fx__echo").await;
    browser.type_into("#try-arg-text", "as the admin").await;
    call_and_wait(&browser, "as the admin").await;
    assert_eq!(outcome(&browser).await.0, "ok");
    browser.screenshot("try-admin").await;

    // The audit log names the admin (not an API key) as the caller.
    let record = wait_for("the admin's tools/call in the audit log", WAIT, || {
        let admin = admin.clone();
        async move {
            let (_, page) = admin
                .get("/api/v1/audit?who=admin&method=tools/call&limit=10")
                .await;
            page["records"].as_array()?.first().cloned()
        }
    })
    .await;
    assert_eq!(
        (
            record["who_kind"].as_str(),
            record["who_name"].as_str(),
            record["who_client"].as_str(),
            record["provider"].as_str(),
            record["target"].as_str(),
            record["outcome"].as_str()
        ),
        (
            Some("admin"),
            Some("ui"),
            Some("mcp_token"),
            Some("fx"),
            Some("echo"),
            Some("ok")
        ),
        "{record}"
    );

    // A tool the admin tried is a call of the server on the Activity page, as any client's.
    wait_for("the admin's call in the activity window", WAIT, || {
        let admin = admin.clone();
        async move {
            let (_, activity) = admin.get("/api/v1/activity").await;
            activity["servers"]
                .as_array()?
                .iter()
                .find(|s| s["provider"] == "fx" && s["total"]["calls"].as_u64() >= Some(1))
                .map(|_| ())
        }
    })
    .await;

    // A token of the browser's session, minted as the page does; logging out ends it.
    let token = browser
        .js(
            "return fetch('/api/v1/session/mcp-token', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}}).then((r) => r.json()).then((t) => t.token)",
            json!([]),
        )
        .await;
    let token = token.as_str().expect("a token").to_owned();
    let mcp = router.mcp_url("/mcp/p/fx");
    wait_initialize_status(&mcp, Some(&token), 200, WAIT).await;
    browser.click("#logout").await;
    browser
        .wait(
            "the login form after logging out",
            "return !document.getElementById('login').hidden",
            WAIT,
        )
        .await;
    let (_, refused) = wait_initialize_status(&mcp, Some(&token), 401, WAIT).await;
    assert!(
        refused.body.to_string().contains("unknown API key"),
        "{}",
        refused.body
    );
    // Other sessions' tokens live on.
    wait_initialize_status(&mcp, Some(&cli_token), 200, WAIT).await;

    // Logged in again, the page mints a new token by itself.
    log_in(&browser).await;
    browser.goto(&format!("{}/#/tools", router.url())).await;
    open_try(&browser, "fx__echo").await;
    browser.type_into("#try-arg-text", "again").await;
    call_and_wait(&browser, "again").await;
    assert_eq!(outcome(&browser).await.0, "ok");
}
