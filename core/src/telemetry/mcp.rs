//! MCP spans as the OpenTelemetry semantic conventions for MCP name them, and the trace
//! context an MCP request carries in `params._meta` (`traceparent`, `tracestate`, SEP-414).
//!
//! Everything here is called only when [`super::enabled`]: an untraced router never parses a
//! `_meta` nor rewrites a payload.
//!
//! The sampling decision is made once per request, at its first span in a process
//! ([`first_span`]), before any `tracing` span exists. A request the sampler drops then runs
//! with no span at all ([`dropped_in`]): the gateway, the relay, the agent and the upstream
//! call only pass its context on, with flags `00`, so that tracing at a low ratio costs
//! almost nothing on the calls it does not keep (docs/BENCHMARKS.md, issue 14).

use std::collections::HashMap;
use std::future::Future;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    SamplingDecision, SpanId, SpanKind, Status, TraceContextExt as _, TraceId,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, ShouldSample as _};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::TRACE_TARGET;
use crate::jsonrpc::{Message, RpcError};

pub use opentelemetry::Context;

/// Which side of an exchange a span is (OpenTelemetry span kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Receiving the request: the gateway from its client, the agent from the relay.
    Server,
    /// Sending it on: the gateway's relay call, the agent's request to the upstream.
    Client,
    /// Work inside a process (a sandbox run).
    Internal,
}

/// A W3C trace context as text (`traceparent`, `tracestate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: String,
}

impl TraceContext {
    /// The context as a parent, or `None` when `traceparent` is not a valid one.
    pub fn parent(&self) -> Option<Context> {
        if self.traceparent.is_empty() {
            return None;
        }
        let mut carrier = HashMap::with_capacity(2);
        carrier.insert("traceparent".to_owned(), self.traceparent.clone());
        if !self.tracestate.is_empty() {
            carrier.insert("tracestate".to_owned(), self.tracestate.clone());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        cx.span().span_context().is_valid().then_some(cx)
    }

    /// The context of `span`, for the next hop.
    pub fn of(span: &Span) -> TraceContext {
        let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        TraceContext {
            traceparent: carrier.remove("traceparent").unwrap_or_default(),
            tracestate: carrier.remove("tracestate").unwrap_or_default(),
        }
    }

    /// `params._meta.traceparent` (and `tracestate`) of a request, if it has one.
    pub fn from_meta(message: &Message) -> Option<TraceContext> {
        #[derive(Deserialize)]
        struct Params {
            #[serde(rename = "_meta")]
            meta: Option<Meta>,
        }
        #[derive(Deserialize)]
        struct Meta {
            traceparent: Option<String>,
            tracestate: Option<String>,
        }
        let params = message.params.as_ref()?.get();
        // Most requests carry none: a substring search spares them the parse.
        if !params.contains("traceparent") {
            return None;
        }
        let params: Params = serde_json::from_str(params).ok()?;
        let meta = params.meta?;
        Some(TraceContext {
            traceparent: meta.traceparent?,
            tracestate: meta.tracestate.unwrap_or_default(),
        })
    }

    /// Puts this context in `params._meta` of `message`, beside whatever else `_meta` and
    /// `params` hold (replacing an earlier `traceparent`, which was for the previous hop). A
    /// message whose `params` or `_meta` is not an object is left as it is.
    pub fn put_in_meta(&self, message: &mut Message) {
        if self.traceparent.is_empty() {
            return;
        }
        if let Some(spliced) = self.spliced(message.params.as_deref()) {
            message.params = Some(spliced);
            return;
        }
        let mut params = match &message.params {
            None => Map::new(),
            Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
                Ok(Value::Object(params)) => params,
                _ => return,
            },
        };
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            return;
        };
        meta.insert(
            "traceparent".into(),
            Value::String(self.traceparent.clone()),
        );
        if self.tracestate.is_empty() {
            meta.remove("tracestate");
        } else {
            meta.insert("tracestate".into(), Value::String(self.tracestate.clone()));
        }
        message.params = Some(crate::jsonrpc::to_raw(&Value::Object(params)));
    }
}

