//! The admin web UI in a real browser: headless Chromium over WebDriver
//! (`mcpr_e2e::browser`), against `mcpr up` with the fixture server as upstream. Each test
//! saves screenshots to `target/ui-screenshots/`.

use std::time::Duration;

use mcpr_e2e::browser::Browser;
use mcpr_e2e::harness::Router;
use serde_json::json;

const PASSCODE: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn passcode_login_form_on_first_load_and_logout_hides_the_button() {
    let router = Router::start_with(&[], &[("ADMIN_PASSCODE", PASSCODE)]).await;
    let Some(browser) = Browser::start(1280, 900).await else {
        return;
    };
    browser.goto(&router.url()).await;
    browser
        .wait(
            "the login form on first load",
            "const l = document.getElementById('login'); return l && !l.hidden && l.offsetHeight > 0",
            WAIT,
        )
        .await;
    let focused = browser
        .js("return document.activeElement.id", json!([]))
        .await;
    assert_eq!(focused, "l-passcode", "the passcode field takes the focus");
    let logout_visible = browser
        .js(
            "return document.getElementById('logout').offsetParent !== null",
            json!([]),
        )
        .await;
    assert_eq!(logout_visible, false, "no Log out button before logging in");
    // The label reads on one line at this width (it broke over three).
    let label_lines = browser
        .js(
            "const s = document.querySelector('#login-form label > span'); return Math.round(s.getBoundingClientRect().height / parseFloat(getComputedStyle(s).lineHeight))",
            json!([]),
        )
        .await;
    assert_eq!(label_lines, 1, "the passcode label wraps");
    browser.screenshot("login").await;

    browser.type_into("#l-passcode", "wrong").await;
    browser.click("#l-submit").await;
    browser
        .wait(
            "the wrong-passcode error",
            "return document.getElementById('e-login').textContent.includes('wrong passcode')",
            WAIT,
        )
        .await;

    browser.clear("#l-passcode").await;
    browser.type_into("#l-passcode", PASSCODE).await;
    browser.click("#l-submit").await;
    browser
        .wait(
            "the dashboard after logging in",
            "return document.getElementById('login').hidden && document.getElementById('logout').offsetParent !== null",
            WAIT,
        )
        .await;
    browser.screenshot("logged-in").await;

    browser.click("#logout").await;
    browser
        .wait(
            "the login form after logging out, without a Log out button",
            "return !document.getElementById('login').hidden && document.getElementById('logout').offsetParent === null",
            WAIT,
        )
        .await;
    // The session is gone on the server too: a reload shows the login form again.
    browser.goto(&router.url()).await;
    browser
        .wait(
            "the login form after a reload",
            "const l = document.getElementById('login'); return !l.hidden && l.offsetHeight > 0",
            WAIT,
        )
        .await;
}

/// Starts a router (without passcode) and a browser on its page, logged in.
async fn open(width: u32, height: u32) -> Option<(Router, Browser)> {
    let router = Router::start().await;
    let browser = Browser::start(width, height).await?;
    browser.goto(&format!("{}/#/servers", router.url())).await;
    browser
        .wait(
            "the live feed's first snapshot",
            "return document.getElementById('refreshed').textContent.startsWith('live')",
            WAIT,
        )
        .await;
    Some((router, browser))
}

/// A JS expression: the row of server `name` (the table row, or the card on narrow screens).
fn row(name: &str) -> String {
    format!("document.querySelector('tr[data-server=\"{name}\"]')")
}

