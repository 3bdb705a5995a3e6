//! The 2026-07-28 era's per-request protocol data, shared by the gateway (which checks what
//! a modern client sends) and the agent (which sends modern requests upstream over HTTP):
//!
//! - the `_meta` keys every modern request carries (`io.modelcontextprotocol/…`, SEP-2575);
//! - the standard HTTP headers that mirror the body so that middleboxes can route without
//!   parsing it (SEP-2243): `Mcp-Method`, `Mcp-Name` (the tool or prompt name, or the
//!   resource URI) and `Mcp-Param-{Name}` for each `tools/call` argument whose input-schema
//!   property is annotated `"x-mcp-header": "Name"`. Values that would not survive as a
//!   header are sent as `=?base64?…?=`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// The first protocol version of the modern (stateless) era.
pub const MODERN_VERSION: &str = "2026-07-28";

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

pub const HEADER_METHOD: &str = "mcp-method";
pub const HEADER_NAME: &str = "mcp-name";
pub const HEADER_PARAM_PREFIX: &str = "mcp-param-";

const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// Whether a protocol version string names the modern era or a later one. Versions are
/// dates, so they order as strings; anything that is not a date (`v999.0.0`) counts as
/// "later", which the caller then refuses as unsupported.
pub fn is_modern_version(version: &str) -> bool {
    version >= MODERN_VERSION
}

/// Whether raw params text mentions the `_meta` protocol-version key: the cheap test that
/// keeps legacy requests (every request of a legacy client) from being parsed again. A SIMD
/// substring search; `str::contains` cost about 2,000 instructions per request here.
pub fn mentions_protocol_version(params_text: &str) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(META_PROTOCOL_VERSION));
    FINDER.find(params_text.as_bytes()).is_some()
}

/// The request's `_meta` protocol version, when its params carry one.
pub fn meta_protocol_version(params: Option<&Value>) -> Option<&str> {
    params?.get("_meta")?.get(META_PROTOCOL_VERSION)?.as_str()
}

/// What the header logic reads of raw params, parsed without building a `Value` of the
/// whole: a modern request's `_meta` carries the client's info and capabilities, and
/// building a tree of them per request was a measurable share of a modern call's cost
/// (docs/BENCHMARKS.md). Other fields are skipped, not kept.
#[derive(serde::Deserialize, Default)]
struct ParamsHead<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<MetaHead<'a>>,
}

#[derive(serde::Deserialize)]
struct MetaHead<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    version: Option<std::borrow::Cow<'a, str>>,
}

fn head(params_text: &str) -> ParamsHead<'_> {
    serde_json::from_str(params_text).unwrap_or_default()
}

/// The `_meta` protocol version raw params name, if any (a legacy request's params are
/// only searched, not parsed).
pub fn protocol_version_in(params_text: &str) -> Option<String> {
    if !mentions_protocol_version(params_text) {
        return None;
    }
    head(params_text)
        .meta?
        .version
        .map(std::borrow::Cow::into_owned)
}

/// The value `Mcp-Name` must carry for `method`, if the method has one.
pub fn name_of(method: &str, params: Option<&Value>) -> Option<String> {
    params?.get(name_key(method)?)?.as_str().map(str::to_owned)
}

/// The params field `Mcp-Name` mirrors for `method`, if the method has one.
fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    }
}

/// The `(argument name, header suffix)` pairs a tool's input schema asks to mirror: computed
/// once per tool list, not per call.
pub fn param_annotations(input_schema: &Value) -> Vec<(String, String)> {
    let Some(properties) = input_schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .filter_map(|(name, property)| {
            let header = property.get("x-mcp-header")?.as_str()?;
            Some((name.clone(), header.to_owned()))
        })
        .collect()
}

/// A primitive argument's header form; objects, arrays and null have none.
fn primitive_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The header value for `text`: itself, or Base64-wrapped when it would not survive as a
/// header (surrounding whitespace, control or non-ASCII characters, or the wrapper itself).
pub fn encode_value(text: &str) -> String {
    let unsafe_text = text.starts_with([' ', '\t'])
        || text.ends_with([' ', '\t'])
        || text.chars().any(|c| c.is_control() || !c.is_ascii())
        || (text.starts_with(BASE64_PREFIX) && text.ends_with(BASE64_SUFFIX));
    if unsafe_text {
        format!("{BASE64_PREFIX}{}{BASE64_SUFFIX}", STANDARD.encode(text))
    } else {
        text.to_owned()
    }
}