impl TraceContext {
    /// `params` with `_meta` written in front of its members, without parsing it into a
    /// tree: for the usual `params`, an object with no `_meta`. Anything that might hold one
    /// (the text `meta` anywhere, or a `\u` escape that could spell it) is left to the
    /// parsing path (`None`).
    fn spliced(&self, params: Option<&RawValue>) -> Option<Box<RawValue>> {
        let text = params.map_or("{}", RawValue::get);
        let members = text.strip_prefix('{')?;
        // One pass for both (two substring searches cost twice their set-up).
        let suspect = |at: usize| match text.as_bytes()[at] {
            b'\\' => text.as_bytes().get(at + 1) == Some(&b'u'),
            _ => text.as_bytes()[at..].starts_with(b"meta"),
        };
        if memchr::memchr2_iter(b'm', b'\\', text.as_bytes()).any(suspect) {
            return None;
        }
        let mut out = String::with_capacity(text.len() + 40 + self.traceparent.len() * 2);
        out.push_str(r#"{"_meta":{"traceparent":"#);
        push_json_string(&mut out, &self.traceparent);
        if !self.tracestate.is_empty() {
            out.push_str(r#","tracestate":"#);
            push_json_string(&mut out, &self.tracestate);
        }
        out.push('}');
        if !members.trim_start().starts_with('}') {
            out.push(',');
        }
        out.push_str(members);
        // A valid object's members behind a member of our own: valid, not parsed again.
        Some(crate::jsonrpc::assembled_raw(&out))
    }
}

/// `text` as a JSON string: as it is between quotes when nothing in it needs escaping (a
/// `traceparent` never does), else as serde_json escapes it.
fn push_json_string(out: &mut String, text: &str) {
    // One pass without an early exit, which the compiler runs over many bytes at a time.
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b.wrapping_sub(0x20) < 0x5f) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).expect("a string serializes"));
    }
}

tokio::task_local! {
    /// The context of the request being handled when its trace was dropped by the sampler.
    static DROPPED: TraceContext;
}

/// A request's first span in this process, or the context it goes on with when the sampler
/// dropped its trace.
pub enum Traced {
    Span(Span),
    Dropped(TraceContext),
}

/// The first span of a request in this process: the gateway's for a client's request, a
/// remote agent's for a relay frame. `parent` is the context it continues (the client's, the
/// frame's), `None` for a new trace. The configured sampler decides here, on `parent` and on
/// the trace id the span will have, before any span is made; the span then takes that trace
/// id, so the SDK, deciding again as it starts the span, agrees. A dropped trace gets a
/// `traceparent` of its own (a new span id, flags `00`) for the next hops, and no span.
pub fn first_span(message: &Message, side: Side, parent: Option<Context>) -> Traced {
    let Some(sampler) = super::sampler() else {
        return Traced::Span(request_span(message, side, parent));
    };
    let ids = RandomIdGenerator::default();
    let parent_trace = parent
        .as_ref()
        .map(|cx| cx.span().span_context().trace_id());
    let trace_id = parent_trace.unwrap_or_else(|| ids.new_trace_id());
    let kind = match side {
        Side::Server => SpanKind::Server,
        Side::Client => SpanKind::Client,
        Side::Internal => SpanKind::Internal,
    };
    let method = message.method.as_deref().unwrap_or_default();
    let decided = sampler.should_sample(parent.as_ref(), trace_id, method, &kind, &[], &[]);
    if decided.decision == SamplingDecision::Drop {
        return Traced::Dropped(TraceContext {
            traceparent: unsampled_traceparent(trace_id, ids.new_span_id()),
            tracestate: decided.trace_state.header(),
        });
    }
    Traced::Span(super::with_trace_id(trace_id, || {
        request_span(message, side, parent)
    }))
}

/// `00-{trace id}-{span id}-00` (W3C Trace Context, not sampled), written digit by digit
/// into a buffer of its length: the formatting machinery, or a `String` pushed a character
/// at a time, cost more than the rest of a dropped trace's decision.
fn unsampled_traceparent(trace_id: TraceId, span_id: SpanId) -> String {
    fn hex(out: &mut [u8], bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 15)];
        }
    }
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(&mut out[3..35], &trace_id.to_bytes());
    hex(&mut out[36..52], &span_id.to_bytes());
    String::from_utf8(out.to_vec()).expect("hex digits and dashes")
}

/// Runs `work`, a request whose trace was dropped, with `context` as what its next hops
/// receive ([`dropped`]) and no span made for it ([`is_dropped`]).
pub async fn dropped_in<F: Future>(context: TraceContext, work: F) -> F::Output {
    DROPPED.scope(context, work).await
}

/// Whether the request being handled belongs to a dropped trace: no span is made for it.
pub fn is_dropped() -> bool {
    DROPPED.try_with(|_| ()).is_ok()
}

/// The context of the dropped trace the request being handled belongs to, for its next hop.
pub fn dropped() -> Option<TraceContext> {
    with_dropped(Clone::clone)
}

/// `f` of the dropped trace's context (without a copy of it), when the request being
/// handled belongs to one.
pub fn with_dropped<R>(f: impl FnOnce(&TraceContext) -> R) -> Option<R> {
    DROPPED.try_with(f).ok()
}

/// Puts the dropped trace's context in `message`'s `_meta` (for the upstream); false when
/// the request being handled does not belong to a dropped trace.
pub fn put_dropped_in_meta(message: &mut Message) -> bool {
    with_dropped(|cx| cx.put_in_meta(message)).is_some()
}

