//! `mcpr-conformance-server`: an MCP server built with rmcp that exposes the test
//! tools, resources and prompts the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, server scenarios) expects, so the suite
//! can run against it directly and through MCP Router's transparent view.
//!
//! It speaks MCP over stdio (the default: protocol on stdout, logs on stderr) or
//! over rmcp's streamable HTTP transport (`--http ADDR`, served at `/mcp`). In
//! HTTP mode it prints exactly one line `listening on http://IP:PORT/mcp` to
//! stdout once bound, so tests can bind port 0.
//!
//! Both protocol eras are served by the same handlers: legacy sessions
//! (2025-03-26 … 2025-11-25: `initialize`, `Mcp-Session-Id`, server-to-client
//! requests for sampling and elicitation) and the stateless 2026-07-28
//! protocol (`server/discover`, per-request `_meta`, `InputRequiredResult`,
//! `subscriptions/listen`). What the suite asks for, by scenario:
//!
//! | scenario(s)                       | what this server provides                                   |
//! |-----------------------------------|-------------------------------------------------------------|
//! | `tools-call-*`                    | `test_simple_text`, `test_image_content`, `test_audio_content`, `test_embedded_resource`, `test_multiple_content_types`, `test_error_handling`, `test_tool_with_logging`, `test_tool_with_progress`, `test_sampling`, `test_elicitation` |
//! | `elicitation-sep1034/1330-*`      | `test_elicitation_sep1034_defaults`, `test_elicitation_sep1330_enums` |
//! | `json-schema-2020-12`             | `json_schema_2020_12_tool` (its schema published verbatim)  |
//! | `server-sse-polling`              | `test_reconnection` (its POST stream is closed after the priming event; the answer is replayed on a GET with `Last-Event-ID`) |
//! | `resources-*`, `sep-2164-*`       | `test://static-text`, `test://static-binary`, template `test://template/{id}/data`, subscribe/unsubscribe, `-32602` + `data.uri` for unknown URIs |
//! | `prompts-*`, `completion-complete`| `test_simple_prompt`, `test_prompt_with_arguments`, `test_prompt_with_embedded_resource`, `test_prompt_with_image`, completion of their arguments |
//! | `logging-set-level`, `ping`       | `logging/setLevel` (legacy only), `ping`                   |
//! | `http-custom-header-server-validation` | `test_custom_headers` (`region` mirrored in `Mcp-Param-Region`, SEP-2243) |
//! | `server-stateless`                | `test_missing_capability`, `test_streaming_elicitation`, `test_logging_tool`, `test_trigger_tool_change`, `test_trigger_prompt_change`, `subscriptions/listen` |
//! | (for gateway tests)               | `test_trigger_resource_change`, `test_trigger_resource_update` (to subscribers: `resources/subscribe` in a legacy session, `subscriptions/listen` in 2026-07-28) |
//! | `input-required-result-*`         | `test_input_required_result_*` tools and the `test_input_required_result_prompt` prompt (HMAC-sealed `requestState`) |
//! | `dns-rebinding-protection`        | Host validation (loopback names only) on the HTTP transport |
//!
//! `--modern-only` makes it a server of the modern era alone (no `initialize`), the kind of
//! upstream the router finds with `server/discover`.

// Sampling, elicitation requests, roots and logging are deprecated for 2026-07-28
// (SEP-2577) but alive before it, and exercising them is this server's purpose.
#![allow(deprecated)]

use std::{
    collections::HashSet,
    io::Write,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use clap::Parser;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities,
        CompleteRequestParams, CompleteResult, ContentBlock, GetPromptRequestParams,
        GetPromptResponse, GetPromptResult, InputRequests, InputRequiredResult, InputResponses,
        JsonObject, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        ListToolsResult, LoggingLevel, PaginatedRequestParams, ProtocolVersion,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, RequestStateCodec,
        ServerConfig, SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool,
        UnsubscribeRequestParams,
    },
    service::{RequestContext, SubscriptionContext, SubscriptionSink},
    transport::{
        stdio,
        streamable_http_server::{
            StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
        },
    },
};
use serde_json::{Value, json};

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV file with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=";

/// The server name reported in `serverInfo` and in `server/discover`.
const NAME: &str = "mcpr-conformance-server";

/// An MCP server with the official conformance suite's test tools, resources and prompts.
#[derive(Debug, Parser)]
#[command(name = "mcpr-conformance-server", version)]
struct Cli {
    /// Serve streamable HTTP at `/mcp` on this address (e.g. `127.0.0.1:0`)
    /// instead of stdio. Prints `listening on http://IP:PORT/mcp` to stdout.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,

    /// HTTP only: also accept these `Host` names (besides localhost, 127.0.0.1
    /// and ::1), e.g. when a gateway dials the server by another name.
    #[arg(long, value_name = "HOST", requires = "http")]
    allow_host: Vec<String>,

    /// HTTP only: answer `test_reconnection` on its POST stream like any other tool,
    /// instead of closing that stream after the priming event (then the suite's
    /// `server-sse-polling` reports the resumption check as INFO, not SUCCESS).
    #[arg(long, requires = "http")]
    no_stream_close: bool,

