//! The relay as a trait: how a gateway hands a JSON-RPC message to the agent that runs a
//! provider. The distributed form implements it over the gRPC `RelayService`; `mcpr up`
//! also gives its gateway the in-process agent directly, which skips a loopback HTTP/2 hop
//! on the data path while everything else still runs through gRPC.

use std::future::Future;
use std::pin::Pin;

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
}
