//! The audit log (issue 14), against the real binaries: after a mixed run (a tool call that
//! succeeds, one whose tool fails, one refused by the key's scope, one refused by the rate
//! limit, admin changes) the log holds exactly those records, on SQLite (`mcpr up`) and on
//! Postgres (the distributed form: control plane, agent and gateway as three processes, the
//! gateway shipping its records over gRPC); paging, filters and the CSV / JSON lines export;
//! `mcpr audit --json`, and `mcpr audit --follow --json` printing a new record live.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcpr_e2e::harness::{Api, Cluster, RawMcp, Router, bin, fresh_postgres, tool_text, wait_for};
use serde_json::{Value, json};

/// Every key may make 4 requests, then waits 1000 s for the next: the fifth is refused.
const RATE_LIMIT: (&str, &str) = ("MCPR_RATE_LIMIT_KEY", "0.001/4");

/// What the log must hold after [`mixed_run`], as (who_kind, who_name, method, target,
/// outcome, reason), sorted.
type Summary = Vec<(String, String, String, String, String, String)>;

fn summary(records: &[Value]) -> Summary {
    let s = |r: &Value, k: &str| r[k].as_str().unwrap_or_default().to_owned();
    let mut rows: Summary = records
        .iter()
        .map(|r| {
            (
                s(r, "who_kind"),
                s(r, "who_name"),
                s(r, "method"),
                s(r, "target"),
                s(r, "outcome"),
                s(r, "reason"),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(
    who: &str,
    name: &str,
    method: &str,
    target: &str,
    outcome: &str,
    reason: &str,
) -> (String, String, String, String, String, String) {
    (
        who.into(),
        name.into(),
        method.into(),
        target.into(),
        outcome.into(),
        reason.into(),
    )
}

/// Every record, through the API's paging (pages of 3).
async fn all_records(api: &Api) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=3&cursor={c}"),
            None => "/api/v1/audit?limit=3".to_owned(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let records = page["records"].as_array().unwrap().clone();
        assert!(records.len() <= 3);
        all.extend(records);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

/// The mixed run: admin changes (two keys, a server, a disable), then through the gateway
/// at `mcp_base` a call that works, one whose tool fails, one outside the key's scope and
/// one over the rate limit. Returns the full key's id. With `cluster`, its separate gateway
/// is waited for until it knows the new keys (a gateway that does not yet would take the
/// key-holding client for an anonymous one on a router without keys).
async fn mixed_run(api: &Api, mcp_base: &str, cluster: Option<&Cluster>) -> String {
    api.add_fixture("fx", &[]).await;
    api.wait_state("fx", "running").await;
    let (full, full_view) = api.create_key("full", None).await;
    let (narrow, _) = api.create_key("narrow", Some(&["fx/add"])).await;
    let (status, _) = api.post("/api/v1/servers/nope/disable", json!(null)).await;
    assert_eq!(status, 404);
    if let Some(cluster) = cluster {
        cluster.wait_gateways_current().await;
    }

    // Requests 1 and 2 of the full key: initialize, initialized.
    let mut client = RawMcp::with_key(&format!("{mcp_base}/mcp/p/fx"), &full);
    client.initialize().await;
    // 3 and 4.
    let ok = client.call("echo", json!({"text": "hello"})).await.unwrap();
    assert_eq!(tool_text(&ok), "hello");
    let failed = client
        .call("fail", json!({"message": "broken"}))
        .await
        .unwrap();
    assert_eq!(failed["isError"], true, "{failed}");
    // 5: over the limit.
    let limited = client
        .post_bytes(
            json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "again"}}})
            .to_string(),
        )
        .await;
    assert_eq!(limited.status, 429, "{}", limited.body);

    // The narrow key may use fx/add only.
    let mut scoped = RawMcp::with_key(&format!("{mcp_base}/mcp/all"), &narrow);
    scoped.initialize().await;
    let refused = scoped.call("fx__echo", json!({"text": "no"})).await;
    assert!(refused.is_err(), "{refused:?}");
    full_view["id"].as_str().unwrap().to_owned()
}

fn expected() -> Summary {
    let mut rows = vec![
        row("admin", "open", "server.create", "fx", "ok", ""),
        row("admin", "open", "key.create", "full", "ok", ""),
        row("admin", "open", "key.create", "narrow", "ok", ""),
        row(
            "admin",
            "open",
            "server.disable",
            "nope",
            "error",
            "no server named \"nope\"",
        ),
        row("api_key", "full", "tools/call", "echo", "ok", ""),
        row(
            "api_key",
            "full",
            "tools/call",
            "fail",
            "error",
            "tool_error",
        ),
        // Refused by the authentication step before the body was read: no method, no tool.
        row("api_key", "full", "", "", "refused", "rate_limit_key"),
        row(
            "api_key",
            "narrow",
            "tools/call",
            "echo",
            "refused",
            "scope",
        ),
    ];
    rows.sort();
    rows
}

/// Waits until the log holds as many records as expected, then a little longer to see that
/// no more come, and checks them, the paging, the filters, the exports and the activity.
async fn check_log(api: &Api, full_key_id: &str) -> Vec<Value> {
    let want = expected();
    wait_for(
        "the audit records of the run",
        Duration::from_secs(15),
        || async {
            let (_, page) = api.get("/api/v1/audit?limit=100").await;
            (page["records"].as_array().map_or(0, Vec::len) >= want.len()).then_some(())
        },
    )
    .await;
    // Gateways ship every 500 ms: anything more would have arrived by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = all_records(api).await;
    assert_eq!(summary(&all), want, "{all:#?}");
    // Newest first, each once.
    let times: Vec<i64> = all.iter().map(|r| r["at_ms"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len());
    for r in all.iter().filter(|r| r["who_kind"] == "api_key") {
        assert!(r["duration_us"].as_i64().unwrap() > 0, "{r}");
        // The gateway that shipped it: `local` in mcpr up, `gateway-N` in the cluster.
        let source = r["source"].as_str().unwrap();
        assert!(source == "local" || source.starts_with("gateway"), "{r}");
        assert_eq!(r["arguments"], "", "arguments are not kept by default: {r}");
    }
    let ok = all
        .iter()
        .find(|r| r["outcome"] == "ok" && r["method"] == "tools/call")
        .unwrap();
    assert_eq!(
        (ok["provider"].as_str(), ok["view"].as_str()),
        (Some("fx"), Some("transparent"))
    );
    assert!(
        ok["request_bytes"].as_i64().unwrap() > 0 && ok["response_bytes"].as_i64().unwrap() > 0,
        "{ok}"
    );

    // Filters.
    let (_, by_key) = api.get(&format!("/api/v1/audit?who={full_key_id}")).await;
    assert_eq!(by_key["records"].as_array().unwrap().len(), 3, "{by_key}");
    let (_, by_name) = api.get("/api/v1/audit?who=full").await;
    assert_eq!(by_name["records"], by_key["records"]);
    let (_, refused) = api.get("/api/v1/audit?outcome=refused").await;
    assert_eq!(refused["records"].as_array().unwrap().len(), 2, "{refused}");
    let (_, admin) = api.get("/api/v1/audit?who=admin&tool=full").await;
    assert_eq!(
        summary(admin["records"].as_array().unwrap()),
        vec![row("admin", "open", "key.create", "full", "ok", "")]
    );
    let (_, none) = api.get("/api/v1/audit?since=0&until=1000").await;
    assert_eq!(none["records"], json!([]));
    let (status, bad) = api.get("/api/v1/audit?outcome=maybe").await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("outcome")),
        "{bad}"
    );

    // Exports: every record, one line each.
    let csv = reqwest::get(format!("{}/api/v1/audit?format=csv", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,at,at_ms,who_kind"), "{csv}");
    assert_eq!(lines.len(), 1 + want.len(), "{csv}");
    let jsonl = reqwest::get(format!(
        "{}/api/v1/audit?format=jsonl&outcome=refused",
        api.base
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let parsed: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        summary(&parsed),
        summary(refused["records"].as_array().unwrap())
    );

    // The Activity window counted the calls to fx (the admin change of fx is not a call).
    let (_, activity) = api.get("/api/v1/activity").await;
    let fx = activity["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == "fx")
        .unwrap_or_else(|| panic!("{activity}"))
        .clone();
    let calls = all
        .iter()
        .filter(|r| r["provider"] == "fx" && r["who_kind"] != "admin")
        .count();
    let failed = all
        .iter()
        .filter(|r| r["provider"] == "fx" && r["who_kind"] != "admin" && r["outcome"] != "ok")
        .count();
    assert_eq!(fx["total"]["calls"], calls, "{activity}");
    assert_eq!(
        fx["total"]["errors"].as_u64().unwrap() + fx["total"]["refused"].as_u64().unwrap(),
        failed as u64,
        "{activity}"
    );
    assert!(fx["total"]["p50_ms"].as_f64().unwrap() > 0.0);

    let (_, stats) = api.get("/api/v1/audit/stats").await;
    assert_eq!(
        (stats["dropped"].as_u64(), stats["retention_days"].as_u64()),
        (Some(0), Some(30)),
        "{stats}"
    );
    all
}

#[tokio::test]
async fn the_log_holds_exactly_a_mixed_run_on_sqlite() {
    let router = Router::start_with(&[], &[RATE_LIMIT]).await;
    let api = router.api();
    let full_key_id = mixed_run(&api, &router.url(), None).await;
    let all = check_log(&api, &full_key_id).await;

    // `mcpr audit --json`: the API's page; the table names the key.
    let mcpr = |args: &[&str]| {
        let output = Command::new(bin("mcpr"))
            .arg("--url")
            .arg(router.url())
            .args(args)
            .env_remove("MCPR_ADMIN_TOKEN")
            .env("MCPR_CONFIG_DIR", &router.data_dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let page: Value = serde_json::from_str(&mcpr(&["audit", "--json"])).unwrap();
    assert_eq!(page["records"], json!(all));
    let table = mcpr(&["audit", "--outcome", "refused"]);
    assert!(
        table.contains("refused (scope)") && table.contains("key:narrow"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 1 + 2, "{table}");

    // `--follow`: a record stored after it started is printed, as a JSON line; the filter
    // hides the rest (the admin change that makes the key).
    let mut follow = Command::new(bin("mcpr"))
        .arg("--url")
        .arg(router.url())
        .args([
            "audit", "--follow", "--json", "--limit", "1", "--who", "late",
        ])
        .env("MCPR_CONFIG_DIR", &router.data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (late, _) = api.create_key("late", None).await;
    let mut client = RawMcp::with_key(&router.mcp_url("/mcp/p/fx"), &late);
    client.initialize().await;
    client.call("add", json!({"a": 1, "b": 2})).await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), lines_rx.recv())
        .await
        .expect("mcpr audit --follow printed the call")
        .unwrap();
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (
            record["who_name"].as_str(),
            record["target"].as_str(),
            record["outcome"].as_str()
        ),
        (Some("late"), Some("add"), Some("ok")),
        "{record}"
    );
    // The first page was empty (no record of that key before), and nothing else came.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(lines_rx.try_recv().is_err());
    follow.kill().unwrap();
    let _ = follow.wait();
}

#[tokio::test]
async fn the_log_holds_exactly_a_mixed_run_on_postgres_distributed() {
    let Some(database_url) = fresh_postgres() else {
        return;
    };
    let cluster = Cluster::start_with_env(1, Some(database_url), &[RATE_LIMIT]).await;
    let api = cluster.api();
    let base = cluster.mcp_url(0, "");
    let full_key_id = mixed_run(&api, &base, Some(&cluster)).await;
    check_log(&api, &full_key_id).await;
}
