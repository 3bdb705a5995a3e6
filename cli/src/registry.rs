//! `mcpr registry search`: the MCP Registry (`MCPR_REGISTRY_URL`, or the offline directory
//! `MCPR_REGISTRY_DIR`) as the router reaches it, searched by name and description.

use clap::Subcommand;
use serde_json::Value;

use crate::client::Admin;
use crate::output::{Table, clean, print_json, shorten, str_at};

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Find servers in the MCP Registry the router is configured with
    Search {
        query: String,
        /// At most this many results
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

pub async fn run(admin: &Admin, cmd: RegistryCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Search { query, limit } => {
            let limit = limit.to_string();
            let found = admin
                .get_query(
                    &["registry", "servers"],
                    &[("search", &query), ("limit", &limit)],
                )
                .await?;
            if json {
                return print_json(&found);
            }
            print!("{}", results(&found, &query));
            Ok(())
        }
    }
}

fn results(found: &Value, query: &str) -> String {
    let servers = found["servers"].as_array().cloned().unwrap_or_default();
    if servers.is_empty() {
        return format!(
            "no server in {} matches {:?}\n",
            clean(&str_at(found, &["registry"])),
            clean(query)
        );
    }
    let mut table = Table::new(&["NAME", "VERSION", "RUNS", "DESCRIPTION"]);
    for server in &servers {
        let runs: Vec<&str> = server["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        table.row(vec![
            clean(&str_at(server, &["name"])),
            clean(&str_at(server, &["version"])),
            clean(&runs.join(" ")),
            shorten(&clean(&str_at(server, &["description"])), 60),
        ]);
    }
    table.render()
}
