//! The relay as a trait: how a gateway hands a JSON-RPC message to the agent that runs a
//! provider, and how the agent hands back what upstream servers send on their own
//! (notifications, server-to-client requests). The distributed form implements it over the
//! gRPC `RelayService`; `mcpr up` also gives its gateway the in-process agent directly,
//! which skips a loopback HTTP/2 hop on the data path while everything else still runs
//! through gRPC.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::jsonrpc::Message;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait LocalAgent: Send + Sync + 'static {
    /// Relays a request to `provider`; the answer carries the request's id.
    fn request<'a>(
        &'a self,
        provider: &'a str,
        session: &'a str,
        message: Message,
    ) -> BoxFuture<'a, Message>;
    /// Relays a notification to `provider`.
    fn notify<'a>(
        &'a self,
        provider: &'a str,
        session: &'a str,
        message: Message,
    ) -> BoxFuture<'a, ()>;
    /// Relays a client's response to a server-to-client request (see [`AgentEvent`]).
    fn respond<'a>(&'a self, provider: &'a str, message: Message) -> BoxFuture<'a, ()>;
    /// Calls `sink` with what upstream servers send on their own, until the subscription
    /// drops.
    fn subscribe(&self, sink: EventSink) -> Subscription;
}

/// Receives an upstream's own message synchronously, in the order the upstream sent it and
/// before the answer it precedes is handed on: delivery never races the answer.
pub type EventSink = Arc<dyn Fn(&Arc<AgentEvent>) + Send + Sync>;

/// Synchronous fan-out of agent events to every subscriber (the in-process gateway, each
/// gateway's relay stream).
#[derive(Clone, Default)]
pub struct EventHub {
    sinks: Arc<RwLock<Vec<(u64, EventSink)>>>,
    next_id: Arc<AtomicU64>,
}

impl EventHub {
    pub fn subscribe(&self, sink: EventSink) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sinks.write().unwrap().push((id, sink));
        Subscription {
            hub: self.clone(),
            id,
        }
    }

    /// Hands `event` to every subscriber; false when there is none.
    pub fn send(&self, event: Arc<AgentEvent>) -> bool {
        let sinks = self.sinks.read().unwrap();
        for (_, sink) in sinks.iter() {
            sink(&event);
        }
        !sinks.is_empty()
    }
}

/// Ends its sink's subscription when dropped.
pub struct Subscription {
    hub: EventHub,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub
            .sinks
            .write()
            .unwrap()
            .retain(|(id, _)| *id != self.id);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Notification,
    /// A server-to-client request; its id is the agent's, unique per agent.
    Request,
}

/// A message an upstream server sent on its own, addressed to a client session.
#[derive(Debug)]
pub struct AgentEvent {
    pub provider: String,
    /// The client session it belongs to; empty for every session of the provider.
    pub client_session: String,
    /// The client request it relates to (its JSON-RPC id as JSON text), or empty.
    pub related_id: String,
    pub kind: EventKind,
    pub message: Message,
}