    /// Speak only the modern era (2026-07-28): refuse `initialize`, as a server written
    /// for 2026-07-28 alone does (clients find it with `server/discover`).
    #[arg(long)]
    modern_only: bool,
}

/// State shared by every session and every stateless request of one process.
struct Shared {
    /// Open `subscriptions/listen` streams (2026-07-28), for list-changed notifications.
    listeners: Mutex<Vec<SubscriptionSink>>,
    /// Seals `requestState` so that a tampered state is refused.
    codec: RequestStateCodec,
    /// `--modern-only`: 2026-07-28 is the one protocol version supported.
    modern_only: bool,
}

/// The protocol versions of a `--modern-only` server.
static MODERN_ONLY: [ProtocolVersion; 1] = [ProtocolVersion::V_2026_07_28];

/// The MCP service. HTTP mode builds one per session (legacy) or per request (stateless).
#[derive(Clone)]
struct Conformance {
    shared: Arc<Shared>,
    /// `logging/setLevel` of this session; `None` sends every level.
    log_level: Arc<Mutex<Option<LoggingLevel>>>,
    /// URIs this session subscribed to with `resources/subscribe`.
    subscriptions: Arc<Mutex<HashSet<String>>>,
}

impl Conformance {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            log_level: Arc::default(),
            subscriptions: Arc::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Builds an rmcp type from its JSON form (most of its structs are non-exhaustive).
fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value).map_err(|e| McpError::internal_error(e.to_string(), None))
}

/// Builds a complete result from its JSON form. rmcp strips `resultType` for peers
/// older than 2026-07-28, which require its absence; 2026-07-28 requires it.
fn complete<T: serde::de::DeserializeOwned>(mut value: Value) -> Result<T, McpError> {
    if let Value::Object(map) = &mut value {
        map.insert("resultType".into(), json!("complete"));
    }
    from_json(value)
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => unreachable!("schema literal is not an object: {other}"),
    }
}

fn no_args() -> JsonObject {
    object(json!({"type": "object", "properties": {}}))
}

fn text(s: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(s)]).into()
}

fn tool_error(s: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(s)]).into()
}

/// Whether this request runs under the stateless 2026-07-28 protocol (or later).
fn is_modern(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

fn client_capabilities(ctx: &RequestContext<RoleServer>) -> Value {
    ctx.client_capabilities()
        .and_then(|c: ClientCapabilities| serde_json::to_value(c).ok())
        .unwrap_or_else(|| json!({}))
}

fn missing_capability(name: &str) -> McpError {
    let required: ClientCapabilities =
        serde_json::from_value(json!({ name: {} })).unwrap_or_default();
    McpError::missing_required_client_capability(required)
}

fn level_rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

fn tools() -> Vec<Tool> {
    let tool = |name: &'static str, description: &'static str, schema: JsonObject| {
        Tool::new(name, description, Arc::new(schema))
    };
    vec![
        tool("test_simple_text", "Returns simple text content", no_args()),
        tool(
            "test_image_content",
            "Returns image content (a 1x1 PNG)",
            no_args(),
        ),
        tool(
            "test_audio_content",
            "Returns audio content (a WAV file)",
            no_args(),
        ),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            no_args(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, image and resource content together",
            no_args(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three info log notifications while it runs",
            no_args(),
        ),
        tool(
            "test_error_handling",
            "Always returns a tool error (isError: true)",
            no_args(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100 when given a progress token",
            no_args(),
        ),
        tool(
            "test_sampling",
            "Asks the client's model (sampling/createMessage) and returns its answer",
            object(json!({
                "type": "object",
                "properties": {"prompt": {"type": "string", "description": "The prompt to send to the model"}},
                "required": ["prompt"]
            })),
        ),
        tool(
            "test_elicitation",
            "Asks the user (elicitation/create) for a username and an email",
            object(json!({
                "type": "object",
                "properties": {"message": {"type": "string", "description": "The message to show the user"}},
                "required": ["message"]
            })),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation whose schema has a default for every primitive type (SEP-1034)",
            no_args(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with every enum schema variant (SEP-1330)",
            no_args(),
        ),
        tool(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            object(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {
                    "address": {
                        "$anchor": "addressDef",
                        "type": "object",
                        "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
                    }
                },
                "properties": {
                    "name": {"type": "string"},
                    "address": {"$ref": "#/$defs/address"},
                    "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                    "phone": {"type": "string"},
                    "email": {"type": "string"}
                },
                "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                "then": {"required": ["phone"]},
                "else": {"required": ["email"]},
                "additionalProperties": false
            })),
        ),
        tool(
            "test_reconnection",
            "Closes its SSE stream before answering, so the client resumes with Last-Event-ID (SEP-1699)",
            no_args(),
        ),
        // 2026-07-28 (server-stateless).
        tool(
            "test_missing_capability",
            "Needs the client's sampling capability; refuses with -32021 without it",
            no_args(),
        ),
        tool(
            "test_streaming_elicitation",
            "Needs input from the user: an InputRequiredResult (2026-07-28) or an elicitation request",
            no_args(),
        ),
        tool(
            "test_logging_tool",
            "Logs a message only when the request asks for a log level",
            no_args(),
        ),
        tool(
            "test_trigger_tool_change",
            "Sends notifications/tools/list_changed to every listener",
            no_args(),
        ),
        tool(
            "test_trigger_prompt_change",
            "Sends notifications/prompts/list_changed to every listener",
            no_args(),
        ),
        tool(
            "test_trigger_resource_change",
            "Sends notifications/resources/list_changed to every listener",
            no_args(),
        ),
        tool(
            "test_trigger_resource_update",
            "Sends notifications/resources/updated for `uri` to every subscriber of it",
            object(json!({
                "type": "object",
                "properties": {"uri": {"type": "string", "description": "Default test://watched-resource"}}
            })),
        ),
        // 2026-07-28 (http-custom-header-server-validation, SEP-2243): rmcp checks the
        // `Mcp-Param-Region` header against `region` before the call reaches us.
        tool(
            "test_custom_headers",
            "Echoes its arguments; `region` travels in the Mcp-Param-Region header too",
            object(json!({
                "type": "object",
                "properties": {
                    "region": {"type": "string", "description": "A region name", "x-mcp-header": "Region"},
                    "query": {"type": "string", "description": "Not mirrored in a header"}
                },
                "required": ["region"]
            })),
        ),
        // 2026-07-28 (input-required-result-*, SEP-2322).
        tool(
            "test_input_required_result_elicitation",
            "Asks for the user's name through an InputRequiredResult",
            no_args(),
        ),
        tool(
            "test_input_required_result_sampling",
            "Asks the client's model through an InputRequiredResult",
            no_args(),
        ),
        tool(
            "test_input_required_result_list_roots",
            "Asks for the client's roots through an InputRequiredResult",
            no_args(),
        ),
        tool(
            "test_input_required_result_request_state",
            "InputRequiredResult whose requestState must come back intact",
            no_args(),
        ),
        tool(
            "test_input_required_result_multiple_inputs",
            "InputRequiredResult with elicitation, sampling and roots requests at once",
            no_args(),
        ),
        tool(
            "test_input_required_result_multi_round",
            "Two rounds of InputRequiredResult before the answer",
            no_args(),
        ),
        tool(
            "test_input_required_result_tampered_state",
            "InputRequiredResult with a sealed requestState; a tampered one is refused",
            no_args(),
        ),
        tool(
            "test_input_required_result_capabilities",
            "Only asks for the inputs the client declared capabilities for",
            no_args(),
        ),
    ]
}

fn elicit_request(message: &str, field: &str, kind: &str) -> Value {
    json!({
        "method": "elicitation/create",
        "params": {
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {field: {"type": kind}},
                "required": [field]
            }
        }
    })
}

fn sampling_request(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": max_tokens
        }
    })
}