async fn wait_row_text(browser: &Browser, name: &str, needle: &str) {
    browser
        .wait(
            &format!("server {name}'s row to show {needle:?}"),
            &format!(
                "const r = {}; return r && r.innerText.includes({needle:?})",
                row(name)
            ),
            WAIT,
        )
        .await;
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

#[tokio::test]
async fn live_updates_in_place_keep_focus_and_arrive_within_300_ms() {
    let Some((router, browser)) = open(1280, 900).await else {
        return;
    };
    let api = router.api();
    api.add_fixture("alpha", &[]).await;
    api.add_fixture("beta", &[]).await;
    wait_row_text(&browser, "alpha", "running").await;
    wait_row_text(&browser, "beta", "running").await;
    // Every control names its server.
    let labels = browser
        .js(
            &format!(
                "return [...{}.querySelectorAll('button[data-action]')].map(b => b.getAttribute('aria-label'))",
                row("beta")
            ),
            json!([]),
        )
        .await;
    assert_eq!(
        labels,
        json!([
            "Disable server beta",
            "Restart server beta",
            "Delete server beta"
        ])
    );
    // The page records when beta's toggle button changes its label, and the focus sits on
    // beta's name: updates must leave both the row and the focus where they are.
    browser
        .js(
            &format!(
                "const r = {row}; window.__row = r; window.__changes = [];
                 const b = r.querySelector('[data-action=toggle]');
                 new MutationObserver(() => window.__changes.push([Date.now(), b.textContent]))
                   .observe(b, {{childList: true, characterData: true, subtree: true}});
                 r.querySelector('button.name').focus();",
                row = row("beta")
            ),
            json!([]),
        )
        .await;
    let mut latencies = Vec::new();
    for round in 0..10 {
        for (verb, label) in [("disable", "Enable"), ("enable", "Disable")] {
            let seen_before = browser
                .js("return window.__changes.length", json!([]))
                .await
                .as_u64()
                .unwrap();
            let started = now_ms();
            let (status, body) = api
                .post(&format!("/api/v1/servers/beta/{verb}"), json!({}))
                .await;
            assert_eq!(status, 200, "{verb} beta: {body}");
            let at = browser
                .wait(
                    &format!("round {round}: beta's button to read {label}"),
                    &format!(
                        "const c = window.__changes.slice({seen_before}).find(c => c[1] === {label:?}); return c && c[0]"
                    ),
                    WAIT,
                )
                .await
                .as_f64()
                .unwrap();
            latencies.push(at - started);
        }
        // Started again before the next round.
        wait_row_text(&browser, "beta", "running").await;
    }
    // Several updates later, the same row and the same focus.
    let kept = browser
        .js(
            &format!(
                "return window.__row === {} && document.activeElement === window.__row.querySelector('button.name')",
                row("beta")
            ),
            json!([]),
        )
        .await;
    assert_eq!(kept, true, "an update replaced the row or moved the focus");
    latencies.sort_by(f64::total_cmp);
    let p95 = latencies[(latencies.len() * 95).div_ceil(100) - 1];
    let p50 = latencies[latencies.len() / 2];
    eprintln!(
        "change-to-page latency over {} changes: p50 {p50:.0} ms, p95 {p95:.0} ms, max {:.0} ms",
        latencies.len(),
        latencies.last().unwrap()
    );
    assert!(p95 <= 300.0, "p95 {p95:.0} ms > 300 ms: {latencies:?}");
    browser.screenshot("servers-live").await;
}

#[tokio::test]
async fn add_form_notice_field_errors_and_runtimes_shown_truthfully() {
    let Some((router, browser)) = open(1280, 900).await else {
        return;
    };
    // A docker server (registered whether or not Docker runs here) and a remote one.
    let api = router.api();
    api.add(
        json!({"name": "dock", "enabled": false, "runtime": {"kind": "docker",
        "image": "mcpr/fixture:latest", "network": "egress", "memory_mb": 256}}),
    )
    .await;
    api.add(
        json!({"name": "far", "enabled": false, "runtime": {"kind": "remote",
        "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer x"}}}),
    )
    .await;
    wait_row_text(&browser, "dock", "image mcpr/fixture:latest").await;
    wait_row_text(
        &browser,
        "dock",
        "network egress · 256 MiB · 1 CPU · 256 pids",
    )
    .await;
    wait_row_text(&browser, "far", "https://mcp.example.com/mcp").await;
    browser.click("tr[data-server=\"dock\"] button.name").await;
    browser
        .wait(
            "dock's details to name its image, network and limits",
            "const t = document.getElementById('d-info').innerText; return t.includes('mcpr/fixture:latest') && t.includes('egress') && t.includes('256 MiB')",
            WAIT,
        )
        .await;
    browser.screenshot("details-docker").await;
    browser.click("#d-close").await;
    browser.goto(&format!("{}/#/add", router.url())).await;

    // A bad name: the field says so, and the error goes as soon as the name is edited.
    browser.type_into("#f-name", "bad name!").await;
    browser
        .type_into(
            "#f-command",
            &format!(
                "{} --name good",
                mcpr_e2e::harness::bin("mcpr-fixture-server").display()
            ),
        )
        .await;
    browser.click("#f-submit").await;
    browser
        .wait(
            "the name field's error",
            "return document.getElementById('e-name').textContent.length > 0 && document.getElementById('f-name').getAttribute('aria-invalid') === 'true'",
            WAIT,
        )
        .await;
    browser.screenshot("add-field-error").await;
    browser.clear("#f-name").await;
    browser.type_into("#f-name", "good").await;
    let cleared = browser
        .js(
            "return document.getElementById('e-name').textContent === '' && !document.getElementById('f-name').hasAttribute('aria-invalid')",
            json!([]),
        )
        .await;
    assert_eq!(cleared, true, "the fixed field still shows its error");
    // Scrolled down to the form, the success notice still shows in the viewport.
    browser.click("#f-submit").await;
    let notice = browser
        .wait(
            "the success notice, inside the viewport",
            "const n = document.getElementById('notice'); const r = n.getBoundingClientRect(); return !n.hidden && r.top >= 0 && r.bottom <= innerHeight && n.innerText.includes('added server \"good\"') && n.innerText",
            WAIT,
        )
        .await;
    assert!(notice.as_str().unwrap().contains("good"));
    browser.screenshot("add-notice").await;
    wait_row_text(&browser, "good", "running").await;
}

