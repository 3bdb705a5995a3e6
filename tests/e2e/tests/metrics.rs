//! Prometheus metrics (issue 14): a real Prometheus (Debian's `prometheus`, installed by
//! `scripts/prometheus`) scrapes `/metrics` of `mcpr up` and of the three binaries of the
//! distributed form; its HTTP API must show the counters moved by exactly the calls made,
//! `promtool check metrics` must accept every binary's output, a listener that needs the
//! metrics token refuses without it, and the Grafana dashboard uses only exported metrics.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mcpr_e2e::harness::{Cluster, Proc, RawMcp, Router, free_port, wait_for, workspace_root};
use serde_json::{Value, json};

/// `prometheus` and `promtool` on the PATH, or `None` (loudly) where they are not required.
fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
    };
    match (find("prometheus"), find("promtool")) {
        (Some(prometheus), Some(promtool)) => Some((prometheus, promtool)),
        _ if std::env::var("MCPR_REQUIRE_ALL").as_deref() == Ok("1") => {
            panic!("prometheus and promtool are required here: run scripts/prometheus")
        }
        _ => {
            eprintln!("SKIPPED: prometheus or promtool missing (scripts/prometheus installs them)");
            None
        }
    }
}

/// A scrape target: job name, `host:port`, and the bearer token it needs, if any.
struct Target<'a> {
    job: &'a str,
    address: String,
    token: Option<&'a str>,
}