/// The text a header value stands for; `None` when its Base64 wrapper holds invalid Base64
/// (bad padding or characters) or non-UTF-8 bytes. A value without the whole wrapper is
/// literal.
pub fn decode_value(raw: &str) -> Option<String> {
    let raw = raw.trim_matches([' ', '\t']);
    match raw
        .strip_prefix(BASE64_PREFIX)
        .and_then(|inner| inner.strip_suffix(BASE64_SUFFIX))
    {
        Some(inner) => String::from_utf8(STANDARD.decode(inner).ok()?).ok(),
        None => Some(raw.to_owned()),
    }
}

/// The standard headers (lowercase names) a modern request must carry, given the called
/// tool's `x-mcp-header` annotations (`param_annotations`) for `tools/call`.
pub fn request_headers(
    method: &str,
    params: Option<&Value>,
    annotations: &[(String, String)],
) -> Vec<(String, String)> {
    let mut headers = vec![(HEADER_METHOD.to_owned(), method.to_owned())];
    if let Some(name) = name_of(method, params) {
        headers.push((HEADER_NAME.to_owned(), encode_value(&name)));
    }
    if method == "tools/call"
        && let Some(arguments) = params.and_then(|p| p.get("arguments"))
    {
        for (argument, suffix) in annotations {
            if let Some(text) = arguments.get(argument).and_then(primitive_text) {
                headers.push((
                    format!("{HEADER_PARAM_PREFIX}{}", suffix.to_ascii_lowercase()),
                    encode_value(&text),
                ));
            }
        }
    }
    headers
}

/// `request_headers` from raw params: only a call whose tool mirrors arguments has its
/// params parsed whole.
pub fn request_headers_raw(
    method: &str,
    params_text: Option<&str>,
    annotations: &[(String, String)],
) -> Vec<(String, String)> {
    if method == "tools/call" && !annotations.is_empty() {
        let params = params_text.and_then(|p| serde_json::from_str::<Value>(p).ok());
        return request_headers(method, params.as_ref(), annotations);
    }
    let mut headers = vec![(HEADER_METHOD.to_owned(), method.to_owned())];
    let head = params_text.map(head).unwrap_or_default();
    let name = match name_key(method) {
        Some("name") => head.name,
        Some(_) => head.uri,
        None => None,
    };
    if let Some(name) = name {
        headers.push((HEADER_NAME.to_owned(), encode_value(&name)));
    }
    headers
}

