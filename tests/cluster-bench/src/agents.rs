//! Simulated node agents: real `AgentService` clients that do what `node-agent/src/control.rs`
//! does on the wire (register, heartbeat at the interval the control plane asks for, follow
//! `WatchAssignments`, report every server they hold with `ReportStatus`), but start no
//! upstream: each assigned server is reported running at once with the tools an upstream
//! would have listed. What is measured is the control plane's part, not an upstream's start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpr_proto as pb;
use mcpr_proto::agent_service_client::AgentServiceClient;
use mcpr_tls::cluster::GrpcChannel;

use crate::progress::Progress;

/// The `tools/list` result tools of one simulated upstream, as raw JSON (an array), the
/// form the real agent reports (`ServerStatus.tools_json`). Each tool is about 400 bytes,
/// the size of a typical tool with a described argument or two.
pub fn tools_json(server: &str, tools: usize) -> String {
    let list: Vec<serde_json::Value> = (0..tools)
        .map(|t| {
            serde_json::json!({
                "name": format!("tool_{t:02}"),
                "description": format!(
                    "Tool {t} of {server}: looks the query up in the upstream's index and \
                     returns the matching records as text, newest first."
                ),
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What to look for"},
                        "limit": {"type": "integer", "description": "At most this many records", "minimum": 1}
                    },
                    "required": ["query"]
                }
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

fn server_info_json(server: &str) -> String {
    serde_json::json!({
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {"listChanged": true}},
        "serverInfo": {"name": server, "version": "1.0.0"}
    })
    .to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One agent, reconnecting (registering again) whenever its streams or calls fail, until
/// the process ends.
pub async fn run(index: usize, channel: GrpcChannel, tools: usize, progress: Arc<Progress>) {
    let id = format!("bench-agent-{index:03}");
    loop {
        if let Err(e) = session(&id, channel.clone(), tools, &progress).await {
            eprintln!("{id}: {e:#}; registering again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn session(
    id: &str,
    channel: GrpcChannel,
    tools: usize,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut client = AgentServiceClient::new(channel);
    let answer = client
        .register(pb::RegisterRequest {
            agent_id: id.to_owned(),
            // Never dialled: the simulated gateways only check that the snapshot has it.
            relay_url: format!("http://{id}.bench.invalid:7443"),
            runtimes: vec!["remote".into()],
            version: env!("CARGO_PKG_VERSION").into(),
            // No placement labels: the benchmark's servers carry no selector.
            ..Default::default()
        })
        .await?
        .into_inner();
    let interval = Duration::from_millis(answer.heartbeat_interval_ms.clamp(100, 10_000));
    let mut heartbeats = client.clone();
    let agent_id = id.to_owned();
    let heartbeat = async move {
        loop {
            tokio::time::sleep(interval).await;
            let known = heartbeats
                .heartbeat(pb::HeartbeatRequest {
                    agent_id: agent_id.clone(),
                })
                .await?
                .into_inner()
                .known;
            if !known {
                anyhow::bail!("the control plane forgot this agent");
            }
        }
    };
    let follow = async {
        let mut stream = client
            .watch_assignments(pb::AssignmentsRequest {
                agent_id: id.to_owned(),
            })
            .await?
            .into_inner();
        // Server id -> (restart generation, tools JSON, server info JSON), kept between
        // reports.
        let mut held: std::collections::HashMap<String, (u64, String, String)> = Default::default();
        let mut reporter = client.clone();
        while let Some(assignments) = stream.message().await? {
            let at = Instant::now();
            let mut new = Vec::new();
            let servers: std::collections::HashSet<&str> = assignments
                .servers
                .iter()
                .filter(|a| a.enabled)
                .map(|a| a.id.as_str())
                .collect();
            held.retain(|id, _| servers.contains(id.as_str()));
            for a in assignments.servers.iter().filter(|a| a.enabled) {
                if held.contains_key(&a.id) {
                    continue;
                }
                progress.assigned(&a.name, at);
                new.push(a.name.clone());
                held.insert(
                    a.id.clone(),
                    (
                        a.restart_generation,
                        tools_json(&a.name, tools),
                        server_info_json(&a.name),
                    ),
                );
            }
            if new.is_empty() {
                continue;
            }
            // Like the real agent: every server it holds, in one report.
            let report = pb::StatusReport {
                agent_id: id.to_owned(),
                servers: held
                    .iter()
                    .map(|(server_id, (generation, tools, info))| pb::ServerStatus {
                        server_id: server_id.clone(),
                        state: pb::ServerState::Running as i32,
                        tools_json: tools.clone(),
                        server_info_json: info.clone(),
                        updated_at_ms: now_ms(),
                        restart_generation: *generation,
                        ..Default::default()
                    })
                    .collect(),
                logs: Vec::new(),
            };
            reporter.report_status(report).await?;
            progress.reported(&new, Instant::now());
        }
        anyhow::bail!("the assignments stream ended")
    };
    tokio::select! {
        r = heartbeat => r,
        r = follow => r,
    }
}
