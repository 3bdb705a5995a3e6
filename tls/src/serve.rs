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

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
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

type Accepted = (std::net::TcpStream, SocketAddr);

/// Serves `router` on `listener` until the process ends, over TLS when `tls` serves it. The
/// client's address reaches handlers as `ConnectInfo<SocketAddr>` either way.
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<Tls>>,
) -> anyhow::Result<()> {
    let acceptor = tls
        .and_then(|tls| tls.http.clone())
        .map(tokio_rustls::TlsAcceptor::from);
    let workers = (1..=http_workers())
        .map(|index| start_worker(index, router.clone(), acceptor.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut next = 0;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(tcp) = tcp.into_std() else { continue };
        // Round robin: connections are many and alike (each carries calls one at a time).
        if workers[next % workers.len()].send((tcp, peer)).is_err() {
            anyhow::bail!("HTTP worker {} stopped", next % workers.len() + 1);
        }
        next += 1;
    }
}

fn start_worker(
    index: usize,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
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
                while let Some((tcp, peer)) = rx.recv().await {
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => {
                            tokio::spawn(connection(tcp, peer, router.clone(), acceptor.clone()));
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
) {
    let Some(acceptor) = acceptor else {
        return serve(tcp, peer, router).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve(stream, peer, router).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// HTTP/1.1 or HTTP/2 (by preface or ALPN) on one connection.
async fn serve<I>(io: I, peer: SocketAddr, router: axum::Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
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
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