fn roots_request() -> Value {
    json!({"method": "roots/list", "params": {}})
}

fn input_required(requests: Value, state: Option<String>) -> Result<InputRequiredResult, McpError> {
    let requests: InputRequests = from_json(requests)?;
    Ok(InputRequiredResult::new(Some(requests), state))
}

/// The answer of an elicitation among `responses`, when it is a well-formed accepted one.
fn accepted_content<'a>(responses: &'a InputResponses, key: &str) -> Option<&'a JsonObject> {
    let answer = responses.get(key)?.as_object()?;
    if answer.get("action")?.as_str()? != "accept" {
        return None;
    }
    answer.get("content")?.as_object()
}

/// Rejects input responses that are not objects (the suite sends numbers and nulls).
fn check_responses(responses: Option<&InputResponses>) -> Result<(), McpError> {
    if let Some(responses) = responses
        && let Some((key, _)) = responses.iter().find(|(_, v)| !v.is_object())
    {
        return Err(McpError::invalid_params(
            format!("inputResponses.{key} must be an object"),
            None,
        ));
    }
    Ok(())
}

fn sampling_text(response: &Value) -> String {
    let content = &response["content"];
    let first = if content.is_array() {
        &content[0]
    } else {
        content
    };
    first["text"].as_str().unwrap_or_default().to_owned()
}

