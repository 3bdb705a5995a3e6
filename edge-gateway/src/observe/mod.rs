//! The per-call seam: one [`CallRecord`] for every client request the gateway finishes —
//! answered by a view, relayed to an upstream, run in the sandbox, or refused by the
//! authentication step before any view saw it — handed to the [`Observer`], which counts it
//! in the metrics (`metrics.rs`) and passes it to the audit sink when one is set.
//!
//! The record borrows everything it names (method, target, session, the caller's grant
//! from the snapshot): building one allocates nothing, and a sink copies only what it keeps.
//! What the views learn on the way (the provider a call went to, the tool as the snapshot
//! lists it, a refusal that answers with a tool error) they note in a task-local
//! ([`note_provider`], [`note_target`], [`note_refused`]) scoped to the one request by
//! [`observed`]; nothing is locked across an await.
//!
//! Layering: below the views and the transport that call it, above `snapshot` and `access`
//! (whose `Provider` and `Who` a record names).

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mcpr_core::jsonrpc::Message;
use serde::Deserialize;

use crate::access::{RATE_LIMITED, UNAUTHORIZED, Who};
use crate::snapshot::Provider;

pub mod metrics;

/// One finished client request.
#[derive(Debug)]
pub struct CallRecord<'a> {
    /// The JSON-RPC method; empty when the request was refused before its body was read.
    pub method: &'a str,
    /// The tool (the upstream's own name), resource URI or prompt name the request names.
    pub target: Option<&'a str>,
    /// `target` is a tool the snapshot lists for `provider` (or a meta-tool of the
    /// hierarchical view): only such a name becomes a metric label.
    pub tool_known: bool,
    /// The provider the request went to, as the snapshot names it (or `_sandbox`).
    pub provider: Option<&'a str>,
    /// `hierarchical`, `flat` or `transparent`.
    pub view: &'static str,
    pub caller: &'a Who,
    /// The client session (legacy era); none for a modern request or a refusal.
    pub session: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub outcome: Outcome,
    pub duration: Duration,
    /// The request's `params` JSON, in bytes (0 for a refusal before the body was read).
    pub request_bytes: usize,
    /// The answer's `result` or `error` JSON, in bytes.
    pub response_bytes: usize,
    /// The call's `params.arguments` JSON, kept only when the audit log asks for them
    /// (`MCPR_AUDIT_ARGUMENTS`, [`Started::keep_arguments`]).
    pub arguments: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A `tools/call` result with `isError: true`: the tool ran and failed.
    ToolError,
    /// A JSON-RPC error answer, with its code.
    Error(i64),
    Refused(Refusal),
}

impl Outcome {
    /// The metric label: `ok`, `tool_error`, `error` or `refused` (codes are not labels:
    /// an upstream may answer any number).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Error(_) => "error",
            Outcome::Refused(_) => "refused",
        }
    }
}

/// Why the gateway refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No credential where one is required.
    MissingCredentials,
    UnknownKey,
    RevokedKey,
    ExpiredKey,
    /// An OAuth access token that did not verify (signature, issuer, audience, expiry).
    InvalidToken,
    /// Outside the caller's scopes (a provider or a tool).
    Scope,
    /// The per-credential rate limit.
    RateLimitKey,
    /// The per-client-address rate limit.
    RateLimitAddress,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::MissingCredentials,
        Refusal::UnknownKey,
        Refusal::RevokedKey,
        Refusal::ExpiredKey,
        Refusal::InvalidToken,
        Refusal::Scope,
        Refusal::RateLimitKey,
        Refusal::RateLimitAddress,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MissingCredentials => "missing_credentials",
            Refusal::UnknownKey => "unknown_key",
            Refusal::RevokedKey => "revoked_key",
            Refusal::ExpiredKey => "expired_key",
            Refusal::InvalidToken => "invalid_token",
            Refusal::Scope => "scope",
            Refusal::RateLimitKey => "rate_limit_key",
            Refusal::RateLimitAddress => "rate_limit_address",
        }
    }

    pub fn is_rate_limit(self) -> bool {
        matches!(self, Refusal::RateLimitKey | Refusal::RateLimitAddress)
    }

    /// The refusal of an API key check's problem (`Credentials::check`).
    pub fn of_key_problem(problem: &str) -> Refusal {
        match problem {
            "the API key was revoked" => Refusal::RevokedKey,
            "the API key expired" => Refusal::ExpiredKey,
            _ => Refusal::UnknownKey,
        }
    }
}

