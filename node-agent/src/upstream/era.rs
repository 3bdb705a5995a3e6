//! The rule between the eras on an upstream connection: a connection opened with
//! `initialize` is of the legacy (handshake) era, and the router never sends the modern
//! envelope (2026-07-28) on it, over stdio, a container's attach stream or HTTP alike.
//! Servers that speak both eras tell the eras apart by that envelope and refuse it on a
//! handshake connection (the Python SDK 2.x: "this connection serves the handshake protocol
//! era"), so a modern client's request reaches such an upstream as a legacy request: the
//! `io.modelcontextprotocol/*` keys leave its `_meta`, and the methods only the modern era
//! has are answered here. The gateway keeps what it needs of the envelope (capabilities,
//! log level) and shapes the answer for the modern client (`modern_bridge.rs`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use mcpr_core::jsonrpc::{Message, RpcError, code};
use serde_json::value::RawValue;

/// The `_meta` key prefix the specification reserves for the protocol's own keys.
const RESERVED_PREFIX: &str = "io.modelcontextprotocol/";

/// Methods of the modern era alone: a legacy upstream does not know them.
const MODERN_ONLY_METHODS: &[&str] = &["server/discover", "subscriptions/listen"];

/// The answer to a request a legacy upstream cannot take, if `msg` is one: -32601, as the
/// upstream itself would answer, without a round trip (and without a modern envelope on the
/// connection). The gateway serves `subscriptions/listen` itself on that answer.
pub fn refuse_modern_only(msg: &Message) -> Option<Message> {
    let method = msg.method.as_deref()?;
    if !MODERN_ONLY_METHODS.contains(&method) {
        return None;
    }
    let error = RpcError::new(
        code::METHOD_NOT_FOUND,
        format!(
            "method not found: {method} (the upstream speaks the handshake era, before protocol {})",
            mcpr_core::mcp_headers::MODERN_VERSION
        ),
    );
    Some(Message::error(
        msg.id.clone().unwrap_or(serde_json::Value::Null),
        &error,
    ))
}

/// Makes a message fit for a legacy connection: a modern request's `_meta` loses the
/// reserved keys. A message without the modern envelope (every legacy client's) is only
/// searched, with no allocation; the envelope's params are parsed two levels deep, the
/// arguments kept raw.
pub fn to_legacy(msg: &mut Message) {
    let Some(params) = msg.params.as_deref() else {
        return;
    };
    // The envelope's one required key marks it (the Python SDK tells the eras apart by it
    // alone); a request without it carries no modern keys to take out.
    if !mcpr_core::mcp_headers::mentions_protocol_version(params.get()) {
        return;
    }
    if let Some(stripped) = strip_reserved_meta(params.get()) {
        msg.params = Some(stripped);
    }
}

/// `params` without the reserved keys of its `_meta` (and without a `_meta` left empty);
/// `None` when there is nothing to take out or the params are not an object.
fn strip_reserved_meta(params: &str) -> Option<Box<RawValue>> {
    let mut top: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_str(params).ok()?;
    let meta: BTreeMap<Cow<'_, str>, &RawValue> =
        serde_json::from_str(top.get("_meta")?.get()).ok()?;
    if !meta.keys().any(|k| k.starts_with(RESERVED_PREFIX)) {
        return None;
    }
    let kept: BTreeMap<&str, &RawValue> = meta
        .iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
        .map(|(k, v)| (k.as_ref(), *v))
        .collect();
    let kept_meta;
    if kept.is_empty() {
        top.remove("_meta");
    } else {
        kept_meta = serde_json::value::to_raw_value(&kept).ok()?;
        top.insert(Cow::Borrowed("_meta"), &kept_meta);
    }
    serde_json::value::to_raw_value(&top).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn request(params: Value) -> Message {
        Message::request(json!(7), "tools/call", Some(params))
    }

    fn raw_request(params: &str) -> Message {
        let mut msg = Message::request(json!(1), "tools/call", None);
        msg.params = Some(RawValue::from_string(params.into()).unwrap());
        msg
    }

    fn params_of(msg: &Message) -> Value {
        serde_json::from_str(msg.params.as_ref().unwrap().get()).unwrap()
    }

    #[test]
    fn a_modern_request_loses_the_reserved_keys_and_keeps_the_rest() {
        let mut msg = request(json!({
            "name": "add",
            "arguments": {"a": 1, "b": {"_meta": {"io.modelcontextprotocol/protocolVersion": "x"}}},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
                "io.modelcontextprotocol/logLevel": "info",
                "progressToken": "p1",
                "com.example/trace": "t"
            }
        }));
        to_legacy(&mut msg);
        assert_eq!(
            params_of(&msg),
            json!({
                "name": "add",
                // Arguments are the tool's, untouched even where they look like an envelope.
                "arguments": {"a": 1, "b": {"_meta": {"io.modelcontextprotocol/protocolVersion": "x"}}},
                "_meta": {"progressToken": "p1", "com.example/trace": "t"}
            })
        );
        assert_eq!(msg.id, Some(json!(7)));
        assert_eq!(msg.method.as_deref(), Some("tools/call"));
    }

    #[test]
    fn a_meta_of_reserved_keys_alone_goes_away() {
        let mut msg = request(json!({
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }));
        to_legacy(&mut msg);
        assert_eq!(params_of(&msg), json!({}));
    }

    #[test]
    fn legacy_requests_are_left_as_they_are() {
        let text = r#"{"name":"t","arguments":{"x":"io.modelcontextprotocol/clientInfo"},"_meta":{"progressToken":3}}"#;
        let mut msg = raw_request(text);
        let before = msg.params.as_ref().map(|p| p.get().as_ptr());
        to_legacy(&mut msg);
        // The very same text: nothing was parsed or written again.
        assert_eq!(msg.params.as_ref().map(|p| p.get().as_ptr()), before);
        assert_eq!(msg.params.as_ref().unwrap().get(), text);
        // The version key named only inside the arguments changes nothing either.
        let text = r#"{"name":"t","arguments":{"k":"io.modelcontextprotocol/protocolVersion"}}"#;
        let mut msg = raw_request(text);
        to_legacy(&mut msg);
        assert_eq!(msg.params.as_ref().unwrap().get(), text);
        let mut bare = Message::request(json!(1), "tools/list", None);
        to_legacy(&mut bare);
        assert!(bare.params.is_none());
    }

    #[test]
    fn modern_only_methods_are_answered_method_not_found() {
        for method in MODERN_ONLY_METHODS {
            let msg = Message::request(json!("L"), method, Some(json!({})));
            let answer = refuse_modern_only(&msg).expect("refused");
            assert_eq!(answer.id, Some(json!("L")));
            let error: RpcError =
                serde_json::from_str(answer.error.as_ref().unwrap().get()).unwrap();
            assert_eq!(error.code, code::METHOD_NOT_FOUND);
            assert!(error.message.contains(method), "{}", error.message);
        }
        let call = Message::request(json!(1), "tools/call", None);
        assert!(refuse_modern_only(&call).is_none());
    }
}
