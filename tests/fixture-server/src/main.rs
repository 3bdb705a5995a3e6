//! `mcpr-fixture-server`: a small MCP server built with rmcp, used as the
//! upstream server in MCP Router's end-to-end tests and benchmarks.
//!
//! It speaks MCP over stdio (the default) or over rmcp's streamable HTTP
//! transport (`--http ADDR`, served at `/mcp`), and exposes a fixed set of
//! tools with predictable behaviour:
//!
//! | tool         | behaviour                                                        |
//! |--------------|------------------------------------------------------------------|
//! | `echo`       | returns `text` unchanged                                         |
//! | `add`        | returns the sum of `a` and `b` as text and as `{"sum": ..}`      |
//! | `whoami`     | returns the `--name` the server was started with                 |
//! | `get_env`    | returns an environment variable of the process (or "")           |
//! | `slow`       | sleeps `ms` milliseconds, then answers `slept MS`                |
//! | `log_stderr` | writes `line` to stderr, answers `logged`                        |
//! | `crash`      | exits the process at once with `code` (default 3), no answer     |
//! | `fail`       | returns a tool result with `isError: true` and `message`         |
//! | `gen_<i>`    | `--tools N` adds `gen_0..gen_{N-1}`, each answers its own name   |
//! | `meta`       | `--meta` adds it: answers the request's `_meta` as JSON text     |
//! | `picture`    | `--rich` adds it: an image, a resource link and an embedded resource |
//! | `arguments`  | `--rich` adds it: answers its arguments (every JSON Schema type of a form) as JSON text and as structured content |
//!
//! Protocol traffic goes to stdout (stdio mode) and everything else to
//! stderr. On start the server prints `fixture server NAME ready` to stderr;
//! in HTTP mode it first prints exactly one line
//! `listening on http://IP:PORT/mcp` to stdout, so tests can bind port 0.
//!
//! With `--bad-bytes` (stdio mode) the server also writes a byte that is not UTF-8 (`0xff`)
//! and a line that is not JSON (`fixture garbage`) on stdout and on stderr, once before it
//! starts serving and again before each tool call's answer: an upstream that breaks the
//! protocol, which the router must survive.
//!
//! Unknown tools and missing or mistyped arguments are JSON-RPC errors with
//! code -32602 (invalid params), like rmcp's own tool router.

use std::{io::Write, sync::Arc, time::Duration};

use clap::Parser;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
        Tool,
    },
    service::RequestContext,
    transport::{
        stdio,
        streamable_http_server::{
            StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
        },
    },
};
use serde_json::{Value, json};

/// An MCP server with predictable tools, used as the upstream in MCP Router's tests.
#[derive(Debug, Parser)]
#[command(name = "mcpr-fixture-server", version)]
struct Cli {
    /// Server name: reported as `serverInfo.name` and by the `whoami` tool.
    #[arg(long, default_value = "fixture")]
    name: String,

    /// Serve streamable HTTP at `/mcp` on this address (e.g. `127.0.0.1:0`)
    /// instead of stdio. Prints `listening on http://IP:PORT/mcp` to stdout.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,

    /// Add N generated tools `gen_0..gen_{N-1}` (for discovery tests and benchmarks).
    #[arg(long, value_name = "N", default_value_t = 0)]
    tools: usize,

    /// Return at most this many tools per `tools/list` page (0 = everything in one page).
    #[arg(long, value_name = "N", default_value_t = 0)]
    page_size: usize,

    /// HTTP only: serve without sessions (no `Mcp-Session-Id`) and answer
    /// requests with plain `application/json` bodies instead of SSE.
    #[arg(long, requires = "http")]
    stateless: bool,

    /// Add tools that talk back to the client while they run: `progress` (progress
    /// notifications), `log_message` (a logging notification), `sample` (sampling),
    /// `elicit` (elicitation) and `roots` (roots/list).
    #[arg(long)]
    interactive: bool,

    /// Add a `counter` tool whose count lives in the process (1, 2, 3, …): shows whether
    /// clients share one upstream session or each have their own.
    #[arg(long)]
    stateful: bool,

    /// Add a `meta` tool that answers with the `_meta` its request carried, as JSON text:
    /// shows what the router sent upstream (`traceparent`, `progressToken`, ...).
    #[arg(long)]
    meta: bool,

