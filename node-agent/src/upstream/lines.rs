//! MCP's stdio transport over any pair of byte pipes: one JSON-RPC message per line. The
//! `process` runtime wires a child's stdin/stdout here and the `docker` runtime a container's
//! attach stream, so both speak the protocol through the same code.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mcpr_core::jsonrpc::Message;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};

use super::{Connection, Outbound, UpstreamEvent};
use crate::logs::LogSink;

/// The longest line (one JSON-RPC message) accepted from a server.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A [`Connection`] whose messages go to `stdin` and come from `stdout`, one per line. Lines
/// on `stdout` that are not JSON-RPC are kept as the server's log. The caller closes the
/// connection when the other end goes away (exit status, container gone).
pub fn connect<W, R>(
    stdin: W,
    stdout: R,
    logs: LogSink,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    request_timeout: Duration,
) -> Arc<Connection>
where
    W: AsyncWrite + Send + Unpin + 'static,
    R: AsyncRead + Send + Unpin + 'static,
{
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(256);
    let conn = Connection::new(Outbound::Lines(out_tx), events, request_timeout);
    tokio::spawn(write_lines(out_rx, stdin));
    tokio::spawn(read_lines(conn.clone(), stdout, logs));
    conn
}

/// One message per line; batches whatever is queued before flushing.
async fn write_lines<W: AsyncWrite + Unpin>(mut out_rx: mpsc::Receiver<Vec<u8>>, mut stdin: W) {
    while let Some(mut bytes) = out_rx.recv().await {
        bytes.push(b'\n');
        if stdin.write_all(&bytes).await.is_err() {
            return;
        }
        while let Ok(mut more) = out_rx.try_recv() {
            more.push(b'\n');
            if stdin.write_all(&more).await.is_err() {
                return;
            }
        }
        if stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Responses complete waiting requests; upstream requests get answers.
async fn read_lines<R: AsyncRead + Unpin>(conn: Arc<Connection>, stdout: R, logs: LogSink) {
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_MESSAGE_BYTES));
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                logs.line("stdout", format!("dropping unreadable output: {e}"));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match Message::parse(line.as_bytes()) {
            Ok(msg) => {
                if let Some(answer) = conn.on_message(msg, None) {
                    let _ = conn.notify(answer).await;
                }
            }
            // Servers that print to stdout break the protocol; keep the line as a log so
            // the admin can see why.
            Err(_) => logs.line("stdout", line),
        }
    }
}