/// Where finished calls go besides the metrics (the audit log). Called on the request's own
/// task as it finishes: it must not block (queue and return).
pub trait CallSink: Send + Sync {
    fn record(&self, record: &CallRecord<'_>);
}

/// The metrics every record is counted in, and the audit sink, once one is set.
#[derive(Default)]
pub struct Observer {
    pub metrics: metrics::CallMetrics,
    audit: OnceLock<Arc<dyn CallSink>>,
}

impl Observer {
    /// Sets the audit sink (once; a second call is refused with the sink it brought).
    pub fn set_audit(&self, sink: Arc<dyn CallSink>) -> Result<(), Arc<dyn CallSink>> {
        self.audit.set(sink)
    }

    pub fn record(&self, record: &CallRecord<'_>) {
        self.metrics.count(record);
        if let Some(audit) = self.audit.get() {
            audit.record(record);
        }
    }
}

/// The provider a call went to: the snapshot's, or one of the gateway's own (`_sandbox`).
enum NotedProvider {
    Snapshot(Arc<Provider>),
    Builtin(&'static str),
}

/// What the views learn about the request being handled.
#[derive(Default)]
struct Noted {
    provider: Option<NotedProvider>,
    target: Option<String>,
    tool_known: bool,
    refused: Option<Refusal>,
}

tokio::task_local! {
    static NOTED: RefCell<Noted>;
}

fn note(f: impl FnOnce(&mut Noted)) {
    // Outside `observed` (a view's helper called on its own) there is nothing to note in.
    let _ = NOTED.try_with(|noted| f(&mut noted.borrow_mut()));
}

/// The request goes to `provider` (found in the snapshot).
pub fn note_provider(provider: &Arc<Provider>) {
    note(|n| n.provider = Some(NotedProvider::Snapshot(provider.clone())));
}

/// The request goes to one of the gateway's own providers (`_sandbox`).
pub fn note_builtin_provider(name: &'static str) {
    note(|n| n.provider = Some(NotedProvider::Builtin(name)));
}

/// The request names `target` (a tool, resource URI or prompt); `tool_known` when it is a
/// tool the snapshot lists (or a meta-tool), so that it may become a metric label.
pub fn note_target(target: String, tool_known: bool) {
    note(|n| {
        n.target = Some(target);
        n.tool_known = tool_known;
    });
}

/// The request was refused although its answer is not an error (a tool error result).
pub fn note_refused(refusal: Refusal) {
    note(|n| n.refused = Some(refusal));
}

/// The names of a request's params that say what it is about.
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<std::borrow::Cow<'a, str>>,
}

/// The target a request names in its params, read for the methods that have one:
/// `tools/call` and `prompts/get` (`name`), `resources/*` (`uri`). The rest of the params
/// is skipped, not parsed into values.
pub fn target_of(message: &Message) -> Option<String> {
    let key_is_uri = match message.method.as_deref()? {
        "tools/call" | "prompts/get" => false,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => true,
        _ => return None,
    };
    let named: Named<'_> = serde_json::from_str(message.params.as_ref()?.get()).ok()?;
    let value = if key_is_uri { named.uri } else { named.name };
    value.map(|v| v.into_owned())
}

/// What a request is doing while it runs, taken before it is handled.
pub struct Started {
    at: Instant,
    request_bytes: usize,
    arguments: Option<String>,
}

impl Started {
    pub fn now(message: &Message) -> Started {
        Started {
            at: Instant::now(),
            request_bytes: message.params.as_ref().map_or(0, |p| p.get().len()),
            arguments: None,
        }
    }

