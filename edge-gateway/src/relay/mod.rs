//! The gateway's end of the relay: one bidirectional gRPC stream per agent, shared by every
//! client session, with exchanges matched by id. A broken stream fails its exchanges at once
//! (never a hang) and is re-opened on the next request.

pub mod delivery;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use mcpr_core::jsonrpc::{Message, RpcError, code};
use mcpr_core::relay::{AgentEvent, EventKind, LocalAgent};
use mcpr_core::telemetry::{self, mcp};
use mcpr_proto as pb;
use mcpr_tls::cluster::ClusterToken;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

/// One agent's relay stream.
struct Link {
    outbound: mpsc::Sender<pb::RelayFrame>,
    pending: Arc<DashMap<u64, oneshot::Sender<Vec<u8>>>>,
    /// Set when the stream broke; the next request opens a new link.
    broken: Arc<std::sync::atomic::AtomicBool>,
}

/// Takes an agent's own message (relay URL, event), synchronously and in stream order.
pub type EventHandler = Arc<dyn Fn(&str, &Arc<AgentEvent>) + Send + Sync>;

/// Relay links to every agent, by relay URL.
pub struct RelayPool {
    /// An agent in this process (`mcpr up`), called directly: (its relay URL, the agent).
    local: Option<(String, Arc<dyn LocalAgent>)>,
    links: DashMap<String, Arc<Link>>,
    /// Where agents' own messages (notifications, server requests) go, with their relay URL.
    events: Arc<std::sync::OnceLock<EventHandler>>,
    connecting: DashMap<String, Arc<Mutex<()>>>,
    next_exchange: AtomicU64,
    timeout: Duration,
    /// Opens every relay stream (`mcpr_tls::cluster`): an agent relays only for gateways
    /// of its cluster.
    token: Option<ClusterToken>,
}

impl RelayPool {
    pub fn new(
        timeout: Duration,
        local: Option<(String, Arc<dyn LocalAgent>)>,
        token: Option<ClusterToken>,
    ) -> Self {
        RelayPool {
            local,
            token,
            events: Default::default(),
            links: DashMap::new(),
            connecting: DashMap::new(),
            next_exchange: AtomicU64::new(1),
            timeout,
        }
    }

    /// The relay streams open to remote agents, and the exchanges waiting on them (an agent
    /// in this process is called directly: neither counts its calls).
    pub fn streams_and_in_flight(&self) -> (usize, usize) {
        let mut streams = 0;
        let mut in_flight = 0;
        for link in self.links.iter() {
            if !link.broken.load(Ordering::Relaxed) {
                streams += 1;
                in_flight += link.pending.len();
            }
        }
        (streams, in_flight)
    }

    /// Sends a request to `provider` on the agent at `relay_url` and waits for the response.
    pub async fn request(
        &self,
        relay_url: &str,
        provider: &str,
        session: &str,
        message: Message,
    ) -> Result<Message, RpcError> {
        if telemetry::enabled() && !mcp::is_dropped() {
            // Boxed: an untraced call's future stays the size it was.
            return Box::pin(self.request_traced(relay_url, provider, session, message)).await;
        }
        self.send_request(relay_url, provider, session, message, None)
            .await
    }

    /// The relay call as a CLIENT span, whose context goes to the agent in the frame (or,
    /// to the agent in this process, as the current span its own span continues).
    async fn request_traced(
        &self,
        relay_url: &str,
        provider: &str,
        session: &str,
        message: Message,
    ) -> Result<Message, RpcError> {
        let server = tracing::Span::current();
        mcp::set(&server, "mcpr.provider", provider);
        mcp::set(&server, "mcpr.agent", relay_url);
        let span = mcp::request_span(&message, mcp::Side::Client, None);
        mcp::set(&span, "mcpr.provider", provider);
        mcp::set(&span, "mcpr.agent", relay_url);
        let context = mcp::TraceContext::of(&span);
        let answer = self.send_request(relay_url, provider, session, message, Some(context));
        mcp::relayed_in(span, answer).await
    }

