//! A modern client's request relayed to its provider, and the bridge between the eras: a
//! server-to-client request the upstream sends during the call (elicitation, sampling,
//! roots — how a legacy server asks) reaches the modern client as an `InputRequiredResult`
//! (SEP-2322) whose `inputRequests` hold it. The upstream call stays parked here; the
//! client's retry, carrying `inputResponses` and our `requestState`, answers the upstream's
//! requests, and the call goes on to its result (or to the next round of questions).
//!
//! Modern clients are stateless, so their retry may reach another replica, or come after
//! this one dropped the parked call (request timeout, restart). The `requestState` is
//! therefore sealed (HMAC under the key every gateway shares) and carries every answer the
//! client gave so far, each with a hash of the question it answered: a gateway that does
//! not hold the call runs the request again and gives the upstream's questions their
//! recorded answers — what a stateless server of 2026-07-28 does with a retry anyway. A
//! question the record does not answer (the upstream asked something else this time) goes
//! to the client as a new round.
//!
//! A `requestState` the bridge did not make (a modern upstream's own) passes through
//! untouched.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpr_core::jsonrpc::{self, Kind, Message, RpcError, code};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::Gateway;
use crate::relay::delivery::StreamGuard;
use crate::sessions::seal;
use crate::transport::MODERN_SESSION;
use crate::transport::modern::{RequestMeta, answer_response};
use crate::views::View;

/// Marks a `requestState` made by the bridge: `mcpr-bridge.<payload>.<tag>`.
const STATE_PREFIX: &str = "mcpr-bridge";

/// How long a `requestState` may be replayed after it was made: the time a person may
/// take to answer an elicitation, bounded.
const STATE_MAX_AGE: Duration = Duration::from_secs(3600);

/// The keys of a retry that are the bridge's, not the request's.
const RETRY_KEYS: [&str; 2] = ["requestState", "inputResponses"];

type Answer = Pin<Box<dyn Future<Output = Option<Message>> + Send>>;

/// A relayed call in progress.
struct Call {
    view: View,
    /// The method called (results of some must say how long they may be cached).
    method: String,
    /// The method and what it names (tool, prompt, resource): a retry must repeat them.
    request: String,
    answer: Answer,
    events: mpsc::Receiver<Vec<u8>>,
    _stream: StreamGuard,
    /// This round: input key -> (our id of the server-to-client request, its question).
    asked: HashMap<String, (Value, String)>,
    /// Every answer the client gave, in order, with the question it answered.
    answered: Vec<(String, Value)>,
    /// Recorded answers a replayed call has not given the upstream again yet.
    replay: Vec<(String, Value)>,
    next_key: u32,
    parked_at: Instant,
}

impl Call {
    /// Relays `message`; `answered` are recorded answers to give the upstream again.
    fn start(
        gateway: &Arc<Gateway>,
        view: View,
        message: Message,
        request: String,
        answered: Vec<(String, Value)>,
        came: Option<crate::views::Came>,
    ) -> Call {
        let method = message.method.clone().unwrap_or_default();
        let relayed = crate::transport::modern::relay(gateway, view.clone(), message, came);
        Call {
            view,
            method,
            request,
            answer: relayed.answer,
            events: relayed.events,
            _stream: relayed.stream,
            asked: HashMap::new(),
            replay: answered.clone(),
            answered,
            next_key: 0,
            parked_at: Instant::now(),
        }
    }
}

/// What a bridge `requestState` carries (sealed).
#[derive(Serialize, Deserialize)]
struct State {
    /// The parked call's key in the memory of the gateway that asked.
    call: String,
    view: String,
    request: String,
    /// Unix seconds when it was made.
    at: u64,
    /// Earlier rounds' answers, in order: (question, response).
    answered: Vec<(String, Value)>,
    /// This round's input keys and their questions.
    asked: BTreeMap<String, String>,
}

/// Calls waiting for their client's input responses, by key.
#[derive(Default)]
pub struct Bridges {
    parked: Mutex<HashMap<String, Call>>,
}