impl Conformance {
    fn seal(&self, value: &Value) -> Result<String, McpError> {
        self.shared
            .codec
            .seal_json(value)
            .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    fn open(&self, state: Option<&String>) -> Result<Value, McpError> {
        let state =
            state.ok_or_else(|| McpError::invalid_params("requestState is missing", None))?;
        self.shared.codec.open_json(state).map_err(|e| {
            McpError::invalid_params(
                format!("requestState failed its integrity check: {e}"),
                None,
            )
        })
    }

    /// Sends a log notification unless the session's or the request's level filters it out.
    async fn log(&self, ctx: &RequestContext<RoleServer>, level: LoggingLevel, message: &str) {
        let threshold = if is_modern(ctx) {
            match ctx.meta.log_level() {
                Some(level) => level,
                None => return, // 2026-07-28: no log without _meta logLevel
            }
        } else {
            lock(&self.log_level).unwrap_or(LoggingLevel::Debug)
        };
        if level_rank(level) < level_rank(threshold) {
            return;
        }
        if let Ok(param) = from_json(json!({"level": level, "logger": NAME, "data": message})) {
            let _ = ctx.peer.notify_logging_message(param).await;
        }
    }

    /// The open `subscriptions/listen` streams (`listen` removes each one when it ends).
    fn listeners(&self) -> Vec<SubscriptionSink> {
        lock(&self.shared.listeners).clone()
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        let responses = request.input_responses.as_ref();
        let state = request.request_state.as_ref();
        let peer = &ctx.peer;
        match request.name.as_ref() {
            "test_simple_text" => Ok(text("This is a simple text response for testing.")),
            "test_image_content" => {
                Ok(CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")]).into())
            }
            "test_audio_content" => Ok(CallToolResult::success(vec![from_json(
                json!({"type": "audio", "data": WAV, "mimeType": "audio/wav"}),
            )?])
            .into()),
            "test_embedded_resource" => Ok(CallToolResult::success(vec![from_json(json!({
                "type": "resource",
                "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content."
                }
            }))?])
            .into()),
            "test_multiple_content_types" => Ok(CallToolResult::success(vec![
                ContentBlock::text("Multiple content types test:"),
                ContentBlock::image(PNG, "image/png"),
                from_json(json!({
                    "type": "resource",
                    "resource": {
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": "{\"test\":\"data\",\"value\":123}"
                    }
                }))?,
            ])
            .into()),
            "test_tool_with_logging" => {
                for (i, message) in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ]
                .into_iter()
                .enumerate()
                {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    self.log(ctx, LoggingLevel::Info, message).await;
                }
                Ok(text("Logging test completed"))
            }
            "test_error_handling" => Ok(tool_error(
                "This tool intentionally returns an error for testing",
            )),
            "test_tool_with_progress" => {
                let token = ctx.meta.get_progress_token();
                for (i, progress) in [0, 50, 100].into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if let Some(token) = &token {
                        let param = from_json(json!({
                            "progressToken": token,
                            "progress": progress,
                            "total": 100,
                            "message": format!("{progress}% done")
                        }))?;
                        let _ = peer.notify_progress(param).await;
                    }
                }
                Ok(text("Progress test completed"))
            }
            "test_sampling" => {
                let prompt = args
                    .get("prompt")
                    .and_then(Value::as_str)
                    .unwrap_or("Hello")
                    .to_owned();
                if is_modern(ctx) {
                    return self.sampling_round(ctx, responses, &prompt);
                }
                if client_capabilities(ctx).get("sampling").is_none() {
                    return Err(missing_capability("sampling"));
                }
                let params = from_json(sampling_request(&prompt, 100)["params"].clone())?;
                match peer.create_message(params).await {
                    Ok(reply) => {
                        let reply = serde_json::to_value(&reply).unwrap_or_default();
                        Ok(text(format!("LLM response: {}", sampling_text(&reply))))
                    }
                    Err(e) => Err(McpError::internal_error(
                        format!("sampling failed: {e}"),
                        None,
                    )),
                }
            }
            "test_elicitation" => {
                let message = args
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("Please provide your information")
                    .to_owned();
                let params = json!({
                    "message": message,
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "username": {"type": "string", "description": "User's response"},
                            "email": {"type": "string", "description": "User's email address"}
                        },
                        "required": ["username", "email"]
                    }
                });
                self.elicit(ctx, responses, params, "User response").await
            }
            "test_elicitation_sep1034_defaults" => {
                let params = json!({
                    "message": "Please review the defaults",
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "description": "User name", "default": "John Doe"},
                            "age": {"type": "integer", "description": "User age", "default": 30},
                            "score": {"type": "number", "description": "User score", "default": 95.5},
                            "status": {
                                "type": "string",
                                "description": "User status",
                                "enum": ["active", "inactive", "pending"],
                                "default": "active"
                            },
                            "verified": {"type": "boolean", "description": "Verified user", "default": true}
                        }
                    }
                });
                self.elicit(ctx, responses, params, "Elicitation completed")
                    .await
            }
            "test_elicitation_sep1330_enums" => {
                let params = json!({
                    "message": "Please choose options",
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                            "titledSingle": {
                                "type": "string",
                                "oneOf": [
                                    {"const": "value1", "title": "First Option"},
                                    {"const": "value2", "title": "Second Option"},
                                    {"const": "value3", "title": "Third Option"}
                                ]
                            },
                            "legacyEnum": {
                                "type": "string",
                                "enum": ["opt1", "opt2", "opt3"],
                                "enumNames": ["Option One", "Option Two", "Option Three"]
                            },
                            "untitledMulti": {
                                "type": "array",
                                "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
                            },
                            "titledMulti": {
                                "type": "array",
                                "items": {
                                    "anyOf": [
                                        {"const": "value1", "title": "First Choice"},
                                        {"const": "value2", "title": "Second Choice"},
                                        {"const": "value3", "title": "Third Choice"}
                                    ]
                                }
                            }
                        }
                    }
                });
                self.elicit(ctx, responses, params, "Elicitation completed")
                    .await
            }
            "json_schema_2020_12_tool" => {
                let name = args.get("name").and_then(Value::as_str).unwrap_or("world");
                Ok(text(format!("Hello, {name}!")))
            }
            "test_reconnection" => {
                // The HTTP layer (`close_reconnection_streams`) ends the POST stream after
                // its priming event; answer a little later, so the answer is only
                // reachable by resuming with Last-Event-ID.
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(text("Reconnection test completed"))
            }
            "test_custom_headers" => Ok(text(format!(
                "region={}, query={}",
                args.get("region").and_then(Value::as_str).unwrap_or(""),
                args.get("query").and_then(Value::as_str).unwrap_or("")
            ))),
            "test_missing_capability" => {
                if client_capabilities(ctx).get("sampling").is_none() {
                    return Err(missing_capability("sampling"));
                }
                if is_modern(ctx) {
                    return self.sampling_round(ctx, responses, "Say hello");
                }
                Ok(text("the client declared sampling"))
            }
            "test_streaming_elicitation" => {
                let params =
                    elicit_request("What is your name?", "name", "string")["params"].clone();
                self.elicit(ctx, responses, params, "User response").await
            }
            "test_logging_tool" => {
                self.log(ctx, LoggingLevel::Info, "test_logging_tool ran")
                    .await;
                Ok(text("Logging tool completed"))
            }
            "test_trigger_tool_change" => {
                for sink in self.listeners() {
                    let _ = sink.notify_tool_list_changed().await;
                }
                if !is_modern(ctx) {
                    let _ = peer.notify_tool_list_changed().await;
                }
                Ok(text("tools/list_changed sent"))
            }
            "test_trigger_prompt_change" => {
                for sink in self.listeners() {
                    let _ = sink.notify_prompt_list_changed().await;
                }
                if !is_modern(ctx) {
                    let _ = peer.notify_prompt_list_changed().await;
                }
                Ok(text("prompts/list_changed sent"))
            }
            "test_trigger_resource_change" => {
                for sink in self.listeners() {
                    let _ = sink.notify_resource_list_changed().await;
                }
                if !is_modern(ctx) {
                    let _ = peer.notify_resource_list_changed().await;
                }
                Ok(text("resources/list_changed sent"))
            }
            "test_trigger_resource_update" => {
                let uri = args
                    .get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or("test://watched-resource")
                    .to_owned();
                let mut sent = 0;
                for sink in self.listeners() {
                    // Only the listeners that asked for this URI accept it.
                    if sink.notify_resource_updated(uri.clone()).await.is_ok() {
                        sent += 1;
                    }
                }
                if !is_modern(ctx) && lock(&self.subscriptions).contains(&uri) {
                    let param = from_json(json!({"uri": uri}))?;
                    if peer.notify_resource_updated(param).await.is_ok() {
                        sent += 1;
                    }
                }
                Ok(text(format!(
                    "resources/updated sent to {sent} subscriber(s)"
                )))
            }
            "test_input_required_result_elicitation" => {
                check_responses(responses)?;
                match responses.and_then(|r| accepted_content(r, "user_name")) {
                    Some(content) => {
                        let name = content.get("name").and_then(Value::as_str).unwrap_or("stranger");
                        Ok(text(format!("Hello, {name}!")))
                    }
                    None => Ok(input_required(
                        json!({"user_name": elicit_request("What is your name?", "name", "string")}),
                        None,
                    )?
                    .into()),
                }
            }
            "test_input_required_result_sampling" => {
                self.sampling_round(ctx, responses, "What is the capital of France?")
            }
            "test_input_required_result_list_roots" => {
                check_responses(responses)?;
                match responses.and_then(|r| r.get("client_roots")) {
                    Some(roots) => {
                        let uris: Vec<&str> = roots["roots"]
                            .as_array()
                            .map(|a| a.iter().filter_map(|r| r["uri"].as_str()).collect())
                            .unwrap_or_default();
                        Ok(text(format!("Client roots: {}", uris.join(", "))))
                    }
                    None => {
                        Ok(input_required(json!({"client_roots": roots_request()}), None)?.into())
                    }
                }
            }
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => {
                check_responses(responses)?;
                match responses.and_then(|r| r.get("confirm")) {
                    Some(_) => {
                        let opened = self.open(state)?;
                        if opened["tool"] != json!(request.name) {
                            return Err(McpError::invalid_params(
                                "requestState belongs to another request",
                                None,
                            ));
                        }
                        Ok(text("state-ok: the requestState came back intact"))
                    }
                    None => {
                        let sealed = self.seal(&json!({"tool": request.name, "round": 1}))?;
                        Ok(input_required(
                            json!({"confirm": elicit_request("Please confirm", "ok", "boolean")}),
                            Some(sealed),
                        )?
                        .into())
                    }
                }
            }
            "test_input_required_result_multiple_inputs" => {
                check_responses(responses)?;
                let keys = ["user_name", "greeting", "client_roots"];
                let complete = responses.is_some_and(|r| keys.iter().all(|k| r.contains_key(*k)));
                if complete {
                    self.open(state)?;
                    let responses = responses.expect("checked above");
                    let name = accepted_content(responses, "user_name")
                        .and_then(|c| c.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("stranger");
                    let greeting = sampling_text(&responses["greeting"]);
                    let roots = responses["client_roots"]["roots"]
                        .as_array()
                        .map_or(0, Vec::len);
                    return Ok(text(format!(
                        "name={name}; greeting={greeting}; roots={roots}"
                    )));
                }
                let sealed = self.seal(&json!({"tool": request.name}))?;
                Ok(input_required(
                    json!({
                        "user_name": elicit_request("What is your name?", "name", "string"),
                        "greeting": sampling_request("Generate a greeting", 50),
                        "client_roots": roots_request()
                    }),
                    Some(sealed),
                )?
                .into())
            }
            "test_input_required_result_multi_round" => {
                check_responses(responses)?;
                let round = match state {
                    Some(_) => self.open(state)?["round"].as_u64().unwrap_or(1),
                    None => 0,
                };
                match (round, responses) {
                    (1, Some(r)) if r.contains_key("step1") => {
                        let name = accepted_content(r, "step1")
                            .and_then(|c| c.get("name"))
                            .and_then(Value::as_str)
                            .unwrap_or("stranger")
                            .to_owned();
                        let sealed = self.seal(&json!({"round": 2, "name": name}))?;
                        Ok(input_required(
                            json!({"step2": elicit_request("Step 2: What is your favorite color?", "color", "string")}),
                            Some(sealed),
                        )?
                        .into())
                    }
                    (2, Some(r)) if r.contains_key("step2") => {
                        let name = self.open(state)?["name"]
                            .as_str()
                            .unwrap_or("stranger")
                            .to_owned();
                        let color = accepted_content(r, "step2")
                            .and_then(|c| c.get("color"))
                            .and_then(Value::as_str)
                            .unwrap_or("unknown");
                        Ok(text(format!("{name} likes {color}")))
                    }
                    _ => {
                        let sealed = self.seal(&json!({"round": 1}))?;
                        Ok(input_required(
                            json!({"step1": elicit_request("Step 1: What is your name?", "name", "string")}),
                            Some(sealed),
                        )?
                        .into())
                    }
                }
            }
            "test_input_required_result_capabilities" => {
                check_responses(responses)?;
                if let Some(r) = responses
                    && !r.is_empty()
                {
                    return Ok(text(format!("received {} input responses", r.len())));
                }
                let caps = client_capabilities(ctx);
                let mut requests = serde_json::Map::new();
                if caps.get("elicitation").is_some() {
                    requests.insert(
                        "user_name".into(),
                        elicit_request("What is your name?", "name", "string"),
                    );
                }
                if caps.get("sampling").is_some() {
                    requests.insert(
                        "greeting".into(),
                        sampling_request("Generate a greeting", 50),
                    );
                }
                if caps.get("roots").is_some() {
                    requests.insert("client_roots".into(), roots_request());
                }
                if requests.is_empty() {
                    return Ok(text("the client declared no capability to ask through"));
                }
                Ok(input_required(Value::Object(requests), None)?.into())
            }
            other => Err(McpError::invalid_params(
                format!("unknown tool: {other}"),
                None,
            )),
        }
    }

    /// 2026-07-28 sampling: an `InputRequiredResult` first, the answer once it is given.
    fn sampling_round(
        &self,
        ctx: &RequestContext<RoleServer>,
        responses: Option<&InputResponses>,
        prompt: &str,
    ) -> Result<CallToolResponse, McpError> {
        check_responses(responses)?;
        if client_capabilities(ctx).get("sampling").is_none() {
            return Err(missing_capability("sampling"));
        }
        match responses.and_then(|r| r.get("capital_question").or_else(|| r.get("sampling"))) {
            Some(reply) => Ok(text(format!("LLM response: {}", sampling_text(reply)))),
            None => {
                let key = if prompt.contains("capital") {
                    "capital_question"
                } else {
                    "sampling"
                };
                Ok(input_required(json!({ key: sampling_request(prompt, 100) }), None)?.into())
            }
        }
    }

    /// Elicitation in either era: a server-to-client request (legacy) or an
    /// `InputRequiredResult` (2026-07-28).
    async fn elicit(
        &self,
        ctx: &RequestContext<RoleServer>,
        responses: Option<&InputResponses>,
        params: Value,
        label: &str,
    ) -> Result<CallToolResponse, McpError> {
        let describe = |answer: &Value| {
            format!(
                "{label}: action={}, content={}",
                answer["action"].as_str().unwrap_or("unknown"),
                answer.get("content").cloned().unwrap_or(Value::Null)
            )
        };
        if is_modern(ctx) {
            check_responses(responses)?;
            if client_capabilities(ctx).get("elicitation").is_none() {
                return Err(missing_capability("elicitation"));
            }
            return match responses.and_then(|r| r.get("elicitation")) {
                Some(answer) => Ok(text(describe(answer))),
                None => Ok(input_required(
                    json!({"elicitation": {"method": "elicitation/create", "params": params}}),
                    None,
                )?
                .into()),
            };
        }
        if client_capabilities(ctx).get("elicitation").is_none() {
            return Err(missing_capability("elicitation"));
        }
        let params = from_json(params)?;
        match ctx.peer.create_elicitation(params).await {
            Ok(answer) => Ok(text(describe(
                &serde_json::to_value(&answer).unwrap_or_default(),
            ))),
            Err(e) => Err(McpError::internal_error(
                format!("elicitation failed: {e}"),
                None,
            )),
        }
    }
}

