//! The `remote` runtime: a streamable-HTTP MCP server elsewhere (MCP 2025-03-26 and later
//! transports). Each request is a POST whose answer is either one JSON message or an SSE
//! stream carrying the response (and perhaps notifications and requests before it).
//!
//! A session opened with `initialize` is of the legacy era: its requests carry the version
//! `initialize` agreed on and no modern headers (`era.rs`; a server of both eras refuses
//! `MCP-Protocol-Version: 2026-07-28` on it, the TypeScript SDK's with HTTP 400). To an
//! upstream of the modern era alone (`modern.rs`), a request of that era (2026-07-28: its
//! `_meta` names its protocol version) goes out as one: with that version in
//! `MCP-Protocol-Version` and the standard headers (SEP-2243) its body implies; its HTTP
//! 400 and 404 answers carry JSON-RPC errors, not a lost session.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mcpr_core::jsonrpc::{Kind, Message};
use mcpr_core::sse::SseParser;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Connection, Outbound, UpstreamEvent};

// Named once: a header name given as text is parsed and checked on every insert and look-up.
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// Largest response body read whole (a JSON answer): the relay's own message limit.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Redirects followed for one request (a server's `/mcp` → `/mcp/`, say).
const MAX_REDIRECTS: usize = 5;
/// Times a request's SSE stream is resumed (`Last-Event-ID`) before giving up.
const MAX_RESUMPTIONS: usize = 10;
/// The longest `retry` a server may make the agent wait before resuming a stream.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The HTTP client of one upstream: straight to the server, or through the HTTP proxy the
/// environment names for its URL (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as
/// curl reads them), tunnelled with `CONNECT`.
enum UpstreamClient {
    Direct(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    Proxied(Client<HttpsConnector<Tunnel<HttpConnector>>, Full<Bytes>>),
}

impl UpstreamClient {
    fn request(&self, request: Request<Full<Bytes>>) -> ResponseFuture {
        match self {
            UpstreamClient::Direct(client) => client.request(request),
            UpstreamClient::Proxied(client) => client.request(request),
        }
    }
}

/// One client, so one connection pool, per HTTP worker thread of the process
/// (`mcpr_tls::worker_index`; 0 for the main runtime): a call is relayed upstream on the
/// connection of the thread that serves it, crossing no thread (mcpr-tls's `serve`).
struct Clients {
    tls: mcpr_tls::rustls::ClientConfig,
    proxy: Option<Intercept>,
    by_worker: Box<[OnceLock<UpstreamClient>]>,
}

impl Clients {
    fn new(uri: &Uri) -> Result<Self, String> {
        let tls = mcpr_tls::upstream_tls_config().map_err(|e| format!("{e:#}"))?;
        let proxy = Matcher::from_env().intercept(uri);
        if let Some(proxy) = &proxy {
            tracing::info!(url = %uri, proxy = %proxy.uri(), "reaching the upstream through a proxy");
        }
        Ok(Clients {
            tls,
            proxy,
            by_worker: (0..=mcpr_tls::http_workers())
                .map(|_| OnceLock::new())
                .collect(),
        })
    }

    fn get(&self) -> &UpstreamClient {
        let worker = mcpr_tls::worker_index().min(self.by_worker.len() - 1);
        self.by_worker[worker].get_or_init(|| self.build())
    }

    fn build(&self) -> UpstreamClient {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_all_versions();
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            // Below Node's 5 s keep-alive (`server.keepAliveTimeout`), which servers on the
            // TypeScript SDK keep: a connection idle longer is closed at the server's end,
            // and reusing it just then fails a request with "connection closed before
            // message completed". Dropping it first costs one new connection.
            .pool_idle_timeout(Duration::from_secs(4));
        match &self.proxy {
            None => UpstreamClient::Direct(builder.build(https.wrap_connector(tcp))),
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                UpstreamClient::Proxied(builder.build(https.wrap_connector(tunnel)))
            }
        }
    }
}