impl Bridges {
    /// Parks the call and returns the sealed `requestState` naming it.
    fn park(&self, gateway: &Gateway, mut call: Call) -> String {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let state = State {
            call: key.clone(),
            view: seal::view_text(&call.view),
            request: call.request.clone(),
            at: unix_now(),
            answered: call.answered.clone(),
            asked: call
                .asked
                .iter()
                .map(|(k, (_, question))| (k.clone(), question.clone()))
                .collect(),
        };
        let payload = serde_json::to_vec(&state).expect("a bridge state serialises");
        call.parked_at = Instant::now();
        let max_age = gateway.config.request_timeout;
        let mut parked = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        parked.retain(|_, c| c.parked_at.elapsed() < max_age);
        parked.insert(key, call);
        drop(parked);
        let session_key = gateway.snapshot.load().session_key.clone();
        seal::seal_bytes(&session_key, STATE_PREFIX, &payload)
    }

    fn take(&self, key: &str) -> Option<Call> {
        self.parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The method and the params field it names (`name`, `uri`), as a retry must repeat them.
fn request_of(method: &str, params: Option<&Value>) -> String {
    let name = mcpr_core::mcp_headers::name_of(method, params).unwrap_or_default();
    format!("{method} {name}")
}

/// What the upstream asked, hashed: a replayed call's question gets the recorded answer only
/// when it is the same question.
fn question_of(message: &Message) -> String {
    let mut hash = Sha256::new();
    hash.update(message.method.as_deref().unwrap_or_default());
    hash.update([0]);
    hash.update(message.params.as_ref().map_or("", |p| p.get()));
    let digest = hash.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Relays a modern request (or resumes the call a bridged `requestState` names) and answers
/// it: its result, or an `InputRequiredResult` when the upstream asks the client something.
pub async fn call(
    gateway: &Arc<Gateway>,
    view: View,
    message: Message,
    params: Option<Value>,
    meta: RequestMeta,
    came: Option<crate::views::Came>,
) -> Response {
    let client_id = message.id.clone().unwrap_or(Value::Null);
    let method = message.method.clone().unwrap_or_default();
    let state = params
        .as_ref()
        .and_then(|p| p.get("requestState"))
        .and_then(Value::as_str)
        .filter(|s| s.starts_with(STATE_PREFIX) && s[STATE_PREFIX.len()..].starts_with('.'))
        .map(str::to_owned);
    let call = match state {
        Some(state) => {
            match Box::pin(resume(gateway, &view, message, params, &state, came)).await {
                Ok(call) => call,
                Err(error) => {
                    return answer_response(&Message::error(client_id, &error), Vec::new());
                }
            }
        }
        None => {
            let request = request_of(&method, params.as_ref());
            Call::start(gateway, view, message, request, Vec::new(), came)
        }
    };
    drive(gateway, call, client_id, meta).await
}

/// The call a retry goes on with: the one parked here, given the client's answers, or,
/// when this gateway does not hold it, the request run again with the recorded answers.
async fn resume(
    gateway: &Arc<Gateway>,
    view: &View,
    mut message: Message,
    params: Option<Value>,
    sealed: &str,
    came: Option<crate::views::Came>,
) -> Result<Call, RpcError> {
    let session_key = gateway.snapshot.load().session_key.clone();
    let state = seal::unseal_bytes(&session_key, STATE_PREFIX, sealed)
        .and_then(|payload| serde_json::from_slice::<State>(&payload).ok())
        .ok_or_else(|| {
            RpcError::invalid_params(
                "requestState was not made by this router, or was altered: send the request again without it",
            )
        })?;
    let method = message.method.clone().unwrap_or_default();
    let request = request_of(&method, params.as_ref());
    if state.view != seal::view_text(view) || state.request != request {
        return Err(RpcError::invalid_params(format!(
            "requestState belongs to another request ({}), not to this {request}",
            state.request
        )));
    }
    if unix_now().saturating_sub(state.at) > STATE_MAX_AGE.as_secs() {
        return Err(RpcError::invalid_params(
            "requestState has expired: send the request again without it",
        ));
    }
    let responses = params
        .as_ref()
        .and_then(|p| p.get("inputResponses"))
        .cloned()
        .unwrap_or(Value::Null);
    let responses = answers_to(&state.asked, &responses)?;
    if let Some(mut call) = gateway.bridges.take(&state.call) {
        for (key, response) in responses {
            let (our_id, question) = call.asked.remove(&key).unwrap_or_default();
            call.answered.push((question, response.clone()));
            let answer = Message::result(our_id, jsonrpc::to_raw(&response));
            gateway.handle(&call.view, MODERN_SESSION, answer).await;
        }
        call.asked.clear();
        return Ok(call);
    }
    // Not parked here: the request runs again, without the bridge's keys.
    let mut answered = state.answered;
    for (key, response) in responses {
        answered.push((state.asked[&key].clone(), response));
    }
    let mut params = params.unwrap_or_else(|| json!({}));
    if let Some(params) = params.as_object_mut() {
        for key in RETRY_KEYS {
            params.remove(key);
        }
    }
    message.params = Some(jsonrpc::to_raw(&params));
    Ok(Call::start(
        gateway,
        view.clone(),
        message,
        request,
        answered,
        came,
    ))
}

/// The client's input responses to the keys `asked`: every key answered with an object.
fn answers_to(
    asked: &BTreeMap<String, String>,
    responses: &Value,
) -> Result<Vec<(String, Value)>, RpcError> {
    let Some(responses) = responses.as_object() else {
        return Err(RpcError::invalid_params(
            "inputResponses must be an object answering the inputRequests by key",
        ));
    };
    asked
        .keys()
        .map(|key| match responses.get(key) {
            Some(response @ Value::Object(_)) => Ok((key.clone(), response.clone())),
            Some(_) => Err(RpcError::invalid_params(format!(
                "inputResponses.{key} must be an object"
            ))),
            None => Err(RpcError::invalid_params(format!(
                "inputResponses lacks {key:?}, which the inputRequests asked for"
            ))),
        })
        .collect()
}

/// Answers the call: as one JSON body when its answer comes first, else as an SSE stream
/// carrying the upstream's notifications (progress, logs) as they come, then the answer.
async fn drive(
    gateway: &Arc<Gateway>,
    call: Call,
    client_id: Value,
    meta: RequestMeta,
) -> Response {
    let (out, mut notifications) = mpsc::channel::<Vec<u8>>(64);
    let mut run = Box::pin(crate::access::inherit(run(
        gateway.clone(),
        call,
        client_id,
        meta,
        out.clone(),
    )));
    let first = tokio::select! {
        biased;
        answer = &mut run => {
            let mut before = Vec::new();
            while let Ok(bytes) = notifications.try_recv() {
                before.push(bytes);
            }
            return match answer {
                Some(answer) => answer_response(&answer, before),
                None => StatusCode::ACCEPTED.into_response(),
            };
        }
        Some(first) = notifications.recv() => first,
    };
    tokio::spawn(async move {
        if let Some(answer) = run.await {
            let _ = out.send(answer.to_bytes()).await;
        }
    });
    crate::transport::modern::stream_response(first, notifications)
}

/// Runs the call until its answer, or until the upstream asks the client something (then
/// the call is parked and the answer is an `InputRequiredResult`). Notifications for the
/// client go to `out` meanwhile.
async fn run(
    gateway: Arc<Gateway>,
    mut call: Call,
    client_id: Value,
    meta: RequestMeta,
    out: mpsc::Sender<Vec<u8>>,
) -> Option<Message> {
    loop {
        tokio::select! {
            biased;
            answer = &mut call.answer => {
                // Upstream messages are delivered before their answer: pass them on first.
                while let Ok(bytes) = call.events.try_recv() {
                    if let Some(bytes) = pass_notification(&bytes, &meta) {
                        let _ = out.send(bytes).await;
                    }
                }
                let mut answer = answer?;
                answer.id = Some(client_id);
                complete_result(&call.method, &mut answer);
                return Some(answer);
            }
            Some(bytes) = call.events.recv() => {
                let Ok(message) = Message::parse(&bytes) else { continue };
                if message.kind() != Ok(Kind::Request) {
                    if let Some(bytes) = pass_notification(&bytes, &meta) {
                        let _ = out.send(bytes).await;
                    }
                    continue;
                }
                let Some((key, input)) =
                    Box::pin(ask_client(&gateway, &mut call, message, &meta)).await
                else {
                    continue;
                };
                let mut requests = Map::new();
                requests.insert(key, input);
                let state = gateway.bridges.park(&gateway, call);
                let result = json!({
                    "resultType": "input_required",
                    "inputRequests": Value::Object(requests),
                    "requestState": state,
                });
                return Some(Message::result(client_id, jsonrpc::to_raw(&result)));
            }
        }
    }
}

/// Turns the upstream's server-to-client request into an input request for the client;
/// answers it directly (`None`) when the client cannot be asked: a ping, or a capability
/// the client did not declare.
async fn ask_client(
    gateway: &Arc<Gateway>,
    call: &mut Call,
    message: Message,
    meta: &RequestMeta,
) -> Option<(String, Value)> {
    let our_id = message.id.clone().unwrap_or(Value::Null);
    let method = message.method.clone().unwrap_or_default();
    let question = question_of(&message);
    if let Some(at) = call.replay.iter().position(|(q, _)| *q == question) {
        // A replayed call asks again what the client already answered.
        let (_, response) = call.replay.remove(at);
        let answer = Message::result(our_id, jsonrpc::to_raw(&response));
        gateway.handle(&call.view, MODERN_SESSION, answer).await;
        return None;
    }
    let capability = match method.as_str() {
        "elicitation/create" => "elicitation",
        "sampling/createMessage" => "sampling",
        "roots/list" => "roots",
        "ping" => {
            let pong = Message::result(our_id, jsonrpc::to_raw(&json!({})));
            gateway.handle(&call.view, MODERN_SESSION, pong).await;
            return None;
        }
        _ => "",
    };
    if capability.is_empty() || !meta.capabilities.contains_key(capability) {
        let reason = if capability.is_empty() {
            RpcError::method_not_found(&method)
        } else {
            RpcError::new(
                code::METHOD_NOT_FOUND,
                format!("the client did not declare the {capability} capability"),
            )
        };
        let refusal = Message::error(our_id, &reason);
        gateway.handle(&call.view, MODERN_SESSION, refusal).await;
        return None;
    }
    let params = message
        .params_value()
        .map(Value::Object)
        .unwrap_or_else(|_| json!({}));
    let key = format!("{capability}-{}", call.next_key);
    call.next_key += 1;
    call.asked.insert(key.clone(), (our_id, question));
    Some((key, json!({"method": method, "params": params})))
}

/// What the client gets of an upstream notification during its request: everything but
/// log messages below the request's `logLevel` (none without one, as 2026-07-28 says).
fn pass_notification(bytes: &[u8], meta: &RequestMeta) -> Option<Vec<u8>> {
    let message = Message::parse(bytes).ok()?;
    if message.method.as_deref() == Some("notifications/message") {
        let wanted = rank(meta.log_level.as_deref()?)?;
        let level = message
            .params_value()
            .ok()
            .and_then(|p| p.get("level").and_then(Value::as_str).and_then(rank));
        if level.is_some_and(|l| l < wanted) {
            return None;
        }
    }
    Some(bytes.to_vec())
}

/// Syslog severities in MCP's order, least severe first.
fn rank(level: &str) -> Option<usize> {
    [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ]
    .iter()
    .position(|l| *l == level)
}

/// Methods whose 2026-07-28 results say how long they may be cached (`ttlMs`,
/// `cacheScope`).
const CACHEABLE: &[&str] = &[
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Makes a legacy upstream's (or the router's own) result a 2026-07-28 one: it is
/// `complete`, and a cacheable one is not to be cached (`ttlMs` 0, `private`), since
/// nothing says for how long it holds.
///
/// The missing keys are spliced into the result's text: parsing and writing the whole
/// result again cost more than the rest of the bridge (docs/BENCHMARKS.md).
fn complete_result(method: &str, answer: &mut Message) {
    #[derive(serde::Deserialize)]
    struct Present {
        #[serde(rename = "resultType")]
        result_type: Option<serde::de::IgnoredAny>,
        #[serde(rename = "ttlMs")]
        ttl: Option<serde::de::IgnoredAny>,
        #[serde(rename = "cacheScope")]
        scope: Option<serde::de::IgnoredAny>,
    }
    let Some(result) = &answer.result else { return };
    let Some(body) = result.get().trim_start().strip_prefix('{') else {
        return;
    };
    let Ok(present) = serde_json::from_str::<Present>(result.get()) else {
        return;
    };
    let mut added = String::new();
    if present.result_type.is_none() {
        added.push_str(r#""resultType":"complete","#);
    }
    if CACHEABLE.contains(&method) {
        if present.ttl.is_none() {
            added.push_str(r#""ttlMs":0,"#);
        }
        if present.scope.is_none() {
            added.push_str(r#""cacheScope":"private","#);
        }
    }
    if added.is_empty() {
        return;
    }
    let body = body.trim_start();
    let text = if body.starts_with('}') {
        format!("{{{}}}", added.trim_end_matches(','))
    } else {
        format!("{{{added}{body}")
    };
    if let Ok(raw) = serde_json::value::RawValue::from_string(text) {
        answer.result = Some(raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(level: Option<&str>) -> RequestMeta {
        RequestMeta {
            capabilities: Map::new(),
            log_level: level.map(str::to_owned),
        }
    }

    #[test]
    fn logs_need_a_level_and_respect_it() {
        let log = |level: &str| {
            Message::notification(
                "notifications/message",
                Some(json!({"level": level, "data": "x"})),
            )
            .to_bytes()
        };
        assert!(pass_notification(&log("error"), &meta(None)).is_none());
        assert!(pass_notification(&log("info"), &meta(Some("warning"))).is_none());
        assert!(pass_notification(&log("error"), &meta(Some("warning"))).is_some());
        let progress =
            Message::notification("notifications/progress", Some(json!({"progress": 1})))
                .to_bytes();
        assert!(pass_notification(&progress, &meta(None)).is_some());
    }

    #[test]
    fn legacy_results_become_complete_ones() {
        let mut answer = Message::result(json!(1), jsonrpc::to_raw(&json!({"tools": []})));
        complete_result("tools/list", &mut answer);
        let result: Value = serde_json::from_str(answer.result.unwrap().get()).unwrap();
        let expected =
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"});
        assert_eq!(result, expected);
        let mut answer = Message::result(
            json!(1),
            jsonrpc::to_raw(&json!({"content": [], "ttlMs": 5})),
        );
        complete_result("tools/call", &mut answer);
        let result: Value = serde_json::from_str(answer.result.unwrap().get()).unwrap();
        assert_eq!(
            result,
            json!({"content": [], "ttlMs": 5, "resultType": "complete"})
        );
        let mut answer = Message::result(json!(1), jsonrpc::to_raw(&json!({})));
        complete_result("ping", &mut answer);
        assert_eq!(answer.result.unwrap().get(), r#"{"resultType":"complete"}"#);
        let mut answer = Message::result(
            json!(1),
            jsonrpc::to_raw(&json!({"resultType": "incomplete"})),
        );
        complete_result("tools/call", &mut answer);
        assert_eq!(
            answer.result.unwrap().get(),
            r#"{"resultType":"incomplete"}"#
        );
    }
}
