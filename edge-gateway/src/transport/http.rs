//! The streamable HTTP front door (MCP transports 2025-03-26 … 2026-07-28). Each request is
//! one linear pass: Host and Origin policy (a layer on the whole router, `Gateway::router`),
//! header checks, body limit, session, then the view's handler.
//! A request of the modern era (2026-07-28) has no session and goes to `modern.rs` once its
//! body is parsed.
//!
//! Responses to requests are single JSON bodies (or one SSE event when the client accepts
//! only `text/event-stream`); the GET stream is not offered (405), as the transport allows.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use mcpr_core::jsonrpc::{Message, RpcError, code, parse_payload};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::Gateway;
use crate::transport::{VERSION, header_str, rpc_refusal};
use crate::views::{SUPPORTED_VERSIONS, View};

pub const SESSION_HEADER: &str = "mcp-session-id";
/// [`SESSION_HEADER`] as a header name, for look-ups (as `transport::VERSION`).
pub(crate) static SESSION: HeaderName = HeaderName::from_static(SESSION_HEADER);

/// Largest accepted MCP request body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

use crate::sessions::{AnswerStream, ClientSession, Event};

#[derive(Clone)]
struct Route {
    gateway: Arc<Gateway>,
    view: Option<View>,
}

/// The MCP routes: `mcp_path` (hierarchical, also with a trailing slash), `/mcp/all` and
/// `/mcp/p/{provider}`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let path = gateway.config.mcp_path.trim_end_matches('/').to_owned();
    let view = |view: Option<View>| Route {
        gateway: gateway.clone(),
        view,
    };
    let mut router = Router::new()
        .route(
            &path,
            post(post_fixed)
                .get(get_fixed)
                .delete(delete_fixed)
                .with_state(view(Some(View::Hierarchical))),
        )
        .route(
            &format!("{path}/"),
            post(post_fixed)
                .get(get_fixed)
                .delete(delete_fixed)
                .with_state(view(Some(View::Hierarchical))),
        )
        .route(
            "/mcp/all",
            post(post_fixed)
                .get(get_fixed)
                .delete(delete_fixed)
                .with_state(view(Some(View::Flat))),
        )
        .route(
            "/mcp/p/{provider}",
            post(post_provider)
                .get(get_provider)
                .delete(delete_provider)
                .with_state(view(None)),
        );
    if path != "/mcp" {
        router = router.route(
            "/mcp",
            post(post_fixed)
                .get(get_fixed)
                .delete(delete_fixed)
                .with_state(view(Some(View::Hierarchical))),
        );
    }
    // Rate limits and API keys before anything else (`auth.rs`).
    router.route_layer(axum::middleware::from_fn_with_state(
        gateway.clone(),
        crate::transport::authenticate::authenticate,
    ))
}

async fn post_fixed(State(route): State<Route>, headers: HeaderMap, body: Body) -> Response {
    let view = route.view.clone().expect("fixed routes have a view");
    handle_post(&route.gateway, view, &headers, body).await
}

async fn post_provider(
    State(route): State<Route>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !route
        .gateway
        .snapshot
        .load()
        .providers
        .contains_key(&provider)
    {
        return rpc_refusal(
            StatusCode::NOT_FOUND,
            code::INVALID_PARAMS,
            &format!("unknown provider {provider:?}"),
        );
    }
    handle_post(&route.gateway, View::Transparent(provider), &headers, body).await
}

async fn get_fixed(State(route): State<Route>, headers: HeaderMap) -> Response {
    let view = route.view.clone().expect("fixed routes have a view");
    open_session_stream(&route.gateway, &view, &headers).await
}

