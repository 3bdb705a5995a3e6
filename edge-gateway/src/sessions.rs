//! Client sessions and the delivery of what upstream servers send on their own
//! (notifications, server-to-client requests) to the client they concern: on the SSE
//! response of the client request they relate to when that request is still open, else on
//! the session's GET stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use mcpr_core::relay::{AgentEvent, EventKind};
use tokio::sync::mpsc;

use crate::Gateway;
use crate::views::View;

/// Messages kept for a session whose client has no GET stream open; older ones are dropped.
const OUTBOX_CAPACITY: usize = 1024;

/// A client session created by `initialize`.
#[derive(Debug)]
pub struct ClientSession {
    pub view: View,
    pub protocol_version: String,
    pub created: Instant,
    /// Seconds since `created` of the last request, for idle expiry.
    last_seen: AtomicU64,
    outbox: mpsc::Sender<Vec<u8>>,
    /// Taken by the GET stream while it is open (one at a time).
    pub inbox: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>>,
}

impl ClientSession {
    pub fn new(view: View, protocol_version: String) -> ClientSession {
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        ClientSession {
            view,
            protocol_version,
            created: Instant::now(),
            last_seen: AtomicU64::new(0),
            outbox,
            inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
        }
    }

    pub fn touch(&self) {
        self.last_seen.store(self.created.elapsed().as_secs(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = self.last_seen.load(Ordering::Relaxed);
        self.created.elapsed().saturating_sub(Duration::from_secs(last))
    }

    /// Queues a message for the session's GET stream; false when the queue is full.
    pub fn push(&self, message: Vec<u8>) -> bool {
        self.outbox.try_send(message).is_ok()
    }
}

pub type Sessions = DashMap<String, ClientSession>;

/// Forgets sessions idle for longer than `idle`; their clients get 404 and initialize anew,
/// as the transport specifies.
pub fn expire_sessions(sessions: &Sessions, idle: Duration) -> usize {
    let before = sessions.len();
    sessions.retain(|_, s| s.idle_for() < idle);
    before - sessions.len()
}

/// Open client requests that stream (session, client request id as JSON text), and
/// server-to-client requests awaiting the client's answer.
#[derive(Default)]
pub struct Delivery {
    request_streams: DashMap<(String, String), mpsc::Sender<Vec<u8>>>,
    /// (session, our id for the request as JSON text) -> (relay URL, provider)
    server_requests: DashMap<(String, String), (String, String)>,
}

impl Delivery {
    /// Routes messages related to the client request `id` of `session` to `stream` until
    /// the returned guard drops.
    pub fn open_stream(self: &Arc<Self>, session: &str, id: &str, stream: mpsc::Sender<Vec<u8>>) -> StreamGuard {
        let key = (session.to_owned(), id.to_owned());
        self.request_streams.insert(key.clone(), stream);
        StreamGuard { delivery: self.clone(), key }
    }

    /// Where the client's answer to server-to-client request `id` must go.
    pub fn take_server_request(&self, session: &str, id: &str) -> Option<(String, String)> {
        self.server_requests.remove(&(session.to_owned(), id.to_owned())).map(|(_, v)| v)
    }
}

pub struct StreamGuard {
    delivery: Arc<Delivery>,
    key: (String, String),
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.delivery.request_streams.remove(&self.key);
    }
}

impl Gateway {
    /// Delivers one upstream-originated message from the agent at `relay_url`.
    pub(crate) async fn deliver(&self, relay_url: &str, event: &AgentEvent) {
        let bytes = event.message.to_bytes();
        if event.client_session.is_empty() {
            // For every client of the provider: its transparent-view sessions.
            for session in self.sessions.iter() {
                if matches!(&session.view, View::Transparent(p) if *p == event.provider) && !session.push(bytes.clone()) {
                    tracing::debug!(session = %session.key(), "outbox full; notification dropped");
                }
            }
            return;
        }
        if event.kind == EventKind::Request {
            let id = event.message.id.as_ref().map(|v| v.to_string()).unwrap_or_default();
            self.delivery
                .server_requests
                .insert((event.client_session.clone(), id), (relay_url.to_owned(), event.provider.clone()));
        }
        let stream = self.delivery.request_streams.get(&(event.client_session.clone(), event.related_id.clone())).map(|s| s.clone());
        if let Some(stream) = stream {
            if stream.send(bytes.clone()).await.is_ok() {
                return;
            }
        }
        match self.sessions.get(&event.client_session) {
            Some(session) => {
                if !session.push(bytes) {
                    tracing::debug!(session = %event.client_session, "outbox full; message dropped");
                }
            }
            None => tracing::debug!(session = %event.client_session, "message for an unknown session dropped"),
        }
    }
}