pub struct HttpTransport {
    clients: Clients,
    /// Where requests go: the registered URL, or where the server redirected it to (same
    /// origin only), parsed once: parsing a URL for every request was a measurable share
    /// of the data path's CPU (docs/BENCHMARKS.md).
    uri: RwLock<Uri>,
    /// The registered URL, for messages.
    url: String,
    /// The configured headers plus `Accept` and `Content-Type`: each POST starts from them.
    headers: HeaderMap,
    session_id: RwLock<Option<String>>,
    protocol_version: RwLock<Option<String>>,
    /// The `x-mcp-header` annotations of the tools that have any, by tool name, for the
    /// `Mcp-Param-*` headers of modern tool calls.
    tool_annotations: RwLock<std::collections::HashMap<String, Vec<(String, String)>>>,
    /// Set once `initialize` opened the session: from then on no request goes out with
    /// modern headers, whatever its `_meta` says (`era.rs`).
    handshake_era: std::sync::atomic::AtomicBool,
}

/// What a POST brought back.
enum Sent {
    /// The HTTP response, to read as JSON or SSE.
    Response(http::Response<Incoming>),
    /// A JSON-RPC error a modern request was answered with (HTTP 400 or 404).
    Answer(Message),
}

#[derive(Debug)]
pub struct HttpError {
    pub message: String,
    /// The upstream session is unusable (server gone or session expired): reconnect.
    pub session_lost: bool,
}

impl HttpError {
    fn lost(message: String) -> Self {
        HttpError {
            message,
            session_lost: true,
        }
    }
    fn failed(message: String) -> Self {
        HttpError {
            message,
            session_lost: false,
        }
    }
}

