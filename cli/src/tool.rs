//! `mcpr tool list|disable|enable|set`: a server's tools as the router offers them, and the
//! admin's per-tool settings (`/api/v1/servers/{name}/tools…`, docs/API.md). A disabled
//! tool is gone from every view and refused on call.

use clap::Subcommand;
use serde_json::{Map, Value};

use crate::client::Admin;
use crate::output::{Table, clean, print_json, shorten};

#[derive(Subcommand, Debug)]
pub enum ToolCommand {
    /// List a server's tools with their state and the names clients see.
    List { server: String },
    /// Disable a tool: gone from every view's lists and searches, refused on call.
    Disable { server: String, tool: String },
    /// Enable a disabled tool again.
    Enable { server: String, tool: String },
    /// Show a tool to clients under another name or description ("" restores the upstream's).
    Set {
        server: String,
        /// The tool's name as the server lists it.
        tool: String,
        /// The name clients see instead.
        #[arg(long)]
        name: Option<String>,
        /// The description clients see instead.
        #[arg(long)]
        description: Option<String>,
    },
}

pub async fn run(admin: &Admin, command: ToolCommand, json: bool) -> anyhow::Result<()> {
    match command {
        ToolCommand::List { server } => {
            let tools = admin
                .get(&["servers", &server, "tools"], Some(&server))
                .await?;
            if json {
                return print_json(&tools);
            }
            let tools = tools.as_array().cloned().unwrap_or_default();
            if tools.is_empty() {
                println!(
                    "server {} reports no tools (yet): see `mcpr server show {}`",
                    clean(&server),
                    clean(&server)
                );
                return Ok(());
            }
            let mut table = Table::new(&["TOOL", "STATE", "SHOWN AS", "DESCRIPTION"]);
            for tool in &tools {
                let settings = &tool["mcpr"];
                let text = |v: &Value| v.as_str().map(str::to_owned);
                let name = text(&tool["name"]).unwrap_or_default();
                let state = if settings["enabled"].as_bool() == Some(false) {
                    "disabled"
                } else {
                    "enabled"
                };
                let description = text(&settings["description"])
                    .or_else(|| text(&tool["description"]))
                    .unwrap_or_default();
                table.row(vec![
                    clean(&name),
                    state.to_owned(),
                    clean(&text(&settings["name"]).unwrap_or_else(|| "-".to_owned())),
                    clean(&shorten(description.lines().next().unwrap_or_default(), 70)),
                ]);
            }
            print!("{}", table.render());
            Ok(())
        }
        ToolCommand::Disable { server, tool } => {
            let answer = admin
                .post(&["servers", &server, "tools", &tool, "disable"], None, None)
                .await?;
            report(&answer, json, "disabled: clients no longer see or call it")
        }
        ToolCommand::Enable { server, tool } => {
            let answer = admin
                .post(&["servers", &server, "tools", &tool, "enable"], None, None)
                .await?;
            report(&answer, json, "enabled")
        }
        ToolCommand::Set {
            server,
            tool,
            name,
            description,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), Value::String(name));
            }
            if let Some(description) = description {
                body.insert("description".into(), Value::String(description));
            }
            if body.is_empty() {
                anyhow::bail!("nothing to set: give --name and/or --description");
            }
            let answer = admin
                .patch(
                    &["servers", &server, "tools", &tool],
                    &Value::Object(body),
                    None,
                )
                .await?;
            report(&answer, json, "updated")
        }
    }
}

/// One line on what a per-tool route did (or its JSON).
fn report(answer: &Value, json: bool, what: &str) -> anyhow::Result<()> {
    if json {
        return print_json(answer);
    }
    let s = |f: &str| clean(answer[f].as_str().unwrap_or_default());
    let mut line = format!("tool {} of server {} {what}", s("tool"), s("server"));
    if let Some(name) = answer["name"].as_str() {
        line.push_str(&format!("; shown as {}", clean(name)));
    }
    println!("{line}");
    Ok(())
}
