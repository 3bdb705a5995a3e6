//! Per-tool settings in the web UI (issue 13, item 4): the Disable/Enable and Edit buttons
//! of each tool on the Tools page (`#/tools`) and on the server details (`#/servers/NAME`),
//! in a real browser (headless Chromium over WebDriver, `mcpr_e2e::browser`) against
//! `mcpr up` with the fixture server, checked after each click by a real MCP client (the
//! official Python SDK, `tests/python/tool_seen.py`) on `/mcp/all`: a tool disabled in the
//! UI leaves the client's list and its call is refused saying it is disabled; enabled, it is
//! back; a name and description override shows in the client's list, and clearing it
//! restores the upstream's. The page follows the feed without losing focus. Screenshots
//! `tools-*` in `target/ui-screenshots/`.

use std::time::Duration;

use mcpr_e2e::browser::Browser;
use mcpr_e2e::harness::{Router, python, run_python};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const ESCAPE: &str = "\u{E00C}";

/// What the Python SDK client sees on `/mcp/all`: the listed tools and a call of `tool`.
async fn client_sees(router: &Router, tool: &str) -> Value {
    let out = run_python(
        "tool_seen.py",
        &[
            &router.mcp_url("/mcp/all"),
            tool,
            r#"{"text": "through the client"}"#,
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
}

fn listed(seen: &Value, name: &str) -> Option<Value> {
    seen["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool list: {seen}"))
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
}

/// The tool card's button of `action` (`tool-toggle`, `tool-edit`) on the Tools page.
fn card_button(key: &str, action: &str) -> String {
    format!("#t-list [data-tool-key=\"{key}\"] > button[data-action=\"{action}\"]")
}

/// Waits until the toggle at `css` says `verb` with its aria-label, the tool's badge
/// showing (or not) "disabled"; answers the aria-label.
async fn wait_toggle(browser: &Browser, css: &str, verb: &str) -> String {
    let label = browser
        .wait(
            &format!("{css} to say {verb}"),
            &format!(
                "const b = document.querySelector({css:?}); if (!b || b.textContent !== {verb:?}) return false; \
                 const badge = b.closest('[data-tool-key]').querySelector('.tool-off'); \
                 if (badge.hidden !== ({verb:?} === 'Disable') || badge.textContent !== 'disabled') return false; \
                 return b.getAttribute('aria-label')"
            ),
            WAIT,
        )
        .await;
    label.as_str().unwrap_or_default().to_owned()
}

/// Screenshots `NAME`, `NAME-dark`, `NAME-390-dark` and `NAME-390`; back to 1280 px, light.
async fn four_shots(browser: &Browser, name: &str) {
    browser.screenshot(name).await;
    browser.color_scheme("dark").await;
    browser.screenshot(&format!("{name}-dark")).await;
    browser.resize(390, 900).await;
    browser.screenshot(&format!("{name}-390-dark")).await;
    browser.color_scheme("light").await;
    browser.screenshot(&format!("{name}-390")).await;
    browser.resize(1280, 1000).await;
}

#[tokio::test]
async fn tools_are_disabled_enabled_and_renamed_from_the_ui_as_a_client_sees_them() {
    if python().is_none() {
        return;
    }
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("fx", &[]).await;
    api.wait_state("fx", "running").await;
    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    let before = client_sees(&router, "fx__echo").await;
    assert!(listed(&before, "fx__echo").is_some(), "{before}");
    assert_eq!(
        before["call"]["result"]["texts"],
        json!(["through the client"]),
        "{before}"
    );

    // Tools page: Disable on echo's card.
    browser.goto(&format!("{}/#/tools", router.url())).await;
    let toggle = card_button("fx/echo", "tool-toggle");
    let label = wait_toggle(&browser, &toggle, "Disable").await;
    assert_eq!(label, "Disable tool echo of server fx");
    browser.click(&toggle).await;
    let label = wait_toggle(&browser, &toggle, "Enable").await;
    assert_eq!(label, "Enable tool echo of server fx");
    // Still listed (so it can be enabled again), its Try off, focus still on the toggle
    // after the feed's `tools` event updated the card.
    let state = browser
        .wait(
            "the feed's update of the card, focus kept",
            &format!(
                "const b = document.querySelector({toggle:?}); const c = b.closest('.tool-card'); \
                 return document.activeElement === b && c.classList.contains('tool-disabled') && c.querySelector('button.try-open').disabled \
                 && document.getElementById('t-note').textContent"
            ),
            WAIT,
        )
        .await;
    assert!(
        state.as_str().unwrap_or_default().contains(" of "),
        "{state}"
    );
    let (_, settings) = api.get("/api/v1/servers/fx/tools").await;
    let echo = settings
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    assert_eq!(echo["mcpr"]["enabled"], false, "{settings}");

    let off = client_sees(&router, "fx__echo").await;
    assert!(
        listed(&off, "fx__echo").is_none(),
        "gone from the list: {off}"
    );
    assert!(listed(&off, "fx__add").is_some(), "other tools stay: {off}");
    let refusal = off["call"]["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("the call is refused with a JSON-RPC error: {off}"));
    assert!(
        refusal.contains("echo") && refusal.contains("is disabled"),
        "the refusal says the tool is disabled: {off}"
    );

    // Screenshots of a disabled tool: Tools page and server details, wide and narrow, light
    // and dark.
    browser.click("[data-tool=\"fx__echo\"] summary").await;
    four_shots(&browser, "tools-disabled").await;

    // Enable again from the Tools page, by keyboard.
    browser
        .js(
            "document.querySelector(arguments[0]).focus()",
            json!([toggle]),
        )
        .await;
    browser.press("\u{E007}").await;
    wait_toggle(&browser, &toggle, "Disable").await;
    // A change made elsewhere (the REST API, as `mcpr tool disable` makes it) arrives over the
    // feed: add's card flips in place, focus stays on echo's toggle.
    let (status, _) = api
        .post("/api/v1/servers/fx/tools/add/disable", json!({}))
        .await;
    assert_eq!(status, 200);
    let add_toggle = card_button("fx/add", "tool-toggle");
    wait_toggle(&browser, &add_toggle, "Enable").await;
    let (status, _) = api
        .post("/api/v1/servers/fx/tools/add/enable", json!({}))
        .await;
    assert_eq!(status, 200);
    wait_toggle(&browser, &add_toggle, "Disable").await;
    let focused = browser
        .js(
            "return document.activeElement === document.querySelector(arguments[0])",
            json!([toggle]),
        )
        .await;
    assert_eq!(focused, true, "focus stays through the feed's updates");
    let on = client_sees(&router, "fx__echo").await;
    assert!(listed(&on, "fx__echo").is_some(), "back: {on}");
    assert_eq!(
        on["call"]["result"]["texts"],
        json!(["through the client"]),
        "{on}"
    );

    // Overrides from the Tools page: Edit, a name and a description, Enter saves.
    let edit = card_button("fx/echo", "tool-edit");
    assert_eq!(
        browser
            .js(
                "return document.querySelector(arguments[0]).getAttribute('aria-label')",
                json!([edit])
            )
            .await,
        "Edit name and description of tool echo of server fx"
    );
    browser.click(&edit).await;
    let form = "#t-list [data-tool-key=\"fx/echo\"] form.tool-edit";
    browser
        .wait(
            "the overrides form, focus on its name",
            &format!(
                "const f = document.querySelector({form:?}); return !f.hidden && document.activeElement === f.querySelector('input[name=name]')"
            ),
            WAIT,
        )
        .await;
    // A name clients cannot use is refused, shown at the field.
    browser
        .type_into(&format!("{form} input[name=name]"), "bad name!")
        .await;
    browser.press("\u{E007}").await;
    browser
        .wait(
            "the refusal at the name",
            &format!(
                "const f = document.querySelector({form:?}); return !f.hidden && f.querySelector('input[name=name]').getAttribute('aria-invalid') === 'true' && f.querySelector('.field-error').textContent.length > 0"
            ),
            WAIT,
        )
        .await;
    browser.screenshot("tools-edit-refused").await;
    browser.color_scheme("dark").await;
    browser.resize(390, 900).await;
    browser.screenshot("tools-edit-refused-390-dark").await;
    let wide = browser
        .js(
            "return [document.documentElement.clientWidth, document.documentElement.scrollWidth]",
            json!([]),
        )
        .await;
    assert_eq!(
        wide[0], wide[1],
        "nothing wider than the 390 px page: {wide}"
    );
    browser.color_scheme("light").await;
    browser.resize(1280, 1000).await;
    browser.clear(&format!("{form} input[name=name]")).await;
    browser
        .type_into(&format!("{form} input[name=name]"), "say")
        .await;
    browser
        .type_into(
            &format!("{form} textarea[name=description]"),
            "Says it back",
        )
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser
        .wait(
            "the card under its new name, focus back on Edit",
            &format!(
                "const c = document.querySelector('[data-try=\"fx__say\"]'); return !!c && document.querySelector({form:?}).hidden \
                 && document.activeElement === document.querySelector({edit:?}) && c.querySelector('summary').textContent.includes('Says it back') \
                 && c.querySelector('summary').textContent.includes('upstream: echo')"
            ),
            WAIT,
        )
        .await;
    let renamed = client_sees(&router, "fx__say").await;
    assert!(listed(&renamed, "fx__echo").is_none(), "{renamed}");
    assert_eq!(
        listed(&renamed, "fx__say").map(|t| t["description"].clone()),
        Some(json!("Says it back")),
        "the client lists it under the new name: {renamed}"
    );
    assert_eq!(
        renamed["call"]["result"]["texts"],
        json!(["through the client"]),
        "{renamed}"
    );

    // Server details: the same controls; Disable there, then Escape leaves an open form
    // (and the details stay).
    browser
        .goto(&format!("{}/#/servers/fx", router.url()))
        .await;
    let d_toggle = "#d-tools [data-tool-key=\"fx/echo\"] button[data-action=\"tool-toggle\"]";
    let d_edit = "#d-tools [data-tool-key=\"fx/echo\"] button[data-action=\"tool-edit\"]";
    wait_toggle(&browser, d_toggle, "Disable").await;
    let row = browser
        .js(
            "return document.querySelector('#d-tools [data-tool-key=\"fx/echo\"]').innerText",
            json!([]),
        )
        .await;
    assert!(
        row.as_str().unwrap().contains("say") && row.as_str().unwrap().contains("Says it back"),
        "the details show the overrides: {row}"
    );
    browser.click(d_toggle).await;
    wait_toggle(&browser, d_toggle, "Enable").await;
    let off = client_sees(&router, "fx__say").await;
    assert!(listed(&off, "fx__say").is_none(), "{off}");
    assert!(
        off["call"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is disabled")),
        "{off}"
    );
    four_shots(&browser, "tools-details-disabled").await;

    // Clearing both fields restores the upstream's name and description; Escape first
    // closes the form without closing the details.
    browser.click(d_edit).await;
    browser.press(ESCAPE).await;
    browser
        .wait(
            "Escape closes the form only",
            &format!(
                "return document.querySelector('#d-tools [data-tool-key=\"fx/echo\"] form').hidden && !document.getElementById('details').hidden && document.activeElement === document.querySelector({d_edit:?})"
            ),
            WAIT,
        )
        .await;
    browser.click(d_edit).await;
    let d_form = "#d-tools [data-tool-key=\"fx/echo\"] form";
    browser.clear(&format!("{d_form} input[name=name]")).await;
    browser
        .clear(&format!("{d_form} textarea[name=description]"))
        .await;
    browser
        .click(&format!("{d_form} button[type=submit]"))
        .await;
    browser.click(d_toggle).await;
    wait_toggle(&browser, d_toggle, "Disable").await;
    browser
        .wait(
            "the upstream's name again",
            "const r = document.querySelector('#d-tools [data-tool-key=\"fx/echo\"]'); return r.querySelector('code').textContent === 'echo' && r.querySelector('.tool-upstream').hidden",
            WAIT,
        )
        .await;
    let restored = client_sees(&router, "fx__echo").await;
    assert!(listed(&restored, "fx__say").is_none(), "{restored}");
    let echo = listed(&restored, "fx__echo").expect("echo is back under its name");
    assert_ne!(echo["description"], "Says it back", "{restored}");
    assert_eq!(
        restored["call"]["result"]["texts"],
        json!(["through the client"]),
        "{restored}"
    );
}
