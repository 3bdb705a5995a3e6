//! `mcpr stdio --url URL`: a stdio MCP server that forwards every message to a router
//! already running at URL (streamable HTTP), for desktop clients that only speak stdio.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub async fn run(url: &str) -> anyhow::Result<()> {
    let endpoint = mcp_endpoint(url);
    let client = mcpr_tls::http_client()?
        .build()
        .context("building the HTTP client")?;
    let session: Arc<RwLock<Option<String>>> = Arc::default();
    let tool_headers: Arc<ToolHeaders> = Arc::default();
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
            Router {
                client: client.clone(),
                endpoint: endpoint.clone(),
                session: session.clone(),
                tool_headers: tool_headers.clone(),
            },
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

/// Where the bridge forwards to, and what it keeps between messages.
#[derive(Clone)]
struct Router {
    client: reqwest::Client,
    endpoint: String,
    session: Arc<RwLock<Option<String>>>,
    tool_headers: Arc<ToolHeaders>,
}

/// The `x-mcp-header` annotations of the router's tools (`mcp_headers::param_annotations`),
/// by tool name, from the router's own modern `tools/list`: a modern `tools/call` must
/// mirror the annotated arguments in `Mcp-Param-*` headers, which stdio clients do not send.
#[derive(Default)]
struct ToolHeaders {
    by_tool: RwLock<HashMap<String, Vec<(String, String)>>>,
}

/// HeaderMismatch (2026-07-28): the tool list may have changed since it was fetched.
const HEADER_MISMATCH: i64 = -32020;

impl Router {
    /// The HTTP headers of a modern (2026-07-28) request, which stdio does not have: the
    /// version its `_meta` names and the standard headers (`Mcp-Method`, `Mcp-Name`,
    /// `Mcp-Param-*`) its body implies. None for a legacy message.
    async fn modern_headers(&self, message: &Value, refresh: bool) -> Vec<(String, String)> {
        let params = message.get("params");
        let Some(version) = mcpr_core::mcp_headers::meta_protocol_version(params) else {
            return Vec::new();
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let annotations = match mcpr_core::mcp_headers::name_of(method, params) {
            Some(tool) if method == "tools/call" => self.annotations(&tool, params, refresh).await,
            _ => Vec::new(),
        };
        let mut headers = mcpr_core::mcp_headers::request_headers(method, params, &annotations);
        headers.push(("mcp-protocol-version".to_owned(), version.to_owned()));
        headers
    }

    /// The annotations of `tool`; the tool list is fetched when the tool is not in it yet
    /// (or `refresh` says it is stale).
    async fn annotations(
        &self,
        tool: &str,
        params: Option<&Value>,
        refresh: bool,
    ) -> Vec<(String, String)> {
        if !refresh && let Some(known) = self.tool_headers.by_tool.read().unwrap().get(tool) {
            return known.clone();
        }
        let meta = params.and_then(|p| p.get("_meta")).cloned();
        match self.list_tools(meta).await {
            Ok(tools) => {
                let found = tools.get(tool).cloned().unwrap_or_default();
                *self.tool_headers.by_tool.write().unwrap() = tools;
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not list the router's tools for their x-mcp-header arguments");
                Vec::new()
            }
        }
    }

    /// Every page of the router's modern `tools/list`, as annotations by tool name.
    async fn list_tools(
        &self,
        meta: Option<Value>,
    ) -> anyhow::Result<HashMap<String, Vec<(String, String)>>> {
        let version = meta
            .as_ref()
            .and_then(|m| m.get(mcpr_core::mcp_headers::META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .unwrap_or(mcpr_core::mcp_headers::MODERN_VERSION)
            .to_owned();
        let mut tools = HashMap::new();
        let mut cursor: Option<String> = None;
        for _page in 0..100 {
            let mut params = json!({ "_meta": meta.clone().unwrap_or_else(|| json!({})) });
            if let Some(cursor) = &cursor {
                params["cursor"] = json!(cursor);
            }
            let body = json!({"jsonrpc": "2.0", "id": "mcpr-bridge-tools", "method": "tools/list", "params": params});
            let response = self
                .client
                .post(&self.endpoint)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", &version)
                .header("mcp-method", "tools/list")
                .json(&body)
                .send()
                .await?;
            let answer = last_message(response).await?;
            let result = answer.get("result").with_context(|| {
                format!(
                    "tools/list was refused: {}",
                    answer.get("error").unwrap_or(&answer)
                )
            })?;
            for tool in result["tools"].as_array().into_iter().flatten() {
                if let Some(name) = tool["name"].as_str() {
                    let annotations =
                        mcpr_core::mcp_headers::param_annotations(&tool["inputSchema"]);
                    tools.insert(name.to_owned(), annotations);
                }
            }
            cursor = result["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    }
}

/// The last JSON-RPC message of an answer, plain JSON or SSE.
async fn last_message(response: reqwest::Response) -> anyhow::Result<Value> {
    let is_sse = is_sse(&response);
    let text = response.text().await?;
    let data = if is_sse {
        let mut parser = mcpr_core::sse::SseParser::default();
        let mut events = parser.push(text.as_bytes());
        events.extend(parser.finish());
        events
            .into_iter()
            .rfind(|d| !d.trim().is_empty())
            .unwrap_or_default()
    } else {
        text
    };
    serde_json::from_str(&data).context("the router's answer is not JSON")
}

fn is_sse(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
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

async fn forward(router: Router, out: mpsc::Sender<String>, line: String) {
    let message = serde_json::from_str::<Value>(&line).ok();
    let id = message
        .as_ref()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null);
    let error = |message: String| {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32001, "message": message}})
            .to_string()
    };
    let is_call = message
        .as_ref()
        .and_then(|m| m.get("method"))
        .is_some_and(|m| m == "tools/call");
    let mut refreshed = false;
    let response = loop {
        let modern = match &message {
            Some(message) => router.modern_headers(message, refreshed).await,
            None => Vec::new(),
        };
        let mut request = router
            .client
            .post(&router.endpoint)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(line.clone());
        let retry_on_mismatch = !refreshed && !modern.is_empty() && is_call;
        for (name, value) in modern {
            request = request.header(name, value);
        }
        if let Some(s) = router.session.read().unwrap().as_deref() {
            request = request.header("mcp-session-id", s);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                if !id.is_null() {
                    let _ = out
                        .send(error(format!(
                            "cannot reach the router at {}: {e}",
                            router.endpoint
                        )))
                        .await;
                }
                return;
            }
        };
        if retry_on_mismatch && response.status() == reqwest::StatusCode::BAD_REQUEST {
            // The tool's headers were wrong: its list may have changed since it was read.
            let text = response.text().await.unwrap_or_default();
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["code"].as_i64());
            if code == Some(HEADER_MISMATCH) {
                refreshed = true;
                continue;
            }
            let _ = out.send(text.trim().to_owned()).await;
            return;
        }
        break response;
    };
    if let Some(s) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        *router.session.write().unwrap() = Some(s.to_owned());
    }
    if response.status() == reqwest::StatusCode::ACCEPTED {
        return;
    }
    if is_sse(&response) {
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
