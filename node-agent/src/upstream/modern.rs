//! Upstreams of the modern era alone (2026-07-28: no `initialize`). The agent finds them
//! when `initialize` fails (over HTTP at once; a stdio server, which may have ended, on its
//! next start): `server/discover` then says what the server is, and every
//! request goes out stateless, with the agent's per-request `_meta` where the client's
//! request carries none (a legacy client, or the agent's own requests).
//!
//! The other direction of the bridge between the eras lives here: when such an upstream
//! answers a legacy client's request with an `InputRequiredResult`, the agent puts each
//! input request to that client as a server-to-client request (elicitation, sampling,
//! roots, on the client's own request stream), and retries the request with the answers in
//! `inputResponses` and the upstream's `requestState`, until the result is complete.
//! What the modern era removed is kept for legacy clients by the agent: `logging/setLevel`
//! becomes their requests' `logLevel`, `resources/subscribe` a URI on the agent's
//! `subscriptions/listen` stream (`follow`), whose notifications are routed as a legacy
//! upstream's are.

use std::time::Duration;

use mcpr_core::jsonrpc::{self, Message, RpcError, code};
use mcpr_core::mcp_headers::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_PROTOCOL_VERSION,
    META_SERVER_INFO, MODERN_VERSION, is_modern_version,
};

/// UnsupportedProtocolVersion: what a modern-only server answers `initialize` with.
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
use serde_json::{Map, Value, json};

use super::Connection;
use super::routing::Origin;

/// Rounds of input requests one request may take before the agent gives up.
const MAX_ROUNDS: usize = 16;

/// What the agent keeps for an upstream of the modern era alone: its own `_meta`, and what
/// legacy clients set up with methods the modern era removed — their log level (sent as
/// each of their requests' `logLevel`) and the resources they subscribed to (one listen
/// stream of the agent's carries them all, with the list changes).
pub struct ModernUpstream {
    pub meta: Map<String, Value>,
    log_levels: dashmap::DashMap<String, String>,
    /// URI -> the client sessions subscribed to it.
    subscriptions: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>,
    /// Bumped on each change of `subscriptions`: the listen stream reopens with the new set.
    pub subscriptions_changed: tokio::sync::watch::Sender<u64>,
}

