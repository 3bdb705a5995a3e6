//! The JSON-RPC 2.0 envelope as the data path sees it: method, id and error are parsed, while
//! `params` and `result` stay raw JSON so that whatever an upstream server or client sends
//! (fields and content types the router does not know) passes through byte for byte.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// JSON-RPC error codes used by the router (JSON-RPC 2.0 §5.1 and MCP).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server error: the upstream server is unavailable.
    pub const UPSTREAM_UNAVAILABLE: i64 = -32001;
    /// Implementation-defined server error: the upstream did not answer in time.
    pub const UPSTREAM_TIMEOUT: i64 = -32002;
}

/// One JSON-RPC message of any kind. Which kind is decided by the fields present.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub jsonrpc: JsonRpcVersion,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "request_id"
    )]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<RawValue>>,
}

/// A message id as MCP defines it: a string or an integer (`null`, allowed only on an error
/// answer to an unreadable request, reads as no id). Fractions and integers beyond 64 bits are
/// refused: serde_json holds them as `f64`, so the id echoed back could differ from the one
/// the client sent, and its answer would never be matched.
fn request_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(id @ Value::String(_)) => Ok(Some(id)),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(Value::Number(n))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "id must be a string or an integer of at most 64 bits, got {}",
            truncated(&other.to_string(), 40)
        ))),
    }
}

fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The literal `"2.0"`; anything else is an invalid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonRpcVersion;

impl Serialize for JsonRpcVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("2.0")
    }
}