pub fn connect(
    url: &str,
    headers: &BTreeMap<String, String>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    request_timeout: Duration,
) -> Result<Arc<Connection>, String> {
    let mut map = HeaderMap::new();
    map.insert(
        ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        let name =
            HeaderName::try_from(name.as_str()).map_err(|e| format!("header {name:?}: {e}"))?;
        let mut value =
            HeaderValue::try_from(value.as_str()).map_err(|e| format!("header {name}: {e}"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    let uri = parse_url(url)?;
    let clients = Clients::new(&uri)?;
    let transport = HttpTransport {
        clients,
        uri: RwLock::new(uri),
        url: url.to_owned(),
        headers: map,
        session_id: RwLock::new(None),
        protocol_version: RwLock::new(None),
        tool_annotations: RwLock::default(),
        handshake_era: Default::default(),
    };
    Ok(Connection::new(
        Outbound::Http(Box::new(transport)),
        events,
        request_timeout,
    ))
}

impl HttpTransport {
    /// The version `initialize` agreed on: the session is of the handshake era.
    pub fn set_protocol_version(&self, version: String) {
        *self.protocol_version.write().unwrap() = Some(version);
        self.handshake_era
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops the session and version a refused `initialize` may have left: a modern-era
    /// upstream has neither.
    pub fn forget_session(&self) {
        *self.session_id.write().unwrap() = None;
        *self.protocol_version.write().unwrap() = None;
        self.handshake_era
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Remembers the tools' `x-mcp-header` annotations (after each `tools/list` of the
    /// handshake).
    pub fn set_tools(&self, tools_json: &str) {
        let tools: Vec<Value> = serde_json::from_str(tools_json).unwrap_or_default();
        let annotations = tools
            .into_iter()
            .filter_map(|tool| {
                let name = tool.get("name")?.as_str()?.to_owned();
                let annotations =
                    mcpr_core::mcp_headers::param_annotations(tool.get("inputSchema")?);
                (!annotations.is_empty()).then_some((name, annotations))
            })
            .collect();
        *self.tool_annotations.write().unwrap() = annotations;
    }

    /// The modern protocol version a request's `_meta` names, if any.
    fn modern_version(msg: &Message) -> Option<String> {
        mcpr_core::mcp_headers::protocol_version_in(msg.params.as_ref()?.get())
    }

    /// The headers of a POST of `msg`: the configured ones, the session, the version and,
    /// for a modern request, the standard headers its body implies.
    fn post_headers(&self, msg: &Message, modern: Option<&str>) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some(session) = self.session_id.read().unwrap().as_deref()
            && let Ok(value) = HeaderValue::from_str(session)
        {
            headers.insert(SESSION_HEADER, value);
        }
        let version = match modern {
            Some(version) => Some(version.to_owned()),
            None => self.protocol_version.read().unwrap().clone(),
        };
        if let Some(version) = version.and_then(|v| HeaderValue::try_from(v).ok()) {
            headers.insert(VERSION_HEADER, version);
        }
        // The trace context the agent put in `_meta` (only while tracing), for an HTTP
        // server's own instrumentation, which reads headers. A dropped trace's is at hand.
        if mcpr_core::telemetry::enabled() {
            use mcpr_core::telemetry::mcp;
            let put = |headers: &mut HeaderMap, context: &mcp::TraceContext| {
                const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
                const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
                for (name, value) in [
                    (TRACEPARENT, &context.traceparent),
                    (TRACESTATE, &context.tracestate),
                ] {
                    if let (false, Ok(value)) = (value.is_empty(), HeaderValue::from_str(value)) {
                        headers.insert(name, value);
                    }
                }
            };
            if mcp::with_dropped(|context| put(&mut headers, context)).is_none()
                && let Some(context) = mcp::TraceContext::from_meta(msg)
            {
                put(&mut headers, &context);
            }
        }
        if modern.is_some() {
            for (name, value) in self.standard_headers(msg) {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::try_from(value))
                {
                    headers.append(name, value);
                }
            }
        }
        headers
    }

    /// Sends one HTTP request to the server's URL, following same-origin redirects (a
    /// server that moved its endpoint, or `/mcp` → `/mcp/`): the new URL is kept for every
    /// later request. A redirect to another origin is refused: it would carry the
    /// configured headers (credentials) elsewhere.
    async fn exchange(
        &self,
        method: Method,
        headers: &(dyn Fn() -> HeaderMap + Sync),
        body: Bytes,
    ) -> Result<http::Response<Incoming>, HttpError> {
        for _ in 0..=MAX_REDIRECTS {
            let uri = self.uri.read().unwrap().clone();
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers();
            let response = self.clients.get().request(request).await.map_err(|e| {
                HttpError::lost(format!(
                    "cannot reach {}: {}",
                    self.url,
                    mcpr_core::error_chain(&e)
                ))
            })?;
            let status = response.status();
            if status != StatusCode::TEMPORARY_REDIRECT && status != StatusCode::PERMANENT_REDIRECT
            {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let target = redirect_target(&uri, location).map_err(|why| {
                HttpError::failed(format!(
                    "{} redirected to {location:?}, which is not followed: {why}; register the \
                     server's final URL",
                    self.url
                ))
            })?;
            tracing::info!(url = %self.url, to = %target, "the upstream redirected; following");
            *self.uri.write().unwrap() = target;
        }
        Err(HttpError::failed(format!(
            "{} redirected more than {MAX_REDIRECTS} times",
            self.url
        )))
    }

    /// `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` for a modern request. The params are
    /// parsed whole only for an upstream with tools that mirror arguments in headers.
    fn standard_headers(&self, msg: &Message) -> Vec<(String, String)> {
        let method = msg.method.as_deref().unwrap_or_default();
        let params_text = msg.params.as_ref().map(|p| p.get());
        let annotations = self.tool_annotations.read().unwrap();
        if annotations.is_empty() {
            return mcpr_core::mcp_headers::request_headers_raw(method, params_text, &[]);
        }
        let params: Option<Value> = params_text.and_then(|p| serde_json::from_str(p).ok());
        let tool = params
            .as_ref()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .and_then(|name| annotations.get(name));
        mcpr_core::mcp_headers::request_headers(
            method,
            params.as_ref(),
            tool.map_or(&[][..], Vec::as_slice),
        )
    }

    /// POSTs `msg`: with modern headers only when it is a modern request and the session
    /// was not opened with `initialize`.
    async fn send(&self, msg: &Message) -> Result<Sent, HttpError> {
        let modern = if self
            .handshake_era
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            None
        } else {
            Self::modern_version(msg)
        };
        self.send_as(msg, modern.as_deref()).await
    }

    async fn send_as(&self, msg: &Message, modern: Option<&str>) -> Result<Sent, HttpError> {
        let response = self
            .exchange(
                Method::POST,
                &|| self.post_headers(msg, modern),
                Bytes::from(msg.to_bytes()),
            )
            .await?;
        if let Some(session) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            let mut current = self.session_id.write().unwrap();
            if current.as_deref() != Some(session) {
                *current = Some(session.to_owned());
            }
        }
        let status = response.status();
        // 2026-07-28 gives JSON-RPC errors an HTTP status (400, 404): the body is the answer.
        if modern.is_some() && status.is_client_error() {
            let body = read_body(response).await.unwrap_or_default();
            let answer = Message::parse(&body).ok().filter(|m| m.error.is_some());
            return match answer {
                Some(answer) => Ok(Sent::Answer(answer)),
                None => Err(HttpError::failed(format!(
                    "{} answered HTTP {status}: {}",
                    self.url,
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ))),
            };
        }
        if status == StatusCode::NOT_FOUND && self.session_id.read().unwrap().is_some() {
            return Err(HttpError::lost(format!(
                "{} ended the session (404)",
                self.url
            )));
        }
        if !status.is_success() {
            let body = read_body(response).await.unwrap_or_default();
            let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(HttpError::failed(format!(
                "{} answered HTTP {status}: {body}",
                self.url
            )));
        }
        Ok(Sent::Response(response))
    }

    /// Follows the server's own SSE stream (GET), where it sends what belongs to no request
    /// (list-changed, resource updates), until the session closes. A server that offers no
    /// such stream (405) is left alone.
    pub async fn listen(&self, conn: &Connection) {
        let mut retry = Duration::from_millis(250);
        let headers = || self.stream_headers();
        loop {
            match self.exchange(Method::GET, &headers, Bytes::new()).await {
                Ok(response) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    return;
                }
                Ok(response) if response.status().is_success() => {
                    retry = Duration::from_millis(250);
                    let mut body = response.into_body();
                    let mut parser = SseParser::default();
                    while let Some(Ok(frame)) = body.frame().await {
                        let Ok(chunk) = frame.into_data() else {
                            continue;
                        };
                        for data in parser.push(&chunk) {
                            let Ok(message) = Message::parse(data.as_bytes()) else {
                                continue;
                            };
                            if let Some(answer) = conn.on_message(message, None) {
                                let _ = self.notify(&answer).await;
                            }
                        }
                    }
                }
                Ok(_) | Err(_) => {}
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(Duration::from_secs(10));
        }
    }

    pub async fn notify(&self, msg: &Message) -> Result<(), HttpError> {
        self.send(msg).await.map(drop)
    }

    /// POSTs a request whose upstream id is `id` and returns its response.
    pub async fn request(
        &self,
        conn: &Connection,
        msg: &Message,
        id: u64,
    ) -> Result<Message, HttpError> {
        let response = match self.send(msg).await? {
            Sent::Response(response) => response,
            Sent::Answer(answer) => return Ok(answer),
        };
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            let bytes = read_body(response).await.map_err(|e| {
                HttpError::failed(format!("reading the response of {}: {e}", self.url))
            })?;
            return Message::parse(&bytes)
                .map_err(|e| HttpError::failed(format!("upstream sent an invalid response: {e}")));
        }
        let mut parser = SseParser::default();
        let mut resumptions = 0;
        let mut stream = response;
        loop {
            let resumed_from = parser.last_id.clone();
            if let Some(answer) = self.read_stream(conn, stream, &mut parser, id).await? {
                return Ok(answer);
            }
            // The server closed the stream before the answer (SEP-1699: it may, after an
            // event with an id): resume it with `Last-Event-ID`. A server that sent no id
            // cannot be resumed, and one whose resumed stream brought nothing new will not
            // bring the answer.
            let last_id = match &parser.last_id {
                Some(last) if resumptions == 0 || parser.last_id != resumed_from => last.clone(),
                _ => {
                    return Err(HttpError::failed(format!(
                        "{} ended the SSE stream before the response arrived{}",
                        self.url,
                        if resumptions > 0 {
                            ", and resuming it brought nothing"
                        } else {
                            ""
                        }
                    )));
                }
            };
            resumptions += 1;
            if resumptions > MAX_RESUMPTIONS {
                return Err(HttpError::failed(format!(
                    "{} ended the SSE stream before the response arrived, {MAX_RESUMPTIONS} times",
                    self.url
                )));
            }
            // The first resumption is at once: servers may keep an answer for replay only
            // until it is sent (rmcp does), and the stream was cut while the request runs.
            // Later ones wait the `retry` the server asked for.
            if resumptions > 1 {
                tokio::time::sleep(parser.retry.unwrap_or_default().min(MAX_RETRY_WAIT)).await;
            }
            let headers = || {
                let mut headers = self.stream_headers();
                if let Ok(value) = HeaderValue::from_str(&last_id) {
                    headers.insert(LAST_EVENT_ID, value);
                }
                headers
            };
            stream = self.exchange(Method::GET, &headers, Bytes::new()).await?;
            if !stream.status().is_success() {
                return Err(HttpError::failed(format!(
                    "{} refused to resume the SSE stream after event {last_id:?}: HTTP {}",
                    self.url,
                    stream.status()
                )));
            }
        }
    }

    /// Reads an SSE stream until the response to `id` (returned) or the stream's end
    /// (`None`); what else comes is handled meanwhile.
    async fn read_stream(
        &self,
        conn: &Connection,
        response: http::Response<Incoming>,
        parser: &mut SseParser,
        id: u64,
    ) -> Result<Option<Message>, HttpError> {
        let mut body = response.into_body();
        loop {
            let (events, ended) = match body.frame().await {
                Some(frame) => {
                    let frame =
                        frame.map_err(|e| HttpError::failed(format!("SSE stream broke: {e}")))?;
                    match frame.into_data() {
                        Ok(chunk) => (parser.push(&chunk), false),
                        Err(_) => continue,
                    }
                }
                None => (parser.finish(), true),
            };
            for data in events {
                let Ok(message) = Message::parse(data.as_bytes()) else {
                    continue;
                };
                if message.kind() == Ok(Kind::Response)
                    && message.id.as_ref().and_then(Value::as_u64) == Some(id)
                {
                    return Ok(Some(message));
                }
                if let Some(answer) = conn.on_message(message, Some(id)) {
                    let _ = self.notify(&answer).await;
                }
            }
            if ended {
                return Ok(None);
            }
        }
    }

    /// The headers of a GET for an SSE stream: the configured ones, session and version.
    fn stream_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.remove(CONTENT_TYPE);
        if let Some(session) = self.session_id.read().unwrap().as_deref()
            && let Ok(value) = HeaderValue::from_str(session)
        {
            headers.insert(SESSION_HEADER, value);
        }
        if let Some(version) = self.protocol_version.read().unwrap().as_deref()
            && let Ok(value) = HeaderValue::from_str(version)
        {
            headers.insert(VERSION_HEADER, value);
        }
        headers
    }
}

