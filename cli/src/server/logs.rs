//! `mcpr server logs NAME [-f]`: a server's recent log lines, and following new ones by
//! polling (the API has no sequence numbers: a cursor of timestamps keeps lines from repeating).

use std::time::Duration;

use anyhow::{anyhow, bail};
use reqwest::header::ACCEPT;
use serde::Deserialize;

use crate::client::{Admin, api_error_line};
use crate::output::{self, clean, print_json};

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct LogLine {
    #[serde(default)]
    at_ms: i64,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    line: String,
}

/// Where `logs --follow` is: the newest timestamp printed and how many lines with exactly
/// that timestamp were printed (the API has no sequence numbers; timestamps do not go back).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LogCursor {
    last_ms: i64,
    seen_at_last: usize,
}

/// The lines of `batch` (oldest first) not printed yet, moving the cursor past them.
fn fresh_lines<'a>(batch: &'a [LogLine], cursor: &mut Option<LogCursor>) -> Vec<&'a LogLine> {
    let mut fresh = Vec::new();
    let mut same = 0;
    for entry in batch {
        if let Some(c) = cursor {
            if entry.at_ms < c.last_ms {
                continue;
            }
            if entry.at_ms == c.last_ms {
                same += 1;
                if same <= c.seen_at_last {
                    continue;
                }
            }
        }
        fresh.push(entry);
    }
    if let Some(last) = batch
        .last()
        .filter(|l| cursor.is_none_or(|c| l.at_ms >= c.last_ms))
    {
        let seen_at_last = batch.iter().filter(|e| e.at_ms == last.at_ms).count();
        *cursor = Some(LogCursor {
            last_ms: last.at_ms,
            seen_at_last,
        });
    }
    fresh
}

async fn fetch_logs(admin: &Admin, name: &str, tail: usize) -> anyhow::Result<Vec<LogLine>> {
    let mut url = admin.api(&["servers", name, "logs"]);
    url.query_pairs_mut().append_pair("tail", &tail.to_string());
    let response = admin
        .send(admin.client.get(url).header(ACCEPT, "application/json"))
        .await?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| admin.transport_error(e))?;
    if !status.is_success() {
        bail!("{}", api_error_line(status.as_u16(), &text, Some(name)));
    }
    serde_json::from_str(&text)
        .map_err(|e| anyhow!("the router answered with unexpected logs JSON ({e})"))
}

fn print_log_lines(lines: &[&LogLine], json: bool) -> anyhow::Result<()> {
    for l in lines {
        if json {
            println!("{}", serde_json::to_string(l)?);
        } else {
            println!(
                "{} {:<6} {}",
                output::clock_utc(l.at_ms),
                clean(&l.stream),
                output::clean_line(&l.line)
            );
        }
    }
    Ok(())
}

pub async fn logs(
    admin: &Admin,
    name: &str,
    tail: usize,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let first = fetch_logs(admin, name, tail).await?;
    if json && !follow {
        return print_json(&serde_json::to_value(&first)?);
    }
    let mut cursor = None;
    print_log_lines(&fresh_lines(&first, &mut cursor), json)?;
    if !follow {
        return Ok(());
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            fetch_logs(admin, name, tail.max(1000)).await
        };
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            batch = next => print_log_lines(&fresh_lines(&batch?, &mut cursor), json)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_logs_without_repeating() {
        let l = |at_ms, line: &str| LogLine {
            at_ms,
            stream: "stderr".into(),
            line: line.into(),
        };
        let mut cursor = None;
        let first = vec![l(1, "a"), l(2, "b"), l(2, "c")];
        assert_eq!(fresh_lines(&first, &mut cursor).len(), 3);
        assert_eq!(
            cursor,
            Some(LogCursor {
                last_ms: 2,
                seen_at_last: 2
            })
        );
        assert!(fresh_lines(&first, &mut cursor).is_empty());
        let second = vec![
            l(0, "older"),
            l(1, "a"),
            l(2, "b"),
            l(2, "c"),
            l(2, "d"),
            l(3, "e"),
        ];
        let lines: Vec<&str> = fresh_lines(&second, &mut cursor)
            .iter()
            .map(|x| x.line.as_str())
            .collect();
        assert_eq!(lines, ["d", "e"]);
        assert!(fresh_lines(&[], &mut cursor).is_empty());
        assert_eq!(
            cursor,
            Some(LogCursor {
                last_ms: 3,
                seen_at_last: 1
            })
        );
    }
}
