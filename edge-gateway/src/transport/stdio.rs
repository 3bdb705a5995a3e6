//! The stdio front door (`mcpr stdio`): newline-delimited JSON-RPC on stdin/stdout, served
//! by the same view handlers as HTTP, as one client session on the hierarchical view.
//! A request of the modern era (2026-07-28: its `_meta` names its protocol version) is
//! answered statelessly by the same code as a modern POST (`modern.rs`), whose answer (one
//! message, or a stream of them) goes out line by line. Nothing but protocol messages may
//! reach stdout.

use std::sync::Arc;

use futures::StreamExt;
use mcpr_core::jsonrpc::{Message, RpcError, code};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};

use crate::Gateway;
use crate::views::View;

const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Serves MCP on `input`/`output` until `input` ends.
pub async fn serve<R, W>(gateway: Arc<Gateway>, input: R, mut output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let session = format!("stdio-{}", uuid::Uuid::new_v4().simple());
    // One session for the whole connection, so that upstream notifications and requests
    // (progress, sampling, elicitation) find their way to stdout.
    let client_session =
        crate::sessions::ClientSession::new(View::Hierarchical, String::new(), "").for_connection();
    let inbox = client_session.inbox.clone();
    gateway.sessions.admit(session.clone(), client_session);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    let forward_tx = tx.clone();
    let forwarder = tokio::spawn(async move {
        let mut inbox = inbox.lock_owned().await;
        while let Some(message) = inbox.recv().await {
            if forward_tx.send(message).await.is_err() {
                return;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(mut line) = rx.recv().await {
            line.push(b'\n');
            output.write_all(&line).await?;
            output.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut lines = FramedRead::new(input, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                let error =
                    RpcError::new(code::INVALID_REQUEST, format!("unreadable input line: {e}"));
                let _ = tx
                    .send(Message::error(Value::Null, &error).to_bytes())
                    .await;
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let message = match Message::parse(line.as_bytes()) {
            Ok(message) => message,
            Err(error) => {
                let _ = tx
                    .send(Message::error(Value::Null, &error).to_bytes())
                    .await;
                continue;
            }
        };
        // As on HTTP: params no method takes are refused here, not left to an upstream
        // that may never answer them.
        if let Err(error) =
            crate::transport::limits::check_params(std::slice::from_ref(&message), false)
        {
            if let Some(id) = message.id {
                let _ = tx.send(Message::error(id, &error).to_bytes()).await;
            }
            continue;
        }
        // Requests run concurrently; answers go out as they complete.
        let gateway = gateway.clone();
        let tx = tx.clone();
        let session = session.clone();
        tokio::spawn(async move {
            if crate::transport::modern::names_its_version(&message) {
                let answer = crate::transport::modern::handle(
                    &gateway,
                    View::Hierarchical,
                    None,
                    vec![message],
                    false,
                )
                .await;
                forward_lines(answer, &tx).await;
            } else {
                // What an upstream sends about this request (progress, sampling) goes straight
                // to the output, ahead of the answer. Through the session's outbox it would
                // take the forwarder's extra hop and could land after the answer, when the
                // client no longer listens for it.
                let _stream = message.id.as_ref().map(|id| {
                    gateway
                        .delivery
                        .open_stream(&session, &id.to_string(), tx.clone())
                });
                if let Some(answer) = gateway
                    .handle_from(&View::Hierarchical, &session, message, came())
                    .await
                {
                    let _ = tx.send(answer.to_bytes()).await;
                }
            }
        });
    }
    gateway.sessions.end(&session, &View::Hierarchical);
    forwarder.abort();
    drop(tx);
    writer.await.map_err(std::io::Error::other)?
}

/// Sends the messages of an HTTP answer (one JSON message, or an SSE stream of them, as
/// they come) as lines.
async fn forward_lines(answer: axum::response::Response, tx: &mpsc::Sender<Vec<u8>>) {
    let is_sse = answer
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = answer.into_body().into_data_stream();
    let mut parser = mcpr_core::sse::SseParser::default();
    let mut whole = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        if !is_sse {
            whole.extend_from_slice(&chunk);
            continue;
        }
        for data in parser.push(&chunk) {
            if !data.trim().is_empty() && tx.send(data.into_bytes()).await.is_err() {
                return;
            }
        }
    }
    if !whole.is_empty() {
        let _ = tx.send(whole).await;
    }
}

/// For a request's span while tracing is on: stdio is a pipe, and local (no credential).
fn came() -> Option<crate::views::Came> {
    mcpr_core::telemetry::enabled().then(|| crate::views::Came {
        transport: Some("pipe"),
        ..Default::default()
    })
}
