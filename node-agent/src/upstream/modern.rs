//! Upstreams of the modern era alone (2026-07-28: no `initialize`). The remote runtime finds
//! them when `initialize` fails: `server/discover` then says what the server is, and every
//! request goes out stateless, with the agent's per-request `_meta` where the client's
//! request carries none (a legacy client, or the agent's own requests).
//!
//! The other direction of the bridge between the eras lives here: when such an upstream
//! answers a legacy client's request with an `InputRequiredResult`, the agent puts each
//! input request to that client as a server-to-client request (elicitation, sampling,
//! roots, on the client's own request stream), and retries the request with the answers in
//! `inputResponses` and the upstream's `requestState`, until the result is complete.

use std::time::Duration;

use mcpr_core::jsonrpc::{self, Message, RpcError, code};
use mcpr_core::mcp_headers::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, META_SERVER_INFO,
    MODERN_VERSION,
};
use serde_json::{Map, Value, json};

use super::Connection;
use super::routing::Origin;

/// Rounds of input requests one request may take before the agent gives up.
const MAX_ROUNDS: usize = 16;

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
pub async fn request_for_legacy_client(
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
