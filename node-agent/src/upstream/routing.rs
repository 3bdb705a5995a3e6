//! Routing of what an upstream server sends on its own back to the client it concerns:
//! progress notifications by progress token, server-to-client requests (sampling,
//! elicitation, roots) and logging to the client whose request is in flight, resource
//! updates to the clients subscribed to the resource, list-changed to every client of the
//! provider.
//!
//! In a `shared` session many clients' requests interleave on one upstream session, so
//! client-chosen values that the upstream echoes back (progress tokens) are swapped for
//! unique ones on the way in and restored on the way out.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use mcpr_core::jsonrpc::Message;
use mcpr_core::relay::EventHub;
use mcpr_core::relay::{AgentEvent, EventKind};
use serde_json::{Map, Value};

/// Where a request came from: the client session and the client's own request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub client_session: String,
    /// The client's JSON-RPC id as JSON text.
    pub related_id: String,
}

impl Origin {
    pub fn none() -> Origin {
        Origin::default()
    }

    pub fn is_none(&self) -> bool {
        self.client_session.is_empty()
    }
}

#[derive(serde::Deserialize)]
struct UriParam {
    uri: String,
}

/// Where this connection's events go; set once the supervisor knows the provider.
struct Sink {
    provider: String,
    id_prefix: String,
    events: EventHub,
}

#[derive(Default)]
pub struct Routing {
    sink: OnceLock<Sink>,
    /// upstream request id -> its origin, while in flight
    in_flight: DashMap<u64, Origin>,
    /// our progress token -> (origin, the client's token)
    progress: DashMap<String, (Origin, Value)>,
    /// our id for a server-to-client request -> the upstream's id for it
    server_requests: DashMap<String, Value>,
    /// our id for a request the agent itself asks a client -> who waits for the answer
    asks: DashMap<String, tokio::sync::oneshot::Sender<Message>>,
    next_server_request: AtomicU64,
    /// resource URI -> the client sessions subscribed to it (`resources/subscribe`): in a
    /// `shared` session one upstream subscription serves them all.
    subscribers: std::sync::Mutex<HashMap<String, HashSet<String>>>,
}

impl Routing {
    pub fn connect(&self, provider: &str, id_prefix: &str, events: EventHub) {
        let _ = self.sink.set(Sink {
            provider: provider.to_owned(),
            id_prefix: id_prefix.to_owned(),
            events,
        });
    }

    /// Records a request about to go upstream as `upstream_id`; swaps a client progress
    /// token for one unique to this session. Returns the (possibly rewritten) message.
    pub fn outgoing(&self, mut message: Message, upstream_id: u64, origin: Origin) -> Message {
        if origin.is_none() {
            return message;
        }
        if let Some(params) = message
            .params
            .as_ref()
            .filter(|p| p.get().contains("progressToken"))
            && let Ok(mut map) = serde_json::from_str::<Map<String, Value>>(params.get())
            && let Some(Value::Object(meta)) = map.get_mut("_meta")
            && let Some(token) = meta.remove("progressToken")
        {
            let ours = format!("mcpr-{upstream_id}");
            meta.insert("progressToken".into(), Value::String(ours.clone()));
            self.progress.insert(ours, (origin.clone(), token));
            message.params = Some(mcpr_core::jsonrpc::to_raw(&Value::Object(map)));
        }
        self.in_flight.insert(upstream_id, origin);
        message
    }

    /// The upstream id of the client request `related_id` of `client_session`, in flight.
    pub fn upstream_id(&self, client_session: &str, related_id: &str) -> Option<u64> {
        self.in_flight
            .iter()
            .find(|e| {
                e.value().client_session == client_session && e.value().related_id == related_id
            })
            .map(|e| *e.key())
    }

    /// The request `upstream_id` is answered (or abandoned).
    pub fn finished(&self, upstream_id: u64) {
        if self.in_flight.remove(&upstream_id).is_some() {
            self.progress.remove(&format!("mcpr-{upstream_id}"));
        }
    }

    /// The origin a message without its own routing belongs to: the request it arrived
    /// with (streamable HTTP sends it on that request's stream), else the newest request in
    /// flight (stdio has no such link; `per_client` sessions make it exact).
    fn origin_for(&self, arrived_with: Option<u64>) -> Option<Origin> {
        if let Some(origin) = arrived_with.and_then(|id| self.in_flight.get(&id).map(|o| o.clone()))
        {
            return Some(origin);
        }
        self.in_flight
            .iter()
            .max_by_key(|e| *e.key())
            .map(|e| e.value().clone())
    }

