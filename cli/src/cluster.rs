//! `mcpr cluster status`: the control planes and which one leads (lease holder and epoch),
//! the agents with their servers and heartbeats, the gateways with their config version
//! and lag (`GET /api/v1/cluster`).

use clap::Subcommand;
use serde_json::Value;

use crate::client::Admin;
use crate::output::{Table, clean, print_json, str_at};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Control planes and the leader, agents and their servers, gateways and their lag
    Status,
}

pub async fn run(admin: &Admin, cmd: ClusterCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Status => {
            let status = admin.get(&["cluster"], None).await?;
            if json {
                return print_json(&status);
            }
            print!("{}", render(&status));
            Ok(())
        }
    }
}

fn number(value: &Value, key: &str) -> String {
    value[key]
        .as_i64()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Milliseconds as "0.4 s ago".
fn ago(value: &Value) -> String {
    match value["silent_ms"].as_i64() {
        Some(ms) => format!("{:.1} s ago", ms.max(0) as f64 / 1000.0),
        None => String::new(),
    }
}

fn render(status: &Value) -> String {
    let mut out = format!(
        "mode {}, config version {}, answered by {}\n",
        clean(&str_at(status, &["mode"])),
        number(status, "config_version"),
        clean(&str_at(status, &["this_control_plane"])),
    );
    if let Some(lease) = status.get("lease").filter(|l| l.is_object()) {
        let expires = lease["expires_in_ms"].as_i64().unwrap_or(0);
        let state = if expires > 0 {
            format!("expires in {:.1} s", expires as f64 / 1000.0)
        } else {
            "expired: no leader".to_owned()
        };
        out.push_str(&format!(
            "placement lease: {} at epoch {}, {state}\n",
            clean(&str_at(lease, &["holder"])),
            number(lease, "epoch"),
        ));
    }
    let list = |key: &str| status[key].as_array().cloned().unwrap_or_default();
    out.push_str("\nCONTROL PLANES\n");
    let mut table = Table::new(&["ID", "GRPC", "ROLE", "HEARD"]);
    for cp in list("control_planes") {
        let role = match cp["leader"].as_bool() {
            Some(true) => format!("leader (epoch {})", number(&cp, "epoch")),
            _ => "follower".to_owned(),
        };
        table.row(vec![
            clean(&str_at(&cp, &["id"])),
            clean(&str_at(&cp, &["grpc_addr"])),
            role,
            ago(&cp),
        ]);
    }
    out.push_str(&table.render());
    out.push_str("\nAGENTS\n");
    let mut table = Table::new(&["ID", "RELAY", "HEARTBEAT", "LABELS", "SERVERS"]);
    for agent in list("agents") {
        let servers: Vec<String> = agent["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(clean)
            .collect();
        let labels: Vec<String> = agent["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| clean(&format!("{k}={}", v.as_str().unwrap_or_default())))
            .collect();
        table.row(vec![
            clean(&str_at(&agent, &["id"])),
            clean(&str_at(&agent, &["relay_url"])),
            ago(&agent),
            labels.join(","),
            servers.join(","),
        ]);
    }
    out.push_str(&table.render());
    out.push_str("\nGATEWAYS\n");
    let mut table = Table::new(&["ID", "CONTROL PLANE", "VERSION", "LAG", "HEARD"]);
    for gateway in list("gateways") {
        table.row(vec![
            clean(&str_at(&gateway, &["id"])),
            clean(&str_at(&gateway, &["control_plane"])),
            number(&gateway, "version"),
            number(&gateway, "lag"),
            ago(&gateway),
        ]);
    }
    out.push_str(&table.render());
    let unplaced = list("unplaced");
    if !unplaced.is_empty() {
        out.push_str("\nUNPLACED SERVERS\n");
        let mut table = Table::new(&["NAME", "WHY"]);
        for server in unplaced {
            table.row(vec![
                clean(&str_at(&server, &["name"])),
                clean(&str_at(&server, &["reason"])),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_leader_agents_and_gateway_lag() {
        let status = serde_json::json!({
            "mode": "cluster", "this_control_plane": "cp-b", "config_version": 12,
            "lease": {"holder": "cp-a", "epoch": 3, "expires_in_ms": 2500},
            "control_planes": [
                {"id": "cp-a", "grpc_addr": "10.0.0.2:50051", "leader": true, "epoch": 3, "silent_ms": 120},
                {"id": "cp-b", "grpc_addr": "10.0.0.3:50051", "leader": false, "silent_ms": 80}],
            "agents": [{"id": "agent-1", "relay_url": "http://10.0.0.4:50061", "silent_ms": 400,
                        "labels": {"docker": "true", "zone": "a"}, "servers": ["time", "web"]}],
            "unplaced": [{"name": "gpu", "reason": "no agent matches gpu=1"}],
            "gateways": [{"id": "gw-1", "control_plane": "cp-b", "version": 10, "lag": 2, "silent_ms": 100}],
        });
        let text = render(&status);
        assert!(
            text.contains("placement lease: cp-a at epoch 3, expires in 2.5 s"),
            "{text}"
        );
        assert!(text.contains("leader (epoch 3)"), "{text}");
        assert!(text.contains("docker=true,zone=a  time,web"), "{text}");
        assert!(text.contains("UNPLACED SERVERS"), "{text}");
        assert!(text.contains("gpu   no agent matches gpu=1"), "{text}");
        let gateway = text.lines().find(|l| l.starts_with("gw-1")).unwrap();
        let fields: Vec<&str> = gateway.split_whitespace().collect();
        assert_eq!(fields[1..4], ["cp-b", "10", "2"], "{gateway}");
    }
}