async fn get_provider(
    State(route): State<Route>,
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> Response {
    open_session_stream(&route.gateway, &View::Transparent(provider), &headers).await
}

async fn delete_fixed(State(route): State<Route>, headers: HeaderMap) -> Response {
    end_session(
        &route.gateway,
        route.view.as_ref().expect("fixed routes have a view"),
        &headers,
    )
    .await
}

async fn delete_provider(
    State(route): State<Route>,
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> Response {
    end_session(&route.gateway, &View::Transparent(provider), &headers).await
}

/// The session the request names (`Mcp-Session-Id`), live here or resumable; otherwise
/// the refusal the transport prescribes (400 without the header, 404 for an unknown one).
fn session_of<'h>(
    gateway: &Gateway,
    view: &View,
    headers: &'h HeaderMap,
) -> Result<&'h str, Response> {
    let Some(id) = header_str(headers, &SESSION) else {
        return Err(rpc_refusal(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "missing Mcp-Session-Id header: send initialize first",
        ));
    };
    if !known_session(gateway, id, view) {
        return Err(rpc_refusal(
            StatusCode::NOT_FOUND,
            code::INVALID_REQUEST,
            "unknown or expired session: initialize a new one",
        ));
    }
    Ok(id)
}

/// True when `id` is a live session of `view` here, or a sealed one made by any replica,
/// which is then resumed here; either way the caller's credential must be the one that
/// created it. An idle session found here expires on the spot.
fn known_session(gateway: &Gateway, id: &str, view: &View) -> bool {
    let sessions = &gateway.sessions;
    if let Some(session) = sessions.get(id) {
        if &session.view != view || !session.owned_by_caller() {
            return false;
        }
        if session.touch_unless_idle(sessions.idle) {
            return true;
        }
        // The map's guard goes before the session is removed.
        drop(session);
        sessions.end(id, view);
        return false;
    }
    let key = gateway.snapshot.load().session_key.clone();
    if key.is_empty() || sessions.is_ended(id) {
        return false;
    }
    let Some((sealed_view, version, owner)) = crate::sessions::seal::unseal(&key, id) else {
        return false;
    };
    if &sealed_view != view {
        return false;
    }
    crate::sessions::with_credential(|credential| {
        if crate::sessions::seal::owner_tag(&key, credential) != owner {
            return false;
        }
        tracing::debug!(session = %id, "resuming a session created by another gateway");
        sessions.admit(
            id.to_owned(),
            ClientSession::new(sealed_view, version, credential),
        );
        true
    })
}

async fn end_session(gateway: &Gateway, view: &View, headers: &HeaderMap) -> Response {
    let id = match session_of(gateway, view, headers) {
        Ok(id) => id,
        Err(refusal) => return refusal,
    };
    // The `per_client` upstream sessions of this client can end now.
    gateway.end_upstream_sessions(view, id).await;
    match gateway.sessions.end(id, view) {
        true => StatusCode::NO_CONTENT.into_response(),
        false => rpc_refusal(
            StatusCode::NOT_FOUND,
            code::INVALID_REQUEST,
            "unknown or expired session",
        ),
    }
}

/// One POST: what the client accepts, the messages, the era, the session, the answers.
/// Each step returns the refusal that ends the request early.
async fn handle_post(
    gateway: &Arc<Gateway>,
    view: View,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let accepts = match accepted(headers) {
        Ok(accepts) => accepts,
        Err(refusal) => return refusal,
    };
    let (messages, batch) = match read_messages(gateway, body).await {
        Ok(read) => read,
        Err(refusal) => return refusal,
    };
    // The modern era (2026-07-28) has no session: its requests take their own path.
    if crate::transport::modern::applies(headers, &messages) {
        // Boxed here, and the batch path below: each inline would make every request's
        // future (which axum boxes, so copies) kilobytes larger (docs/BENCHMARKS.md).
        return Box::pin(crate::transport::modern::handle(
            gateway,
            view,
            Some(headers),
            messages,
            batch,
        ))
        .await;
    }
    if let Err(refusal) = check_version(headers) {
        return refusal;
    }
    let (session_id, new_session) = match session_for(gateway, &view, headers, &messages, batch) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let is_initialize = new_session.is_some();
    // A lone request that is relayed may bring messages of its own before its answer
    // (progress, sampling, elicitation): it streams when the client accepts SSE.
    if !batch && !is_initialize && accepts.sse && messages[0].id.is_some() {
        let message = messages.into_iter().next().expect("one message");
        let came = came(headers);
        return streamed_answer(gateway, view, session_id, message, accepts.json, came).await;
    }
    let (answers, answered_bytes) =
        match answer_each(gateway, &view, headers, &session_id, messages, batch).await {
            Ok(answered) => answered,
            Err(refusal) => return refusal,
        };
    if let Some((id, session)) = new_session {
        // Only a successful initialize creates the session.
        if answers.first().is_some_and(|a| a.result.is_some()) {
            gateway.sessions.admit(id, session);
        } else {
            return json_response(StatusCode::OK, &answers[0].to_bytes(), None);
        }
    }
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let session_header = is_initialize.then_some(session_id.as_str());
    respond(&answers, answered_bytes, batch, accepts, session_header)
}

