//! `mcpr import FILE`: register the servers of a Claude Desktop style `{"mcpServers": {...}}`
//! file through `POST /api/v1/import`.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::client::Admin;
use crate::output::{clean, print_json, str_at};

/// `mcpr import FILE`: reads Claude Desktop's `{"mcpServers": {...}}` JSON and POSTs it to
/// `/api/v1/import`; prints created and skipped.
pub async fn run(admin: &Admin, file: &Path, json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not valid JSON: {e}", file.display()))?;
    let Some(servers) = doc.get("mcpServers").filter(|m| m.is_object()) else {
        bail!(
            "{} has no \"mcpServers\" object (expected Claude Desktop's format: {{\"mcpServers\": {{NAME: {{\"command\": …}}}}}})",
            file.display()
        );
    };
    let report = admin
        .post(&["import"], Some(&json!({"mcpServers": servers})), None)
        .await?;
    if json {
        return print_json(&report);
    }
    let created: Vec<String> = report["created"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let skipped = report["skipped"].as_array().cloned().unwrap_or_default();
    for name in &created {
        println!("created  {}", clean(name));
    }
    for s in &skipped {
        println!(
            "skipped  {}: {}",
            clean(&str_at(s, &["name"])),
            clean(&str_at(s, &["reason"]))
        );
    }
    println!("{} created, {} skipped", created.len(), skipped.len());
    Ok(())
}
