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

pub mod sandbox;
pub mod visible;

/// How a message came to the gateway, for its span (see [`Gateway::handle_from`]).
pub struct Came {
    /// `network.transport`: `tcp` (HTTP), `pipe` (stdio).
    pub transport: Option<&'static str>,
    /// The trace context of the HTTP `traceparent`/`tracestate` headers.
    pub context: Option<mcpr_core::telemetry::mcp::TraceContext>,
    /// The request's `MCP-Protocol-Version` when the transport knows it (a modern request).
    pub protocol_version: Option<&'static str>,
    /// The session's negotiated version, and the caller's key id or `oauth:{client}:{subject}`
    /// (never a secret), as the transport's layer keeps them: called for a kept span only,
    /// so that a request whose trace is dropped never looks them up.
    pub session_version: fn(&Gateway, &str) -> Option<String>,
    pub caller: fn() -> Option<String>,
}

impl Default for Came {
    fn default() -> Self {
        Came {
            transport: None,
            context: None,
            protocol_version: None,
            session_version: |_, _| None,
            caller: || None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum View {
    Hierarchical,
    Flat,
    Transparent(String),
}

impl View {
    /// The view's name in records and logs.
    pub fn label(&self) -> &'static str {
        match self {
            View::Hierarchical => "hierarchical",
            View::Flat => "flat",
            View::Transparent(_) => "transparent",
        }
    }
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
        self.handle_from(view, session, message, None).await
    }

    /// [`handle`](Self::handle), for a front door that knows how the message came (its
    /// transport, a trace context in the HTTP headers): only read while tracing is on.
    pub async fn handle_from(
        &self,
        view: &View,
        session: &str,
        message: Message,
        came: Option<Came>,
    ) -> Option<Message> {
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
            Kind::Request => {
                // One record per request (`observe/mod.rs`); the method is kept as a label
                // when it is a known one, else copied for the record.
                let method = match message.method.as_deref() {
                    Some(method) => match crate::observe::metrics::METHODS.contains(&method) {
                        true => std::borrow::Cow::Borrowed(crate::observe::metrics::method_label(
                            method,
                        )),
                        false => std::borrow::Cow::Owned(method.to_owned()),
                    },
                    None => std::borrow::Cow::Borrowed(""),
                };
                let mut started = crate::observe::Started::now(&message);
                // Arguments are copied only when the audit log keeps them (hash or full).
                if message.method.as_deref() == Some("tools/call")
                    && self.snapshot.load().audit.arguments != crate::snapshot::AuditArguments::Off
                {
                    started.keep_arguments(&message);
                }
                // Modern requests all run under one session name (`transport::MODERN_SESSION`):
                // they have no session to record.
                let client_session = (session != "modern").then_some(session);
                let answer = crate::observe::observed(
                    &self.observer,
                    view.label(),
                    client_session,
                    &method,
                    started,
                    // Boxed: inline, this future made the caller's ~3 times its size, and
                    // every request moved all of it into the transport's box (docs/BENCHMARKS.md).
                    Box::pin(self.request_from(view, session, message, came)),
                )
                .await;
                Some(answer)
            }
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

    /// A request, as a span while tracing is on: the gateway's SERVER span, whose parent is
    /// the client's trace context (`params._meta.traceparent`, else the HTTP `traceparent`
    /// header). A request whose trace the sampler drops runs with no span here nor below,
    /// passing on only its context.
    async fn request_from(
        &self,
        view: &View,
        session: &str,
        message: Message,
        came: Option<Came>,
    ) -> Message {
        use mcpr_core::telemetry::{self, mcp};
        if !telemetry::enabled() {
            return self.request(view, session, message).await;
        }
        let came = came.unwrap_or_default();
        let parent = mcp::TraceContext::from_meta(&message)
            .and_then(|c| c.parent())
            .or_else(|| came.context.as_ref().and_then(|c| c.parent()));
        match mcp::first_span(&message, mcp::Side::Server, parent) {
            mcp::Traced::Dropped(context) => {
                mcp::dropped_in(context, self.request(view, session, message)).await
            }
            // Boxed: an untraced request's future stays the size it was.
            mcp::Traced::Span(span) => {
                Box::pin(self.traced_request(view, session, message, came, span)).await
            }
        }
    }

    /// A request in the gateway's SERVER `span`, with what the span records of how it came;
    /// the relay below adds the provider and agent it went to.
    async fn traced_request(
        &self,
        view: &View,
        session: &str,
        message: Message,
        came: Came,
        span: tracing::Span,
    ) -> Message {
        use mcpr_core::telemetry::mcp;
        if !session.is_empty() {
            mcp::set(&span, "mcp.session.id", session);
        }
        let version = match came.protocol_version {
            Some(version) => Some(version.to_owned()),
            None => (came.session_version)(self, session),
        };
        if let Some(version) = version {
            mcp::set(&span, "mcp.protocol.version", version);
        }
        if let Some(transport) = came.transport {
            mcp::set(&span, "network.transport", transport);
        }
        if let Some(caller) = (came.caller)() {
            mcp::set(&span, "mcpr.caller", caller);
        }
        mcp::set(
            &span,
            "mcpr.view",
            match view {
                View::Hierarchical => "hierarchical",
                View::Flat => "flat",
                View::Transparent(_) => "transparent",
            },
        );
        if let View::Transparent(provider) = view {
            mcp::set(&span, "mcpr.provider", provider.as_str());
        }
        mcp::answered_in(span, self.request(view, session, message)).await
    }

    async fn request(&self, view: &View, session: &str, message: Message) -> Message {
        let id = message.id.clone().unwrap_or(Value::Null);
        let method = message.method.as_deref().unwrap_or_default();
        let answer = match (method, view) {
            ("initialize", _) => self.initialize(view, &message).await,
            ("ping", _) => Ok(raw(json!({}))),
            (_, View::Transparent(name)) => {
                let (snapshot, _) = self.settled(Awaited::One(name)).await;
                let provider = snapshot.providers.get(name.as_str());
                if let Some(target) = crate::observe::target_of(&message) {
                    let tool_known = method == "tools/call"
                        && provider.is_some_and(|p| p.tools.iter().any(|t| t.name == target));
                    if let Some(provider) = provider {
                        crate::observe::note_provider(provider);
                    }
                    crate::observe::note_target(target, tool_known);
                }
                // A provider with tool settings is served through them; the others (almost
                // all) pay only the lookup above.
                let overridden = provider.filter(|p| !p.tool_overrides.is_empty()).cloned();
                drop(snapshot);
                if let Some(provider) = overridden {
                    return self
                        .transparent_overridden(&provider, session, message)
                        .await;
                }
                return crate::access::guard_transparent(name, message, |m| {
                    self.transparent(name, session, m)
                })
                .await;
            }
            ("tools/list", View::Hierarchical) => {
                // Listed only to callers that may run it (`_sandbox`, or `*`).
                let sandbox =
                    crate::access::caller().allows_provider(crate::views::sandbox::PROVIDER);
                Ok(raw(json!({ "tools": meta_tools(sandbox) })))
            }
            ("tools/list", View::Flat) => {
                let (snapshot, starting) = self.settled(Awaited::Visible).await;
                Ok(with_starting(visible::flat_tools(&snapshot), &starting))
            }
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
                "capabilities": {"tools": {"listChanged": true}},
                "serverInfo": version_info,
                "instructions": INSTRUCTIONS,
            }),
            View::Transparent(name) => {
                let (snapshot, _) = self.settled(Awaited::One(name)).await;
                let (provider, _) = route(&snapshot, name)?;
                let Some(info) = &provider.server_info else {
                    return Err(not_running(provider));
                };
                let mut result = Map::new();
                result.insert("protocolVersion".into(), json!(version));
                result.insert("capabilities".into(), transparent_capabilities(info));
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
        let (snapshot, _) = self.settled(Awaited::One(name)).await;
        let (provider, _) = route(&snapshot, name)?;
        provider
            .server_info
            .clone()
            .ok_or_else(|| not_running(provider))
    }

    /// A request on the transparent view of `provider`: relayed as it is, except that a list
    /// of a provider still starting after the wait is answered empty here, naming it, rather
    /// than with an error (its clients hear of the list when it is ready).
    async fn transparent(&self, provider: &str, session: &str, message: Message) -> Message {
        let key = match message.method.as_deref() {
            Some("tools/list") => "tools",
            Some("resources/list") => "resources",
            Some("resources/templates/list") => "resourceTemplates",
            Some("prompts/list") => "prompts",
            _ => return self.relay(provider, session, message).await,
        };
        let (_, starting) = self.settled(Awaited::One(provider)).await;
        if starting.is_empty() {
            return self.relay(provider, session, message).await;
        }
        let id = message.id.unwrap_or(Value::Null);
        Message::result(id, with_starting(raw(json!({ key: [] })), &starting))
    }

    /// A request on the transparent view of a provider with tool settings: a call by a
    /// disabled tool's name (or by a renamed tool's old name) is refused here, a call by a
    /// new name relayed under the upstream's, and the upstream's `tools/list` answer shown
    /// with the settings applied. Scopes see the upstream's names, as on the other views.
    async fn transparent_overridden(
        &self,
        provider: &Provider,
        session: &str,
        mut message: Message,
    ) -> Message {
        let name = provider.name.as_str();
        let method = message.method.as_deref().unwrap_or_default();
        if method == "tools/call" {
            let id = message.id.clone().unwrap_or(Value::Null);
            let mut params = match message.params_value() {
                Ok(params) => params,
                Err(error) => return Message::error(id, &error),
            };
            let tool = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(upstream) = provider.renamed(tool) {
                params.insert("name".into(), Value::String(upstream.to_owned()));
                message = Message::request(id, "tools/call", Some(Value::Object(params)));
            } else if let Some(refusal) = provider.tool_refusal(tool) {
                return Message::error(id, &RpcError::invalid_params(refusal));
            }
            return crate::access::guard_transparent(name, message, |m| {
                self.transparent(name, session, m)
            })
            .await;
        }
        let is_list = method == "tools/list";
        let mut answer =
            crate::access::guard_transparent(name, message, |m| self.transparent(name, session, m))
                .await;
        if !is_list {
            return answer;
        }
        let Some(Ok(mut result)) = answer
            .result
            .as_ref()
            .map(|r| serde_json::from_str::<Map<String, Value>>(r.get()))
        else {
            return answer;
        };
        if let Some(Value::Array(tools)) = result.get_mut("tools") {
            provider.apply_tool_overrides(tools);
        }
        answer.result = Some(raw(Value::Object(result)));
        answer
    }

    /// Relays a request to `provider` as it is.
    async fn relay(&self, provider_name: &str, session: &str, message: Message) -> Message {
        let id = message.id.clone().unwrap_or(Value::Null);
        let (snapshot, _) = self.settled(Awaited::One(provider_name)).await;
        let (provider, relay_url) = match route(&snapshot, provider_name) {
            Ok(route) => route,
            Err(error) => return Message::error(id, &error),
        };
        crate::observe::note_provider(provider);
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
        tool_known: bool,
    ) -> Message {
        crate::observe::note_target(tool.to_owned(), tool_known);
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
        let (tool_known, upstream) = match find_tool(&snapshot, provider, tool) {
            Ok((known, renamed)) => (known, renamed.map(str::to_owned)),
            Err(error) => return Message::error(id, &error),
        };
        let tool = upstream.as_deref().unwrap_or(tool);
        self.call_tool(id, provider, session, params, tool, tool_known)
            .await
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
        if matches!(
            name.as_str(),
            "list_providers" | "list_tools" | "search_tools"
        ) {
            crate::observe::note_target(name.clone(), true);
        }
        let outcome = match name.as_str() {
            crate::views::sandbox::TOOL => {
                // Running code is a scope of its own (`_sandbox`, or `*`).
                crate::observe::note_builtin_provider(crate::views::sandbox::PROVIDER);
                crate::observe::note_target(name.clone(), true);
                if let Err(error) =
                    crate::access::authorize_provider(crate::views::sandbox::PROVIDER)
                {
                    crate::observe::note_refused(crate::observe::Refusal::Scope);
                    return Message::result(id, tool_error(&error.message));
                }
                return self.python_sandbox(id, session, arguments).await;
            }
            // Lists wait for providers still starting (`settled`) and name those that are
            // still starting after the wait.
            "list_providers" => {
                let (snapshot, starting) = self.settled(Awaited::Visible).await;
                Ok(with_starting_field(list_providers(&snapshot), &starting))
            }
            "list_tools" => match string_arg(&arguments, "provider") {
                Ok(provider) => {
                    let (snapshot, starting) = self.settled(Awaited::One(&provider)).await;
                    list_tools(&snapshot, &provider)
                        .map(|listed| with_starting_field(listed, &starting))
                }
                Err(text) => Err(text),
            },
            "search_tools" => match string_arg(&arguments, "query") {
                Ok(query) => {
                    let limit = arguments
                        .get("limit")
                        .and_then(Value::as_u64)
                        .map_or(DEFAULT_SEARCH_LIMIT, |l| l.clamp(1, 100) as usize);
                    let (snapshot, starting) = self.settled(Awaited::Visible).await;
                    Ok(with_starting_field(
                        search_tools(&snapshot, &query, limit),
                        &starting,
                    ))
                }
                Err(text) => Err(text),
            },
            "call_tool" => {
                let provider = match string_arg(&arguments, "provider") {
                    Ok(p) => p,
                    Err(text) => return Message::result(id, tool_error(&text)),
                };
                let tool = match string_arg(&arguments, "tool") {
                    Ok(t) => t,
                    Err(text) => return Message::result(id, tool_error(&text)),
                };
                let (tool_known, upstream) = match find_tool(&snapshot, &provider, &tool) {
                    Ok((known, renamed)) => (known, renamed.map(str::to_owned)),
                    Err(error) => {
                        if error.code == crate::access::UNAUTHORIZED {
                            crate::observe::note_refused(crate::observe::Refusal::Scope);
                        }
                        return Message::result(id, tool_error(&error.message));
                    }
                };
                let tool = upstream.unwrap_or(tool);
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
                return self
                    .call_tool(id, &provider, session, params, &tool, tool_known)
                    .await;
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
                let (tool_known, upstream) = match find_tool(&snapshot, &provider, &name) {
                    Ok((known, renamed)) => (known, renamed.map(str::to_owned)),
                    Err(error) => return Message::error(id, &error),
                };
                let tool = upstream.as_deref().unwrap_or(&name);
                params.insert("arguments".into(), Value::Object(arguments));
                return self
                    .call_tool(id, &provider, session, params, tool, tool_known)
                    .await;
            }
        };
        match outcome {
            Ok(value) => {
                let starting: Vec<String> = value
                    .get(STARTING_FIELD)
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                    .unwrap_or_default();
                Message::result(id, with_starting(tool_result(value), &starting))
            }
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

    /// The current snapshot, after waiting (up to [`startup_grace`] in all) while what the
    /// request concerns is still starting ([`Provider::is_starting`]), or no snapshot has
    /// arrived yet: early callers get the lists and answers of a started router rather than
    /// empty lists and spurious errors. Returns the names of the providers still starting
    /// when the wait ends. Woken by each new snapshot, never by a timer; when nothing is
    /// starting it costs one load.
    async fn settled(&self, awaited: Awaited<'_>) -> (Arc<Snapshot>, Vec<String>) {
        let snapshot = self.snapshot.load_full();
        if !awaited.may_wait_on(&snapshot) {
            return (snapshot, Vec::new());
        }
        let deadline = tokio::time::Instant::now() + startup_grace();
        // Subscribed before the snapshot is read again, so no swap goes unseen.
        let mut swapped = self.snapshot_swapped.subscribe();
        loop {
            let snapshot = self.snapshot.load_full();
            let starting = awaited.starting(&snapshot);
            let settled = snapshot.version > 0 && starting.is_empty();
            if settled {
                return (snapshot, starting);
            }
            match tokio::time::timeout_at(deadline, swapped.changed()).await {
                Ok(Ok(())) => continue,
                // Waited long enough (or the gateway is going away).
                _ => return (snapshot, starting),
            }
        }
    }
}

/// What a request waits for while it is starting.
#[derive(Clone, Copy)]
enum Awaited<'a> {
    /// One provider (a call, or a view of that provider alone).
    One(&'a str),
    /// Every provider the caller may see (the lists of the views of every provider).
    Visible,
}

impl Awaited<'_> {
    /// A quick test without allocating: false when nothing awaited can be starting.
    fn may_wait_on(self, snapshot: &Snapshot) -> bool {
        if snapshot.version == 0 {
            return true;
        }
        match self {
            Awaited::One(name) => snapshot
                .providers
                .get(name)
                .is_some_and(|p| p.is_starting()),
            Awaited::Visible => snapshot.any_starting,
        }
    }

    fn starting(self, snapshot: &Snapshot) -> Vec<String> {
        match self {
            Awaited::One(name) => snapshot
                .providers
                .get(name)
                .filter(|p| p.is_starting())
                .map(|p| vec![p.name.clone()])
                .unwrap_or_default(),
            Awaited::Visible if !snapshot.any_starting => Vec::new(),
            Awaited::Visible => visible::visible_providers(snapshot)
                .into_iter()
                .filter(|p| p.is_starting())
                .map(|p| p.name.clone())
                .collect(),
        }
    }
}

/// How long a call or a list waits for a provider that is still being placed or starting
/// (`MCPR_STARTUP_GRACE_SECS`).
fn startup_grace() -> std::time::Duration {
    mcpr_core::settings::Limits::current().startup_grace
}

/// Where a list result names the providers still starting: `_meta` of the result.
pub const META_STARTING_PROVIDERS: &str = "mcpr/startingProviders";

/// `result` with `_meta["mcpr/startingProviders"]` when some providers are still starting.
fn with_starting(result: Box<RawValue>, starting: &[String]) -> Box<RawValue> {
    if starting.is_empty() {
        return result;
    }
    let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(result.get()) else {
        return result;
    };
    let meta = object.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert(META_STARTING_PROVIDERS.into(), json!(starting));
    }
    raw(Value::Object(object))
}

/// Where a meta-tool's structured output names the providers still starting.
const STARTING_FIELD: &str = "starting_providers";

/// A meta-tool's structured output with `starting_providers` (and a word for the model)
/// when some providers are still starting.
fn with_starting_field(mut value: Value, starting: &[String]) -> Value {
    if !starting.is_empty() {
        value[STARTING_FIELD] = json!(starting);
        value["note"] = json!(format!(
            "still starting after {} s: {}; their tools appear when they are ready",
            startup_grace().as_secs(),
            starting.join(", ")
        ));
    }
    value
}

/// The provider named `name` and the relay URL of the agent that runs it.
fn route<'a>(snapshot: &'a Snapshot, name: &str) -> Result<(&'a Arc<Provider>, String), RpcError> {
    let provider = find_provider(snapshot, name)?;
    if provider.agent_id.is_empty() {
        let message = match provider.last_error.as_str() {
            // The control plane's reason, e.g. "no agent matches zone=a".
            "" => format!(
                "provider {name:?} is not placed on any node agent yet (is an agent connected?)"
            ),
            why => format!("provider {name:?} is not placed on any node agent: {why}"),
        };
        return Err(RpcError::new(code::UPSTREAM_UNAVAILABLE, message));
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
            let known: Vec<&str> = visible::visible_providers(snapshot)
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

/// Checks that `provider` offers `tool` to the caller: whether it lists it (a known tool),
/// and the upstream's name when the admin renamed it. A provider that is not running has no
/// tool list yet: the call goes through and the agent answers why it cannot run it.
fn find_tool<'a>(
    snapshot: &'a Snapshot,
    provider: &str,
    tool: &str,
) -> Result<(bool, Option<&'a str>), RpcError> {
    let found = check_tool(snapshot, provider, tool);
    if found.is_err() {
        // A call that goes on names its tool itself (`call_tool`).
        crate::observe::note_target(tool.to_owned(), false);
    }
    found
}

/// Whether `provider` offers `tool` (by the name clients see) to the caller, and the
/// upstream's name when the admin renamed it. A disabled tool is refused, saying so.
fn check_tool<'a>(
    snapshot: &'a Snapshot,
    provider: &str,
    tool: &str,
) -> Result<(bool, Option<&'a str>), RpcError> {
    let found = snapshot.providers.get(provider);
    if let Some(p) = found {
        // Named in the record even when refused below.
        crate::observe::note_provider(p);
    }
    let offered = found.and_then(|p| p.tools.iter().find(|t| t.name == tool));
    // Scopes name the upstream's tool names.
    let upstream = offered.map_or(tool, |t| t.upstream_name.as_str());
    crate::access::authorize_tool(provider, upstream)?;
    let p = find_provider(snapshot, provider)?;
    if let Some(t) = offered {
        return Ok((
            true,
            (t.upstream_name != t.name).then_some(t.upstream_name.as_str()),
        ));
    }
    if let Some(refusal) = p.tool_refusal(tool) {
        return Err(RpcError::invalid_params(refusal));
    }
    if p.state != ServerState::Running && p.tools.is_empty() {
        return Ok((false, None));
    }
    Err(RpcError::invalid_params(format!(
        "provider {provider:?} has no tool {tool:?} (see list_tools)"
    )))
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

/// The upstream's capabilities as a transparent view offers them: the gateway announces
/// changes of the lists the upstream offers (`list_changes.rs`) whether or not the upstream
/// does.
pub(crate) fn transparent_capabilities(info: &Map<String, Value>) -> Value {
    let mut capabilities = info
        .get("capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    for list in ["tools", "resources", "prompts"] {
        if let Some(Value::Object(offered)) = capabilities.get_mut(list) {
            offered.insert("listChanged".into(), Value::Bool(true));
        }
    }
    capabilities
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
    let providers: Vec<Value> = visible::visible_providers(snapshot)
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
    crate::access::authorize_provider(provider).map_err(|e| e.message)?;
    let p = find_provider(snapshot, provider).map_err(|e| e.message)?;
    let access = crate::access::caller();
    let tools: Vec<Value> = p
        .tools
        .iter()
        .filter(|t| access.allows_tool(&p.name, &t.upstream_name))
        .filter_map(|t| serde_json::from_str(t.raw.get()).ok())
        .collect();
    Ok(json!({"provider": p.name, "state": p.state, "tools": tools}))
}

fn search_tools(snapshot: &Snapshot, query: &str, limit: usize) -> Value {
    let access = crate::access::caller();
    let scan = if access.is_all() { limit } else { usize::MAX };
    let results: Vec<Value> = snapshot
        .search
        .search(query, scan)
        .into_iter()
        .filter(|hit| {
            let tool = &hit.provider.tools[hit.tool_index];
            access.allows_tool(&hit.provider.name, &tool.upstream_name)
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

fn meta_tools(with_sandbox: bool) -> Value {
    let mut tools = json!([
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
        }
    ]);
    if with_sandbox && let Value::Array(list) = &mut tools {
        list.push(crate::views::sandbox::tool());
    }
    tools
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
        for tool in meta_tools(true).as_array().unwrap() {
            assert_eq!(tool["inputSchema"]["type"], "object", "{}", tool["name"]);
        }
    }
}
