//! The HTTP listener of every binary (MCP, REST API, web UI), plain or TLS.
//!
//! Connections are spread over worker threads, each running its own single-threaded tokio
//! runtime, as Envoy spreads them over its workers: a connection is served on one thread,
//! and the upstream requests it makes leave from that thread too (the agent keeps one
//! upstream connection pool per worker, `worker_index`), so a call crosses no thread on its
//! way through the router. Under tokio's work-stealing scheduler a call hopped between the
//! cores, and waking a parked core cost about 60 µs per call at 1,000 calls/s on the
//! benchmark machine (docs/BENCHMARKS.md). Everything else (gRPC, supervision, the
//! control plane) stays on the process's main runtime.
//!
//! The listener also defends itself against clients that hold resources without using them
//! (issue 11; the limits are `mcpr_core::settings::Limits`): connections are capped per client
//! address and in total, refused ones closed at once; a request's headers must arrive within
//! `MCPR_HEADER_TIMEOUT_SECS` (the first within that of connecting) and its body within
//! `MCPR_BODY_TIMEOUT_SECS` of the first wait for it; a connection with no request running is
//! closed after `MCPR_IDLE_TIMEOUT_SECS`, while one with a response streaming (SSE) is never
//! idle; and accept backs off when the process is out of file descriptors.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcpr_core::settings::Limits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::{HANDSHAKE_TIMEOUT, Tls};

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The HTTP worker the calling thread is (1, 2, …), or 0 on any other thread.
pub fn worker_index() -> usize {
    WORKER.with(Cell::get)
}

/// How many HTTP worker threads a listener gets: `MCPR_HTTP_WORKERS`, or one per CPU.
pub fn http_workers() -> usize {
    std::env::var("MCPR_HTTP_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

type Accepted = (std::net::TcpStream, SocketAddr, Admitted);

/// Serves `router` on `listener` until the process ends, over TLS when `tls` serves it. The
/// client's address reaches handlers as `ConnectInfo<SocketAddr>` either way.
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<Tls>>,
) -> anyhow::Result<()> {
    let limits = Limits::current();
    let acceptor = tls
        .and_then(|tls| tls.http.clone())
        .map(tokio_rustls::TlsAcceptor::from);
    let workers = (1..=http_workers())
        .map(|index| start_worker(index, router.clone(), acceptor.clone(), limits))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let counts = Arc::new(ConnectionCounts::new(limits));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut refusals = RefusalLog::default();
    let mut next = 0;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(e) => {
                // Out of file descriptors (EMFILE, ENFILE) and the like: the pending
                // connection stays in the backlog, so accepting again at once would spin.
                // Back off, longer while it lasts; open connections close meanwhile.
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accepting a connection failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let admitted = match counts.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(cap) => {
                // Closed at once: nothing is read, nothing kept.
                drop(tcp);
                refusals.note(peer.ip(), cap);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(tcp) = tcp.into_std() else { continue };
        // Round robin: connections are many and alike (each carries calls one at a time).
        if workers[next % workers.len()]
            .send((tcp, peer, admitted))
            .is_err()
        {
            anyhow::bail!("HTTP worker {} stopped", next % workers.len() + 1);
        }
        next += 1;
    }
}

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The open connections of one listener, in total and by client address.
struct ConnectionCounts {
    limits: &'static Limits,
    total: AtomicUsize,
    /// Taken once when a connection opens and once when it closes, never per request.
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy)]
enum Cap {
    Address,
    Total,
}

impl ConnectionCounts {
    fn new(limits: &'static Limits) -> ConnectionCounts {
        ConnectionCounts {
            limits,
            total: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
        }
    }

    fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Cap> {
        let mut per_address = self.per_address.lock().unwrap();
        let open = per_address.entry(address).or_insert(0);
        if *open >= self.limits.max_connections_per_ip {
            return Err(Cap::Address);
        }
        if self.total.load(Ordering::Relaxed) >= self.limits.max_connections {
            if *open == 0 {
                per_address.remove(&address);
            }
            return Err(Cap::Total);
        }
        *open += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted {
            counts: self.clone(),
            address,
        })
    }
}