impl ModernUpstream {
    pub fn new(meta: Map<String, Value>) -> ModernUpstream {
        ModernUpstream {
            meta,
            log_levels: Default::default(),
            subscriptions: Default::default(),
            subscriptions_changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// The filter of the agent's listen stream: every list change, every subscribed URI.
    pub fn listen_params(&self) -> Value {
        let uris: Vec<String> = self
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        json!({
            "_meta": self.meta,
            "notifications": {
                "toolsListChanged": true,
                "promptsListChanged": true,
                "resourcesListChanged": true,
                "resourceSubscriptions": uris,
            }
        })
    }

    /// Answers what the modern era removed, for a legacy client; `None` for the rest.
    fn answer_removed(
        &self,
        method: &str,
        params: &Value,
        session: &str,
    ) -> Option<Result<Value, RpcError>> {
        let uri = || {
            params["uri"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| RpcError::invalid_params(format!("{method} needs params.uri")))
        };
        match method {
            "logging/setLevel" => Some(match params["level"].as_str() {
                Some(level) => {
                    self.log_levels.insert(session.to_owned(), level.to_owned());
                    Ok(json!({}))
                }
                None => Err(RpcError::invalid_params(
                    "logging/setLevel needs params.level",
                )),
            }),
            "resources/subscribe" | "resources/unsubscribe" => Some(uri().map(|uri| {
                let mut subscriptions =
                    self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
                let sessions = subscriptions.entry(uri.clone()).or_default();
                sessions.retain(|s| s != session);
                if method == "resources/subscribe" {
                    sessions.push(session.to_owned());
                }
                if sessions.is_empty() {
                    subscriptions.remove(&uri);
                }
                drop(subscriptions);
                self.subscriptions_changed.send_modify(|v| *v += 1);
                json!({})
            })),
            "ping" => Some(Ok(json!({}))),
            _ => None,
        }
    }
}

/// Keeps the agent's `subscriptions/listen` stream open on the upstream (list changes and
/// the URIs legacy clients subscribed to), reopening it when the subscriptions change or
/// it ends, until the connection closes.
pub async fn follow(conn: &Connection, upstream: &ModernUpstream) {
    let mut changed = upstream.subscriptions_changed.subscribe();
    loop {
        let listen = Message::request(
            json!(0),
            "subscriptions/listen",
            Some(upstream.listen_params()),
        );
        tokio::select! {
            ended = conn.send_request(listen, Origin::none()) => {
                let unknown = ended
                    .and_then(super::result_of)
                    .is_err_and(|e| e.code == code::METHOD_NOT_FOUND);
                if unknown {
                    tracing::debug!("the upstream does not offer subscriptions/listen");
                    return;
                }
                // Ended (timed out, failed): again, not in a tight loop.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = changed.changed() => {}
            _ = conn.closed() => return,
        }
    }
}

/// Relays a request to an upstream of the modern era alone (see the module comment).
pub async fn relay(
    conn: &Connection,
    upstream: &ModernUpstream,
    msg: Message,
    origin: Origin,
    timeout: Duration,
) -> Result<Message, RpcError> {
    let id = msg.id.clone().unwrap_or(Value::Null);
    let method = msg.method.clone().unwrap_or_default();
    let (mut params, from_modern_client) =
        stateless_params(msg.params.as_ref().map(|p| p.get()), &upstream.meta);
    if from_modern_client || origin.is_none() {
        let request = Message::request(id, &method, Some(params));
        return conn.send_request(request, origin).await;
    }
    if let Some(answer) = upstream.answer_removed(&method, &params, &origin.client_session) {
        return Ok(match answer {
            Ok(result) => Message::result(id, jsonrpc::to_raw(&result)),
            Err(error) => Message::error(id, &error),
        });
    }
    if let Some(level) = upstream.log_levels.get(&origin.client_session)
        && let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut)
    {
        meta.insert(META_LOG_LEVEL.into(), json!(level.value()));
    }
    request_for_legacy_client(conn, id, &method, params, origin, timeout).await
}

/// The `_meta` the agent sends on requests that carry none of their own: it relays
/// whatever a client may be asked, so it declares every client capability.
pub fn agent_meta(client_name: &str) -> Map<String, Value> {
    let meta = json!({
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_INFO: {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
        META_CLIENT_CAPABILITIES: {"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}},
    });
    match meta {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// Launches (command and arguments) of stdio servers that refused `initialize` because they
/// speak only the modern era: their next start opens with `server/discover`. (Opening every
/// stdio server that way would be unsafe: servers of the legacy era may end on a request
/// before `initialize`.)
static MODERN_ONLY_LAUNCHES: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashSet<String>>,
> = std::sync::LazyLock::new(Default::default);

/// Its later starts (restarts, other `per_client` processes) open with `server/discover`.
pub fn remember_modern_only(launch: &str) {
    MODERN_ONLY_LAUNCHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(launch.to_owned());
}

pub fn known_modern_only(launch: &str) -> bool {
    MODERN_ONLY_LAUNCHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(launch)
}

/// Whether a refused `initialize` says the server speaks only the modern era:
/// UnsupportedProtocolVersion listing modern versions alone.
pub fn refused_for_modern_only(refused: &RpcError) -> bool {
    refused.code == UNSUPPORTED_PROTOCOL_VERSION
        && refused
            .data
            .as_ref()
            .and_then(|d| d.get("supported"))
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().all(|v| v.as_str().is_some_and(is_modern_version)))
}

/// The handshake error for a stdio server that refused `initialize` and could not be asked
/// `server/discover` instead (it ended, as servers of the modern era alone may after
/// refusing). When it refused for speaking only the modern era, its launch is remembered so
/// that the restart speaks `server/discover`, and the error says so.
pub fn stdio_refusal(refused: RpcError, launch: Option<&String>) -> RpcError {
    let (true, Some(launch)) = (refused_for_modern_only(&refused), launch) else {
        return refused;
    };
    remember_modern_only(launch);
    RpcError::new(
        refused.code,
        format!(
            "the server speaks only protocol {MODERN_VERSION}, refused initialize and ended; its next start opens with server/discover"
        ),
    )
}

/// `server/discover`; returns what the gateway knows of a server (its `initialize` result's
/// shape: protocolVersion, capabilities, serverInfo, instructions), raw.
pub async fn discover(conn: &Connection, meta: &Map<String, Value>) -> Result<String, RpcError> {
    let request = Message::request(json!(0), "server/discover", Some(json!({ "_meta": meta })));
    let result = super::result_of(conn.request(request).await?)?;
    let result: Value = serde_json::from_str(result.get()).map_err(|e| {
        RpcError::internal(format!("upstream sent an invalid discover result: {e}"))
    })?;
    let speaks_modern = result["supportedVersions"]
        .as_array()
        .is_some_and(|v| v.iter().any(|v| v == MODERN_VERSION));
    if !speaks_modern {
        return Err(RpcError::internal(format!(
            "the upstream does not support protocol {MODERN_VERSION} (supportedVersions: {})",
            result["supportedVersions"]
        )));
    }
    let mut info = json!({
        "protocolVersion": MODERN_VERSION,
        "capabilities": result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
    });
    if let Some(server_info) = result.get("_meta").and_then(|m| m.get(META_SERVER_INFO)) {
        info["serverInfo"] = server_info.clone();
    }
    if let Some(instructions) = result.get("instructions") {
        info["instructions"] = instructions.clone();
    }
    Ok(info.to_string())
}

/// A request as the modern upstream takes it: `params._meta` completed with the agent's
/// keys where the request has none of its own. Returns the params and whether the request
/// came from a modern client (which then handles input requests itself).
pub fn stateless_params(params: Option<&str>, meta: &Map<String, Value>) -> (Value, bool) {
    let mut params: Value = params
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return (params, false);
    }
    let from_modern_client = mcpr_core::mcp_headers::meta_protocol_version(Some(&params)).is_some();
    if !from_modern_client {
        let request_meta = params
            .as_object_mut()
            .expect("checked above")
            .entry("_meta")
            .or_insert_with(|| json!({}));
        if let Value::Object(request_meta) = request_meta {
            for (key, value) in meta {
                request_meta
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    (params, from_modern_client)
}

/// Relays a legacy client's request to a modern upstream, answering the upstream's input
/// requests by asking the client, round after round.
async fn request_for_legacy_client(
    conn: &Connection,
    id: Value,
    method: &str,
    mut params: Value,
    origin: Origin,
    timeout: Duration,
) -> Result<Message, RpcError> {
    for _round in 0..MAX_ROUNDS {
        let request = Message::request(id.clone(), method, Some(params.clone()));
        let mut response = conn.send_request(request, origin.clone()).await?;
        let Some(result) = response
            .result
            .as_ref()
            .and_then(|r| serde_json::from_str::<Map<String, Value>>(r.get()).ok())
        else {
            return Ok(response);
        };
        if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
            // A legacy client's results have no resultType.
            if result.get("resultType").is_some() {
                let mut result = result;
                result.remove("resultType");
                response.result = Some(jsonrpc::to_raw(&Value::Object(result)));
            }
            return Ok(response);
        }
        let requests = result
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let responses = ask_client(conn, &origin, requests, timeout).await?;
        params["inputResponses"] = Value::Object(responses);
        match result.get("requestState") {
            Some(state) => params["requestState"] = state.clone(),
            None => {
                if let Some(map) = params.as_object_mut() {
                    map.remove("requestState");
                }
            }
        }
    }
    Err(RpcError::internal(format!(
        "the upstream asked for input more than {MAX_ROUNDS} times"
    )))
}

/// Puts each input request to the client as a server-to-client request; returns the
/// answers by key.
async fn ask_client(
    conn: &Connection,
    origin: &Origin,
    requests: Map<String, Value>,
    timeout: Duration,
) -> Result<Map<String, Value>, RpcError> {
    let mut waiting = Vec::with_capacity(requests.len());
    for (key, request) in requests {
        let method = request["method"].as_str().unwrap_or_default().to_owned();
        let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
        let Some(answered) = conn.routing.ask(origin, &method, params) else {
            return Err(RpcError::new(
                code::UPSTREAM_UNAVAILABLE,
                format!(
                    "the upstream needs the client to answer {method}, but the client cannot be reached"
                ),
            ));
        };
        waiting.push((key, method, answered));
    }
    let mut responses = Map::new();
    for (key, method, answered) in waiting {
        let answer = match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) | Err(_) => {
                return Err(RpcError::new(
                    code::UPSTREAM_TIMEOUT,
                    format!("the client did not answer {method} in time"),
                ));
            }
        };
        match super::result_of(answer) {
            Ok(result) => {
                let value = serde_json::from_str(result.get()).unwrap_or(Value::Null);
                responses.insert(key, value);
            }
            Err(error) => {
                return Err(RpcError::new(
                    error.code,
                    format!("the client could not answer {method}: {}", error.message),
                ));
            }
        }
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_completes_meta_but_never_overrides_a_clients() {
        let meta = agent_meta("agent");
        let (params, modern) =
            stateless_params(Some(r#"{"name":"t","_meta":{"progressToken":1}}"#), &meta);
        assert!(!modern);
        assert_eq!(params["_meta"]["progressToken"], 1);
        assert_eq!(params["_meta"][META_PROTOCOL_VERSION], MODERN_VERSION);
        let client = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}"#;
        let (params, modern) = stateless_params(Some(client), &meta);
        assert!(modern);
        assert_eq!(params["_meta"][META_CLIENT_CAPABILITIES], json!({}));
        assert!(params["_meta"].get(META_CLIENT_INFO).is_none());
    }
}