#[tokio::test]
async fn details_of_a_server_deleted_elsewhere_close_and_stop_asking() {
    let Some((router, browser)) = open(1280, 900).await else {
        return;
    };
    let api = router.api();
    api.add_fixture("gone", &[]).await;
    wait_row_text(&browser, "gone", "running").await;
    browser.click("tr[data-server=\"gone\"] button.name").await;
    browser
        .wait(
            "gone's details with its tools",
            "return !document.getElementById('details').hidden && document.getElementById('d-tools').children.length > 0",
            WAIT,
        )
        .await;
    let (status, _) = api
        .call(reqwest::Method::DELETE, "/api/v1/servers/gone", None)
        .await;
    assert_eq!(status, 204);
    browser
        .wait(
            "the details to close with a notice",
            "return document.getElementById('details').hidden && document.getElementById('notice').innerText.includes('no longer exists')",
            WAIT,
        )
        .await;
    let asked = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/servers/gone')).length";
    let before = browser.js(asked, json!([])).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = browser.js(asked, json!([])).await;
    assert_eq!(before, after, "the page kept asking for the deleted server");
    assert_eq!(
        browser
            .js(&format!("return {}", row("gone")), json!([]))
            .await,
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn an_old_error_goes_once_the_server_runs_again() {
    let Some((router, browser)) = open(1280, 900).await else {
        return;
    };
    let api = router.api();
    api.add(json!({"name": "flaky", "runtime": {"kind": "process", "command": "/nonexistent/mcp-server"}}))
        .await;
    api.wait_last_error("flaky", "a start failure").await;
    browser
        .wait(
            "flaky's error in its row",
            &format!(
                "const r = {}; return r && r.querySelector('.error-text').textContent.length > 0",
                row("flaky")
            ),
            WAIT,
        )
        .await;
    browser.screenshot("server-error").await;
    let fixture = mcpr_e2e::harness::bin("mcpr-fixture-server");
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/servers/flaky",
            Some(json!({"runtime": {"kind": "process", "command": fixture, "args": ["--name", "flaky"]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_row_text(&browser, "flaky", "running").await;
    let error = browser
        .js(
            &format!(
                "return {}.querySelector('.error-text').textContent",
                row("flaky")
            ),
            json!([]),
        )
        .await;
    assert_eq!(error, "", "a running server still shows its old error");
}

#[tokio::test]
async fn an_unreachable_router_disables_every_action() {
    let Some((mut router, browser)) = open(1280, 900).await else {
        return;
    };
    router.api().add_fixture("solo", &[]).await;
    wait_row_text(&browser, "solo", "running").await;
    router.proc.kill();
    browser
        .wait(
            "the offline notice with every action disabled",
            "const bs = [...document.querySelectorAll('#servers button[data-action], #f-submit, #k-submit')]; return !document.getElementById('conn-error').hidden && bs.length >= 5 && bs.every(b => b.disabled)",
            WAIT,
        )
        .await;
    browser.screenshot("offline").await;
}

#[tokio::test]
async fn narrow_screens_get_cards_with_every_action_on_screen() {
    let Some((router, browser)) = open(390, 844).await else {
        return;
    };
    router
        .api()
        .add_fixture("a-server-with-a-long-name", &[])
        .await;
    wait_row_text(&browser, "a-server-with-a-long-name", "running").await;
    let widths = browser
        .js(
            &format!(
                "const r = {}; const bs = [...r.querySelectorAll('button[data-action]')].map(b => b.getBoundingClientRect().right);
                 return [document.documentElement.scrollWidth, r.getBoundingClientRect().width, Math.max(...bs)]",
                row("a-server-with-a-long-name")
            ),
            json!([]),
        )
        .await;
    let [page, card, rightmost] = [0, 1, 2].map(|i| widths[i].as_f64().unwrap());
    assert!(page <= 390.0, "the page is {page} px wide at 390 px");
    assert!(card <= 390.0, "the server card is {card} px wide");
    assert!(
        rightmost <= 390.0,
        "an action button ends at {rightmost} px"
    );
    browser.screenshot("narrow-390").await;
}

/// Measures, in the page, the contrast of every badge, button and text of the given
/// selectors against the background behind it (WCAG 2 relative luminance); returns the
/// lowest as `[ratio, description]`.
const CONTRAST: &str = r#"
const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const bg = (e) => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
let worst = [99, ""];
for (const e of document.querySelectorAll(arguments[0])) {
  if (!e.offsetParent || !e.textContent.trim()) continue;
  const a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < worst[0]) worst = [ratio, e.className + " '" + e.textContent.trim().slice(0, 30) + "'"];
}
return worst;
"#;

#[tokio::test]
async fn badges_and_text_keep_a_contrast_of_4_5_in_light_and_dark() {
    let Some((router, browser)) = open(1280, 900).await else {
        return;
    };
    let api = router.api();
    api.add_fixture("up", &[]).await;
    api.add(json!({"name": "broken", "runtime": {"kind": "process", "command": "/nonexistent/mcp-server"}}))
        .await;
    api.add(
        json!({"name": "off", "enabled": false, "runtime": {"kind": "process", "command": "true"}}),
    )
    .await;
    wait_row_text(&browser, "up", "running").await;
    wait_row_text(&browser, "broken", "backoff").await;
    wait_row_text(&browser, "off", "stopped").await;
    let selectors = ".badge, button, .muted, .error-text, .kind, td, th, h2, code";
    for scheme in ["light", "dark"] {
        browser.color_scheme(scheme).await;
        let worst = browser.js(CONTRAST, json!([selectors])).await;
        let ratio = worst[0].as_f64().unwrap();
        eprintln!("{scheme}: lowest contrast {ratio:.2}:1 ({})", worst[1]);
        assert!(
            ratio >= 4.5,
            "{scheme} mode: contrast {ratio:.2}:1 for {}",
            worst[1]
        );
        browser.screenshot(&format!("servers-{scheme}")).await;
    }
}

/// One server-sent event: `(id, event, data)`.
type Sse = (u64, String, serde_json::Value);

/// Reads the admin event feed over plain HTTP.
struct Feed {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Feed {
    async fn open(url: &str, token: &str, last_event_id: Option<u64>) -> Feed {
        let mut request = reqwest::Client::new()
            .get(format!("{url}/api/v1/events"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "the feed is an event stream"
        );
        Feed {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Sse {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                // Keep-alive comments carry no event.
                if let Some(id) = id {
                    return (id, event, serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event within 15 s")
                .expect("the feed ended")
                .unwrap();
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// The next event of kind `kind` (others skipped).
    async fn next_of(&mut self, kind: &str) -> Sse {
        loop {
            let event = self.next().await;
            if event.1 == kind {
                return event;
            }
        }
    }
}

#[tokio::test]
async fn the_event_feed_needs_the_admin_and_resumes_from_last_event_id() {
    let router = Router::start_with(&[], &[("ADMIN_PASSCODE", PASSCODE)]).await;
    let url = router.url();
    let anonymous = reqwest::get(format!("{url}/api/v1/events")).await.unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "the feed is behind the admin login"
    );
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/login"))
        .json(&json!({"passcode": PASSCODE}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let api = mcpr_e2e::harness::Api::with_client(
        &url,
        reqwest::Client::builder()
            .default_headers(
                [(
                    http::header::AUTHORIZATION,
                    format!("Bearer {token}").parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
    );

    let mut feed = Feed::open(&url, &token, None).await;
    let (_, kind, snapshot) = feed.next().await;
    assert_eq!(kind, "snapshot");
    assert_eq!(snapshot["servers"], json!([]));
    api.add_fixture("fed", &[]).await;
    let (added_id, _, added) = feed.next_of("server").await;
    assert_eq!(added["name"], "fed");
    let (_, _, tools) = feed.next_of("tools").await;
    assert_eq!(tools["server"], "fed");
    assert!(!tools["tools"].as_array().unwrap().is_empty());
    drop(feed);

    // Changes while no one listens are replayed from the ring after the last id seen.
    let (status, _) = api.post("/api/v1/servers/fed/disable", json!({})).await;
    assert_eq!(status, 200);
    api.post("/api/v1/keys", json!({"name": "laptop"})).await;
    let mut resumed = Feed::open(&url, &token, Some(added_id)).await;
    let (first_id, first_kind, _) = resumed.next().await;
    assert_ne!(
        first_kind, "snapshot",
        "a known Last-Event-ID resumes, without snapshot"
    );
    assert!(first_id > added_id);
    // Its start (starting, running) came after the add, then the disable.
    while resumed.next_of("server").await.2["enabled"] != false {}
    let (_, _, keys) = resumed.next_of("keys").await;
    assert_eq!(keys[0]["name"], "laptop");
    // An id the ring never held (another process's) starts over from a snapshot.
    let mut stranger = Feed::open(&url, &token, Some(u64::MAX / 2)).await;
    let (_, kind, snapshot) = stranger.next().await;
    assert_eq!(kind, "snapshot");
    assert_eq!(snapshot["servers"][0]["name"], "fed");
    assert_eq!(snapshot["keys"][0]["name"], "laptop");
}

/// Sets a form control's value as typing would (an `input` event) without key by key typing.
async fn fill(browser: &Browser, css: &str, value: &str) {
    browser
        .js(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([css, value]),
        )
        .await;
}

#[tokio::test]
async fn pages_deep_links_edit_import_keys_and_a_connect_snippet_a_real_client_runs() {
    let router = Router::start().await;
    let Some(browser) = Browser::start(1280, 900).await else {
        return;
    };
    let api = router.api();
    api.add_fixture("alpha", &[]).await;
    api.add(json!({"name": "broken", "runtime": {"kind": "process", "command": "/nonexistent/mcp-server"}}))
        .await;
    api.wait_state("alpha", "running").await;
    api.wait_last_error("broken", "a start failure").await;

    // A deep link opens the server's details on a fresh load, the focus in them.
    browser
        .goto(&format!("{}/#/servers/alpha", router.url()))
        .await;
    browser
        .wait(
            "alpha's details from the deep link",
            "return !document.getElementById('details').hidden && document.getElementById('d-title').textContent === 'alpha' && document.getElementById('d-tools').children.length > 0",
            WAIT,
        )
        .await;

    // The dashboard: counts, and the problem first.
    browser.goto(&format!("{}/#/", router.url())).await;
    let dashboard = browser
        .wait(
            "the dashboard's counts and problems",
            "const c = (n) => document.querySelector('[data-count=\"' + n + '\"] strong').textContent; const p = document.getElementById('problems').innerText; return c('Servers') === '2' && c('Problems') === '1' && p.includes('broken') && p",
            WAIT,
        )
        .await;
    assert!(dashboard.as_str().unwrap().contains("command not found"));
    browser.screenshot("page-dashboard").await;

    // Edit alpha's description; its secret, shown redacted, is kept as it was.
    browser
        .goto(&format!("{}/#/servers/alpha", router.url()))
        .await;
    browser.click("#d-edit-open").await;
    let runtime = browser
        .js(
            "return document.getElementById('x-runtime').value",
            json!([]),
        )
        .await;
    assert!(runtime.as_str().unwrap().contains("********"), "{runtime}");
    fill(&browser, "#x-description", "edited in the browser").await;
    browser.screenshot("page-server-edit").await;
    browser.click("#x-submit").await;
    api.wait_until("alpha", "the new description", |s| {
        s["description"] == "edited in the browser"
    })
    .await;
    api.wait_state("alpha", "running").await;
    let mut client = mcpr_e2e::harness::RawMcp::new(&router.mcp_url("/mcp/p/alpha"));
    client.initialize().await;
    let secret = client
        .call("get_env", json!({"name": "FIXTURE_SECRET"}))
        .await
        .unwrap();
    assert_eq!(secret["content"][0]["text"], "s3cret-value");

    // Import a Claude Desktop document pasted in the add page.
    browser.goto(&format!("{}/#/add", router.url())).await;
    let fixture = mcpr_e2e::harness::bin("mcpr-fixture-server");
    let doc =
        json!({"mcpServers": {"imported": {"command": fixture, "args": ["--name", "imported"]}}});
    fill(&browser, "#i-json", &doc.to_string()).await;
    browser.click("#i-submit").await;
    browser
        .wait(
            "the import notice",
            "return document.getElementById('notice').innerText.includes('imported imported')",
            WAIT,
        )
        .await;
    browser.screenshot("page-add").await;
    api.wait_state("imported", "running").await;

    // The tool explorer lists every server's tools with their schemas.
    browser.goto(&format!("{}/#/tools", router.url())).await;
    browser
        .wait(
            "the tool explorer",
            "return document.querySelector('[data-tool=\"alpha__echo\"]') && document.querySelector('[data-tool=\"imported__echo\"]')",
            WAIT,
        )
        .await;
    browser.click("[data-tool=\"alpha__echo\"] summary").await;
    browser.screenshot("page-tools").await;

    // A key made on the keys page, copied into the connect page's snippets.
    browser.goto(&format!("{}/#/keys", router.url())).await;
    browser.type_into("#k-name", "laptop").await;
    browser.click("#k-submit").await;
    let secret = browser
        .wait(
            "the new key's one-time secret",
            "return document.getElementById('new-key-value').textContent",
            WAIT,
        )
        .await;
    let secret = secret.as_str().unwrap().to_owned();
    browser.screenshot("page-keys").await;
    browser.goto(&format!("{}/#/connect", router.url())).await;
    fill(&browser, "#c-view", "/mcp/all").await;
    let python = browser
        .wait(
            "the Python snippet with the key",
            &format!("const t = document.getElementById('snippet-python').textContent; return t.includes({secret:?}) && t.includes('/mcp/all') && t"),
            WAIT,
        )
        .await;
    let code = browser
        .js(
            "return document.getElementById('snippet-claude-code').textContent",
            json!([]),
        )
        .await;
    assert!(
        code.as_str()
            .unwrap()
            .starts_with("claude mcp add --transport http mcp-router "),
        "{code}"
    );
    let download = browser
        .js(
            "return decodeURIComponent(document.getElementById('c-download').href.split(',')[1])",
            json!([]),
        )
        .await;
    let desktop: serde_json::Value = serde_json::from_str(download.as_str().unwrap()).unwrap();
    assert_eq!(desktop["mcpServers"]["mcp-router"]["command"], "mcpr");
    assert_eq!(
        desktop["mcpServers"]["mcp-router"]["env"]["MCPR_API_KEY"],
        secret.as_str()
    );
    browser.screenshot("page-connect").await;
    // The snippet, run as it is by the official Python SDK, lists the router's tools.
    if let Some(interpreter) = mcpr_e2e::harness::python() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("snippet.py");
        std::fs::write(&script, python.as_str().unwrap()).unwrap();
        let output = tokio::process::Command::new(interpreter)
            .arg(&script)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success()
                && stdout.contains("alpha__echo")
                && stdout.contains("imported__echo"),
            "the Python snippet failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn the_logs_page_follows_filters_pauses_and_downloads() {
    let router = Router::start().await;
    let Some(browser) = Browser::start(1280, 900).await else {
        return;
    };
    let api = router.api();
    api.add_fixture("talker", &[]).await;
    api.add_fixture("quiet", &[]).await;
    api.wait_state("talker", "running").await;
    api.wait_state("quiet", "running").await;
    browser.goto(&format!("{}/#/logs", router.url())).await;
    // Lines from before the page opened: each server's start.
    browser
        .wait(
            "both servers' start lines",
            "const t = document.getElementById('g-lines').textContent; return t.includes('fixture server talker ready') && t.includes('fixture server quiet ready')",
            WAIT,
        )
        .await;
    let mut client = mcpr_e2e::harness::RawMcp::new(&router.mcp_url("/mcp/p/talker"));
    client.initialize().await;
    client
        .call("log_stderr", json!({"line": "live line one"}))
        .await
        .unwrap();
    browser
        .wait(
            "a line logged now, shown live",
            "return document.getElementById('g-lines').textContent.includes('live line one')",
            WAIT,
        )
        .await;
    // Filters: by server, then by text.
    fill(&browser, "#g-server", "quiet").await;
    let text = browser
        .js(
            "return document.getElementById('g-lines').textContent",
            json!([]),
        )
        .await;
    assert!(
        !text.as_str().unwrap().contains("talker"),
        "the server filter let talker through: {text}"
    );
    fill(&browser, "#g-server", "").await;
    fill(&browser, "#g-text", "LIVE LINE").await;
    let text = browser
        .js(
            "return document.getElementById('g-lines').textContent",
            json!([]),
        )
        .await;
    assert_eq!(text.as_str().unwrap().lines().count(), 1, "{text}");
    // Paused, a new line waits; resumed, it shows.
    browser.click("#g-pause").await;
    client
        .call("log_stderr", json!({"line": "live line two"}))
        .await
        .unwrap();
    browser
        .wait(
            "the paused status counting the new line",
            "return document.getElementById('g-status').textContent === 'paused: 1 new lines'",
            WAIT,
        )
        .await;
    let text = browser
        .js(
            "return document.getElementById('g-lines').textContent",
            json!([]),
        )
        .await;
    assert!(!text.as_str().unwrap().contains("live line two"));
    browser.screenshot("page-logs-paused").await;
    browser.click("#g-pause").await;
    browser
        .wait(
            "the line after resuming",
            "return document.getElementById('g-lines').textContent.includes('live line two')",
            WAIT,
        )
        .await;
    // The download holds what the filters show.
    browser
        .js("document.getElementById('g-download').dispatchEvent(new MouseEvent('click', {cancelable: true})) ", json!([]))
        .await;
    let file = browser
        .js(
            "return decodeURIComponent(document.getElementById('g-download').href.split(',')[1])",
            json!([]),
        )
        .await;
    let file = file.as_str().unwrap();
    assert_eq!(file.lines().count(), 2, "{file}");
    assert!(file.contains("talker stderr live line two"), "{file}");
}