/// A connection counted open until this drops.
struct Admitted {
    counts: Arc<ConnectionCounts>,
    address: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
        let mut per_address = self.counts.per_address.lock().unwrap();
        if let Some(open) = per_address.get_mut(&self.address) {
            *open -= 1;
            if *open == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

/// Refused connections are logged at most every 10 s, with how many: a flood of them must
/// not become a flood of log lines.
#[derive(Default)]
struct RefusalLog {
    since_logged: u64,
    logged: Option<Instant>,
}

impl RefusalLog {
    fn note(&mut self, address: IpAddr, cap: Cap) {
        self.since_logged += 1;
        if self
            .logged
            .is_some_and(|at| at.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        let (variable, limit) = match cap {
            Cap::Address => (
                "MCPR_MAX_CONNECTIONS_PER_IP",
                Limits::current().max_connections_per_ip,
            ),
            Cap::Total => ("MCPR_MAX_CONNECTIONS", Limits::current().max_connections),
        };
        tracing::warn!(%address, refused = self.since_logged, limit, "connection refused: {variable} reached");
        self.since_logged = 0;
        self.logged = Some(Instant::now());
    }
}

fn start_worker(
    index: usize,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: &'static Limits,
) -> anyhow::Result<mpsc::UnboundedSender<Accepted>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Accepted>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting an HTTP worker runtime")?;
    std::thread::Builder::new()
        .name(format!("mcpr-http-{index}"))
        .spawn(move || {
            WORKER.with(|w| w.set(index));
            runtime.block_on(async move {
                while let Some((tcp, peer, admitted)) = rx.recv().await {
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => {
                            tokio::spawn(connection(
                                tcp,
                                peer,
                                router.clone(),
                                acceptor.clone(),
                                limits,
                                admitted,
                            ));
                        }
                        Err(e) => tracing::warn!(%peer, error = %e, "cannot serve a connection"),
                    }
                }
            });
        })
        .context("starting an HTTP worker thread")?;
    Ok(tx)
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: &'static Limits,
    _admitted: Admitted,
) {
    let Some(acceptor) = acceptor else {
        return serve(tcp, peer, router, limits).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve(stream, peer, router, limits).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// How long a connection told to close gracefully (idle) may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// HTTP/1.1 or HTTP/2 (by preface or ALPN) on one connection, watched for stalls: see the
/// module comment.
async fn serve<I>(io: I, peer: SocketAddr, router: axum::Router, limits: &'static Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnectionState::new());
    let service_state = state.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let running = service_state.request_started();
        let mut request = request.map(|body| {
            axum::body::Body::new(TimedBody {
                inner: body,
                timeout: limits.body_timeout,
                timer: None,
            })
        });
        request.extensions_mut().insert(ConnectInfo(peer));
        // HTTP/2 carries the host in `:authority`, not a Host header; the gateway's
        // DNS-rebinding check reads Host, so give it the one the client sent.
        if !request.headers().contains_key(hyper::header::HOST)
            && let Some(host) = request
                .uri()
                .authority()
                .and_then(|a| hyper::header::HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(hyper::header::HOST, host);
        }
        let answer = router.clone().oneshot(request);
        // The request runs until its response body has gone (an SSE stream included).
        async move {
            answer.await.map(|response| {
                response.map(|body| Running {
                    body,
                    _running: running,
                })
            })
        }
    });
    let io = Watched {
        io,
        state: state.clone(),
        read_any: false,
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing = None;
    loop {
        let check = state.next_check(limits);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep(check), if closing.is_none() => match state.stalled(limits) {
                Some(Stall::Headers) => {
                    tracing::debug!(%peer, "request headers not received in time; connection closed");
                    return;
                }
                Some(Stall::Idle) => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                None => {}
            },
            _ = tokio::time::sleep_until(closing.unwrap_or_else(tokio::time::Instant::now)), if closing.is_some() => {
                tracing::debug!(%peer, "idle connection closed");
                return;
            }
        }
    }
}

/// Not set (the `head_since` of a connection that receives no request).
const NONE: u64 = u64::MAX;

/// What the watchdog of a connection (`serve`) needs to know, updated by the connection's
/// reads and requests with relaxed atomics (no lock, no allocation per request).
struct ConnectionState {
    started: Instant,
    /// Requests whose response has not gone yet.
    in_flight: AtomicUsize,
    /// Milliseconds since `started` when the last request ended.
    idle_since: AtomicU64,
    /// Milliseconds since `started` when bytes of the next request's head began to arrive
    /// (the connection itself at first); `NONE` when no head is awaited.
    head_since: AtomicU64,
    /// HTTP/2: its frames between requests (pings, settings) are no request head.
    multiplexed: AtomicBool,
}

enum Stall {
    Headers,
    Idle,
}

impl ConnectionState {
    fn new() -> ConnectionState {
        ConnectionState {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            multiplexed: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn request_started(self: &Arc<Self>) -> RequestRunning {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        RequestRunning(self.clone())
    }

    /// Bytes arrived: with no request running, they begin the next one's head.
    fn received(&self, first: Option<&[u8]>) {
        if let Some(first) = first
            && first.starts_with(b"PRI * HTTP/2")
        {
            self.multiplexed.store(true, Ordering::Relaxed);
            self.head_since.store(NONE, Ordering::Relaxed);
            return;
        }
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.multiplexed.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    fn stalled(&self, limits: &Limits) -> Option<Stall> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.now();
        let head_since = self.head_since.load(Ordering::Relaxed);
        if head_since != NONE
            && now.saturating_sub(head_since) >= limits.header_timeout.as_millis() as u64
        {
            return Some(Stall::Headers);
        }
        let idle_since = self.idle_since.load(Ordering::Relaxed);
        (now.saturating_sub(idle_since) >= limits.idle_timeout.as_millis() as u64)
            .then_some(Stall::Idle)
    }

    /// When to look again: at the next deadline, and at least every header timeout, as
    /// reads and requests do not wake the watchdog (a stalled head is found within twice
    /// the timeout).
    fn next_check(&self, limits: &Limits) -> Duration {
        let mut wait = limits.header_timeout;
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let now = self.now();
            let head_since = self.head_since.load(Ordering::Relaxed);
            let deadline = if head_since != NONE {
                head_since + limits.header_timeout.as_millis() as u64
            } else {
                self.idle_since.load(Ordering::Relaxed) + limits.idle_timeout.as_millis() as u64
            };
            wait = wait.min(Duration::from_millis(deadline.saturating_sub(now)));
        }
        wait.max(Duration::from_millis(10))
    }
}

/// A request running on a connection, until its response body has gone or is dropped.
struct RequestRunning(Arc<ConnectionState>);

impl Drop for RequestRunning {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            state.idle_since.store(state.now(), Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request counted as running.
struct Running {
    body: axum::body::Body,
    _running: RequestRunning,
}

impl Body for Running {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's bytes, reported to its watchdog as they arrive.
struct Watched<I> {
    io: I,
    state: Arc<ConnectionState>,
    read_any: bool,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let first = (!self.read_any).then(|| &buf.filled()[before..]);
            self.state.received(first);
            self.read_any = true;
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The error of a request body that did not arrive within `MCPR_BODY_TIMEOUT_SECS` of the
/// first wait for it; handlers find it in the body error's sources ([`is_body_timeout`]).
#[derive(Debug)]
pub struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request body not received within {} s (MCPR_BODY_TIMEOUT_SECS)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// Whether a body error is (caused by) a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

pin_project_lite::pin_project! {
    /// A request body with a deadline, set when it is first not there yet: a body that is
    /// (the common case, a small body in the packets of its headers) costs no timer. The
    /// timer lives inline, in the box `axum::body::Body` makes anyway.
    struct TimedBody {
        #[pin]
        inner: Incoming,
        timeout: Duration,
        #[pin]
        timer: Option<tokio::time::Sleep>,
    }
}

impl Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.timeout)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.timeout))))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_in_total() {
        let limits: &'static Limits = Box::leak(Box::new(Limits {
            max_connections_per_ip: 2,
            max_connections: 3,
            ..Limits::default()
        }));
        let counts = Arc::new(ConnectionCounts::new(limits));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = counts.admit(a).unwrap();
        let _a2 = counts.admit(a).unwrap();
        assert!(matches!(counts.admit(a), Err(Cap::Address)));
        let _b1 = counts.admit(b).unwrap();
        assert!(matches!(counts.admit(b), Err(Cap::Total)));
        drop(a1);
        let _b2 = counts.admit(b).unwrap();
        assert_eq!(counts.total.load(Ordering::Relaxed), 3);
        assert!(matches!(counts.admit(a), Err(Cap::Total)));
        assert_eq!(
            counts.per_address.lock().unwrap().len(),
            2,
            "no entry left for refusals"
        );
    }

    #[test]
    fn a_connection_is_stalled_only_with_nothing_running() {
        let limits = Limits {
            header_timeout: Duration::from_millis(20),
            idle_timeout: Duration::from_millis(40),
            ..Limits::default()
        };
        let state = Arc::new(ConnectionState::new());
        assert!(state.stalled(&limits).is_none());
        std::thread::sleep(Duration::from_millis(25));
        assert!(
            matches!(state.stalled(&limits), Some(Stall::Headers)),
            "no first request"
        );
        let running = state.request_started();
        std::thread::sleep(Duration::from_millis(50));
        assert!(state.stalled(&limits).is_none(), "a request runs");
        drop(running);
        assert!(state.stalled(&limits).is_none());
        std::thread::sleep(Duration::from_millis(45));
        assert!(matches!(state.stalled(&limits), Some(Stall::Idle)));
        // Bytes of a next request after one ended: its head is awaited, not idleness.
        let next = state.request_started();
        drop(next);
        state.received(None);
        std::thread::sleep(Duration::from_millis(25));
        assert!(matches!(state.stalled(&limits), Some(Stall::Headers)));
        let h2 = ConnectionState::new();
        h2.received(Some(b"PRI * HTTP/2.0\r\n"));
        std::thread::sleep(Duration::from_millis(25));
        assert!(
            h2.stalled(&limits).is_none(),
            "HTTP/2 frames are no request head"
        );
    }
}
