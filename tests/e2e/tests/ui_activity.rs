//! The web UI's Activity page (`#/activity`, `control-plane/ui/activity.js`) in a real
//! browser (headless Chromium over WebDriver, `mcpr_e2e::browser`), against `mcpr up` with
//! the fixture server: the charts of a server with calls, and the audit log with its
//! filters, live (a call made while the page is open appears without a reload). Screenshot
//! `activity` in `target/ui-screenshots/`.

use std::time::Duration;

use mcpr_e2e::browser::Browser;
use mcpr_e2e::harness::{RawMcp, Router};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn activity_charts_and_the_live_audit_log() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("fx", &[]).await;
    api.wait_state("fx", "running").await;
    let mut client = RawMcp::new(&router.mcp_url("/mcp/p/fx"));
    client.initialize().await;
    for i in 0..6 {
        client
            .call("echo", json!({"text": format!("n{i}")}))
            .await
            .unwrap();
    }
    client
        .call("fail", json!({"message": "broken"}))
        .await
        .unwrap();
    client.call("slow", json!({"ms": 30})).await.unwrap();
    // The records are stored (the gateway ships every 500 ms).
    mcpr_e2e::harness::wait_for("the calls in the log", WAIT, || async {
        let (_, page) = api.get("/api/v1/audit?provider=fx&method=tools/call").await;
        (page["records"].as_array().map_or(0, Vec::len) == 8).then_some(())
    })
    .await;

    let Some(browser) = Browser::start(1280, 1000).await else {
        return;
    };
    browser.goto(&format!("{}/#/activity", router.url())).await;
    browser
        .wait(
            "the charts of fx",
            "const s = document.querySelector('#a-charts [data-provider=\"fx\"]'); return s && s.querySelectorAll('svg.chart').length === 3 && s.querySelectorAll('path.series').length >= 4",
            WAIT,
        )
        .await;
    let summary = browser
        .js(
            "return document.querySelector('#a-charts [data-provider=\"fx\"] h3').textContent",
            json!([]),
        )
        .await;
    let summary = summary.as_str().unwrap().to_owned();
    assert!(
        summary.contains("8 calls") && summary.contains("12.5% errors"),
        "{summary}"
    );
    browser
        .wait(
            "the audit log's 8 calls and the admin change",
            "return document.querySelectorAll('#a-log tbody tr').length === 9",
            WAIT,
        )
        .await;

    // Filter: errors only.
    browser
        .js(
            "const s = document.getElementById('a-outcome'); s.value = 'error'; s.dispatchEvent(new Event('change'))",
            json!([]),
        )
        .await;
    browser
        .wait(
            "one error row",
            "const rows = document.querySelectorAll('#a-log tbody tr'); return rows.length === 1 && rows[0].querySelector('td.outcome').textContent.includes('tool_error')",
            WAIT,
        )
        .await;
    let csv = browser
        .js(
            "return document.getElementById('a-csv').getAttribute('href')",
            json!([]),
        )
        .await;
    assert_eq!(csv, "/api/v1/audit?outcome=error&format=csv");

    // Live: with the filter back to all, a new call shows up without a reload.
    browser
        .js(
            "const s = document.getElementById('a-outcome'); s.value = ''; s.dispatchEvent(new Event('change'))",
            json!([]),
        )
        .await;
    browser
        .wait(
            "all rows again",
            "return document.querySelectorAll('#a-log tbody tr').length === 9",
            WAIT,
        )
        .await;
    client.call("add", json!({"a": 2, "b": 3})).await.unwrap();
    browser
        .wait(
            "the new call on top, live",
            "const first = document.querySelector('#a-log tbody tr'); return first && first.children[4].textContent === 'add'",
            WAIT,
        )
        .await;
    browser
        .wait(
            "the charts counting it",
            "const h = document.querySelector('#a-charts [data-provider=\"fx\"] h3'); return h && h.textContent.includes('9 calls')",
            WAIT,
        )
        .await;
    let shot = browser.screenshot("activity").await;
    assert!(shot.exists());
}
