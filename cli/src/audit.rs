//! `mcpr audit [filters] [--follow] [--json]`: the audit log (`GET /api/v1/audit`,
//! docs/OBSERVABILITY.md), oldest of the page first; `--follow` then prints each new record
//! as the control plane stores it, from the live feed's `audit` events (`GET /api/v1/events`).

use std::collections::HashSet;

use anyhow::anyhow;
use clap::Args;
use futures::StreamExt;
use serde_json::Value;

use crate::client::Admin;
use crate::output::{Table, clean, datetime_utc, print_json, str_at};

#[derive(Args, Debug, Default)]
pub struct AuditArgs {
    /// A key id or name, an OAuth subject, or a kind (stdio, admin, anonymous)
    #[arg(long)]
    who: Option<String>,
    /// The server
    #[arg(long)]
    provider: Option<String>,
    /// The tool, resource URI or prompt name
    #[arg(long)]
    tool: Option<String>,
    /// tools/call, resources/read, prompts/get, or an admin action (server.create, ...)
    #[arg(long)]
    method: Option<String>,
    /// ok, error or refused
    #[arg(long)]
    outcome: Option<String>,
    /// From: an age (15m, 2h, 7d), an RFC 3339 time or Unix ms
    #[arg(long)]
    since: Option<String>,
    /// Until (exclusive), as --since
    #[arg(long)]
    until: Option<String>,
    /// How many of the newest records to print
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Keep printing new records until Ctrl-C (JSON lines with --json)
    #[arg(short = 'f', long)]
    follow: bool,
}

impl AuditArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("limit", self.limit.to_string())];
        for (name, value) in [
            ("who", &self.who),
            ("provider", &self.provider),
            ("tool", &self.tool),
            ("method", &self.method),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = value {
                query.push((name, v.clone()));
            }
        }
        query
    }

    /// Whether a record from the live feed passes the filters (the time range is the
    /// server's to check on the first page; new records are newer than `--since`).
    fn matches(&self, r: &Value) -> bool {
        let field = |name: &str| r.get(name).and_then(Value::as_str).unwrap_or_default();
        let who_ok = self
            .who
            .as_deref()
            .is_none_or(|w| [field("who_id"), field("who_name"), field("who_kind")].contains(&w));
        who_ok
            && self
                .provider
                .as_deref()
                .is_none_or(|p| field("provider") == p)
            && self.tool.as_deref().is_none_or(|t| field("target") == t)
            && self.method.as_deref().is_none_or(|m| field("method") == m)
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| field("outcome") == o)
    }
}

/// Who made the call, in one cell: the key's name, the OAuth subject (and client), the
/// admin session's kind, or the kind alone.
fn who_cell(r: &Value) -> String {
    let kind = str_at(r, &["who_kind"]);
    let id = str_at(r, &["who_id"]);
    let name = str_at(r, &["who_name"]);
    let client = str_at(r, &["who_client"]);
    match kind.as_str() {
        "api_key" if !name.is_empty() => format!("key:{name}"),
        "api_key" => format!("key:{id}"),
        "oauth" if !client.is_empty() => format!("oauth:{id} ({client})"),
        "oauth" => format!("oauth:{id}"),
        "admin" if !name.is_empty() => format!("admin:{name}"),
        _ => kind,
    }
}

fn outcome_cell(r: &Value) -> String {
    let outcome = str_at(r, &["outcome"]);
    let code = r.get("error_code").and_then(Value::as_i64).unwrap_or(0);
    let reason = str_at(r, &["reason"]);
    match outcome.as_str() {
        "ok" => outcome,
        "refused" if !reason.is_empty() => format!("refused ({reason})"),
        _ if code != 0 => format!("{outcome} {code}"),
        _ => outcome,
    }
}

fn row(r: &Value) -> Vec<String> {
    let us = r.get("duration_us").and_then(Value::as_i64).unwrap_or(0);
    vec![
        datetime_utc(r.get("at_ms").and_then(Value::as_i64).unwrap_or(0)),
        who_cell(r),
        str_at(r, &["method"]),
        str_at(r, &["provider"]),
        str_at(r, &["target"]),
        outcome_cell(r),
        format!("{:.1}", us as f64 / 1000.0),
    ]
}