    /// Add `picture` (an image, a resource link and an embedded resource in one result) and
    /// `arguments` (an input schema with every kind of field, answered back): the content
    /// and inputs a client shows, for the web UI's "Try a tool".
    #[arg(long)]
    rich: bool,

    /// Write `0xff` and a non-JSON line on stdout and stderr before serving and before each
    /// tool call's answer (a server that breaks the protocol).
    #[arg(long)]
    bad_bytes: bool,
}

/// What `--bad-bytes` writes on both streams: invalid UTF-8, then text that is not JSON.
const BAD_LINES: &[u8] = b"\xff\nfixture garbage\n";

fn write_bad_lines() {
    // Written whole between two answers of the sequential stdio session, so they never
    // split a message line.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(BAD_LINES);
    let _ = stdout.flush();
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(BAD_LINES);
    let _ = stderr.flush();
}

/// The MCP service. Cheap to clone; HTTP mode builds one per session.
#[derive(Debug, Clone)]
struct Fixture {
    name: Arc<str>,
    tools: Arc<[Tool]>,
    page_size: usize,
    bad_bytes: bool,
}

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        other => unreachable!("schema literal is not an object: {other}"),
    }
}

fn tool(name: &'static str, description: &'static str, input_schema: Value) -> Tool {
    Tool::new(name, description, object(input_schema))
}

fn build_tools(generated: usize) -> Vec<Tool> {
    let mut tools = vec![
        tool(
            "echo",
            "Echo the given text back unchanged",
            json!({
                "type": "object",
                "properties": {"text": {"type": "string", "description": "The text to echo"}},
                "required": ["text"]
            }),
        ),
        tool(
            "add",
            "Add two numbers and return their sum",
            json!({
                "type": "object",
                "properties": {
                    "a": {"type": "number", "description": "First addend"},
                    "b": {"type": "number", "description": "Second addend"}
                },
                "required": ["a", "b"]
            }),
        )
        .with_raw_output_schema(object(json!({
            "type": "object",
            "properties": {"sum": {"type": "number", "description": "a + b"}},
            "required": ["sum"]
        }))),
        tool(
            "whoami",
            "Return the name this fixture server was started with",
            json!({"type": "object", "properties": {}}),
        ),
        tool(
            "get_env",
            "Read an environment variable of the server process",
            json!({
                "type": "object",
                "properties": {"name": {"type": "string", "description": "Variable name"}},
                "required": ["name"]
            }),
        ),
        tool(
            "slow",
            "Sleep for a number of milliseconds, then answer",
            json!({
                "type": "object",
                "properties": {
                    "ms": {"type": "integer", "minimum": 0, "description": "Milliseconds to sleep"}
                },
                "required": ["ms"]
            }),
        ),
        tool(
            "log_stderr",
            "Write a line to the server's standard error",
            json!({
                "type": "object",
                "properties": {"line": {"type": "string", "description": "The line to write"}},
                "required": ["line"]
            }),
        ),
        tool(
            "crash",
            "Exit the server process at once, to test crash recovery",
            json!({
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "description": "Exit code (default 3)"}
                }
            }),
        ),
        tool(
            "fail",
            "Return a tool error result carrying the given message",
            json!({
                "type": "object",
                "properties": {"message": {"type": "string", "description": "The error message"}},
                "required": ["message"]
            }),
        ),
    ];
    tools.extend((0..generated).map(|i| {
        Tool::new(
            format!("gen_{i}"),
            format!("Generated filler tool number {i}; answers with its own name"),
            object(json!({"type": "object", "properties": {}})),
        )
    }));
    tools
}

/// Tools that send the client notifications or requests of their own while they run.
fn interactive_tools() -> Vec<Tool> {
    let schema = |props: Value| object(json!({"type": "object", "properties": props}));
    vec![
        Tool::new(
            "progress",
            "Send `steps` progress notifications, then answer",
            schema(json!({"steps": {"type": "integer"}})),
        ),
        Tool::new(
            "log_message",
            "Send a logging notification with the text, then answer",
            schema(json!({"text": {"type": "string"}})),
        ),
        Tool::new(
            "sample",
            "Ask the client's model (sampling) and answer with its reply",
            schema(json!({"prompt": {"type": "string"}})),
        ),
        Tool::new(
            "elicit",
            "Ask the user (elicitation) and answer with the action and content",
            schema(json!({"message": {"type": "string"}})),
        ),
        Tool::new(
            "roots",
            "Ask the client for its roots and answer with them",
            schema(json!({})),
        ),
    ]
}