/// A Prometheus of the test's own: loopback, a temporary storage directory, scraping the
/// targets every 200 ms.
struct Prometheus {
    _proc: Proc,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(binary: &PathBuf, targets: &[Target<'_>]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n",
        );
        for target in targets {
            config.push_str(&format!(
                "  - job_name: {}\n    static_configs:\n      - targets: ['{}']\n",
                target.job, target.address
            ));
            if let Some(token) = target.token {
                config.push_str(&format!(
                    "    authorization:\n      credentials: '{token}'\n"
                ));
            }
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", command);
        let base = format!("http://127.0.0.1:{port}");
        let ready = format!("{base}/-/ready");
        wait_for("prometheus to be ready", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move {
                let response = reqwest::get(&ready).await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        Prometheus {
            _proc: proc,
            base,
            _dir: dir,
        }
    }

    /// The instant vector of `query`: (labels, value) per series.
    async fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let response: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await
            .expect("prometheus query")
            .json()
            .await
            .expect("prometheus answers JSON");
        assert_eq!(response["status"], "success", "{query}: {response}");
        response["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|series| {
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (series["metric"].clone(), value)
            })
            .collect()
    }

    /// Waits until `query` gives exactly one series of value `expected`.
    async fn wait_value(&self, query: &str, expected: f64) {
        let mut last = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let result = self.query(query).await;
            if result.len() == 1 && result[0].1 == expected {
                return;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{query}: wanted one series of {expected}, Prometheus has {result:?} (before: {last:?})"
                );
            }
            last = result;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `/metrics` at `url` with an optional bearer token: (status, body).
async fn scrape(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET /metrics");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// `promtool check metrics` accepts `text` (its lints included).
fn promtool_accepts(promtool: &PathBuf, what: &str, text: &str) {
    use std::io::Write as _;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refuses the metrics of {what}:\n{}{}\n--- metrics:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The metric families an exposition declares (`# TYPE` lines), with the series names a
/// histogram adds.
fn families(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// A JSON-RPC `tools/call` on a raw client's session, whatever it answers.
async fn call(client: &mut RawMcp, tool: &str, arguments: Value) -> Value {
    client
        .request("tools/call", json!({"name": tool, "arguments": arguments}))
        .await
}

/// `count` calls of an echo tool, each answered with its own text.
async fn echo_calls(client: &mut RawMcp, tool: &str, count: usize) {
    for i in 0..count {
        let text = format!("call {i}");
        let answer = call(client, tool, json!({ "text": text })).await;
        assert_eq!(answer["result"]["content"][0]["text"], text, "{answer}");
    }
}

#[tokio::test]
async fn prometheus_scrapes_mcpr_up_and_counts_exactly_the_calls_made() {
    let Some((prometheus, promtool)) = prometheus_tools() else {
        return;
    };
    // Every key has a burst of 20 requests and (practically) no refill: the limited key
    // below is refused exactly for what it sends beyond 20.
    let router = Router::start_with(&[], &[("MCPR_RATE_LIMIT_KEY", "0.001/20")]).await;
    let api = router.api();
    api.add_fixture("fx", &[]).await;
    api.wait_state("fx", "running").await;
    let (all_key, _) = api.create_key("all", None).await;
    let (echo_only, _) = api.create_key("echo-only", Some(&["fx/echo"])).await;
    let (limited_key, _) = api.create_key("limited", None).await;
    let flat = router.mcp_url("/mcp/all");

    // Before: no call was made, the refusal counters exist at zero.
    let (status, before) = scrape(&router.mcp_url("/metrics"), None).await;
    assert_eq!(status, 200, "{before}");
    assert!(before.contains("mcpr_gateway_auth_refusals_total{reason=\"scope\"} 0"));

    // 5 calls that succeed, 3 tool errors, 2 calls of a tool no server has (2 + 10 requests).
    let mut client = RawMcp::with_key(&flat, &all_key);
    client.initialize().await;
    echo_calls(&mut client, "fx__echo", 5).await;
    for _ in 0..3 {
        let answer = call(&mut client, "fx__fail", json!({"message": "no"})).await;
        assert_eq!(answer["result"]["isError"], true, "{answer}");
    }
    for _ in 0..2 {
        let answer = call(&mut client, "fx__nope", json!({})).await;
        assert!(answer["error"]["code"].is_i64(), "{answer}");
    }
    // 3 calls refused by scope (the key may call fx's echo only).
    let mut scoped = RawMcp::with_key(&flat, &echo_only);
    scoped.initialize().await;
    for _ in 0..3 {
        let answer = call(&mut scoped, "fx__add", json!({"a": 1, "b": 2})).await;
        assert_eq!(answer["error"]["code"], -32003, "{answer}");
    }
    // 20 requests use the limited key's burst; the 4 after them are refused.
    let limited = RawMcp::with_key(&flat, &limited_key);
    for _ in 0..20 {
        assert_eq!(limited.try_initialize().await.status, 200);
    }
    for _ in 0..4 {
        assert_eq!(limited.try_initialize().await.status, 429);
    }
    // One request without a key.
    assert_eq!(RawMcp::new(&flat).try_initialize().await.status, 401);

    let prometheus = Prometheus::start(
        &prometheus,
        &[Target {
            job: "mcpr-up",
            address: format!("127.0.0.1:{}", router.port),
            token: None,
        }],
    )
    .await;
    let duration = "mcp_server_operation_duration_seconds_count";
    prometheus
        .wait_value(
            &format!(r#"{duration}{{method="tools/call",provider="fx",tool="echo",outcome="ok"}}"#),
            5.0,
        )
        .await;
    prometheus
        .wait_value(
            &format!(
                r#"{duration}{{method="tools/call",provider="fx",tool="fail",outcome="tool_error"}}"#
            ),
            3.0,
        )
        .await;
    // An unknown tool makes no series of its own: it is counted without a tool.
    prometheus
        .wait_value(
            &format!(r#"{duration}{{method="tools/call",provider="fx",tool="",outcome="error"}}"#),
            2.0,
        )
        .await;
    assert!(
        prometheus
            .query(&format!(r#"{duration}{{tool="nope"}}"#))
            .await
            .is_empty()
    );
    let requests = "mcpr_gateway_requests_total";
    for (outcome, count) in [
        ("ok", 5.0),
        ("tool_error", 3.0),
        ("error", 2.0),
        ("refused", 3.0),
    ] {
        prometheus
            .wait_value(
                &format!(r#"{requests}{{method="tools/call",provider="fx",outcome="{outcome}"}}"#),
                count,
            )
            .await;
    }
    prometheus
        .wait_value(
            r#"sum(mcpr_gateway_errors_total{method="tools/call",provider="fx"})"#,
            8.0,
        )
        .await;
    for (reason, count) in [
        ("scope", 3.0),
        ("rate_limit_key", 4.0),
        ("missing_credentials", 1.0),
        ("unknown_key", 0.0),
    ] {
        prometheus
            .wait_value(
                &format!(r#"mcpr_gateway_auth_refusals_total{{reason="{reason}"}}"#),
                count,
            )
            .await;
    }
    for (query, value) in [
        (
            r#"mcpr_gateway_rate_limit_rejections_total{limit="key"}"#,
            4.0,
        ),
        (r#"mcpr_control_plane_servers{state="running"}"#, 1.0),
        (r#"mcpr_agent_servers{state="running"}"#, 1.0),
        // Every call above is in the audit log (18, besides the admin changes), none lost.
        ("mcpr_audit_records_written_total >= bool 18", 1.0),
        (r#"mcpr_audit_records_dropped_total{where="gateway"}"#, 0.0),
        (
            r#"mcpr_audit_records_dropped_total{where="control_plane"}"#,
            0.0,
        ),
        ("mcpr_gateway_audit_records_dropped_total", 0.0),
    ] {
        prometheus.wait_value(query, value).await;
    }
    prometheus
        .wait_value(
            "mcpr_gateway_config_version == on() mcpr_control_plane_config_version",
            prometheus
                .query("mcpr_control_plane_config_version")
                .await
                .first()
                .map_or(-1.0, |(_, v)| *v),
        )
        .await;
    let memory = prometheus.query("process_resident_memory_bytes").await;
    assert!(memory.len() == 1 && memory[0].1 > 1e6, "{memory:?}");

    // The exposition passes promtool's checks, and the dashboard names only what it has.
    let (_, text) = scrape(&router.mcp_url("/metrics"), None).await;
    promtool_accepts(&promtool, "mcpr up", &text);
    let exported = families(&text);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("deploy/grafana/mcp-router.json")).unwrap(),
    )
    .unwrap();
    let mut referenced = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
                if ["mcp_", "mcpr_", "process_"]
                    .iter()
                    .any(|p| word.starts_with(p))
                {
                    referenced.insert(word.to_owned());
                }
            }
        }
    }
    assert!(referenced.len() >= 8, "{referenced:?}");
    let missing: Vec<_> = referenced.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics the router does not export: {missing:?}"
    );
}

#[tokio::test]
async fn prometheus_scrapes_the_three_binaries_and_the_agent_needs_its_token() {
    let Some((prometheus, promtool)) = prometheus_tools() else {
        return;
    };
    let mut cluster = Cluster::start(0, None).await;
    let agent_metrics = free_port();
    let token = "metrics-t0ken";
    cluster.add_agent_with_env(
        "agent-0",
        &[
            ("MCPR_METRICS_LISTEN", &format!("127.0.0.1:{agent_metrics}")),
            ("MCPR_METRICS_TOKEN", token),
        ],
    );
    cluster.agents[0]
        .wait_log("registered with the control plane", Duration::from_secs(20))
        .await;
    let api = cluster.api();
    api.add_fixture("dist", &[]).await;
    api.wait_state("dist", "running").await;

    // The agent's metrics listener asks for the token.
    let agent_url = format!("http://127.0.0.1:{agent_metrics}/metrics");
    let (status, body) = scrape(&agent_url, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(scrape(&agent_url, Some("wrong")).await.0, 401);
    let (status, agent_text) = scrape(&agent_url, Some(token)).await;
    assert_eq!(status, 200, "{agent_text}");

    let flat = cluster.mcp_url(0, "/mcp/all");
    let mut client = wait_for("the gateway to serve dist", Duration::from_secs(15), || {
        let flat = flat.clone();
        async move {
            let mut client = RawMcp::new(&flat);
            client.initialize().await;
            let tools = client.request("tools/list", json!({})).await;
            let listed = tools["result"]["tools"]
                .as_array()?
                .iter()
                .any(|t| t["name"] == "dist__echo");
            listed.then_some(client)
        }
    })
    .await;
    echo_calls(&mut client, "dist__echo", 2).await;

    let prometheus = Prometheus::start(
        &prometheus,
        &[
            Target {
                job: "control-plane",
                address: format!("127.0.0.1:{}", cluster.api_port),
                token: None,
            },
            Target {
                job: "gateway",
                address: format!("127.0.0.1:{}", cluster.gateway_ports[0]),
                token: None,
            },
            Target {
                job: "agent",
                address: format!("127.0.0.1:{agent_metrics}"),
                token: Some(token),
            },
        ],
    )
    .await;
    for job in ["control-plane", "gateway", "agent"] {
        prometheus
            .wait_value(&format!(r#"up{{job="{job}"}}"#), 1.0)
            .await;
    }
    for (query, value) in [
        (
            r#"mcp_server_operation_duration_seconds_count{job="gateway",method="tools/call",provider="dist",tool="echo",outcome="ok"}"#,
            2.0,
        ),
        (r#"mcpr_gateway_relay_streams{job="gateway"}"#, 1.0),
        (r#"mcpr_agent_relay_streams{job="agent"}"#, 1.0),
        (r#"mcpr_agent_relay_in_flight_exchanges{job="agent"}"#, 0.0),
        (
            r#"mcpr_agent_upstream_sessions{job="agent",provider="dist",state="running"}"#,
            1.0,
        ),
        (r#"mcpr_control_plane_servers{state="running"}"#, 1.0),
        ("mcpr_control_plane_agents", 1.0),
        // Each binary's own process metrics.
        ("count(process_cpu_seconds_total)", 3.0),
    ] {
        prometheus.wait_value(query, value).await;
    }

    for (what, url, token) in [
        (
            "the control plane",
            format!("http://127.0.0.1:{}/metrics", cluster.api_port),
            None,
        ),
        ("the edge gateway", cluster.mcp_url(0, "/metrics"), None),
        ("the node agent", agent_url.clone(), Some(token)),
    ] {
        let (status, text) = scrape(&url, token).await;
        assert_eq!(status, 200, "{what}: {text}");
        promtool_accepts(&promtool, what, &text);
    }
}