/// What a request says about itself, for its span's name and attributes.
struct Described<'a> {
    method: &'a str,
    /// The tool or prompt name (`params.name`): the span name's target.
    name: Option<String>,
    uri: Option<String>,
}

fn describe(message: &Message) -> Described<'_> {
    #[derive(Deserialize)]
    struct Params {
        name: Option<String>,
        uri: Option<String>,
    }
    let method = message.method.as_deref().unwrap_or_default();
    let params = match method {
        "tools/call"
        | "prompts/get"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe" => message
            .params
            .as_ref()
            .and_then(|raw| serde_json::from_str::<Params>(raw.get()).ok()),
        _ => None,
    };
    let (name, uri) = params.map_or((None, None), |p| (p.name, p.uri));
    Described { method, name, uri }
}

/// A span for one MCP request, named `{mcp.method.name} {target}` with the conventions'
/// attributes. `parent` is the context it continues (a relay frame's, a client's); without
/// one it is a child of the current span, or a new trace.
pub fn request_span(message: &Message, side: Side, parent: Option<Context>) -> Span {
    let described = describe(message);
    let name = match &described.name {
        Some(target) => format!("{} {target}", described.method),
        None => described.method.to_owned(),
    };
    let span = operation_span(name, side, parent);
    // A span the sampler dropped records nothing: its attributes would be built for nobody.
    if !is_sampled(&span) {
        return span;
    }
    span.set_attribute("mcp.method.name", described.method.to_owned());
    if let Some(id) = &message.id {
        let id = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        span.set_attribute("jsonrpc.request.id", id);
    }
    match described.method {
        "tools/call" => {
            span.set_attribute("gen_ai.operation.name", "execute_tool");
            if let Some(tool) = described.name {
                span.set_attribute("gen_ai.tool.name", tool);
            }
        }
        "prompts/get" => {
            if let Some(prompt) = described.name {
                span.set_attribute("gen_ai.prompt.name", prompt);
            }
        }
        _ => {}
    }
    if let Some(uri) = described.uri {
        span.set_attribute("mcp.resource.uri", uri);
    }
    span
}

/// Whether `span` is being recorded and exported: the sampler's decision, made when the span
/// starts (asking for its context starts it).
pub fn is_sampled(span: &Span) -> bool {
    span.context().span().span_context().is_sampled()
}

