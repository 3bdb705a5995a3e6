//! The three tool views and the MCP methods the gateway answers itself. Everything a view
//! does not answer is relayed untouched to the provider's agent.
//!
//! - hierarchical (`MCP_PATH`, default `/mcp`): a handful of meta-tools (`list_providers`,
//!   `list_tools`, `search_tools`, `call_tool`); a provider's tool may also be called by its
//!   own name with a `provider` argument.
//! - flat (`/mcp/all`): every tool of every enabled provider, named `provider__tool`.
//! - transparent (`/mcp/p/{provider}`): exactly one provider, names and methods untouched.

use std::sync::Arc;

use mcpr_core::jsonrpc::{self, Kind, Message, RpcError, code};
use mcpr_core::model::ServerState;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::Gateway;
use crate::snapshot::{FLAT_SEPARATOR, Provider, Snapshot};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum View {
    Hierarchical,
    Flat,
    Transparent(String),
}

/// Protocol versions of the legacy era this gateway speaks, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

const DEFAULT_SEARCH_LIMIT: usize = 10;

pub(crate) const INSTRUCTIONS: &str = "This is MCP Router: one endpoint in front of many MCP servers (providers). \
Call list_providers to see them, search_tools to find a tool by what it does, list_tools to see one \
provider's tools with their input schemas, and call_tool to run one. A provider's tool can also be \
called directly by its own name with an extra \"provider\" argument.";

impl Gateway {
    /// Handles one JSON-RPC message from a client on `view`; returns the answer, if any.
    pub async fn handle(&self, view: &View, session: &str, message: Message) -> Option<Message> {
        let kind = match message.kind() {
            Ok(kind) => kind,
            Err(e) => {
                return Some(Message::error(
                    message.id.clone().unwrap_or(Value::Null),
                    &RpcError::new(code::INVALID_REQUEST, e),
                ));
            }
        };
        match kind {
            Kind::Request => Some(self.request(view, session, message).await),
            Kind::Notification => {
                let method = message.method.as_deref().unwrap_or_default();
                if method == "notifications/cancelled" {
                    // To the agent that runs the cancelled request, on any view.
                    let request_id = message
                        .params_value()
                        .ok()
                        .and_then(|p| p.get("requestId").map(Value::to_string));
                    let target = request_id.and_then(|id| self.delivery.in_flight(session, &id));
                    if let Some((relay_url, provider)) = target {
                        let _ = self
                            .relays
                            .notify(&relay_url, &provider, session, message)
                            .await;
                    }
                } else if let View::Transparent(name) = view {
                    // The gateway completed the handshake itself.
                    if method != "notifications/initialized" {
                        let snapshot = self.snapshot.load();
                        if let Ok((provider, relay_url)) = route(&snapshot, name) {
                            let _ = self
                                .relays
                                .notify(&relay_url, &provider.name, session, message)
                                .await;
                        }
                    }
                }
                None
            }
            // The client's answer to a server-to-client request: back to its upstream.
            Kind::Response => {
                let id = message
                    .id
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                match self.delivery.take_server_request(session, &id) {
                    Some((relay_url, provider)) => {
                        if let Err(e) = self.relays.respond(&relay_url, &provider, message).await {
                            tracing::debug!(error = %e, "client answer could not be relayed");
                        }
                    }
                    None => tracing::debug!(%id, "answer to an unknown server request dropped"),
                }
                None
            }
        }
    }

    async fn request(&self, view: &View, session: &str, message: Message) -> Message {
        let id = message.id.clone().unwrap_or(Value::Null);
        let method = message.method.as_deref().unwrap_or_default();
        let answer = match (method, view) {
            ("initialize", _) => self.initialize(view, &message).await,
            ("ping", _) => Ok(raw(json!({}))),
            (_, View::Transparent(name)) => {
                return crate::auth::guard_transparent(name, message, |m| {
                    self.relay(name, session, m)
                })
                .await;
            }
            ("tools/list", View::Hierarchical) => Ok(raw(json!({ "tools": meta_tools() }))),
            ("tools/list", View::Flat) => Ok(crate::auth::flat_tools(&self.snapshot.load())),
            ("tools/call", View::Hierarchical) => {
                return self.call_hierarchical(session, message).await;
            }
            ("tools/call", View::Flat) => return self.call_flat(session, message).await,
            (other, _) => Err(RpcError::method_not_found(other)),
        };
        match answer {
            Ok(result) => Message::result(id, result),
            Err(error) => Message::error(id, &error),
        }
    }