/// An 8×8 PNG of four squares, red and blue, as base64: the image `picture` answers.
pub const PICTURE_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAHElEQVR42mO4YGAARwYJF+CIgYoSyBxkRVSUAAAKqFIBWUslBwAAAABJRU5ErkJggg==";

/// The tools `--rich` adds.
fn rich_tools() -> Vec<Tool> {
    vec![
        tool(
            "picture",
            "Answer with an image (PNG), a resource link and an embedded text resource",
            json!({"type": "object", "properties": {}}),
        ),
        tool(
            "arguments",
            "Answer with the arguments received, as JSON text and as structured content",
            json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "Any text"},
                    "count": {"type": "integer", "minimum": 0, "description": "A whole number"},
                    "ratio": {"type": "number", "description": "Any number"},
                    "loud": {"type": "boolean", "description": "Yes or no"},
                    "color": {"type": "string", "enum": ["red", "green", "blue"], "description": "One of three"},
                    "tags": {"type": "array", "items": {"type": "string"}, "description": "A list of strings"},
                    "options": {"type": "object", "properties": {"depth": {"type": "integer"}}, "description": "A nested object"}
                },
                "required": ["title", "count"]
            }),
        ),
    ]
}

/// The answers of the `--rich` tools (`picture`, else `arguments`).
fn rich_answer(name: &str, args: &JsonObject) -> Result<CallToolResponse, McpError> {
    let answer = match name {
        "picture" => json!({
            "content": [
                {"type": "text", "text": "four squares"},
                {"type": "image", "data": PICTURE_PNG, "mimeType": "image/png"},
                {"type": "resource_link", "uri": "fixture://squares.png", "name": "squares.png", "mimeType": "image/png", "description": "the same picture, as a resource"},
                {"type": "resource", "resource": {"uri": "fixture://notes.txt", "mimeType": "text/plain", "text": "two red, two blue"}}
            ]
        }),
        _ => json!({
            "content": [{"type": "text", "text": Value::Object(args.clone()).to_string()}],
            "structuredContent": {"received": args},
        }),
    };
    from_json::<CallToolResult>(answer).map(Into::into)
}

/// Builds an rmcp parameter type from its JSON form (its structs are non-exhaustive).
fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value).map_err(|e| McpError::internal_error(e.to_string(), None))
}

fn peer_error(e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(format!("the client request failed: {e}"), None)
}

#[allow(deprecated)] // sampling and logging are deprecated for 2026-07-28, alive before it
async fn interactive(
    name: &str,
    args: &JsonObject,
    ctx: &RequestContext<RoleServer>,
) -> Option<Result<CallToolResponse, McpError>> {
    let peer = &ctx.peer;
    let result = match name {
        "progress" => {
            let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3);
            let Some(token) = ctx.meta.get_progress_token() else {
                return Some(Ok(text("no progress token")));
            };
            for step in 1..=steps {
                let param = from_json(
                    json!({"progressToken": token, "progress": step, "total": steps, "message": format!("step {step}")}),
                );
                match param {
                    Ok(param) => {
                        let _ = peer.notify_progress(param).await;
                    }
                    Err(e) => return Some(Err(e)),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(text(format!("did {steps} steps")))
        }
        "log_message" => {
            let said = args
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("hello")
                .to_owned();
            match from_json(json!({"level": "info", "logger": "fixture", "data": said})) {
                Ok(param) => {
                    let _ = peer.notify_logging_message(param).await;
                    Ok(text("logged"))
                }
                Err(e) => Err(e),
            }
        }
        "sample" => {
            let prompt = args
                .get("prompt")
                .and_then(Value::as_str)
                .unwrap_or("hi")
                .to_owned();
            let params = from_json(
                json!({"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": 50}),
            );
            match params {
                Ok(params) => match peer.create_message(params).await {
                    Ok(reply) => Ok(text(
                        serde_json::to_value(&reply)
                            .map(|v| v["content"]["text"].as_str().unwrap_or_default().to_owned())
                            .unwrap_or_default(),
                    )),
                    Err(e) => Err(peer_error(e)),
                },
                Err(e) => Err(e),
            }
        }
        "elicit" => {
            let message = args
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("Your name?")
                .to_owned();
            let params = from_json(
                json!({"message": message, "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}),
            );
            match params {
                Ok(params) => match peer.create_elicitation(params).await {
                    Ok(answer) => Ok(text(serde_json::to_string(&answer).unwrap_or_default())),
                    Err(e) => Err(peer_error(e)),
                },
                Err(e) => Err(e),
            }
        }
        "roots" => match peer.list_roots().await {
            Ok(roots) => Ok(text(serde_json::to_string(&roots).unwrap_or_default())),
            Err(e) => Err(peer_error(e)),
        },
        _ => return None,
    };
    Some(result)
}

fn text(s: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(s)]).into()
}

fn arg<'a>(args: &'a JsonObject, key: &str) -> Result<&'a Value, McpError> {
    args.get(key)
        .ok_or_else(|| McpError::invalid_params(format!("missing argument `{key}`"), None))
}

