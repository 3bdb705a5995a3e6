//! Thin helpers over rmcp's MCP *client* for end-to-end tests.
//!
//! [`connect_http`] speaks streamable HTTP to a URL (the gateway, or a
//! fixture server started with `--http`); [`connect_stdio`] spawns a child
//! that speaks MCP on stdin/stdout. Both return an [`McpClient`] whose
//! methods deal in `serde_json::Value`, so tests can assert on the wire shape
//! without depending on rmcp's model types.
//!
//! Choices made for tests (see [`ConnectOptions`]):
//! - the client asks for protocol version `2025-06-18` in `initialize`
//!   (rmcp asks for `2026-07-28` by default, a version without `initialize`,
//!   which servers answer with an older version such as `2025-11-25`);
//! - rmcp's client-side response cache is disabled, so `tools/list` always
//!   reaches the server and errors are never hidden behind a stale list;
//! - over HTTP, an expired session (`404`) is an error, not silently
//!   re-initialized, and a broken SSE stream is reconnected at most once
//!   (rmcp's default retries forever, so a crashed server would hang the call);
//! - every request has a timeout (30 s by default) so a broken server fails
//!   the test instead of hanging it.
//!
//! A JSON-RPC error answer becomes an `anyhow::Error` wrapping [`RpcError`],
//! whose text carries the code and message; `err.downcast_ref::<RpcError>()`
//! gives them back as fields.

use std::{collections::HashMap, fmt, path::Path, process::Stdio, sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow, bail};
use rmcp::{
    RoleClient, ServiceError, ServiceExt as _,
    model::{
        CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation,
        PaginatedRequestParams, ProtocolVersion,
    },
    service::{Peer, RunningService},
    transport::{
        StreamableHttpClientTransport, TokioChildProcess, common::client_side_sse::FixedInterval,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::Value;

/// Protocol version the helpers ask for in `initialize` unless told otherwise.
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-06-18";

/// Default time limit for one request (`tools/list` page, `tools/call`, ...).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to connect. `ConnectOptions::default()` is what [`connect_http`] and
/// [`connect_stdio`] use.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `protocolVersion` sent in `initialize`.
    pub protocol_version: String,
    /// `clientInfo.name` sent in `initialize`.
    pub client_name: String,
    /// Time limit for each request after the handshake (and for the handshake itself).
    pub request_timeout: Duration,
    /// HTTP only: sent as `Authorization: Bearer <token>` on every request.
    pub bearer_token: Option<String>,
    /// HTTP only: extra headers sent on every request.
    pub headers: Vec<(String, String)>,
    /// HTTP only: let rmcp transparently re-`initialize` when the server
    /// answers `404` for the session (rmcp's default is `true`; ours is `false`).
    pub reinit_on_expired_session: bool,
    /// HTTP only: how many times rmcp may try to reconnect a broken SSE
    /// response stream before the request fails (`None`: rmcp's default,
    /// unlimited exponential backoff, so a dead server makes requests hang
    /// until the timeout). Ours is `Some(1)`.
    pub sse_max_reconnects: Option<usize>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_owned(),
            client_name: "mcpr-e2e".to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            bearer_token: None,
            headers: Vec::new(),
            reinit_on_expired_session: false,
            sse_max_reconnects: Some(1),
        }
    }
}