/// The upstream URL as a request URI: `http` or `https`, with a host.
fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        _ => Err(format!(
            "invalid URL {url:?}: it must be http:// or https:// with a host"
        )),
    }
}

/// Where a redirect from `from` to `location` (absolute, or relative to `from`) leads, if
/// it stays on the same origin (scheme, host and port).
fn redirect_target(from: &Uri, location: &str) -> Result<Uri, &'static str> {
    if location.is_empty() {
        return Err("no Location");
    }
    let target: Uri = if location.starts_with('/') && !location.starts_with("//") {
        let mut parts = from.clone().into_parts();
        parts.path_and_query = Some(location.parse().map_err(|_| "an invalid path")?);
        Uri::from_parts(parts).map_err(|_| "an invalid URL")?
    } else {
        location.parse().map_err(|_| "an invalid URL")?
    };
    let origin = |u: &Uri| {
        (
            u.scheme_str().map(str::to_owned),
            u.host().map(str::to_ascii_lowercase),
            u.port_u16(),
        )
    };
    if target.scheme().is_none() || origin(&target) != origin(from) {
        return Err("it leaves the server's origin");
    }
    Ok(target)
}

/// A whole response body, up to `MAX_RESPONSE_BYTES`.
async fn read_body(response: http::Response<Incoming>) -> Result<Bytes, String> {
    Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map(|body| body.to_bytes())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::redirect_target;

    #[test]
    fn redirects_stay_on_the_origin() {
        let from: http::Uri = "http://127.0.0.1:8080/mcp".parse().unwrap();
        assert_eq!(
            redirect_target(&from, "/mcp/").unwrap().to_string(),
            "http://127.0.0.1:8080/mcp/"
        );
        assert_eq!(
            redirect_target(&from, "http://127.0.0.1:8080/v2/mcp")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8080/v2/mcp"
        );
        for elsewhere in [
            "http://127.0.0.1:9090/mcp",
            "https://127.0.0.1:8080/mcp",
            "http://evil.example/mcp",
            "//evil.example/mcp",
            "",
        ] {
            assert!(redirect_target(&from, elsewhere).is_err(), "{elsewhere}");
        }
    }
}
