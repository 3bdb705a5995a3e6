//! `mcpr stdio --url URL`: a stdio MCP server that forwards every message to a router
//! already running at URL (streamable HTTP), for desktop clients that only speak stdio.

use std::sync::{Arc, RwLock};

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub async fn run(url: &str) -> anyhow::Result<()> {
    let endpoint = mcp_endpoint(url);
    let client = mcpr_tls::http_client()?
        .build()
        .context("building the HTTP client")?;
    let session: Arc<RwLock<Option<String>>> = Arc::default();
    let (tx, mut rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            stdout.write_all(line.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
            stdout.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    tracing::info!(%endpoint, "bridging stdio to the router");
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let is_initialize = line.contains("\"initialize\"");
        let forward = forward(
            client.clone(),
            endpoint.clone(),
            session.clone(),
            tx.clone(),
            line,
        );
        // initialize must finish (and set the session) before anything else goes out.
        if is_initialize {
            forward.await;
        } else {
            tokio::spawn(forward);
        }
    }
    let last_session = session.read().unwrap().clone();
    if let Some(id) = last_session {
        let _ = client
            .delete(&endpoint)
            .header("mcp-session-id", id)
            .send()
            .await;
    }
    drop(tx);
    writer.await??;
    Ok(())
}

/// The HTTP headers of a modern (2026-07-28) request, which stdio does not have: the
/// version its `_meta` names and the standard headers (`Mcp-Method`, `Mcp-Name`) its body
/// implies. None for a legacy message.
fn modern_headers(message: &serde_json::Value) -> Vec<(String, String)> {
    let params = message.get("params");
    let Some(version) = mcpr_core::mcp_headers::meta_protocol_version(params) else {
        return Vec::new();
    };
    let method = message
        .get("method")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let mut headers = mcpr_core::mcp_headers::request_headers(method, params, &[]);
    headers.push(("mcp-protocol-version".to_owned(), version.to_owned()));
    headers
}

fn mcp_endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let after_scheme = url.split("://").nth(1).unwrap_or(url);
    if after_scheme.contains('/') {
        url.to_owned()
    } else {
        format!("{url}/mcp")
    }
}

async fn forward(
    client: reqwest::Client,
    endpoint: String,
    session: Arc<RwLock<Option<String>>>,
    out: mpsc::Sender<String>,
    line: String,
) {
    let message = serde_json::from_str::<serde_json::Value>(&line).ok();
    let id = message
        .as_ref()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    let modern = message.as_ref().map(modern_headers).unwrap_or_default();
    let mut request = client
        .post(&endpoint)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(line);
    for (name, value) in modern {
        request = request.header(name, value);
    }
    if let Some(s) = session.read().unwrap().as_deref() {
        request = request.header("mcp-session-id", s);
    }
    let error = |message: String| {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32001, "message": message}}).to_string()
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            if !id.is_null() {
                let _ = out
                    .send(error(format!("cannot reach the router at {endpoint}: {e}")))
                    .await;
            }
            return;
        }
    };
    if let Some(s) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        *session.write().unwrap() = Some(s.to_owned());
    }
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if response.status() == reqwest::StatusCode::ACCEPTED {
        return;
    }
    if is_sse {
        let mut body = response.bytes_stream();
        let mut parser = mcpr_core::sse::SseParser::default();
        while let Some(Ok(chunk)) = body.next().await {
            for data in parser.push(&chunk) {
                // A priming event (SEP-1699) carries no message.
                if !data.trim().is_empty() {
                    let _ = out.send(data).await;
                }
            }
        }
        for data in parser.finish() {
            if !data.trim().is_empty() {
                let _ = out.send(data).await;
            }
        }
    } else {
        match response.text().await {
            Ok(text) if !text.trim().is_empty() => {
                let _ = out.send(text.trim().to_owned()).await;
            }
            Ok(_) => {}
            Err(e) => {
                if !id.is_null() {
                    let _ = out
                        .send(error(format!("reading the router's answer: {e}")))
                        .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint() {
        assert_eq!(
            super::mcp_endpoint("http://127.0.0.1:8000"),
            "http://127.0.0.1:8000/mcp"
        );
        assert_eq!(
            super::mcp_endpoint("http://127.0.0.1:8000/"),
            "http://127.0.0.1:8000/mcp"
        );
        assert_eq!(super::mcp_endpoint("http://h/mcp/all"), "http://h/mcp/all");
    }
}