/// A JSON-RPC error answered by the server (or the gateway).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    pub data: Option<Value>,
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)?;
        if let Some(data) = &self.data {
            write!(f, " (data: {data})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

/// Turns rmcp's error into `anyhow`, keeping JSON-RPC errors as [`RpcError`].
fn service_error(error: ServiceError, what: &str) -> anyhow::Error {
    match error {
        ServiceError::McpError(e) => anyhow::Error::new(RpcError {
            code: e.code.0,
            message: e.message.into_owned(),
            data: e.data,
        })
        .context(what.to_owned()),
        other => anyhow::Error::new(other).context(what.to_owned()),
    }
}

/// A connected MCP client session.
pub struct McpClient {
    service: RunningService<RoleClient, ClientConfig>,
    timeout: Duration,
    pid: Option<u32>,
}

impl fmt::Debug for McpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpClient")
            .field("pid", &self.pid)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn client_config(opts: &ConnectOptions) -> anyhow::Result<ClientConfig> {
    let version: ProtocolVersion =
        serde_json::from_value(Value::String(opts.protocol_version.clone()))
            .context("protocol version")?;
    Ok(ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(opts.client_name.clone(), env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(version))
}

/// Connects over streamable HTTP to `url` (e.g. `http://127.0.0.1:PORT/mcp`).
pub async fn connect_http(url: &str) -> anyhow::Result<McpClient> {
    connect_http_with(url, &ConnectOptions::default()).await
}

/// [`connect_http`] with explicit options (bearer token, headers, protocol version...).
pub async fn connect_http_with(url: &str, opts: &ConnectOptions) -> anyhow::Result<McpClient> {
    let mut headers = HashMap::new();
    for (name, value) in &opts.headers {
        headers.insert(
            http::HeaderName::try_from(name.as_str()).with_context(|| format!("header {name}"))?,
            http::HeaderValue::try_from(value.as_str())
                .with_context(|| format!("value of header {name}"))?,
        );
    }
    let mut config = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(headers)
        .reinit_on_expired_session(opts.reinit_on_expired_session);
    if let Some(max) = opts.sse_max_reconnects {
        let mut policy = FixedInterval::default();
        policy.max_times = Some(max);
        policy.duration = Duration::from_millis(200);
        config.retry_config = Arc::new(policy);
    }
    if let Some(token) = &opts.bearer_token {
        config = config.auth_header(token.clone());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    let service = tokio::time::timeout(opts.request_timeout, client_config(opts)?.serve(transport))
        .await
        .map_err(|_| anyhow!("MCP handshake with {url} timed out"))?
        .with_context(|| format!("MCP handshake with {url}"))?;
    McpClient::new(service, opts.request_timeout, None).await
}

/// Spawns `program args...` with extra environment `envs` and speaks MCP on
/// its stdin/stdout. Its stderr is inherited (shows up in the test output).
/// The child is killed when the client is closed or dropped.
pub async fn connect_stdio(
    program: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> anyhow::Result<McpClient> {
    connect_stdio_with(program, args, envs, &ConnectOptions::default()).await
}

/// [`connect_stdio`] with explicit options (the HTTP-only fields are ignored).
pub async fn connect_stdio_with(
    program: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    opts: &ConnectOptions,
) -> anyhow::Result<McpClient> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).envs(envs.iter().copied());
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawn {}", program.display()))?;
    let pid = transport.id();
    let service = tokio::time::timeout(opts.request_timeout, client_config(opts)?.serve(transport))
        .await
        .map_err(|_| anyhow!("MCP handshake with {} timed out", program.display()))?
        .with_context(|| format!("MCP handshake with {}", program.display()))?;
    McpClient::new(service, opts.request_timeout, pid).await
}

impl McpClient {
    async fn new(
        service: RunningService<RoleClient, ClientConfig>,
        timeout: Duration,
        pid: Option<u32>,
    ) -> anyhow::Result<Self> {
        service
            .peer()
            .set_response_cache_config(rmcp::ClientCacheConfig::disabled())
            .await;
        Ok(Self {
            service,
            timeout,
            pid,
        })
    }

    /// The rmcp peer, for anything these helpers do not cover.
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// Process id of the child (stdio connections only).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Changes the per-request time limit.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The server's `initialize` answer (`protocolVersion`, `capabilities`,
    /// `serverInfo`, `instructions`) as JSON.
    pub fn server_info(&self) -> Option<Value> {
        self.peer()
            .peer_info()
            .and_then(|info| serde_json::to_value(&*info).ok())
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, ServiceError>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result.map_err(|e| service_error(e, what)),
            Err(_) => bail!("{what}: no answer within {:?}", self.timeout),
        }
    }

    /// All tools (following `nextCursor` pagination), each as its JSON object.
    pub async fn list_tools(&self) -> anyhow::Result<Vec<Value>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let params = cursor
                .clone()
                .map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let page = self
                .timed("tools/list", self.peer().list_tools(params))
                .await?;
            for tool in page.tools {
                tools.push(serde_json::to_value(tool)?);
            }
            match page.next_cursor {
                None => return Ok(tools),
                Some(next) => {
                    if !seen.insert(next.clone()) {
                        bail!("tools/list: server repeated cursor {next:?}");
                    }
                    cursor = Some(next);
                }
            }
        }
    }

    /// Calls `name` with `args` (a JSON object, or `null` for none) and
    /// returns the `CallToolResult` as JSON (`content`, `structuredContent`,
    /// `isError`, ...). A JSON-RPC error answer is an `Err` wrapping [`RpcError`].
    pub async fn call_tool(&self, name: &str, args: Value) -> anyhow::Result<Value> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        match args {
            Value::Null => {}
            Value::Object(map) => params = params.with_arguments(map),
            other => bail!("tool arguments must be a JSON object, got {other}"),
        }
        let what = format!("tools/call {name}");
        let result = self.timed(&what, self.service.call_tool(params)).await?;
        Ok(serde_json::to_value(result)?)
    }

    /// Calls `name` and returns its text content blocks concatenated (no
    /// separator). An `isError: true` result is an `Err` carrying that text.
    pub async fn call_tool_text(&self, name: &str, args: Value) -> anyhow::Result<String> {
        let result = self.call_tool(name, args).await?;
        let text = text_of(&result);
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("tool {name} returned isError: {text}");
        }
        Ok(text)
    }

    /// Closes the session: over stdio, closes the child's stdin and waits for
    /// it to exit (then SIGTERM, then kill); over HTTP, ends the session.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.service.close())
            .await
            .context("close timed out")?
            .context("close")?;
        Ok(())
    }
}

/// The text content blocks of a `CallToolResult` JSON, concatenated.
pub fn text_of(result: &Value) -> String {
    result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect()
}
