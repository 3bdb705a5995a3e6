//! The web UI's keys page (`#/keys`, `control-plane/ui/keys.js`) and keyboard use of every
//! page, in a real browser (headless Chromium over WebDriver, `mcpr_e2e::browser`) against
//! `mcpr up` with the built-in OAuth server: a key created with scopes and expiry, its
//! one-time secret copied to the real clipboard, revoked, then removed; the OAuth client
//! and consent of a real authorization listed and revoked. Then a keyboard walk through
//! each page: Tab reaches every control, each with an accessible name and a visible focus
//! ring; Enter opens, Escape closes and gives focus back. Screenshots `keys*` in
//! `target/ui-screenshots/`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpr_e2e::browser::Browser;
use mcpr_e2e::harness::{Router, wait_initialize_status};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(15);
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A real authorization against the router's OAuth server (no passcode: the consent form
/// carries its own CSRF token): registers a client, approves, redeems the code. Answers
/// the client id and the access token.
async fn authorize(base: &str) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client: Value = http
        .post(format!("{base}/oauth/register"))
        .json(&json!({"client_name": "UI e2e client", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let verifier = URL_SAFE_NO_PAD.encode(Sha256::digest(client_id.as_bytes()));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let page = http
        .get(format!("{base}/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page.find(&marker).unwrap_or_else(|| panic!("{page}")) + marker.len();
        page[start..].split('"').next().unwrap().to_owned()
    };
    let decided = http
        .post(format!("{base}/oauth/authorize"))
        .form(&[
            ("request_id", field("request_id")),
            ("csrf", field("csrf")),
            ("decision", "approve".into()),
        ])
        .send()
        .await
        .unwrap();
    let location = decided.headers()["location"].to_str().unwrap().to_owned();
    let code = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned();
    let tokens: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        client_id,
        tokens["access_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn keys_are_created_copied_revoked_and_removed_and_oauth_grants_revoked() {
    let router = Router::start_with(&[], &[("MCP_OAUTH_ENABLED", "true")]).await;
    let base = router.url();
    let (client_id, access) = authorize(&base).await;
    let mcp = router.mcp_url("/mcp");
    wait_initialize_status(&mcp, Some(&access), 200, WAIT).await;

    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    // The real clipboard: headless Chromium grants it to the page when asked.
    let origin = base.trim_end_matches('/').to_owned();
    browser
        .cdp(
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
        )
        .await;
    browser.goto(&format!("{base}/#/keys")).await;
    browser
        .wait(
            "the OAuth client in the list",
            &format!(
                "return !!document.querySelector('#oauth-clients tr[data-client=\"{client_id}\"]')"
            ),
            WAIT,
        )
        .await;

    // Create a key with scopes and an expiry: the secret shows once, focus on its copy button.
    browser.type_into("#k-name", "laptop <b>").await;
    browser.type_into("#k-scopes", "fx, _sandbox").await;
    browser.type_into("#k-days", "30").await;
    browser.click("#k-submit").await;
    let secret = browser
        .wait(
            "the one-time secret",
            "const v = document.getElementById('new-key-value').textContent; return document.activeElement.id === 'copy-key' && v.startsWith('mcpr_') && v",
            WAIT,
        )
        .await;
    let secret = secret.as_str().unwrap().to_owned();
    let row = browser
        .wait(
            "the key's row",
            "const r = [...document.querySelectorAll('#keys-table tbody tr')].find((r) => r.textContent.includes('laptop <b>')); return r && r.innerText",
            WAIT,
        )
        .await;
    let row = row.as_str().unwrap().to_owned();
    assert!(
        row.contains("fx, _sandbox") && row.contains("active"),
        "{row}"
    );
    assert!(!row.contains("never\tnever"), "an expiry is shown: {row}");
    browser.screenshot("keys-created").await;
    // Enter on the focused copy button: the secret is on the clipboard, exactly.
    browser.press(ENTER).await;
    browser
        .wait(
            "the copy button to say Copied",
            "return document.getElementById('copy-key').textContent === 'Copied'",
            WAIT,
        )
        .await;
    let copied = browser
        .js("return navigator.clipboard.readText()", json!([]))
        .await;
    assert_eq!(copied.as_str(), Some(secret.as_str()));
    // Escape closes the secret; focus returns to the form.
    browser.press(ESCAPE).await;
    browser
        .wait(
            "the secret to close",
            "return document.getElementById('new-key').hidden && document.activeElement.id === 'k-name' && document.getElementById('new-key-value').textContent === ''",
            WAIT,
        )
        .await;

    // Revoke (named with the key), then remove.
    let key_id = router.api().get("/api/v1/keys").await.1[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser
        .click("#keys-table button[aria-label=\"Revoke API key laptop <b>\"]")
        .await;
    browser.accept_alert().await;
    browser
        .wait(
            "the key revoked, with a remove button",
            "return !!document.querySelector('#keys-table button[aria-label=\"Remove API key laptop <b>\"]')",
            WAIT,
        )
        .await;
    browser
        .click("#keys-table button[aria-label=\"Remove API key laptop <b>\"]")
        .await;
    browser.accept_alert().await;
    browser
        .wait(
            "the key gone from the list",
            "return document.querySelectorAll('#keys-table tbody tr').length === 0 && !document.getElementById('keys-empty').hidden",
            WAIT,
        )
        .await;
    let (_, keys) = router.api().get("/api/v1/keys").await;
    assert_eq!(keys, json!([]));
    let (_, audit) = router.api().get("/api/v1/audit?method=key.remove").await;
    assert_eq!(audit["records"][0]["target"], key_id.as_str(), "{audit}");

    // The consent of the authorization: revoke it from the page; the token stops working.
    let label = browser
        .js(
            "return document.querySelector('#oauth-consents button').getAttribute('aria-label')",
            json!([]),
        )
        .await;
    assert!(
        label
            .as_str()
            .unwrap()
            .starts_with("Revoke the consent of UI e2e client granted "),
        "{label}"
    );
    browser.screenshot("keys-oauth").await;
    browser.click("#oauth-consents button").await;
    browser.accept_alert().await;
    browser
        .wait(
            "the consent revoked",
            "const r = document.querySelector('#oauth-consents tbody tr'); return r && r.innerText.includes('revoked') && !r.querySelector('button')",
            WAIT,
        )
        .await;
    wait_initialize_status(&mcp, Some(&access), 401, WAIT).await;
    browser
        .click("#oauth-clients button[aria-label=\"Revoke OAuth client UI e2e client\"]")
        .await;
    browser.accept_alert().await;
    browser
        .wait(
            "the client revoked",
            "const r = document.querySelector('#oauth-clients tbody tr'); return r && r.innerText.includes('revoked')",
            WAIT,
        )
        .await;

    // Narrow (390 px): cards, no sideways scrolling; light and dark.
    browser.resize(390, 900).await;
    for scheme in ["light", "dark"] {
        browser.color_scheme(scheme).await;
        let overflow = browser
            .js(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                json!([]),
            )
            .await;
        assert_eq!(
            overflow.as_i64(),
            Some(0),
            "sideways scroll at 390 px ({scheme})"
        );
        let head = browser
            .js(
                "return getComputedStyle(document.querySelector('#oauth-clients thead')).display",
                json!([]),
            )
            .await;
        assert_eq!(head, "none", "cards instead of the table at 390 px");
        let low = browser.js(CONTRAST, json!([])).await;
        assert_eq!(low, json!([]), "text under 4.5:1 on #/keys ({scheme})");
        browser.screenshot(&format!("keys-narrow-{scheme}")).await;
    }
}

/// Every visible text of the keys page whose contrast with its background is under 4.5:1
/// (WCAG 2 relative luminance; the background is the nearest ancestor's opaque one).
const CONTRAST: &str = r#"
const rgb = (c) => { const m = c.match(/[\d.]+/g).map(Number); return m.length > 3 && m[3] === 0 ? null : m.slice(0, 3); };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const bg = (e) => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c) return c; } return [255, 255, 255]; };
const low = [];
for (const e of document.querySelectorAll('#keys *')) {
  if (!e.offsetParent && getComputedStyle(e).position !== 'fixed') continue;
  const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const s = getComputedStyle(e);
  if (parseFloat(s.opacity) < 1 || e.disabled) continue;
  const a = lum(rgb(s.color)), b = lum(bg(e));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) low.push(e.tagName + ' ' + e.textContent.trim().slice(0, 40) + ' ' + ratio.toFixed(2));
}
return low;
"#;

/// The controls of the page that a keyboard reaches and a screen reader names: every
/// visible button, link, input, select, textarea and summary without an accessible name.
const UNNAMED: &str = r#"
const visible = (e) => e.offsetParent !== null || getComputedStyle(e).position === 'fixed';
const name = (e) => {
  if (e.getAttribute('aria-label')) return e.getAttribute('aria-label');
  const by = e.getAttribute('aria-labelledby');
  if (by) return by.split(' ').map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
  if (e.labels && e.labels.length) return [...e.labels].map((l) => l.textContent).join(' ').trim();
  if (['BUTTON', 'A', 'SUMMARY'].includes(e.tagName)) return e.textContent.trim();
  return e.getAttribute('title') || '';
};
return [...document.querySelectorAll('button, a[href], input:not([type=hidden]), select, textarea, summary, [tabindex="0"]')]
  .filter(visible).filter((e) => !name(e)).map((e) => e.outerHTML.slice(0, 120));
"#;

/// What has focus: a short description, whether it has an accessible name, and whether a
/// focus indicator shows (an outline or a box shadow).
const FOCUSED: &str = r#"
const e = document.activeElement;
if (!e || e === document.body) return null;
const s = getComputedStyle(e);
const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';
return {id: e.id || '', tag: e.tagName, text: (e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 60), ring, inMain: !!e.closest('main, header')};
"#;

/// Tabs from the page's heading through every control (until focus leaves the page or
/// comes round again): each must show a focus ring. Answers what was reached, in order.
async fn tab_walk(browser: &Browser, page: &str) -> Vec<Value> {
    let mut reached: Vec<Value> = Vec::new();
    for _ in 0..400 {
        browser.press(TAB).await;
        let focused = browser.js(FOCUSED, json!([])).await;
        if focused.is_null() || reached.iter().any(|r| r == &focused) {
            break;
        }
        assert_eq!(
            focused["ring"], true,
            "{page}: no visible focus indicator on {focused}"
        );
        reached.push(focused);
    }
    reached
}

#[tokio::test]
async fn keyboard_walk_through_every_page() {
    let router = Router::start_with(&[], &[("MCP_OAUTH_ENABLED", "true")]).await;
    let api = router.api();
    api.add_fixture("fx", &[]).await;
    api.wait_state("fx", "running").await;
    let (status, _) = api
        .post("/api/v1/keys", json!({"name": "ci", "scopes": ["fx"]}))
        .await;
    assert_eq!(status, 201);
    authorize(&router.url()).await;
    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    let base = router.url();
    let pages = [
        ("#/", "dashboard"),
        ("#/servers", "servers-page"),
        ("#/servers/fx", "details"),
        ("#/add", "add"),
        ("#/tools", "tools-page"),
        ("#/keys", "keys"),
        ("#/connect", "connect"),
        ("#/activity", "activity-page"),
        ("#/logs", "logs-page"),
    ];
    let mut problems = Vec::new();
    for (hash, section) in pages {
        // A fresh load per page: the walk before it left focus outside the document.
        browser.goto("about:blank").await;
        browser.goto(&format!("{base}/{hash}")).await;
        // Focus moves into what opened: the page's heading.
        browser
            .wait(
                &format!("{hash}: focus on the page's heading"),
                &format!(
                    "const h = document.activeElement; return h && h.tagName === 'H2' && !!h.closest('#{section}') && (document.querySelector('#servers tbody tr') !== null)"
                ),
                WAIT,
            )
            .await;
        if hash == "#/keys" {
            browser
                .wait(
                    "the OAuth lists",
                    "return document.querySelectorAll('#oauth-consents tbody tr').length === 1",
                    WAIT,
                )
                .await;
        }
        let unnamed = browser.js(UNNAMED, json!([])).await;
        if unnamed != json!([]) {
            problems.push(format!(
                "{hash}: controls without an accessible name: {unnamed}"
            ));
        }
        let reached = tab_walk(&browser, hash).await;
        // Every control of the page's own section is reached by Tab (of a radio group, the
        // checked one: arrows move within the group).
        let expected = browser
            .js(
                &format!(
                    "return [...document.querySelectorAll('#{section} :is(button, a[href], input, select, textarea, summary, [tabindex=\"0\"])')].filter((e) => e.offsetParent !== null && !e.disabled && !(e.type === 'radio' && !e.checked)).length"
                ),
                json!([]),
            )
            .await
            .as_u64()
            .unwrap() as usize;
        let in_section = browser
            .js(
                &format!(
                    "return [...document.querySelectorAll('#{section} :is(button, a[href], input, select, textarea, summary, [tabindex=\"0\"])')].filter((e) => e.offsetParent !== null && !e.disabled && !(e.type === 'radio' && !e.checked)).map((e) => e.id || (e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 60))"
                ),
                json!([]),
            )
            .await;
        let reached_names: Vec<String> = reached
            .iter()
            .map(|r| {
                if r["id"] != "" {
                    r["id"].as_str().unwrap().to_owned()
                } else {
                    r["text"].as_str().unwrap().to_owned()
                }
            })
            .collect();
        let missing: Vec<&Value> = in_section
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| !reached_names.iter().any(|r| Some(r.as_str()) == n.as_str()))
            .collect();
        if reached.len() < expected || !missing.is_empty() {
            problems.push(format!(
                "{hash}: Tab reached {} controls, the page has {expected}; not reached: {missing:?}",
                reached.len()
            ));
        }
        browser
            .screenshot(&format!("keyboard-{}", section.trim_end_matches("-page")))
            .await;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Enter on a server's name opens its details (focus on them); Escape closes them and
    // gives focus back to the name.
    browser.goto(&format!("{base}/#/servers")).await;
    browser
        .wait(
            "the server row",
            "return !!document.querySelector('#servers tr[data-server=\"fx\"] button.name')",
            WAIT,
        )
        .await;
    browser
        .js(
            "document.querySelector('#servers tr[data-server=\"fx\"] button.name').focus()",
            json!([]),
        )
        .await;
    browser.press(ENTER).await;
    browser
        .wait(
            "the details open, focused",
            "return !document.getElementById('details').hidden && !!document.activeElement.closest('#details')",
            WAIT,
        )
        .await;
    browser.press(ESCAPE).await;
    browser
        .wait(
            "the details closed, focus back on the name",
            "return document.getElementById('details').hidden && document.activeElement.matches('#servers tr[data-server=\"fx\"] button.name')",
            WAIT,
        )
        .await;
    // Space activates a button too: the tool explorer's summary opens with it.
    browser.goto(&format!("{base}/#/tools")).await;
    browser
        .wait(
            "a tool",
            "return !!document.querySelector('#t-list summary')",
            WAIT,
        )
        .await;
    browser
        .js(
            "document.querySelector('#t-list summary').focus()",
            json!([]),
        )
        .await;
    browser.press(" ").await;
    browser
        .wait(
            "the tool's details open",
            "return document.querySelector('#t-list details').open",
            WAIT,
        )
        .await;
}