fn resources() -> Value {
    json!([
        {
            "uri": "test://static-text",
            "name": "static-text",
            "title": "Static Text Resource",
            "description": "A static text resource for testing",
            "mimeType": "text/plain"
        },
        {
            "uri": "test://static-binary",
            "name": "static-binary",
            "title": "Static Binary Resource",
            "description": "A static binary resource (a PNG image) for testing",
            "mimeType": "image/png"
        },
        {
            "uri": "test://watched-resource",
            "name": "watched-resource",
            "title": "Watched Resource",
            "description": "A resource clients can subscribe to",
            "mimeType": "text/plain"
        }
    ])
}

fn prompts() -> Value {
    json!([
        {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
        {
            "name": "test_prompt_with_arguments",
            "description": "A prompt with arguments",
            "arguments": [
                {"name": "arg1", "description": "First test argument", "required": true},
                {"name": "arg2", "description": "Second test argument", "required": true}
            ]
        },
        {
            "name": "test_prompt_with_embedded_resource",
            "description": "A prompt with an embedded resource",
            "arguments": [
                {"name": "resourceUri", "description": "URI of the resource to embed", "required": true}
            ]
        },
        {"name": "test_prompt_with_image", "description": "A prompt with an image"},
        {
            "name": "test_input_required_result_prompt",
            "description": "A prompt that asks the user for context first (2026-07-28 InputRequiredResult)"
        }
    ])
}

impl ServerHandler for Conformance {
    fn get_info(&self) -> ServerConfig {
        // rmcp consults this on every request; build it once.
        static INFO: std::sync::OnceLock<ServerConfig> = std::sync::OnceLock::new();
        INFO.get_or_init(|| {
            serde_json::from_value(json!({
                "protocolVersion": ProtocolVersion::LATEST,
                "capabilities": {
                    "tools": {"listChanged": true},
                    "prompts": {"listChanged": true},
                    "resources": {"subscribe": true, "listChanged": true},
                    "logging": {},
                    "completions": {}
                },
                "serverInfo": {"name": NAME, "version": env!("CARGO_PKG_VERSION")},
                "instructions": "Conformance fixture for MCP Router: the official MCP conformance suite's test tools, resources and prompts."
            }))
            .expect("a valid server configuration")
        })
        .clone()
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.shared.modern_only {
            std::borrow::Cow::Borrowed(&MODERN_ONLY)
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.call(request, &ctx).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        complete(json!({"resources": resources()}))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        complete(json!({"resourceTemplates": [{
            "uriTemplate": "test://template/{id}/data",
            "name": "template-data",
            "title": "Template Resource",
            "description": "A resource template: {id} is substituted into the content",
            "mimeType": "application/json"
        }]}))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => json!({
                "uri": uri, "mimeType": "text/plain",
                "text": "This is the content of the static text resource."
            }),
            "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": PNG}),
            "test://watched-resource" => json!({
                "uri": uri, "mimeType": "text/plain", "text": "Watched resource content."
            }),
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
                .filter(|id| !id.is_empty() && !id.contains('/'))
            {
                Some(id) => json!({
                    "uri": uri, "mimeType": "application/json",
                    "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()
                }),
                None => {
                    return Err(McpError::resource_not_found(
                        format!("Resource not found: {uri}"),
                        Some(json!({"uri": uri})),
                    ));
                }
            },
        };
        let result: ReadResourceResult = complete(json!({"contents": [contents]}))?;
        Ok(result.into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        lock(&self.subscriptions).insert(request.uri.to_string());
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        lock(&self.subscriptions).remove(request.uri.as_str());
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let sink = context.sink().clone();
        let id = sink.id().clone();
        lock(&self.shared.listeners).push(sink);
        context.cancelled().await;
        lock(&self.shared.listeners).retain(|s| *s.id() != id);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        complete(json!({"prompts": prompts()}))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |name: &str| {
            args.get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let result = match request.name.as_str() {
            "test_simple_prompt" => json!({
                "description": "A simple prompt without arguments",
                "messages": [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]
            }),
            "test_prompt_with_arguments" => json!({
                "description": "A prompt with arguments",
                "messages": [{"role": "user", "content": {
                    "type": "text",
                    "text": format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2"))
                }}]
            }),
            "test_prompt_with_embedded_resource" => {
                let uri = match arg("resourceUri") {
                    uri if uri.is_empty() => "test://static-text".to_owned(),
                    uri => uri,
                };
                json!({
                    "description": "A prompt with an embedded resource",
                    "messages": [
                        {"role": "user", "content": {"type": "resource", "resource": {
                            "uri": uri, "mimeType": "text/plain", "text": "Embedded resource content for testing."
                        }}},
                        {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}}
                    ]
                })
            }
            "test_prompt_with_image" => json!({
                "description": "A prompt with an image",
                "messages": [
                    {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
                    {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}}
                ]
            }),
            "test_input_required_result_prompt" => {
                let responses = request.input_responses.as_ref();
                check_responses(responses)?;
                match responses.and_then(|r| accepted_content(r, "user_context")) {
                    Some(content) => json!({
                        "description": "A prompt built from the user's context",
                        "messages": [{"role": "user", "content": {
                            "type": "text",
                            "text": format!("Use this context: {}", content.get("context").and_then(Value::as_str).unwrap_or(""))
                        }}]
                    }),
                    None => {
                        return Ok(input_required(
                            json!({"user_context": elicit_request("What context should the prompt use?", "context", "string")}),
                            None,
                        )?
                        .into());
                    }
                }
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown prompt: {other}"),
                    None,
                ));
            }
        };
        let result: GetPromptResult = complete(result)?;
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let request = serde_json::to_value(&request).unwrap_or_default();
        let argument = request["argument"]["name"].as_str().unwrap_or_default();
        let prefix = request["argument"]["value"].as_str().unwrap_or_default();
        let candidates: &[&str] = match (request["ref"]["type"].as_str(), argument) {
            (Some("ref/prompt"), "arg1" | "arg2") => {
                &["test", "testing", "tested", "value1", "value2"]
            }
            (Some("ref/prompt"), "resourceUri") => &["test://static-text", "test://static-binary"],
            (Some("ref/resource"), "id") => &["1", "2", "3", "123"],
            _ => &[],
        };
        let values: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|c| c.starts_with(prefix))
            .collect();
        complete(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if is_modern(&ctx) {
            // Removed in 2026-07-28: the level travels in each request's _meta.
            return Err(McpError::method_not_found::<
                rmcp::model::SetLevelRequestMethod,
            >());
        }
        *lock(&self.log_level) = Some(request.level);
        Ok(())
    }
}