/// What the client takes back (`Accept`).
#[derive(Clone, Copy)]
struct Accepts {
    json: bool,
    sse: bool,
}

/// `Accept` must allow JSON or SSE, and a body, when typed, must be JSON.
fn accepted(headers: &HeaderMap) -> Result<Accepts, Response> {
    let accept = header_str(headers, &header::ACCEPT)
        .unwrap_or("*/*")
        .to_ascii_lowercase();
    let accepts = Accepts {
        json: accept.contains("application/json")
            || accept.contains("*/*")
            || accept.contains("application/*"),
        sse: accept.contains("text/event-stream"),
    };
    if !accepts.json && !accepts.sse {
        return Err(rpc_refusal(
            StatusCode::NOT_ACCEPTABLE,
            code::INVALID_REQUEST,
            "Accept must include application/json or text/event-stream",
        ));
    }
    if let Some(content_type) = header_str(headers, &header::CONTENT_TYPE)
        && !content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Err(rpc_refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_REQUEST,
            "Content-Type must be application/json",
        ));
    }
    Ok(accepts)
}

/// The body's messages (and whether they came as a batch), within what no request may
/// cost in either era: the body size, a long batch, params no method takes.
async fn read_messages(gateway: &Gateway, body: Body) -> Result<(Vec<Message>, bool), Response> {
    let body = read_body(body).await.map_err(|e| match e {
        BodyError::TooLarge => rpc_refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_REQUEST,
            &format!("request body is over {MAX_BODY_BYTES} bytes"),
        ),
        BodyError::TimedOut(e) => {
            rpc_refusal(StatusCode::REQUEST_TIMEOUT, code::INVALID_REQUEST, &e)
        }
        BodyError::Broken(e) => rpc_refusal(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            &format!("reading the request body: {e}"),
        ),
    })?;
    let (messages, batch) = parse_payload(&body)
        .map_err(|error| rpc_error_response(StatusCode::BAD_REQUEST, Value::Null, &error))?;
    let limits = &gateway.config.limits;
    if let Err(error) = crate::transport::limits::check_batch(&messages, limits) {
        return Err(rpc_error_response(
            StatusCode::BAD_REQUEST,
            Value::Null,
            &error,
        ));
    }
    if let Err(error) = crate::transport::limits::check_params(&messages, batch) {
        let id = match batch {
            true => Value::Null,
            false => messages[0].id.clone().unwrap_or(Value::Null),
        };
        return Err(rpc_error_response(StatusCode::BAD_REQUEST, id, &error));
    }
    Ok((messages, batch))
}