impl<'de> Deserialize<'de> for JsonRpcVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if v == "2.0" {
            Ok(JsonRpcVersion)
        } else {
            Err(serde::de::Error::custom(format!(
                "jsonrpc must be \"2.0\", got {v:?}"
            )))
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

impl Message {
    pub fn kind(&self) -> Result<Kind, String> {
        match (&self.method, &self.id) {
            (Some(_), Some(_)) => Ok(Kind::Request),
            (Some(_), None) => Ok(Kind::Notification),
            (None, Some(_)) if self.result.is_some() || self.error.is_some() => Ok(Kind::Response),
            _ => Err("a JSON-RPC message needs a method (request or notification) or an id with result or error (response)".into()),
        }
    }

    pub fn request(id: Value, method: &str, params: Option<Value>) -> Self {
        Message {
            jsonrpc: JsonRpcVersion,
            id: Some(id),
            method: Some(method.to_owned()),
            params: params.map(|p| to_raw(&p)),
            result: None,
            error: None,
        }
    }

    pub fn notification(method: &str, params: Option<Value>) -> Self {
        Message {
            jsonrpc: JsonRpcVersion,
            id: None,
            method: Some(method.to_owned()),
            params: params.map(|p| to_raw(&p)),
            result: None,
            error: None,
        }
    }

    pub fn result(id: Value, result: Box<RawValue>) -> Self {
        Message {
            jsonrpc: JsonRpcVersion,
            id: Some(id),
            method: None,
            params: None,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(id: Value, error: &RpcError) -> Self {
        Message {
            jsonrpc: JsonRpcVersion,
            id: Some(id),
            method: None,
            params: None,
            result: None,
            error: Some(to_raw(
                &serde_json::to_value(error).expect("error serializes"),
            )),
        }
    }

    /// The params parsed as a JSON object (empty when absent).
    pub fn params_value(&self) -> Result<serde_json::Map<String, Value>, RpcError> {
        match &self.params {
            None => Ok(Default::default()),
            Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(Value::Null) => Ok(Default::default()),
                _ => Err(RpcError::invalid_params("params must be an object")),
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a JSON-RPC message always serializes")
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, RpcError> {
        serde_json::from_slice(bytes)
            .map_err(|e| RpcError::new(code::PARSE_ERROR, format!("invalid JSON-RPC message: {e}")))
    }
}

/// The body of an HTTP POST: a single message or a batch (JSON array, 2025-03-26), with
/// whether it was a batch. Unparseable JSON is a parse error; JSON that is not a JSON-RPC
/// message is an invalid request.
pub fn parse_payload(body: &[u8]) -> Result<(Vec<Message>, bool), RpcError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let values: Vec<Box<RawValue>> = serde_json::from_slice(body)
            .map_err(|e| RpcError::new(code::PARSE_ERROR, format!("invalid JSON: {e}")))?;
        if values.is_empty() {
            return Err(RpcError::new(code::INVALID_REQUEST, "empty batch"));
        }
        let messages = values
            .iter()
            .map(|v| {
                // Each element is JSON already: what fails here is its shape.
                Message::parse(v.get().as_bytes()).map_err(|e| {
                    RpcError::new(
                        code::INVALID_REQUEST,
                        format!("not a JSON-RPC 2.0 message: {}", e.message),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((messages, true))
    } else {
        let message = Message::parse(body).map_err(|e| {
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                RpcError::new(
                    code::INVALID_REQUEST,
                    format!("not a JSON-RPC 2.0 message: {}", e.message),
                )
            } else {
                e
            }
        })?;
        Ok((vec![message], false))
    }
}

/// `v` as raw JSON, written once (`to_raw_value` does not parse what it wrote).
pub fn to_raw(v: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).expect("a Value serializes")
}

/// `json`, one JSON value assembled from valid pieces (a member of our own written into a
/// valid object), as raw JSON without parsing it all again: serde_json writes a value that
/// serializes as its raw-value token verbatim, as it does its own `RawValue`s, and
/// `to_raw_value` keeps what it wrote. Debug builds (the tests) check that it parses.
pub fn assembled_raw(json: &str) -> Box<RawValue> {
    struct Verbatim<'a>(&'a str);
    impl Serialize for Verbatim<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct as _;
            // serde_json's token for a raw value (its `raw.rs`); a unit test below fails
            // should a new serde_json write it otherwise.
            const TOKEN: &str = "$serde_json::private::RawValue";
            let mut raw = serializer.serialize_struct(TOKEN, 1)?;
            raw.serialize_field(TOKEN, self.0)?;
            raw.end()
        }
    }
    debug_assert!(
        serde_json::from_str::<&RawValue>(json).is_ok_and(|raw| raw.get().len() == json.len()),
        "not one JSON value: {json}"
    );
    serde_json::value::to_raw_value(&Verbatim(json)).expect("text serializes")
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(code::INTERNAL_ERROR, message)
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (JSON-RPC error {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written as it is, not as a string nor an object of serde_json's token.
    #[test]
    fn assembled_raw_json_is_kept_verbatim() {
        let text =
            r#"{"_meta":{"traceparent":"00-ab-cd-00"},"name":"echo","arguments":{"s":"\"}"}}"#;
        let raw = assembled_raw(text);
        assert_eq!(raw.get(), text);
        let message = Message {
            jsonrpc: JsonRpcVersion,
            id: Some(Value::from(1)),
            method: Some("tools/call".into()),
            params: Some(raw),
            result: None,
            error: None,
        };
        let sent: Value = serde_json::from_slice(&message.to_bytes()).unwrap();
        assert_eq!(sent["params"]["_meta"]["traceparent"], "00-ab-cd-00");
        assert_eq!(sent["params"]["arguments"]["s"], "\"}");
        assert_eq!(to_raw(&sent["params"]).get(), text);
    }

    #[test]
    fn bodies() {
        let (m, batch) = parse_payload(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!((m.len(), batch), (1, false));
        let (m, batch) = parse_payload(br#" [{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#).unwrap();
        assert_eq!((m.len(), batch), (2, true));
        assert_eq!(parse_payload(b"{nope").unwrap_err().code, code::PARSE_ERROR);
        assert_eq!(
            parse_payload(br#"{"id":1}"#).unwrap_err().code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            parse_payload(b"[]").unwrap_err().code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn params_and_results_pass_through_untouched() {
        let text = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{"z":1,"a":[1.50,{"unknown":true}]},"_meta":{"k":"v"}}}"#;
        let msg = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(msg.kind().unwrap(), Kind::Request);
        assert_eq!(
            msg.params.as_ref().unwrap().get(),
            r#"{"name":"x","arguments":{"z":1,"a":[1.50,{"unknown":true}]},"_meta":{"k":"v"}}"#
        );
        assert_eq!(String::from_utf8(msg.to_bytes()).unwrap(), text);
    }

    #[test]
    fn ids_are_strings_or_integers() {
        for id in [
            r#""a""#,
            "0",
            "-9223372036854775808",
            "18446744073709551615",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let msg = Message::parse(text.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(msg.to_bytes()).unwrap(), text);
        }
        let none = Message::parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":1}}"#).unwrap();
        assert_eq!(none.id, None);
        for id in [
            "1.5",
            "1.0",
            "1e3",
            "18446744073709551616",
            "true",
            "[1]",
            r#"{"a":1}"#,
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let err = parse_payload(text.as_bytes()).unwrap_err();
            assert_eq!(err.code, code::INVALID_REQUEST, "{id}");
            assert!(
                err.message.contains("id must be a string or an integer"),
                "{}",
                err.message
            );
            let batch = format!("[{text}]");
            assert_eq!(
                parse_payload(batch.as_bytes()).unwrap_err().code,
                code::INVALID_REQUEST
            );
        }
    }

    #[test]
    fn rejects_wrong_version_and_shapeless_messages() {
        assert!(Message::parse(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).is_err());
        let m = Message::parse(br#"{"jsonrpc":"2.0","id":1}"#).unwrap();
        assert!(m.kind().is_err());
        assert_eq!(
            Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                .unwrap()
                .kind()
                .unwrap(),
            Kind::Notification
        );
    }
}