/// Ends the SSE answer of every `tools/call` of `test_reconnection` right after its
/// first event (the priming event, which carries an event id and a retry interval),
/// as a server that closes a stream mid-call would (SEP-1699). rmcp keeps the
/// session's event cache, so the client gets the answer by resuming with a GET
/// that carries `Last-Event-ID`.
async fn close_reconnection_streams(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Only sessions can resume a stream: stateless (2026-07-28) requests are left alone.
    if request.method() != http::Method::POST || !request.headers().contains_key("mcp-session-id") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // rmcp's own limit is 4 MiB; anything larger is refused by it anyway.
    let Ok(bytes) = axum::body::to_bytes(body, 8 * 1024 * 1024).await else {
        return http::Response::builder()
            .status(http::StatusCode::PAYLOAD_TOO_LARGE)
            .body(axum::body::Body::from(
                "request body unreadable or too large",
            ))
            .expect("a valid response");
    };
    let reconnection = serde_json::from_slice::<Value>(&bytes).is_ok_and(|message| {
        message["method"] == "tools/call" && message["params"]["name"] == "test_reconnection"
    });
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !reconnection || !is_sse {
        return response;
    }
    let (parts, body) = response.into_parts();
    let truncated = FirstEvent {
        inner: body.into_data_stream(),
        seen: Vec::new(),
        done: false,
    };
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(truncated))
}

