//! How servers read on a terminal: the one-line runtime summary, the table of
//! `mcpr server list` and the details of `mcpr server show`.

use serde_json::Value;

use crate::output::{self, Table, shell_join, shorten, str_at};

/// `uvx mcp-server-time` for a process, the URL for a remote server.
pub fn runtime_summary(server: &Value) -> String {
    let runtime = &server["runtime"];
    match runtime["kind"].as_str() {
        Some("process") => {
            let mut words = vec![str_at(runtime, &["command"])];
            words.extend(
                runtime["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
            shell_join(&words)
        }
        Some("remote") => str_at(runtime, &["url"]),
        Some("docker") => {
            let mut words = Vec::new();
            for key in ["image", "npx", "uvx"] {
                if let Some(value) = runtime[key].as_str() {
                    words.push(format!("{key}:{value}"));
                }
            }
            words.extend(runtime["command"].as_str().map(String::from));
            words.extend(
                runtime["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
            shell_join(&words)
        }
        _ => String::new(),
    }
}

/// `zone=a,docker=true`, or `any agent` without a selector.
pub fn selector_text(server: &Value) -> String {
    let pairs: Vec<String> = server["placement"]["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    match pairs.is_empty() {
        true => "any agent".into(),
        false => pairs.join(","),
    }
}

pub fn servers_table(servers: &[Value]) -> String {
    let mut table = Table::new(&[
        "NAME",
        "STATE",
        "TOOLS",
        "RESTARTS",
        "KIND",
        "COMMAND/URL",
        "PROGRESS OR LAST ERROR",
    ]);
    for s in servers {
        let mut state = str_at(s, &["status", "state"]);
        if s["enabled"] == Value::Bool(false) && state != "stopped" {
            state = format!("{state} (disabled)");
        }
        // While starting, what it is doing (an image build step) says more than an old error.
        let progress = str_at(s, &["status", "progress"]);
        let unplaced = str_at(s, &["unplaced"]);
        let note = if !unplaced.is_empty() {
            format!("unplaced: {unplaced}")
        } else if progress.is_empty() {
            str_at(s, &["status", "last_error"])
        } else {
            progress
        };
        table.row(vec![
            str_at(s, &["name"]),
            state,
            str_at(s, &["status", "tool_count"]),
            str_at(s, &["status", "restart_count"]),
            str_at(s, &["runtime", "kind"]),
            shorten(&runtime_summary(s), 48),
            shorten(&note, 60),
        ]);
    }
    table.render()
}

pub fn server_details(s: &Value) -> String {
    let runtime = &s["runtime"];
    let pairs_of = |key: &str| -> String {
        let Some(map) = runtime[key].as_object() else {
            return String::new();
        };
        map.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("name", str_at(s, &["name"])),
        ("description", str_at(s, &["description"])),
        (
            "enabled",
            if s["enabled"] == Value::Bool(false) {
                "no".into()
            } else {
                "yes".into()
            },
        ),
        ("state", str_at(s, &["status", "state"])),
        ("session mode", str_at(s, &["session_mode"])),
        ("placement", selector_text(s)),
        ("kind", str_at(runtime, &["kind"])),
    ];
    match runtime["kind"].as_str() {
        Some("remote") => {
            rows.push(("url", str_at(runtime, &["url"])));
            rows.push(("headers", pairs_of("headers")));
        }
        Some("docker") => {
            rows.push(("runs", runtime_summary(s)));
            rows.push(("env", pairs_of("env")));
            let or_default = |key: &str, default: &str| {
                let value = str_at(runtime, &[key]);
                if value.is_empty() {
                    format!("{default} (default)")
                } else {
                    value
                }
            };
            rows.push(("network", or_default("network", "none")));
            let limit = or_default;
            rows.push(("memory MiB", limit("memory_mb", "512")));
            rows.push(("millicpus", limit("millicpus", "1000")));
            rows.push(("pids", limit("pids", "256")));
        }
        _ => {
            rows.push(("command", runtime_summary(s)));
            rows.push(("env", pairs_of("env")));
            rows.push(("cwd", str_at(runtime, &["cwd"])));
        }
    }
    let unplaced = str_at(s, &["unplaced"]);
    if !unplaced.is_empty() {
        rows.push(("unplaced", unplaced));
    }
    rows.extend([
        ("agent", str_at(s, &["status", "agent_id"])),
        ("tools", str_at(s, &["status", "tool_count"])),
        ("restarts", str_at(s, &["status", "restart_count"])),
        ("last error", str_at(s, &["status", "last_error"])),
        ("progress", str_at(s, &["status", "progress"])),
        ("created", str_at(s, &["created_at"])),
        ("updated", str_at(s, &["updated_at"])),
        ("id", str_at(s, &["id"])),
    ]);
    output::key_values(&rows)
}