/// Records how `answer` ended on `span`: `error.type` is the JSON-RPC error code, or
/// `tool_error` for a tool's result with `isError` (a failed call the protocol calls a
/// success), and the span's status says error.
pub fn record_answer(span: &Span, answer: &Message) {
    if !is_sampled(span) {
        return;
    }
    #[derive(Deserialize)]
    struct Error {
        code: Option<i64>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Result {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    if let Some(error) = &answer.error {
        let error: Option<Error> = serde_json::from_str(error.get()).ok();
        let code = error
            .as_ref()
            .and_then(|e| e.code)
            .map_or_else(|| "error".to_owned(), |c| c.to_string());
        let message = error.and_then(|e| e.message).unwrap_or_default();
        span.set_attribute("error.type", code.clone());
        span.set_attribute("rpc.response.status_code", code);
        span.set_status(Status::error(message));
    } else if let Some(result) = &answer.result
        && serde_json::from_str::<Result>(result.get())
            .ok()
            .and_then(|r| r.is_error)
            == Some(true)
    {
        span.set_attribute("error.type", "tool_error");
        span.set_status(Status::error("the tool reported an error"));
    }
}

/// Runs `answer` (a request's handling) inside `span`, and records how it ended.
pub async fn answered_in(span: Span, answer: impl Future<Output = Message>) -> Message {
    let answer = answer.instrument(span.clone()).await;
    record_answer(&span, &answer);
    answer
}

/// [`answered_in`] for a hop that may fail without an answer (the relay, the upstream).
pub async fn relayed_in(
    span: Span,
    answer: impl Future<Output = Result<Message, RpcError>>,
) -> Result<Message, RpcError> {
    let answer = answer.instrument(span.clone()).await;
    match &answer {
        Ok(answer) => record_answer(&span, answer),
        Err(error) => record_answer(&span, &Message::error(Value::Null, error)),
    }
    answer
}

/// Sets an attribute on `span` (the router's own: `mcpr.provider`, `mcpr.view`, ...).
pub fn set(span: &Span, key: &'static str, value: impl Into<String>) {
    span.set_attribute(key, value.into());
}

/// Sets an integer attribute on `span` (`http.response.status_code`, ...).
pub fn set_int(span: &Span, key: &'static str, value: i64) {
    span.set_attribute(key, value);
}

/// A span named `name` (an MCP request, an admin API call, a sandbox run), continuing
/// `parent` or else the current span. The kind is a field the OpenTelemetry layer reads
/// when the span is made, so each kind has its own macro call.
pub fn operation_span(name: String, side: Side, parent: Option<Context>) -> Span {
    let span = match side {
        Side::Server => {
            tracing::info_span!(target: TRACE_TARGET, "span", otel.name = %name, otel.kind = "server")
        }
        Side::Client => {
            tracing::info_span!(target: TRACE_TARGET, "span", otel.name = %name, otel.kind = "client")
        }
        Side::Internal => {
            tracing::info_span!(target: TRACE_TARGET, "span", otel.name = %name, otel.kind = "internal")
        }
    };
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keeps_what_it_had() {
        let mut message = Message::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1},"_meta":{"progressToken":7,"traceparent":"old"}}}"#,
        )
        .unwrap();
        let cx = TraceContext {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: "vendor=x".into(),
        };
        cx.put_in_meta(&mut message);
        let params: Value = serde_json::from_str(message.params.as_ref().unwrap().get()).unwrap();
        assert_eq!(params["name"], "echo");
        assert_eq!(params["arguments"]["a"], 1);
        assert_eq!(params["_meta"]["progressToken"], 7);
        assert_eq!(params["_meta"]["traceparent"], cx.traceparent.as_str());
        assert_eq!(params["_meta"]["tracestate"], "vendor=x");
        assert_eq!(TraceContext::from_meta(&message), Some(cx.clone()));
        assert!(cx.parent().is_some());
    }

    #[test]
    fn meta_made_when_absent_and_left_alone_when_not_an_object() {
        let mut bare = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        let cx = TraceContext {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: String::new(),
        };
        cx.put_in_meta(&mut bare);
        assert_eq!(
            bare.params.as_ref().unwrap().get(),
            r#"{"_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}"#
        );
        let text = br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":3}}"#;
        let mut odd = Message::parse(text).unwrap();
        cx.put_in_meta(&mut odd);
        assert_eq!(odd.params.as_ref().unwrap().get(), r#"{"_meta":3}"#);
    }

    #[test]
    fn meta_spliced_in_front_without_a_parse() {
        let cx = TraceContext {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00".into(),
            tracestate: "k=\"v\"".into(),
        };
        for (params, kept) in [
            (r#"{"name":"echo","arguments":{"text":"hi"}}"#, true),
            (r#"{ }"#, true),
            // Might spell `_meta`: parsed, and the result is the same.
            (r#"{"name":"echo","arguments":{"\u005fmeta":1}}"#, false),
        ] {
            let text =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            let mut message = Message::parse(text.as_bytes()).unwrap();
            assert_eq!(
                cx.spliced(message.params.as_deref()).is_some(),
                kept,
                "{params}"
            );
            cx.put_in_meta(&mut message);
            let got: Value = serde_json::from_str(message.params.as_ref().unwrap().get()).unwrap();
            let mut want: Value = serde_json::from_str(params).unwrap();
            want["_meta"] =
                serde_json::json!({"traceparent": cx.traceparent, "tracestate": cx.tracestate});
            if !kept {
                // The escaped key is the same key as `_meta`: the parse replaced it.
                assert_eq!(got["_meta"]["traceparent"], cx.traceparent.as_str());
                continue;
            }
            assert_eq!(got, want, "{params}");
        }
    }

    #[test]
    fn an_unsampled_traceparent_is_the_w3c_form() {
        let trace_id = TraceId::from(0x0af7651916cd43dd8448eb211c80319c);
        let span_id = SpanId::from(0x00f067aa0ba902b7);
        let written = unsampled_traceparent(trace_id, span_id);
        assert_eq!(
            written,
            "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-00"
        );
        assert_eq!(written, format!("00-{trace_id}-{span_id}-00"));
        let parent = TraceContext {
            traceparent: written,
            tracestate: String::new(),
        }
        .parent()
        .expect("a valid parent");
        assert_eq!(parent.span().span_context().span_id(), span_id);
    }

    #[test]
    fn a_json_string_is_escaped_only_when_it_must_be() {
        for text in [
            "00-ab-cd-01",
            "k=v,l=w",
            "q\"",
            "b\\s",
            "nl\n",
            "del\u{7f}",
            "é",
            " ~",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, text);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text, "{out}");
        }
        let mut out = String::new();
        push_json_string(&mut out, "00-ab-cd-01");
        assert_eq!(out, "\"00-ab-cd-01\"");
    }

    #[test]
    fn a_bad_traceparent_is_no_parent() {
        let cx = TraceContext {
            traceparent: "not-a-traceparent".into(),
            tracestate: String::new(),
        };
        assert!(cx.parent().is_none());
    }
}