/// A body stream that ends after the first complete SSE event.
struct FirstEvent<S> {
    inner: S,
    seen: Vec<u8>,
    done: bool,
}

impl<S> futures::Stream for FirstEvent<S>
where
    S: futures::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin,
{
    type Item = Result<bytes::Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen.extend_from_slice(&chunk);
                let text = String::from_utf8_lossy(&self.seen).replace("\r\n", "\n");
                if let Some(end) = text.find("\n\n") {
                    self.done = true;
                    let first = text[..end + 2].to_owned();
                    return Poll::Ready(Some(Ok(bytes::Bytes::from(first))));
                }
                // Hold partial events back until the first one is complete.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();

    // A fresh key per process: requestState only has to survive this process.
    let key: Vec<u8> = {
        let seed = format!(
            "{:?}{}{:?}",
            std::time::SystemTime::now(),
            std::process::id(),
            std::thread::current().id()
        );
        let mut key = seed.into_bytes();
        key.resize(32.max(key.len()), 0x5a);
        key
    };
    let shared = Arc::new(Shared {
        listeners: Mutex::new(Vec::new()),
        codec: RequestStateCodec::new(key),
        modern_only: cli.modern_only,
    });

    match cli.http {
        None => {
            eprintln!("conformance server ready (stdio)");
            let service = Conformance::new(shared).serve(stdio()).await?;
            service.waiting().await?;
        }
        Some(addr) => {
            let mut hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            hosts.extend(cli.allow_host);
            let config = StreamableHttpServerConfig::default()
                .with_allowed_hosts(hosts)
                .with_sse_retry(Some(Duration::from_millis(500)));
            let service: StreamableHttpService<Conformance, LocalSessionManager> =
                StreamableHttpService::new(
                    move || Ok(Conformance::new(shared.clone())),
                    Default::default(),
                    config,
                );
            let mut router = axum::Router::new().nest_service("/mcp", service);
            if !cli.no_stream_close {
                router = router.layer(axum::middleware::from_fn(close_reconnection_streams));
            }
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            let local = listener.local_addr()?;
            {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "listening on http://{local}/mcp")?;
                stdout.flush()?;
            }
            eprintln!("conformance server ready on http://{local}/mcp");
            tokio::select! {
                result = axum::serve(listener, router) => result?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
    Ok(())
}
