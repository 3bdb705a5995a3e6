//! The relay as a trait: how a gateway hands a JSON-RPC message to the agent that runs a
//! provider, and how the agent hands back what upstream servers send on their own
//! (notifications, server-to-client requests). The distributed form implements it over the
//! gRPC `RelayService`; `mcpr up` also gives its gateway the in-process agent directly,
//! which skips a loopback HTTP/2 hop on the data path while everything else still runs
//! through gRPC.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::broadcast;

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
    /// What upstream servers send on their own, for every gateway to route.
    fn events(&self) -> broadcast::Receiver<Arc<AgentEvent>>;
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