    fn emit(&self, origin: Origin, kind: EventKind, message: Message) -> bool {
        let Some(sink) = self.sink.get() else {
            return false;
        };
        let event = AgentEvent {
            provider: sink.provider.clone(),
            client_session: origin.client_session,
            related_id: origin.related_id,
            kind,
            message,
        };
        sink.events.send(Arc::new(event))
    }

    /// Routes a notification from the upstream. Returns false when nobody could take it.
    pub fn notification(&self, mut message: Message, arrived_with: Option<u64>) -> bool {
        if let Some(delivered) = self.subscription_notification(&mut message) {
            return delivered;
        }
        let method = message.method.as_deref().unwrap_or_default();
        match method {
            "notifications/progress" => {
                let Ok(mut params) = message.params_value() else {
                    return false;
                };
                let token = match params.get("progressToken") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => return false,
                };
                let Some(entry) = self.progress.get(&token) else {
                    return false;
                };
                let (origin, client_token) = entry.value().clone();
                drop(entry);
                params.insert("progressToken".into(), client_token);
                message.params = Some(mcpr_core::jsonrpc::to_raw(&Value::Object(params)));
                self.emit(origin, EventKind::Notification, message)
            }
            "notifications/cancelled" => {
                // The upstream cancels one of its own requests to a client.
                let Ok(params) = message.params_value() else {
                    return false;
                };
                let Some(id) = params.get("requestId") else {
                    return false;
                };
                let ours = self
                    .server_requests
                    .iter()
                    .find(|e| e.value() == id)
                    .map(|e| e.key().clone());
                let Some(ours) = ours else { return false };
                self.server_requests.remove(&ours);
                let mut params = params;
                params.insert("requestId".into(), Value::String(ours));
                message.params = Some(mcpr_core::jsonrpc::to_raw(&Value::Object(params)));
                let origin = self.origin_for(arrived_with).unwrap_or_default();
                self.emit(origin, EventKind::Notification, message)
            }
            "notifications/message" => {
                // Logging: to the client whose request is running, else to every client.
                let origin = self.origin_for(arrived_with).unwrap_or_default();
                self.emit(origin, EventKind::Notification, message)
            }
            "notifications/resources/updated" => {
                // To the clients subscribed to the resource; to every client when nobody
                // is known to be (a subscription the agent did not see made).
                let uri = message
                    .params
                    .as_ref()
                    .and_then(|p| serde_json::from_str::<UriParam>(p.get()).ok())
                    .map(|p| p.uri);
                let sessions: Vec<String> = uri
                    .and_then(|uri| {
                        let subscribers = self.lock_subscribers();
                        subscribers.get(&uri).map(|s| s.iter().cloned().collect())
                    })
                    .unwrap_or_default();
                if sessions.is_empty() {
                    return self.emit(Origin::none(), EventKind::Notification, message);
                }
                let mut delivered = false;
                for client_session in sessions {
                    let origin = Origin {
                        client_session,
                        related_id: String::new(),
                    };
                    delivered |= self.emit(origin, EventKind::Notification, message.clone());
                }
                delivered
            }
            // list_changed and anything newer: every client of the provider.
            _ => self.emit(Origin::none(), EventKind::Notification, message),
        }
    }

    /// Records a client's `resources/subscribe` or `resources/unsubscribe` of `uri`. Returns
    /// whether it must reach the upstream: an unsubscribe that leaves other clients
    /// subscribed must not, or it would end their updates too.
    pub fn note_subscription(&self, method: &str, uri: &str, client_session: &str) -> bool {
        let mut subscribers = self.lock_subscribers();
        if method == "resources/subscribe" {
            subscribers
                .entry(uri.to_owned())
                .or_default()
                .insert(client_session.to_owned());
            return true;
        }
        let Some(sessions) = subscribers.get_mut(uri) else {
            return true;
        };
        sessions.remove(client_session);
        if sessions.is_empty() {
            subscribers.remove(uri);
            return true;
        }
        false
    }

    fn lock_subscribers(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A notification of a `subscriptions/listen` stream (2026-07-28) names the listen
    /// request in `_meta`; it goes to the client whose listen request that is, with the
    /// client's own id put back. `None` when the notification names no request of ours.
    fn subscription_notification(&self, message: &mut Message) -> Option<bool> {
        const KEY: &str = mcpr_core::mcp_headers::META_SUBSCRIPTION_ID;
        if !message.params.as_ref()?.get().contains(KEY) {
            return None;
        }
        let mut params = message.params_value().ok()?;
        let meta = params.get_mut("_meta")?.as_object_mut()?;
        let upstream_id = match meta.get(KEY)? {
            Value::Number(n) => n.as_u64()?,
            Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        // Not a client's request: the agent's own (its requests are not tracked).
        let origin = self
            .in_flight
            .get(&upstream_id)
            .map(|o| o.clone())
            .unwrap_or_default();
        if origin.is_none() {
            // The agent's own listen stream (a modern upstream's list changes and resource
            // updates for legacy clients): routed as a legacy upstream's notifications are,
            // without the tag and the acknowledgement, which legacy clients do not know.
            if message.method.as_deref() == Some("notifications/subscriptions/acknowledged") {
                return Some(true);
            }
            meta.remove(KEY);
            if meta.is_empty() {
                params.remove("_meta");
            }
            message.params = Some(mcpr_core::jsonrpc::to_raw(&Value::Object(params)));
            return None;
        }
        let client_id = serde_json::from_str::<Value>(&origin.related_id).ok()?;
        meta.insert(KEY.into(), client_id);
        message.params = Some(mcpr_core::jsonrpc::to_raw(&Value::Object(params)));
        Some(self.emit(
            origin,
            EventKind::Notification,
            std::mem::replace(message, Message::notification("", None)),
        ))
    }

    /// Forwards a server-to-client request to the client it concerns; returns false when no
    /// client request is in flight to attach it to.
    pub fn server_request(&self, mut message: Message, arrived_with: Option<u64>) -> bool {
        let Some(origin) = self.origin_for(arrived_with) else {
            return false;
        };
        let Some(sink) = self.sink.get() else {
            return false;
        };
        let ours = format!(
            "{}-{}",
            sink.id_prefix,
            self.next_server_request.fetch_add(1, Ordering::Relaxed)
        );
        let upstream_id = message
            .id
            .replace(Value::String(ours.clone()))
            .unwrap_or(Value::Null);
        self.server_requests.insert(ours.clone(), upstream_id);
        let delivered = self.emit(origin, EventKind::Request, message);
        if !delivered {
            self.server_requests.remove(&ours);
        }
        delivered
    }

    /// Asks the client of `origin` a request of the agent's own (the modern era's input
    /// requests, put to a legacy client); the receiver gets the client's answer. `None` when
    /// the request could not be delivered.
    pub fn ask(
        &self,
        origin: &Origin,
        method: &str,
        params: Value,
    ) -> Option<tokio::sync::oneshot::Receiver<Message>> {
        let sink = self.sink.get()?;
        let ours = format!(
            "{}-{}",
            sink.id_prefix,
            self.next_server_request.fetch_add(1, Ordering::Relaxed)
        );
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.asks.insert(ours.clone(), answer);
        let request = Message::request(Value::String(ours.clone()), method, Some(params));
        if !self.emit(origin.clone(), EventKind::Request, request) {
            self.asks.remove(&ours);
            return None;
        }
        Some(answered)
    }

    /// Whether this session sent the server-to-client request `id` (our id for it).
    pub fn awaits(&self, id: &str) -> bool {
        self.server_requests.contains_key(id) || self.asks.contains_key(id)
    }

    /// The client's answer to a server-to-client request, with the upstream's id restored;
    /// `None` when the request is unknown (answered already, or never ours).
    pub fn client_response(&self, mut message: Message) -> Option<Message> {
        let ours = match message.id.as_ref()? {
            Value::String(s) => s.clone(),
            _ => return None,
        };
        if let Some((_, waiter)) = self.asks.remove(&ours) {
            let _ = waiter.send(message);
            return None;
        }
        let (_, upstream_id) = self.server_requests.remove(&ours)?;
        message.id = Some(upstream_id);
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Collects what the routing emits.
    struct Collected(
        std::sync::mpsc::Receiver<Arc<AgentEvent>>,
        #[allow(dead_code)] mcpr_core::relay::Subscription,
    );

    impl Collected {
        fn try_recv(&mut self) -> Result<Arc<AgentEvent>, std::sync::mpsc::TryRecvError> {
            self.0.try_recv()
        }
    }

    fn routing() -> (Routing, Collected) {
        let hub = EventHub::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let subscription = hub.subscribe(Arc::new(move |event: &Arc<AgentEvent>| {
            let _ = tx.lock().unwrap().send(event.clone());
        }));
        let routing = Routing::default();
        routing.connect("p", "agent", hub);
        (routing, Collected(rx, subscription))
    }

    fn origin(session: &str, id: &str) -> Origin {
        Origin {
            client_session: session.into(),
            related_id: id.into(),
        }
    }

    #[test]
    fn progress_tokens_are_made_unique_and_restored_per_client() {
        let (routing, mut rx) = routing();
        let call = |token: &str| {
            Message::request(
                json!(1),
                "tools/call",
                Some(json!({"name": "t", "_meta": {"progressToken": token}})),
            )
        };
        let a = routing.outgoing(call("same"), 10, origin("A", "1"));
        let b = routing.outgoing(call("same"), 11, origin("B", "1"));
        assert!(a.params.unwrap().get().contains("mcpr-10"));
        assert!(b.params.unwrap().get().contains("mcpr-11"));
        let progress = Message::notification(
            "notifications/progress",
            Some(json!({"progressToken": "mcpr-11", "progress": 1})),
        );
        assert!(routing.notification(progress, None));
        let event = rx.try_recv().unwrap();
        assert_eq!(event.client_session, "B");
        assert!(
            event
                .message
                .params
                .as_ref()
                .unwrap()
                .get()
                .contains("\"progressToken\":\"same\"")
        );
        routing.finished(11);
        let late = Message::notification(
            "notifications/progress",
            Some(json!({"progressToken": "mcpr-11", "progress": 2})),
        );
        assert!(
            !routing.notification(late, None),
            "no progress after the response"
        );
    }

    #[test]
    fn server_requests_go_to_the_request_they_arrived_with_and_answers_come_back() {
        let (routing, mut rx) = routing();
        routing.outgoing(
            Message::request(json!(1), "tools/call", None),
            1,
            origin("A", "7"),
        );
        routing.outgoing(
            Message::request(json!(1), "tools/call", None),
            2,
            origin("B", "8"),
        );
        let sampling = Message::request(json!(42), "sampling/createMessage", Some(json!({})));
        assert!(routing.server_request(sampling, Some(1)));
        let event = rx.try_recv().unwrap();
        assert_eq!(
            (event.client_session.as_str(), event.related_id.as_str()),
            ("A", "7")
        );
        let ours = event.message.id.clone().unwrap();
        let answer = Message::result(
            ours,
            mcpr_core::jsonrpc::to_raw(&json!({"role": "assistant"})),
        );
        assert_eq!(routing.client_response(answer).unwrap().id, Some(json!(42)));
        let again = Message::result(json!("agent-0"), mcpr_core::jsonrpc::to_raw(&json!({})));
        assert!(routing.client_response(again).is_none(), "answered once");
        // Without a link (stdio), the newest request in flight gets it.
        assert!(routing.server_request(Message::request(json!(43), "roots/list", None), None));
        assert_eq!(rx.try_recv().unwrap().client_session, "B");
    }

    #[test]
    fn listen_notifications_go_to_their_listen_request() {
        let (routing, mut rx) = routing();
        routing.outgoing(
            Message::request(json!(1), "subscriptions/listen", None),
            5,
            origin("modern", "\"L1\""),
        );
        let changed = Message::notification(
            "notifications/tools/list_changed",
            Some(json!({"_meta": {"io.modelcontextprotocol/subscriptionId": 5}})),
        );
        assert!(routing.notification(changed, None));
        let event = rx.try_recv().unwrap();
        assert_eq!(
            (event.client_session.as_str(), event.related_id.as_str()),
            ("modern", "\"L1\"")
        );
        assert!(
            event
                .message
                .params
                .as_ref()
                .unwrap()
                .get()
                .contains(r#"subscriptionId":"L1""#)
        );
    }

    #[test]
    fn list_changed_goes_to_everyone_and_nothing_without_clients() {
        let (routing, mut rx) = routing();
        assert!(routing.notification(
            Message::notification("notifications/resources/list_changed", None),
            None
        ));
        assert_eq!(rx.try_recv().unwrap().client_session, "");
        assert!(!routing.server_request(
            Message::request(json!(1), "sampling/createMessage", None),
            None
        ));
    }
}