    async fn initialize(&self, view: &View, message: &Message) -> Result<Box<RawValue>, RpcError> {
        let params = message.params_value()?;
        let requested = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let version = negotiate_version(requested);
        let version_info = json!({"name": "mcp-router", "title": "MCP Router", "version": env!("CARGO_PKG_VERSION")});
        let result = match view {
            View::Hierarchical | View::Flat => json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": version_info,
                "instructions": INSTRUCTIONS,
            }),
            View::Transparent(name) => {
                let snapshot = self.settled_snapshot(name).await;
                let (provider, _) = route(&snapshot, name)?;
                let Some(info) = &provider.server_info else {
                    return Err(not_running(provider));
                };
                let mut result = Map::new();
                result.insert("protocolVersion".into(), json!(version));
                result.insert(
                    "capabilities".into(),
                    info.get("capabilities")
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                );
                result.insert(
                    "serverInfo".into(),
                    info.get("serverInfo").cloned().unwrap_or(version_info),
                );
                if let Some(instructions) = info.get("instructions") {
                    result.insert("instructions".into(), instructions.clone());
                }
                Value::Object(result)
            }
        };
        Ok(raw(result))
    }

    /// The `initialize` result of `provider`'s upstream (capabilities, serverInfo,
    /// instructions), which the modern era's `server/discover` is answered from.
    pub(crate) async fn provider_server_info(
        &self,
        name: &str,
    ) -> Result<Map<String, Value>, RpcError> {
        let snapshot = self.settled_snapshot(name).await;
        let (provider, _) = route(&snapshot, name)?;
        provider
            .server_info
            .clone()
            .ok_or_else(|| not_running(provider))
    }

    /// Relays a request to `provider` as it is.
    async fn relay(&self, provider_name: &str, session: &str, message: Message) -> Message {
        let id = message.id.clone().unwrap_or(Value::Null);
        let snapshot = self.settled_snapshot(provider_name).await;
        let (provider, relay_url) = match route(&snapshot, provider_name) {
            Ok(route) => route,
            Err(error) => return Message::error(id, &error),
        };
        // Known while it runs, so that a client's cancellation finds its agent.
        let _in_flight = self
            .delivery
            .track(session, &id.to_string(), &relay_url, &provider.name);
        match self
            .relays
            .request(&relay_url, &provider.name, session, message)
            .await
        {
            Ok(mut response) => {
                response.id = Some(id);
                response
            }
            Err(error) => Message::error(id, &error),
        }
    }

    /// Calls `tool` of `provider` with `params` (a `tools/call` params object whose name is
    /// rewritten to the upstream's own).
    async fn call_tool(
        &self,
        id: Value,
        provider: &str,
        session: &str,
        mut params: Map<String, Value>,
        tool: &str,
    ) -> Message {
        params.insert("name".into(), Value::String(tool.to_owned()));
        let call = Message::request(id, "tools/call", Some(Value::Object(params)));
        self.relay(provider, session, call).await
    }

    async fn call_flat(&self, session: &str, message: Message) -> Message {
        let id = message.id.clone().unwrap_or(Value::Null);
        let params = match message.params_value() {
            Ok(params) => params,
            Err(error) => return Message::error(id, &error),
        };
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some((provider, tool)) = name.split_once(FLAT_SEPARATOR) else {
            return Message::error(
                id,
                &RpcError::invalid_params(format!(
                    "unknown tool {name:?}: tools here are named provider{FLAT_SEPARATOR}tool"
                )),
            );
        };
        let snapshot = self.snapshot.load();
        if let Err(error) = find_tool(&snapshot, provider, tool) {
            return Message::error(id, &error);
        }
        self.call_tool(id, provider, session, params, tool).await
    }

    async fn call_hierarchical(&self, session: &str, message: Message) -> Message {
        let id = message.id.clone().unwrap_or(Value::Null);
        let mut params = match message.params_value() {
            Ok(params) => params,
            Err(error) => return Message::error(id, &error),
        };
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut arguments = match params.remove("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(arguments)) => arguments,
            Some(_) => {
                return Message::error(
                    id,
                    &RpcError::invalid_params("arguments must be an object"),
                );
            }
        };
        let snapshot = self.snapshot.load();
        let outcome = match name.as_str() {
            crate::sandbox::TOOL => {
                // Running code is a scope of its own (`_sandbox`, or `*`).
                if let Err(error) = crate::auth::authorize_provider(crate::sandbox::PROVIDER) {
                    return Message::result(id, tool_error(&error.message));
                }
                return self.python_sandbox(id, session, arguments).await;
            }
            "list_providers" => Ok(list_providers(&snapshot)),
            "list_tools" => {
                string_arg(&arguments, "provider").and_then(|p| list_tools(&snapshot, &p))
            }
            "search_tools" => string_arg(&arguments, "query").map(|q| {
                let limit = arguments
                    .get("limit")
                    .and_then(Value::as_u64)
                    .map_or(DEFAULT_SEARCH_LIMIT, |l| l.clamp(1, 100) as usize);
                search_tools(&snapshot, &q, limit)
            }),
            "call_tool" => {
                let provider = match string_arg(&arguments, "provider") {
                    Ok(p) => p,
                    Err(text) => return Message::result(id, tool_error(&text)),
                };
                let tool = match string_arg(&arguments, "tool") {
                    Ok(t) => t,
                    Err(text) => return Message::result(id, tool_error(&text)),
                };
                if let Err(error) = find_tool(&snapshot, &provider, &tool) {
                    return Message::result(id, tool_error(&error.message));
                }
                let inner = match arguments.remove("arguments") {
                    None | Some(Value::Null) => json!({}),
                    Some(Value::Object(a)) => Value::Object(a),
                    Some(_) => {
                        return Message::result(
                            id,
                            tool_error("call_tool: \"arguments\" must be an object"),
                        );
                    }
                };
                params.insert("arguments".into(), inner);
                return self.call_tool(id, &provider, session, params, &tool).await;
            }
            // A provider's tool called by its own name, as the original MCP Router allowed.
            _ => {
                let Some(Value::String(provider)) = arguments.remove("provider") else {
                    return Message::error(
                        id,
                        &RpcError::invalid_params(format!(
                            "unknown tool {name:?}: use list_providers and search_tools to find tools, then call_tool \
                             (or call a provider's tool by its name with a \"provider\" argument)"
                        )),
                    );
                };
                if let Err(error) = find_tool(&snapshot, &provider, &name) {
                    return Message::error(id, &error);
                }
                params.insert("arguments".into(), Value::Object(arguments));
                return self.call_tool(id, &provider, session, params, &name).await;
            }
        };
        match outcome {
            Ok(value) => Message::result(id, tool_result(value)),
            Err(text) => Message::result(id, tool_error(&text)),
        }
    }
}

