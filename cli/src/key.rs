//! `mcpr key create|list|revoke|remove`: API keys for MCP clients (`/api/v1/keys`, docs/AUTH.md).

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Admin;
use crate::output::{Table, clean};

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create an API key; it is shown once, copy it now.
    Create {
        /// A name to recognise the key by (e.g. "laptop", "ci").
        name: String,
        /// What the key may use: "*" (everything, the default), "PROVIDER" or
        /// "PROVIDER/TOOL". Repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// When the key stops working: a duration (90m, 12h, 30d) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List API keys (never the keys themselves).
    List,
    /// Revoke an API key by id, prefix or name; every gateway refuses it within a second.
    Revoke { key: String },
    /// Delete a revoked or expired API key for good, by id, prefix or name; it leaves the
    /// list (the audit log keeps its history).
    Remove {
        key: String,
        /// Remove it even while it is active (its clients are refused from then on).
        #[arg(long)]
        force: bool,
    },
}

/// `90m`, `12h`, `30d`, `45s` -> seconds.
fn duration_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let n: u64 = text[..text.len() - 1].parse().ok()?;
    n.checked_mul(factor)
}

pub async fn run(admin: &Admin, command: KeyCommand, json: bool) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            name,
            scopes,
            expires,
        } => {
            let mut body = json!({"name": name});
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(expires) = expires {
                match duration_secs(&expires) {
                    Some(secs) => body["expires_in_secs"] = json!(secs),
                    None if expires.contains('T') => body["expires_at"] = json!(expires),
                    None => bail!(
                        "--expires: expected a duration like 30d, 12h, 90m or an RFC 3339 time, got {expires:?}"
                    ),
                }
            }
            let created = admin.post(&["keys"], Some(&body), None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
                return Ok(());
            }
            println!("{}", created["key"].as_str().unwrap_or_default());
            eprintln!(
                "API key {} ({}) created with scopes {}{}. It is shown only this once: store it now.",
                clean(created["name"].as_str().unwrap_or_default()),
                clean(created["id"].as_str().unwrap_or_default()),
                clean(&scopes_text(&created["scopes"])),
                created["expires_at"]
                    .as_str()
                    .map(|at| format!(", expiring {}", clean(at)))
                    .unwrap_or_default(),
            );
            eprintln!("MCP clients send it as: Authorization: Bearer <key>");
            Ok(())
        }
        KeyCommand::List => {
            let keys = admin.get(&["keys"], None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
                return Ok(());
            }
            let keys = keys.as_array().cloned().unwrap_or_default();
            if keys.is_empty() {
                println!("no API keys (MCP clients need none until the first one exists)");
                return Ok(());
            }
            let mut table = Table::new(&[
                "ID",
                "NAME",
                "PREFIX",
                "SCOPES",
                "STATE",
                "EXPIRES",
                "LAST USED",
            ]);
            for k in &keys {
                let s = |f: &str| clean(k[f].as_str().unwrap_or("-"));
                table.row(vec![
                    s("id"),
                    s("name"),
                    format!("{}…", s("prefix")),
                    clean(&scopes_text(&k["scopes"])),
                    s("state"),
                    s("expires_at"),
                    s("last_used_at"),
                ]);
            }
            print!("{}", table.render());
            Ok(())
        }
        KeyCommand::Revoke { key } => {
            let revoked = admin.post(&["keys", &key, "revoke"], None, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&revoked)?);
            } else {
                println!(
                    "revoked API key {} ({})",
                    clean(revoked["name"].as_str().unwrap_or_default()),
                    clean(revoked["id"].as_str().unwrap_or_default())
                );
            }
            Ok(())
        }
        KeyCommand::Remove { key, force } => {
            let query: &[(&str, &str)] = if force { &[("force", "true")] } else { &[] };
            let removed = admin.post_query(&["keys", &key, "remove"], query).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&removed)?);
            } else {
                println!(
                    "removed API key {} ({})",
                    clean(removed["name"].as_str().unwrap_or_default()),
                    clean(removed["id"].as_str().unwrap_or_default())
                );
            }
            Ok(())
        }
    }
}

fn scopes_text(scopes: &Value) -> String {
    scopes
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("90m"), Some(5400));
        assert_eq!(duration_secs("30d"), Some(30 * 86_400));
        assert_eq!(duration_secs("2026-01-01T00:00:00Z"), None);
        assert_eq!(duration_secs("x"), None);
    }
}