/// Checks the standard headers of a modern request against its body. `header` returns a
/// header's only value (an error when it is repeated or not text). The error says which
/// header is wrong and how; the caller answers it with HeaderMismatch (-32020, HTTP 400).
pub fn validate_request_headers<'h>(
    header: impl Fn(&str) -> Result<Option<&'h str>, String>,
    method: &str,
    params: Option<&Value>,
    annotations: &[(String, String)],
) -> Result<(), String> {
    match header(HEADER_METHOD)?.map(|v| v.trim_matches([' ', '\t'])) {
        None => return Err("missing required Mcp-Method header".into()),
        Some(value) if value != method => {
            return Err(format!(
                "Mcp-Method header {value:?} does not match the body's method {method:?}"
            ));
        }
        Some(_) => {}
    }
    if let Some(expected) = name_of(method, params) {
        let Some(raw) = header(HEADER_NAME)? else {
            return Err(format!("missing required Mcp-Name header for {method}"));
        };
        let decoded =
            decode_value(raw).ok_or_else(|| "Mcp-Name header is not valid Base64".to_owned())?;
        if decoded != expected {
            return Err(format!(
                "Mcp-Name header {decoded:?} does not match the body's {expected:?}"
            ));
        }
    }
    if method == "tools/call" {
        let arguments = params.and_then(|p| p.get("arguments"));
        for (argument, suffix) in annotations {
            let name = format!("Mcp-Param-{suffix}");
            let in_header = header(&format!(
                "{HEADER_PARAM_PREFIX}{}",
                suffix.to_ascii_lowercase()
            ))?;
            let in_body = arguments
                .and_then(|a| a.get(argument))
                .and_then(primitive_text);
            match (in_header, in_body) {
                (None, None) => {}
                (Some(_), None) => {
                    return Err(format!(
                        "{name} header given but argument {argument:?} is absent"
                    ));
                }
                (None, Some(_)) => {
                    return Err(format!("missing {name} header for argument {argument:?}"));
                }
                (Some(raw), Some(expected)) => {
                    let decoded = decode_value(raw)
                        .ok_or_else(|| format!("{name} header is not valid Base64"))?;
                    if decoded != expected {
                        return Err(format!(
                            "{name} header {decoded:?} does not match argument {argument:?} ({expected:?})"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_test_finds_the_protocol_version_key() {
        assert!(mentions_protocol_version(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#
        ));
        assert!(!mentions_protocol_version(
            r#"{"name":"echo","arguments":{}}"#
        ));
        assert!(!mentions_protocol_version(""));
    }
    use serde_json::json;

    fn lookup<'a>(
        pairs: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&str) -> Result<Option<&'a str>, String> {
        move |name| {
            Ok(pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v))
        }
    }

    #[test]
    fn values_round_trip_and_bad_base64_is_refused() {
        for text in ["us-west1", "  padded ", "ünïcode", "=?base64?x?="] {
            assert_eq!(decode_value(&encode_value(text)).as_deref(), Some(text));
        }
        assert_eq!(encode_value("plain"), "plain");
        assert_eq!(
            decode_value("=?base64?SGVsbG8=?=").as_deref(),
            Some("Hello")
        );
        assert_eq!(decode_value("=?base64?SGVsbG8?="), None, "missing padding");
        assert_eq!(
            decode_value("=?base64?SGVs!!!bG8=?="),
            None,
            "bad characters"
        );
        assert_eq!(
            decode_value("=?base64?SGVsbG8=").as_deref(),
            Some("=?base64?SGVsbG8=")
        );
    }

    #[test]
    fn raw_params_give_the_version_and_the_name_headers() {
        let params = json!({"name": "echo", "arguments": {"text": "hi"}, "_meta": {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_INFO: {"name": "c"}}}).to_string();
        assert_eq!(protocol_version_in(&params).as_deref(), Some("2026-07-28"));
        assert_eq!(protocol_version_in(r#"{"name":"echo"}"#), None);
        assert_eq!(
            request_headers_raw("tools/call", Some(&params), &[]),
            [
                (HEADER_METHOD.to_owned(), "tools/call".to_owned()),
                (HEADER_NAME.to_owned(), "echo".to_owned())
            ]
        );
        assert_eq!(
            request_headers_raw("resources/read", Some(r#"{"uri":"file:///é"}"#), &[])[1].1,
            encode_value("file:///é")
        );
        assert_eq!(request_headers_raw("tools/list", None, &[]).len(), 1);
    }

    #[test]
    fn headers_are_checked_against_the_body() {
        let schema =
            json!({"properties": {"region": {"type": "string", "x-mcp-header": "Region"}}});
        let annotations = param_annotations(&schema);
        let params = json!({"name": "t", "arguments": {"region": "eu"}});
        let ok = [
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", " t "),
            ("Mcp-Param-Region", "eu"),
        ];
        assert!(
            validate_request_headers(lookup(&ok), "tools/call", Some(&params), &annotations)
                .is_ok()
        );
        let built = request_headers("tools/call", Some(&params), &annotations);
        assert_eq!(
            request_headers_raw("tools/call", Some(&params.to_string()), &annotations),
            built
        );
        assert_eq!(built[2], ("mcp-param-region".to_owned(), "eu".to_owned()));

        let missing = [("Mcp-Method", "tools/call"), ("Mcp-Name", "t")];
        let error =
            validate_request_headers(lookup(&missing), "tools/call", Some(&params), &annotations);
        assert!(error.unwrap_err().contains("Mcp-Param-Region"));
        let wrong = [("Mcp-Method", "TOOLS/LIST")];
        assert!(validate_request_headers(lookup(&wrong), "tools/list", None, &[]).is_err());
        assert!(validate_request_headers(lookup(&[]), "tools/list", None, &[]).is_err());
    }
}