impl Gateway {
    /// Tells the provider's agent that client session `session` is over.
    /// Tells the agents that a client session on `view` ended, so that the `per_client`
    /// upstream sessions (and processes) it had end now rather than when idle: the
    /// provider's agent for the transparent view, every agent (for all their providers)
    /// for the views of every provider.
    pub(crate) async fn end_upstream_sessions(&self, view: &View, session: &str) {
        let snapshot = self.snapshot.load_full();
        let targets: Vec<(String, String)> = match view {
            View::Transparent(provider) => match route(&snapshot, provider) {
                Ok((provider, relay_url)) => vec![(relay_url, provider.name.clone())],
                Err(_) => return,
            },
            View::Hierarchical | View::Flat => {
                let relay_urls: std::collections::BTreeSet<&String> =
                    snapshot.agents.values().collect();
                relay_urls
                    .into_iter()
                    .map(|url| (url.clone(), String::new()))
                    .collect()
            }
        };
        for (relay_url, provider) in targets {
            let message = Message::notification("mcpr/sessionEnded", None);
            let _ = self
                .relays
                .notify(&relay_url, &provider, session, message)
                .await;
        }
    }

    /// The current snapshot, after waiting (up to [`STARTUP_GRACE`]) while `provider` is
    /// known but not yet placed on an agent or still starting: early callers get an answer
    /// rather than a spurious error.
    async fn settled_snapshot(&self, provider: &str) -> Arc<Snapshot> {
        let deadline = std::time::Instant::now() + STARTUP_GRACE;
        loop {
            let snapshot = self.snapshot.load_full();
            let unsettled = snapshot.providers.get(provider).is_some_and(|p| {
                p.enabled
                    && (p.agent_id.is_empty()
                        || matches!(p.state, ServerState::Pending | ServerState::Starting))
            });
            if !unsettled || std::time::Instant::now() >= deadline {
                return snapshot;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// How long a call waits for a provider that is still being placed or starting.
const STARTUP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The provider named `name` and the relay URL of the agent that runs it.
fn route<'a>(snapshot: &'a Snapshot, name: &str) -> Result<(&'a Arc<Provider>, String), RpcError> {
    let provider = find_provider(snapshot, name)?;
    if provider.agent_id.is_empty() {
        return Err(RpcError::new(
            code::UPSTREAM_UNAVAILABLE,
            format!(
                "provider {name:?} is not placed on any node agent yet (is an agent connected?)"
            ),
        ));
    }
    let Some(relay_url) = snapshot.agents.get(&provider.agent_id) else {
        return Err(RpcError::new(
            code::UPSTREAM_UNAVAILABLE,
            format!(
                "provider {name:?} runs on agent {:?}, which is gone",
                provider.agent_id
            ),
        ));
    };
    Ok((provider, relay_url.clone()))
}

fn find_provider<'a>(snapshot: &'a Snapshot, name: &str) -> Result<&'a Arc<Provider>, RpcError> {
    match snapshot.providers.get(name) {
        Some(provider) if provider.enabled => Ok(provider),
        Some(_) => Err(RpcError::new(
            code::UPSTREAM_UNAVAILABLE,
            format!("provider {name:?} is disabled"),
        )),
        None => {
            let known: Vec<&str> = crate::auth::visible_providers(snapshot)
                .into_iter()
                .map(|p| p.name.as_str())
                .collect();
            Err(RpcError::invalid_params(format!(
                "unknown provider {name:?} (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )))
        }
    }
}

/// Checks that `provider` lists `tool`. A provider that is not running has no tool list yet:
/// the call goes through and the agent answers why it cannot run it.
fn find_tool(snapshot: &Snapshot, provider: &str, tool: &str) -> Result<(), RpcError> {
    crate::auth::authorize_tool(provider, tool)?;
    let p = find_provider(snapshot, provider)?;
    if p.state != ServerState::Running && p.tools.is_empty() {
        return Ok(());
    }
    if p.tools.iter().any(|t| t.name == tool) {
        Ok(())
    } else {
        Err(RpcError::invalid_params(format!(
            "provider {provider:?} has no tool {tool:?} (see list_tools)"
        )))
    }
}

fn not_running(provider: &Provider) -> RpcError {
    let mut message = format!(
        "provider {:?} is not running ({:?})",
        provider.name, provider.state
    );
    if !provider.last_error.is_empty() {
        message.push_str(&format!(": {}", provider.last_error));
    }
    RpcError::new(code::UPSTREAM_UNAVAILABLE, message)
}

pub fn negotiate_version(requested: &str) -> &'static str {
    SUPPORTED_VERSIONS
        .iter()
        .copied()
        .find(|v| *v == requested)
        .unwrap_or(SUPPORTED_VERSIONS[0])
}

fn string_arg(arguments: &Map<String, Value>, name: &str) -> Result<String, String> {
    match arguments.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(format!("argument {name:?} must be a non-empty string")),
        None => Err(format!("missing required argument {name:?}")),
    }
}

fn list_providers(snapshot: &Snapshot) -> Value {
    let providers: Vec<Value> = crate::auth::visible_providers(snapshot)
        .into_iter()
        .map(|p| {
            let mut entry = json!({"name": p.name, "description": p.description, "state": p.state, "tools": p.tools.len()});
            if let Some(title) = p.server_info.as_ref().and_then(|i| i.get("serverInfo")).and_then(|s| s.get("title")) {
                entry["title"] = title.clone();
            }
            if !p.last_error.is_empty() && p.state != ServerState::Running {
                entry["last_error"] = json!(p.last_error);
            }
            entry
        })
        .collect();
    json!({ "providers": providers })
}

fn list_tools(snapshot: &Snapshot, provider: &str) -> Result<Value, String> {
    crate::auth::authorize_provider(provider).map_err(|e| e.message)?;
    let p = find_provider(snapshot, provider).map_err(|e| e.message)?;
    let access = crate::auth::caller();
    let tools: Vec<Value> = p
        .tools
        .iter()
        .filter(|t| access.allows_tool(&p.name, &t.name))
        .filter_map(|t| serde_json::from_str(t.raw.get()).ok())
        .collect();
    Ok(json!({"provider": p.name, "state": p.state, "tools": tools}))
}

fn search_tools(snapshot: &Snapshot, query: &str, limit: usize) -> Value {
    let access = crate::auth::caller();
    let scan = if access.is_all() { limit } else { usize::MAX };
    let results: Vec<Value> = snapshot
        .search
        .search(query, scan)
        .into_iter()
        .filter(|hit| {
            access.allows_tool(&hit.provider.name, &hit.provider.tools[hit.tool_index].name)
        })
        .take(limit)
        .map(|hit| {
            let tool = &hit.provider.tools[hit.tool_index];
            let schema = serde_json::from_str::<Value>(tool.raw.get())
                .ok()
                .and_then(|t| t.get("inputSchema").cloned());
            json!({
                "provider": hit.provider.name,
                "tool": tool.name,
                "description": tool.description,
                "score": (hit.score * 100.0).round() / 100.0,
                "inputSchema": schema,
            })
        })
        .collect();
    json!({"query": query, "results": results})
}

fn raw(value: Value) -> Box<RawValue> {
    jsonrpc::to_raw(&value)
}

/// A successful meta-tool result: the JSON as text (for models) and as structured content.
fn tool_result(value: Value) -> Box<RawValue> {
    let text = serde_json::to_string_pretty(&value).expect("JSON serializes");
    raw(json!({"content": [{"type": "text", "text": text}], "structuredContent": value}))
}

/// A tool-level error the model can read and act on (MCP: `isError: true`).
fn tool_error(text: &str) -> Box<RawValue> {
    raw(json!({"content": [{"type": "text", "text": text}], "isError": true}))
}

fn meta_tools() -> Value {
    json!([
        {
            "name": "list_providers",
            "title": "List providers",
            "description": "List the MCP servers (providers) behind this router, with their state and number of tools.",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        },
        {
            "name": "list_tools",
            "title": "List a provider's tools",
            "description": "List the tools of one provider with their descriptions and input schemas.",
            "inputSchema": {
                "type": "object",
                "properties": {"provider": {"type": "string", "description": "Provider name, from list_providers"}},
                "required": ["provider"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        },
        {
            "name": "search_tools",
            "title": "Search tools",
            "description": "Find tools across all providers by what they do; results are ranked by how well the tool's name and description match the query.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Words describing the tool you need"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Most results to return (default 10)"}
                },
                "required": ["query"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        },
        {
            "name": "call_tool",
            "title": "Call a provider's tool",
            "description": "Call a tool of a provider with arguments matching the tool's input schema (see list_tools or search_tools).",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "provider": {"type": "string", "description": "Provider name"},
                    "tool": {"type": "string", "description": "Tool name within the provider"},
                    "arguments": {"type": "object", "description": "The tool's arguments"}
                },
                "required": ["provider", "tool"]
            }
        },
        crate::sandbox::tool()
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation_echoes_known_and_offers_latest() {
        assert_eq!(negotiate_version("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate_version("1999-01-01"), SUPPORTED_VERSIONS[0]);
    }

    #[test]
    fn meta_tools_have_object_schemas() {
        for tool in meta_tools().as_array().unwrap() {
            assert_eq!(tool["inputSchema"]["type"], "object", "{}", tool["name"]);
        }
    }
}