/// A legacy request's `MCP-Protocol-Version`, when sent, must be one we speak.
fn check_version(headers: &HeaderMap) -> Result<(), Response> {
    match header_str(headers, &VERSION) {
        Some(version) if !SUPPORTED_VERSIONS.contains(&version) => Err(rpc_refusal(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            &format!(
                "unsupported MCP-Protocol-Version {version:?} (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// A session made by `initialize`, admitted only once it succeeds.
type NewSession = (String, ClientSession);

/// The session the messages run in: a new one for `initialize` (alone, never in a batch),
/// else the one the `Mcp-Session-Id` header names.
fn session_for(
    gateway: &Gateway,
    view: &View,
    headers: &HeaderMap,
    messages: &[Message],
    batch: bool,
) -> Result<(String, Option<NewSession>), Response> {
    let Some(init) = messages
        .iter()
        .find(|m| m.method.as_deref() == Some("initialize") && m.id.is_some())
    else {
        return session_of(gateway, view, headers).map(|id| (id.to_owned(), None));
    };
    if batch && messages.len() > 1 {
        return Err(rpc_refusal(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "initialize must not be part of a batch",
        ));
    }
    let requested = init
        .params_value()
        .ok()
        .and_then(|p| {
            p.get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let version = crate::views::negotiate_version(&requested);
    let key = gateway.snapshot.load().session_key.clone();
    let (id, session) = crate::sessions::with_credential(|credential| {
        let id = if key.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            crate::sessions::seal::seal(&key, view, version, credential)
        };
        (
            id,
            ClientSession::new(view.clone(), version.to_owned(), credential),
        )
    });
    Ok((id.clone(), Some((id, session))))
}

/// The answers to `messages`, one after another, and their size. A batch's answers are
/// held until the last, so they are counted as they come: the batch stops at the cap
/// instead of growing without bound.
async fn answer_each(
    gateway: &Gateway,
    view: &View,
    headers: &HeaderMap,
    session_id: &str,
    messages: Vec<Message>,
    batch: bool,
) -> Result<(Vec<Message>, usize), Response> {
    let limits = &gateway.config.limits;
    let mut answers = Vec::with_capacity(messages.len());
    let mut answered_bytes = 0;
    for message in messages {
        let came = came(headers);
        if let Some(answer) = Box::pin(gateway.handle_from(view, session_id, message, came)).await {
            answered_bytes += crate::transport::limits::answer_size(&answer);
            if answered_bytes > limits.max_response_bytes {
                let id = match batch {
                    true => Value::Null,
                    false => answer.id.clone().unwrap_or(Value::Null),
                };
                let error = crate::transport::limits::too_large(answered_bytes, limits);
                return Err(rpc_error_response(StatusCode::OK, id, &error));
            }
            answers.push(answer);
        }
    }
    Ok((answers, answered_bytes))
}

/// The answers as one JSON body (an array for a batch), or as one SSE event when the
/// client takes only SSE.
fn respond(
    answers: &[Message],
    answered_bytes: usize,
    batch: bool,
    accepts: Accepts,
    session_header: Option<&str>,
) -> Response {
    let body = if batch {
        let mut out = Vec::with_capacity(answered_bytes + 2);
        out.push(b'[');
        for (index, answer) in answers.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, answer).expect("a JSON-RPC message always serializes");
        }
        out.push(b']');
        out
    } else {
        answers[0].to_bytes()
    };
    if accepts.json {
        let mut response = json_response(StatusCode::OK, &body, session_header);
        if !batch {
            crate::access::mark_scope_refusal(&mut response, &answers[0]);
        }
        response
    } else {
        sse_response(&body, session_header)
    }
}

/// What the span of a request records of how it came: `None` (nothing read) while tracing
/// is off. The session's protocol version and the caller are read for a kept span only.
fn came(headers: &HeaderMap) -> Option<crate::views::Came> {
    if !mcpr_core::telemetry::enabled() {
        return None;
    }
    Some(crate::views::Came {
        transport: Some("tcp"),
        context: super::header_trace_context(headers),
        protocol_version: None,
        session_version: super::session_version,
        caller: super::caller,
    })
}

enum BodyError {
    TooLarge,
    /// Not received within `MCPR_BODY_TIMEOUT_SECS` (the listener's deadline).
    TimedOut(String),
    Broken(String),
}

/// Reads at most [`MAX_BODY_BYTES`]. An oversized body is drained (up to a bound) before the
/// 413 goes out, so the client reads the refusal instead of a reset connection.
async fn read_body(body: Body) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    const DRAIN_LIMIT: usize = 16 * MAX_BODY_BYTES;
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            use std::error::Error;
            match mcpr_tls::is_body_timeout(&e) || e.source().is_some_and(mcpr_tls::is_body_timeout)
            {
                true => {
                    BodyError::TimedOut(e.source().map_or_else(|| e.to_string(), |s| s.to_string()))
                }
                false => BodyError::Broken(e.to_string()),
            }
        })?;
        seen += chunk.len();
        if seen > MAX_BODY_BYTES {
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    seen += chunk.len();
                    if seen > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
            return Err(BodyError::TooLarge);
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(collected))
}

/// Answers one request as JSON when nothing else comes first; switches to an SSE stream as
/// soon as the upstream sends a message about the request (progress, a server-to-client
/// request), and then streams until the answer.
async fn streamed_answer(
    gateway: &Arc<Gateway>,
    view: View,
    session: String,
    message: Message,
    json_ok: bool,
    came: Option<crate::views::Came>,
) -> Response {
    let id = message
        .id
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let guard = gateway.delivery.open_stream(&session, &id, tx.clone());
    let task_gateway = gateway.clone();
    let task_limits = gateway.config.limits;
    // Driven right here while nothing streams (no task spawned on the common path).
    let mut answer = Box::pin(async move {
        task_gateway
            .handle_from(&view, &session, message, came)
            .await
    });
    let first_event = tokio::select! {
        biased;
        answer = &mut answer => {
            drop(guard);
            let Some(answer) = answer else { return StatusCode::ACCEPTED.into_response() };
            // Upstream messages are delivered before their answer is handed on: whatever
            // came with it is in the channel now.
            let mut before = Vec::new();
            while let Ok(message) = rx.try_recv() {
                before.push(message);
            }
            let limits = &task_limits;
            if crate::transport::limits::answer_size(&answer) > limits.max_response_bytes {
                let error = crate::transport::limits::too_large(crate::transport::limits::answer_size(&answer), limits);
                return rpc_error_response(StatusCode::OK, answer.id.clone().unwrap_or(Value::Null), &error);
            }
            let body = answer.to_bytes();
            if before.is_empty() {
                if !json_ok {
                    return sse_response(&body, None);
                }
                let mut response = json_response(StatusCode::OK, &body, None);
                crate::access::mark_scope_refusal(&mut response, &answer);
                return response;
            }
            let mut events: Vec<u8> = Vec::new();
            for message in before.iter().chain(std::iter::once(&body)) {
                events.extend_from_slice(&sse_event(message));
            }
            return (StatusCode::OK, [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], events).into_response();
        }
        event = rx.recv() => event,
    };
    // Something came before the answer: stream it, then whatever follows, then the answer.
    // The caller's access (auth.rs) goes along into the task.
    let session = guard.session().to_owned();
    tokio::spawn(crate::access::inherit(async move {
        let answer = answer.await;
        drop(guard);
        if let Some(answer) = answer {
            let size = crate::transport::limits::answer_size(&answer);
            let bytes = match size > task_limits.max_response_bytes {
                true => Message::error(
                    answer.id.clone().unwrap_or(Value::Null),
                    &crate::transport::limits::too_large(size, &task_limits),
                )
                .to_bytes(),
                false => answer.to_bytes(),
            };
            let _ = tx.send(bytes).await;
        }
    }));
    // Each event gets an id, and the request goes on when the connection drops: the client
    // resumes the stream with a GET naming the last event it got (`Last-Event-ID`).
    let request: Arc<str> = id.into();
    let (reader, events) = mpsc::channel::<Event>(64);
    let stream = Arc::new(AnswerStream {
        reader: tokio::sync::Mutex::new(Some(reader)),
    });
    if let Some(s) = gateway.sessions.get(&session) {
        s.open_answer_stream(&request, stream.clone());
    }
    tokio::spawn(forward_answer_stream(
        gateway.sessions_handle(),
        session,
        request,
        stream,
        first_event,
        rx,
    ));
    sse_events_response(received(events))
}

/// Records every message of a POST answer stream (its event id, kept for replay) and hands
/// it to the stream's reader of the moment, until the answer has gone.
async fn forward_answer_stream(
    sessions: Arc<crate::sessions::Sessions>,
    session: String,
    request: Arc<str>,
    stream: Arc<AnswerStream>,
    first: Option<Vec<u8>>,
    mut messages: mpsc::Receiver<Vec<u8>>,
) {
    let mut pending = first;
    loop {
        let message = match pending.take() {
            Some(message) => message,
            None => match messages.recv().await {
                Some(message) => message,
                None => break,
            },
        };
        // Recorded under the reader's lock, so a resuming reader misses nothing and gets
        // nothing twice.
        let mut reader = stream.reader.lock().await;
        let event = match sessions.get(&session) {
            Some(s) => s.record_sent(Some(&request), message),
            // A session this gateway does not hold: no id, nothing to resume.
            None => (0, Arc::new(message)),
        };
        if let Some(tx) = reader.as_ref()
            && tx.send(event).await.is_err()
        {
            *reader = None;
        }
    }
    if let Some(s) = sessions.get(&session) {
        s.close_answer_stream(&request);
    }
    // Unregistered first: a reader that takes the lock after this sees the stream is over.
    *stream.reader.lock().await = None;
}

/// An SSE response of events with their ids (0: none).
fn sse_events_response(events: impl futures::Stream<Item = Event> + Send + 'static) -> Response {
    let events = events.map(|(id, message)| {
        Ok::<_, std::convert::Infallible>(match id {
            0 => sse_event(&message),
            id => sse_event_with_id(id, &message),
        })
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

/// The events of a channel, until its senders are gone.
fn received(events: mpsc::Receiver<Event>) -> impl futures::Stream<Item = Event> {
    futures::stream::unfold(
        events,
        |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
    )
}

/// Resumes the POST answer stream of `request` after event `last`: what it sent since,
/// then, while the request runs, what it sends until the answer.
async fn resume_answer_stream(
    gateway: &Gateway,
    session: &str,
    request: Arc<str>,
    last: u64,
) -> Response {
    let (reader, events) = mpsc::channel::<Event>(64);
    let running = gateway
        .sessions
        .get(session)
        .and_then(|s| s.answer_stream(&request));
    let replay_from = |gateway: &Gateway| {
        gateway
            .sessions
            .get(session)
            .map(|s| s.sent_after(Some(&request), last))
            .unwrap_or_default()
    };
    let replay = match running {
        Some(stream) => {
            let mut current = stream.reader.lock().await;
            let replay = replay_from(gateway);
            let still_running = gateway
                .sessions
                .get(session)
                .is_some_and(|s| s.answer_stream(&request).is_some());
            if still_running {
                // This reader takes over from the one whose connection dropped.
                *current = Some(reader.clone());
            }
            replay
        }
        None => replay_from(gateway),
    };
    drop(reader);
    sse_events_response(futures::stream::iter(replay).chain(received(events)))
}

fn sse_event_with_id(id: u64, message: &[u8]) -> Bytes {
    let mut event = format!("id: {id}\nevent: message\ndata: ").into_bytes();
    event.extend_from_slice(message);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

fn sse_event(message: &[u8]) -> Bytes {
    let mut event = b"event: message\ndata: ".to_vec();
    event.extend_from_slice(message);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// The session's own SSE stream (GET): notifications and server-to-client requests that
/// belong to no open request. One stream per session at a time.
async fn open_session_stream(gateway: &Gateway, view: &View, headers: &HeaderMap) -> Response {
    let accept = header_str(headers, &header::ACCEPT).unwrap_or_default();
    if !accept.contains("text/event-stream") && !accept.contains("*/*") {
        return rpc_refusal(
            StatusCode::NOT_ACCEPTABLE,
            code::INVALID_REQUEST,
            "GET needs Accept: text/event-stream",
        );
    }
    let id = match session_of(gateway, view, headers) {
        Ok(id) => id,
        Err(refusal) => return refusal,
    };
    let (inbox, takeover) = match gateway.sessions.get(id) {
        Some(session) if &session.view == view => (session.inbox.clone(), session.takeover.clone()),
        _ => {
            return rpc_refusal(
                StatusCode::NOT_FOUND,
                code::INVALID_REQUEST,
                "unknown or expired session: initialize a new one",
            );
        }
    };
    let last_event_id =
        header_str(headers, "last-event-id").and_then(|v| v.trim().parse::<u64>().ok());
    // A Last-Event-ID of a POST answer stream resumes that stream, not the GET stream.
    let resumed = last_event_id.and_then(|last| {
        let stream = gateway.sessions.get(id)?.stream_of(last)??;
        Some((stream, last))
    });
    if let Some((request, last)) = resumed {
        return resume_answer_stream(gateway, id, request, last).await;
    }
    // One GET stream per session: a newer one (a client reconnecting, perhaps before the
    // server noticed the old connection is gone) replaces the open one.
    takeover.notify_waiters();
    let Ok(inbox) =
        tokio::time::timeout(std::time::Duration::from_secs(2), inbox.lock_owned()).await
    else {
        return rpc_refusal(
            StatusCode::CONFLICT,
            code::INVALID_REQUEST,
            "this session's GET stream could not be taken over",
        );
    };
    // Resumption: what was sent after the client's Last-Event-ID goes out again first.
    let replay = match last_event_id {
        Some(last) => gateway
            .sessions
            .get(id)
            .map(|s| s.sent_after(None, last))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let session_id = id.to_owned();
    let sessions = gateway.sessions_handle();
    let fresh = futures::stream::unfold(inbox, |mut inbox| async move {
        inbox.recv().await.map(|m| (m, inbox))
    })
    .filter_map(move |message| {
        let recorded = sessions
            .get(&session_id)
            .map(|s| s.record_sent(None, message));
        async move { recorded }
    });
    let messages = futures::stream::iter(replay)
        .chain(fresh)
        .map(|(event_id, message)| sse_event_with_id(event_id, &message));
    // A comment every 15 s keeps proxies from closing an idle stream.
    let keepalive = futures::stream::unfold((), |_| async {
        tokio::time::sleep(std::time::Duration::from_secs(15)).await;
        Some((Bytes::from_static(b": keepalive\n\n"), ()))
    });
    let replaced = async move { takeover.notified().await };
    let events = futures::stream::select(messages, keepalive)
        .take_until(replaced)
        .map(Ok::<_, std::convert::Infallible>);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &[u8], session: Option<&str>) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_vec(),
    )
        .into_response();
    if let Some(session) = session {
        response.headers_mut().insert(
            SESSION_HEADER,
            HeaderValue::from_str(session).expect("session ids are hex"),
        );
    }
    response
}

fn sse_response(body: &[u8], session: Option<&str>) -> Response {
    let mut event = b"event: message\ndata: ".to_vec();
    event.extend_from_slice(body);
    event.extend_from_slice(b"\n\n");
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        event,
    )
        .into_response();
    if let Some(session) = session {
        response.headers_mut().insert(
            SESSION_HEADER,
            HeaderValue::from_str(session).expect("session ids are hex"),
        );
    }
    response
}

fn rpc_error_response(status: StatusCode, id: Value, error: &RpcError) -> Response {
    json_response(status, &Message::error(id, error).to_bytes(), None)
}