    /// Keeps the request's `params.arguments` for the record (only when the audit log
    /// keeps arguments: it copies them).
    pub fn keep_arguments(&mut self, message: &Message) {
        #[derive(Deserialize)]
        struct Arguments<'a> {
            #[serde(borrow, default)]
            arguments: Option<&'a serde_json::value::RawValue>,
        }
        self.arguments = message
            .params
            .as_ref()
            .and_then(|p| serde_json::from_str::<Arguments<'_>>(p.get()).ok())
            .and_then(|a| a.arguments.map(|raw| raw.get().to_owned()));
    }
}

/// Runs `handle` (one request's handling by a view) with a place for the views' notes,
/// then records it: `method` on `view` for the caller of the task (`access::who`).
pub async fn observed<F>(
    observer: &Observer,
    view: &'static str,
    session: Option<&str>,
    method: &str,
    started: Started,
    handle: F,
) -> Message
where
    F: std::future::Future<Output = Message>,
{
    let (answer, noted) = NOTED
        .scope(RefCell::new(Noted::default()), async {
            let answer = handle.await;
            (answer, NOTED.with(|n| n.take()))
        })
        .await;
    let (who, protocol_version) = crate::access::who();
    let provider = match &noted.provider {
        Some(NotedProvider::Snapshot(p)) => Some(p.name.as_str()),
        Some(NotedProvider::Builtin(name)) => Some(*name),
        None => None,
    };
    let record = CallRecord {
        method,
        target: noted.target.as_deref(),
        tool_known: noted.tool_known,
        provider,
        view,
        caller: &who,
        session,
        protocol_version,
        outcome: outcome_of(method, &answer, noted.refused),
        duration: started.at.elapsed(),
        request_bytes: started.request_bytes,
        response_bytes: answer_bytes(&answer),
        arguments: started.arguments.as_deref(),
    };
    observer.record(&record);
    answer
}

/// The bytes of an answer's `result` or `error` JSON.
pub fn answer_bytes(answer: &Message) -> usize {
    answer
        .result
        .as_ref()
        .or(answer.error.as_ref())
        .map_or(0, |raw| raw.get().len())
}

#[derive(Deserialize)]
struct ErrorCode {
    code: i64,
}

#[derive(Deserialize)]
struct IsError {
    #[serde(default, rename = "isError")]
    is_error: bool,
}

/// The outcome an answer says. Only errors are parsed, and a tool result only when it
/// mentions `isError`: an ordinary result costs one scan of its bytes.
pub fn outcome_of(method: &str, answer: &Message, refused: Option<Refusal>) -> Outcome {
    if let Some(refusal) = refused {
        return Outcome::Refused(refusal);
    }
    if let Some(error) = &answer.error {
        let code = serde_json::from_str::<ErrorCode>(error.get()).map_or(0, |e| e.code);
        return match code {
            // The access layer's refusals (`access::refused`); the gateway's own
            // authentication refusals never reach a view.
            UNAUTHORIZED => Outcome::Refused(Refusal::Scope),
            RATE_LIMITED => Outcome::Refused(Refusal::RateLimitKey),
            code => Outcome::Error(code),
        };
    }
    if method == "tools/call"
        && let Some(result) = &answer.result
        && memchr_is_error(result.get())
        && serde_json::from_str::<IsError>(result.get()).is_ok_and(|r| r.is_error)
    {
        return Outcome::ToolError;
    }
    Outcome::Ok
}

fn memchr_is_error(json: &str) -> bool {
    json.contains("\"isError\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpr_core::jsonrpc::to_raw;
    use serde_json::json;

    #[test]
    fn outcomes_of_answers() {
        let ok = Message::result(json!(1), to_raw(&json!({"content": []})));
        assert_eq!(outcome_of("tools/call", &ok, None), Outcome::Ok);
        let failed = Message::result(json!(1), to_raw(&json!({"content": [], "isError": true})));
        assert_eq!(outcome_of("tools/call", &failed, None), Outcome::ToolError);
        // Only a tool's result can be a tool error.
        assert_eq!(outcome_of("prompts/get", &failed, None), Outcome::Ok);
        let not_failed = Message::result(
            json!(1),
            to_raw(
                &json!({"content": [{"type": "text", "text": "\"isError\""}], "isError": false}),
            ),
        );
        assert_eq!(outcome_of("tools/call", &not_failed, None), Outcome::Ok);
        let error = Message::error(
            json!(1),
            &mcpr_core::jsonrpc::RpcError::new(-32601, "method not found"),
        );
        assert_eq!(outcome_of("x/y", &error, None), Outcome::Error(-32601));
        let scope = Message::error(
            json!(1),
            &mcpr_core::jsonrpc::RpcError::new(UNAUTHORIZED, "forbidden"),
        );
        assert_eq!(
            outcome_of("tools/call", &scope, None),
            Outcome::Refused(Refusal::Scope)
        );
        assert_eq!(
            outcome_of("tools/call", &ok, Some(Refusal::Scope)),
            Outcome::Refused(Refusal::Scope)
        );
    }

    #[test]
    fn targets_are_read_for_the_methods_that_name_one() {
        let call = Message::request(
            json!(1),
            "tools/call",
            Some(json!({"name": "now", "arguments": {"deep": [1, {"name": "x"}]}})),
        );
        assert_eq!(target_of(&call).as_deref(), Some("now"));
        let read = Message::request(
            json!(2),
            "resources/read",
            Some(json!({"uri": "file:///a"})),
        );
        assert_eq!(target_of(&read).as_deref(), Some("file:///a"));
        let list = Message::request(json!(3), "tools/list", Some(json!({"name": "x"})));
        assert_eq!(target_of(&list), None);
        let escaped = Message::request(json!(4), "prompts/get", Some(json!({"name": "a\"b"})));
        assert_eq!(target_of(&escaped).as_deref(), Some("a\"b"));
    }
}