    async fn send_request(
        &self,
        relay_url: &str,
        provider: &str,
        session: &str,
        message: Message,
        trace: Option<mcp::TraceContext>,
    ) -> Result<Message, RpcError> {
        if let Some(agent) = self.local_agent(relay_url) {
            let answer = agent.request(provider, session, message);
            return tokio::time::timeout(self.timeout, answer)
                .await
                .map_err(|_| {
                    RpcError::new(
                        code::UPSTREAM_TIMEOUT,
                        format!(
                            "no answer from provider {provider:?} within {} s",
                            self.timeout.as_secs()
                        ),
                    )
                });
        }
        // A request of a dropped trace tells the remote agent so (flags `00`).
        let trace = trace.or_else(mcp::dropped);
        let link = self.link(relay_url).await?;
        let exchange_id = self.next_exchange.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.pending.insert(exchange_id, tx);
        let frame = pb::RelayFrame {
            exchange_id,
            provider: provider.to_owned(),
            client_session: session.to_owned(),
            kind: pb::RelayKind::Request as i32,
            message: message.to_bytes(),
            related_id: String::new(),
            traceparent: trace
                .as_ref()
                .map(|t| t.traceparent.clone())
                .unwrap_or_default(),
            tracestate: trace.map(|t| t.tracestate).unwrap_or_default(),
        };
        if link.outbound.send(frame).await.is_err() {
            link.pending.remove(&exchange_id);
            link.broken.store(true, Ordering::Relaxed);
            return Err(unreachable(relay_url, "relay stream closed"));
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(bytes)) => Message::parse(&bytes),
            Ok(Err(_)) => Err(unreachable(relay_url, "relay stream broke while waiting")),
            Err(_) => {
                link.pending.remove(&exchange_id);
                Err(RpcError::new(
                    code::UPSTREAM_TIMEOUT,
                    format!(
                        "no answer from provider {provider:?} within {} s",
                        self.timeout.as_secs()
                    ),
                ))
            }
        }
    }

    /// Sends a notification (no answer expected).
    pub async fn notify(
        &self,
        relay_url: &str,
        provider: &str,
        session: &str,
        message: Message,
    ) -> Result<(), RpcError> {
        if let Some(agent) = self.local_agent(relay_url) {
            agent.notify(provider, session, message).await;
            return Ok(());
        }
        let link = self.link(relay_url).await?;
        let frame = pb::RelayFrame {
            exchange_id: 0,
            provider: provider.to_owned(),
            client_session: session.to_owned(),
            kind: pb::RelayKind::Notification as i32,
            message: message.to_bytes(),
            related_id: String::new(),
            ..Default::default()
        };
        link.outbound
            .send(frame)
            .await
            .map_err(|_| unreachable(relay_url, "relay stream closed"))
    }

    /// Sends a client's answer to a server-to-client request back to the agent.
    pub async fn respond(
        &self,
        relay_url: &str,
        provider: &str,
        message: Message,
    ) -> Result<(), RpcError> {
        if let Some(agent) = self.local_agent(relay_url) {
            agent.respond(provider, message).await;
            return Ok(());
        }
        let link = self.link(relay_url).await?;
        let frame = pb::RelayFrame {
            exchange_id: 0,
            provider: provider.to_owned(),
            client_session: String::new(),
            kind: pb::RelayKind::ServerResponse as i32,
            message: message.to_bytes(),
            related_id: String::new(),
            ..Default::default()
        };
        link.outbound
            .send(frame)
            .await
            .map_err(|_| unreachable(relay_url, "relay stream closed"))
    }

    pub fn set_event_handler(&self, handler: EventHandler) {
        let _ = self.events.set(handler);
    }

    fn local_agent(&self, relay_url: &str) -> Option<&Arc<dyn LocalAgent>> {
        self.local
            .as_ref()
            .filter(|(url, _)| url == relay_url)
            .map(|(_, agent)| agent)
    }

    /// The agent's live link, opening one if there is none. Opening is boxed: its future
    /// (tonic's connect) is kilobytes, and would otherwise be part of every request's.
    async fn link(&self, relay_url: &str) -> Result<Arc<Link>, RpcError> {
        match self.live_link(relay_url) {
            Some(link) => Ok(link),
            None => Box::pin(self.connect(relay_url)).await,
        }
    }

    fn live_link(&self, relay_url: &str) -> Option<Arc<Link>> {
        self.links
            .get(relay_url)
            .filter(|link| !link.broken.load(Ordering::Relaxed))
            .map(|link| link.clone())
    }

    async fn connect(&self, relay_url: &str) -> Result<Arc<Link>, RpcError> {
        // One connection attempt per agent at a time; the others wait for its result.
        let gate = self
            .connecting
            .entry(relay_url.to_owned())
            .or_default()
            .clone();
        let _guard = gate.lock().await;
        if let Some(link) = self.live_link(relay_url) {
            return Ok(link);
        }
        let link = Arc::new(open(relay_url, self.token.as_ref(), self.events.clone()).await?);
        self.links.insert(relay_url.to_owned(), link.clone());
        Ok(link)
    }
}