fn str_arg<'a>(args: &'a JsonObject, key: &str) -> Result<&'a str, McpError> {
    arg(args, key)?
        .as_str()
        .ok_or_else(|| McpError::invalid_params(format!("argument `{key}` must be a string"), None))
}

fn num_arg(args: &JsonObject, key: &str) -> Result<serde_json::Number, McpError> {
    match arg(args, key)? {
        Value::Number(n) => Ok(n.clone()),
        _ => Err(McpError::invalid_params(
            format!("argument `{key}` must be a number"),
            None,
        )),
    }
}

/// `a + b`, exact for integers, and written as an integer when the sum is whole
/// (so `2 + 3` gives `5`, not `5.0`).
fn sum(a: &serde_json::Number, b: &serde_json::Number) -> Option<Value> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64())
        && let Some(s) = a.checked_add(b)
    {
        return Some(s.into());
    }
    let s = a.as_f64()? + b.as_f64()?;
    if s.fract() == 0.0 && s.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        return Some((s as i64).into());
    }
    serde_json::Number::from_f64(s).map(Value::Number)
}

impl Fixture {
    async fn call(
        &self,
        name: &str,
        args: &JsonObject,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        match name {
            "echo" => Ok(text(str_arg(args, "text")?)),
            "add" => {
                let (a, b) = (num_arg(args, "a")?, num_arg(args, "b")?);
                let Some(s) = sum(&a, &b) else {
                    return Ok(CallToolResult::error(vec![ContentBlock::text(
                        "the sum is not a finite number",
                    )])
                    .into());
                };
                let mut result = CallToolResult::success(vec![ContentBlock::text(s.to_string())]);
                result.structured_content = Some(json!({ "sum": s }));
                Ok(result.into())
            }
            "whoami" => Ok(text(&*self.name)),
            "meta" if self.tools.iter().any(|t| t.name == "meta") => {
                Ok(text(serde_json::to_string(&ctx.meta).map_err(|e| {
                    McpError::internal_error(e.to_string(), None)
                })?))
            }
            "counter" if self.tools.iter().any(|t| t.name == "counter") => {
                static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                Ok(text(
                    (COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1).to_string(),
                ))
            }
            "get_env" => Ok(text(
                std::env::var(str_arg(args, "name")?).unwrap_or_default(),
            )),
            "slow" => {
                let ms = arg(args, "ms")?.as_u64().ok_or_else(|| {
                    McpError::invalid_params("argument `ms` must be a non-negative integer", None)
                })?;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(text(format!("slept {ms}"))),
                    // rmcp drops the response of a cancelled request; just stop sleeping.
                    () = ctx.ct.cancelled() => Err(McpError::internal_error("cancelled", None)),
                }
            }
            "log_stderr" => {
                let line = str_arg(args, "line")?;
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(stderr, "{line}");
                let _ = stderr.flush();
                Ok(text("logged"))
            }
            "crash" => {
                let code = match args.get("code") {
                    None | Some(Value::Null) => 3,
                    Some(v) => v
                        .as_i64()
                        .and_then(|c| i32::try_from(c).ok())
                        .ok_or_else(|| {
                            McpError::invalid_params("argument `code` must be an integer", None)
                        })?,
                };
                eprintln!(
                    "fixture server {} crashing with exit code {code}",
                    self.name
                );
                std::process::exit(code)
            }
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text(str_arg(
                args, "message",
            )?)])
            .into()),
            _ if self.tools.iter().any(|t| t.name == name)
                && interactive_tools().iter().any(|t| t.name == name) =>
            {
                interactive(name, args, ctx)
                    .await
                    .expect("an interactive tool")
            }
            "picture" | "arguments" if self.tools.iter().any(|t| t.name == name) => {
                rich_answer(name, args)
            }
            _ if self.tools.iter().any(|t| t.name == name) && name.starts_with("gen_") => {
                Ok(text(name))
            }
            _ => Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            )),
        }
    }
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                self.name.to_string(),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Test fixture for MCP Router: predictable tools for end-to-end tests.",
            )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        if self.page_size == 0 {
            return Ok(ListToolsResult::with_all_items(self.tools.to_vec()));
        }
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(cursor) => cursor
                .parse::<usize>()
                .ok()
                .filter(|&c| c <= self.tools.len())
                .ok_or_else(|| McpError::invalid_params("invalid cursor", None))?,
        };
        let end = (start + self.page_size).min(self.tools.len());
        let mut result = ListToolsResult::with_all_items(self.tools[start..end].to_vec());
        result.next_cursor = (end < self.tools.len()).then(|| end.to_string());
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        if self.bad_bytes {
            write_bad_lines();
        }
        self.call(&request.name, &args, &context).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
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

    let fixture = Fixture {
        name: cli.name.as_str().into(),
        tools: {
            let mut tools = build_tools(cli.tools);
            if cli.interactive {
                tools.extend(interactive_tools());
            }
            if cli.rich {
                tools.extend(rich_tools());
            }
            if cli.meta {
                tools.push(Tool::new(
                    "meta",
                    "Answer with the request's _meta, as JSON text",
                    object(json!({"type": "object", "properties": {}})),
                ));
            }
            if cli.stateful {
                tools.push(Tool::new(
                    "counter",
                    "Count calls in this process: 1, 2, 3, …",
                    object(json!({"type": "object", "properties": {}})),
                ));
            }
            tools.into()
        },
        page_size: cli.page_size,
        bad_bytes: cli.bad_bytes,
    };
    if cli.bad_bytes {
        write_bad_lines();
    }

    match cli.http {
        None => {
            eprintln!("fixture server {} ready", cli.name);
            let service = fixture.serve(stdio()).await?;
            service.waiting().await?;
        }
        Some(addr) => {
            let config = StreamableHttpServerConfig::default()
                // A test fixture: accept any Host header (the gateway may dial it by any name).
                .disable_allowed_hosts()
                .with_legacy_session_mode(!cli.stateless)
                .with_json_response(cli.stateless);
            let service: StreamableHttpService<Fixture, LocalSessionManager> =
                StreamableHttpService::new(move || Ok(fixture.clone()), Default::default(), config);
            // `/moved` redirects to `/mcp` on this origin, `/moved-away` to another origin:
            // the remote runtime follows the first and refuses the second.
            let redirect = |to: &'static str| {
                axum::routing::any(move || async move {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [(axum::http::header::LOCATION, to)],
                    )
                })
            };
            let router = axum::Router::new()
                .nest_service("/mcp", service)
                .route("/moved", redirect("/mcp"))
                .route("/moved-away", redirect("http://example.invalid/mcp"));
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            let local = listener.local_addr()?;
            {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "listening on http://{local}/mcp")?;
                stdout.flush()?;
            }
            eprintln!("fixture server {} ready", cli.name);
            tokio::select! {
                result = axum::serve(listener, router) => result?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums() {
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert_eq!(sum(&n(json!(2)), &n(json!(3))), Some(json!(5)));
        assert_eq!(sum(&n(json!(2.5)), &n(json!(0.5))), Some(json!(3)));
        assert_eq!(sum(&n(json!(0.25)), &n(json!(1))), Some(json!(1.25)));
        assert_eq!(sum(&n(json!(-7)), &n(json!(2))), Some(json!(-5)));
    }

    #[test]
    fn tool_names_are_unique() {
        let tools = build_tools(5);
        let mut names: Vec<_> = tools.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), tools.len());
        assert!(names.iter().any(|n| n == "gen_4"));
    }
}