const HEADERS: [&str; 7] = [
    "TIME", "WHO", "METHOD", "PROVIDER", "TARGET", "OUTCOME", "MS",
];

pub async fn run(admin: &Admin, args: AuditArgs, json: bool) -> anyhow::Result<()> {
    if args.limit == 0 || args.limit > 1000 {
        anyhow::bail!("--limit must be 1 to 1000, got {}", args.limit);
    }
    // Subscribed before the first page is read: a record stored in between is in one of
    // them (or both: the ids of the page are skipped on the feed).
    let feed = match args.follow {
        true => Some(admin.open_events().await?),
        false => None,
    };
    let query = args.query();
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.get_query(&["audit"], &pairs).await?;
    let records: Vec<Value> = page
        .get("records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(feed) = feed else {
        if json {
            return print_json(&page);
        }
        if records.is_empty() {
            println!("no audit records match");
            return Ok(());
        }
        let mut table = Table::new(&HEADERS);
        for r in records.iter().rev() {
            table.row(row(r));
        }
        print!("{}", table.render());
        return Ok(());
    };
    let seen: HashSet<String> = records.iter().map(|r| str_at(r, &["id"])).collect();
    let print = |r: &Value| {
        if json {
            println!("{r}");
        } else {
            println!(
                "{}",
                row(r)
                    .iter()
                    .map(|c| clean(c))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    };
    if !json {
        println!("{}", HEADERS.join("  "));
    }
    for r in records.iter().rev() {
        print(r);
    }
    let mut events = std::pin::pin!(sse_events(feed));
    while let Some(event) = events.next().await {
        let (kind, data) = event?;
        if kind != "audit" {
            continue;
        }
        let Ok(record) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        if seen.contains(&str_at(&record, &["id"])) || !args.matches(&record) {
            continue;
        }
        print(&record);
    }
    Err(anyhow!("the router closed the live feed"))
}

/// The (event, data) pairs of a server-sent event stream.
fn sse_events(
    response: reqwest::Response,
) -> impl futures::Stream<Item = anyhow::Result<(String, String)>> {
    struct Parse {
        body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
        buffer: Vec<u8>,
        kind: String,
        data: String,
    }
    let start = Parse {
        body: response.bytes_stream().boxed(),
        buffer: Vec::new(),
        kind: String::new(),
        data: String::new(),
    };
    futures::stream::unfold(start, |mut p| async move {
        loop {
            if let Some(end) = p.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = p.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if p.data.is_empty() && p.kind.is_empty() {
                        continue;
                    }
                    let kind = std::mem::take(&mut p.kind);
                    let data = std::mem::take(&mut p.data);
                    return Some((Ok((kind, data)), p));
                }
                if let Some(kind) = line.strip_prefix("event:") {
                    p.kind = kind.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:") {
                    if !p.data.is_empty() {
                        p.data.push('\n');
                    }
                    p.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                }
                continue;
            }
            match p.body.next().await {
                Some(Ok(chunk)) => p.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Some((Err(anyhow!("the live feed broke: {e}")), p));
                }
                None => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_say_who_and_how() {
        let key = json!({"who_kind": "api_key", "who_id": "key_1", "who_name": "ci",
            "outcome": "refused", "reason": "scope", "error_code": -32003});
        assert_eq!(who_cell(&key), "key:ci");
        assert_eq!(outcome_cell(&key), "refused (scope)");
        let oauth = json!({"who_kind": "oauth", "who_id": "alice", "who_client": "app",
            "outcome": "error", "error_code": -32602});
        assert_eq!(who_cell(&oauth), "oauth:alice (app)");
        assert_eq!(outcome_cell(&oauth), "error -32602");
        assert_eq!(who_cell(&json!({"who_kind": "stdio"})), "stdio");
    }

    #[test]
    fn feed_filters_match_like_the_api() {
        let args = AuditArgs {
            who: Some("ci".into()),
            outcome: Some("ok".into()),
            ..Default::default()
        };
        let r =
            json!({"who_kind": "api_key", "who_id": "key_1", "who_name": "ci", "outcome": "ok"});
        assert!(args.matches(&r));
        assert!(!args.matches(&json!({"who_kind": "stdio", "outcome": "ok"})));
    }
}