fn unreachable(relay_url: &str, why: &str) -> RpcError {
    RpcError::new(
        code::UPSTREAM_UNAVAILABLE,
        format!("the agent at {relay_url} is unreachable: {why}"),
    )
}

async fn open(
    relay_url: &str,
    token: Option<&ClusterToken>,
    events: Arc<std::sync::OnceLock<EventHandler>>,
) -> Result<Link, RpcError> {
    let endpoint = mcpr_tls::grpc_endpoint(relay_url)
        .map_err(|e| unreachable(relay_url, &format!("{e:#}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(4 * 1024 * 1024))
        .initial_connection_window_size(Some(16 * 1024 * 1024))
        // An agent host cut off (its traffic dropped, no reset) breaks the stream within
        // 3 s, failing its calls with a clear error rather than at the request timeout; a
        // ping a second per agent link costs nothing next to the calls on it.
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(relay_url, &mcpr_core::error_chain(&e)))?;
    let channel = mcpr_tls::cluster::with_token(channel, token);
    let mut client = pb::relay_service_client::RelayServiceClient::new(channel)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let (outbound, rx) = mpsc::channel(1024);
    let mut inbound = client
        .relay(ReceiverStream::new(rx))
        .await
        .map_err(|status| unreachable(relay_url, status.message()))?
        .into_inner();
    let pending: Arc<DashMap<u64, oneshot::Sender<Vec<u8>>>> = Arc::new(DashMap::new());
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader_pending = pending.clone();
    let reader_broken = broken.clone();
    let url = relay_url.to_owned();
    tokio::spawn(async move {
        while let Some(frame) = inbound.next().await {
            match frame {
                Ok(frame) if frame.kind == pb::RelayKind::Response as i32 => {
                    if let Some((_, waiter)) = reader_pending.remove(&frame.exchange_id) {
                        let _ = waiter.send(frame.message);
                    }
                }
                Ok(frame) => {
                    let kind = match pb::RelayKind::try_from(frame.kind) {
                        Ok(pb::RelayKind::Notification) => EventKind::Notification,
                        Ok(pb::RelayKind::ServerRequest) => EventKind::Request,
                        _ => continue,
                    };
                    let Ok(message) = Message::parse(&frame.message) else {
                        continue;
                    };
                    let event = AgentEvent {
                        provider: frame.provider,
                        client_session: frame.client_session,
                        related_id: frame.related_id,
                        kind,
                        message,
                    };
                    if let Some(handler) = events.get() {
                        handler(&url, &Arc::new(event));
                    }
                }
                Err(status) => {
                    tracing::warn!(relay = %url, %status, "relay stream failed");
                    break;
                }
            }
        }
        reader_broken.store(true, Ordering::Relaxed);
        // Dropping the waiters fails every exchange in flight at once.
        reader_pending.clear();
    });
    Ok(Link {
        outbound,
        pending,
        broken,
    })
}
