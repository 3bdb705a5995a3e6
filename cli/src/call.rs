//! `mcpr call PROVIDER TOOL`: one tool call through the router's MCP endpoint, as an MCP
//! client makes it (initialize, initialized, tools/call, then DELETE the session).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use crate::client::{Admin, api_error_line};
use crate::credentials;
use crate::output::{self, clean, print_json, shorten, str_at};

const PROTOCOL_VERSION: &str = "2025-06-18";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// The JSON-RPC response with `id` in a message or batch, if there is one.
pub fn find_response(message: Value, id: u64) -> Option<Value> {
    match message {
        Value::Array(items) => items.into_iter().find_map(|m| find_response(m, id)),
        Value::Object(ref map)
            if map.get("id") == Some(&json!(id))
                && (map.contains_key("result") || map.contains_key("error")) =>
        {
            Some(message)
        }
        _ => None,
    }
}

/// The `result` of a JSON-RPC response, or its error as one line.
pub fn rpc_result(response: Value) -> anyhow::Result<Value> {
    if let Some(error) = response.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        let code = error.get("code").map(|c| c.to_string()).unwrap_or_default();
        bail!("{} (JSON-RPC error {code})", clean(message));
    }
    Ok(response.get("result").cloned().unwrap_or(Value::Null))
}

/// The text of a `CallToolResult`: text contents joined by newlines; other contents as a
/// short placeholder; `structuredContent` when there is no content.
pub fn call_result_text(result: &Value) -> String {
    let contents = result["content"].as_array().cloned().unwrap_or_default();
    if contents.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        return serde_json::to_string_pretty(structured).unwrap_or_default();
    }
    let describe = |c: &Value| -> String {
        let mime = str_at(c, &["mimeType"]);
        match c["type"].as_str() {
            Some("text") => str_at(c, &["text"]),
            Some(kind @ ("image" | "audio")) => format!(
                "[{kind} {mime}, {} bytes of base64]",
                str_at(c, &["data"]).len()
            ),
            Some("resource") if c["resource"]["text"].is_string() => {
                str_at(c, &["resource", "text"])
            }
            Some("resource") => format!("[resource {}]", str_at(c, &["resource", "uri"])),
            Some("resource_link") => format!("[resource link {}]", str_at(c, &["uri"])),
            _ => c.to_string(),
        }
    };
    contents.iter().map(describe).collect::<Vec<_>>().join("\n")
}

/// `mcpr call PROVIDER TOOL --args JSON`: one tool call through the MCP endpoint
/// `{base}/mcp/p/{provider}`, as an MCP client does it (initialize, initialized, tools/call,
/// then DELETE the session).
pub async fn run(
    admin: &Admin,
    provider: &str,
    tool: &str,
    args_json: &str,
    json: bool,
) -> anyhow::Result<()> {
    let arguments: Value = if args_json.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(args_json).map_err(|e| anyhow!("--args is not a JSON object: {e}"))?
    };
    if !arguments.is_object() {
        bail!(
            "--args is not a JSON object: got {}",
            shorten(&arguments.to_string(), 60)
        );
    }
    let url = admin.url(&["mcp", "p", provider]);
    let mut session = McpSession {
        admin,
        url,
        provider,
        id: None,
        version: None,
    };
    let outcome = session.call(tool, arguments).await;
    session.close().await;
    let result = outcome?;
    if json {
        print_json(&result)?;
    } else {
        let text = call_result_text(&result);
        if result["isError"] != Value::Bool(true) && !text.is_empty() {
            println!(
                "{}",
                text.lines()
                    .map(output::clean_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    if result["isError"] == Value::Bool(true) {
        let text = call_result_text(&result);
        if text.trim().is_empty() {
            bail!("tool \"{}\" reported an error", clean(tool));
        }
        bail!("tool \"{}\" failed: {}", clean(tool), clean(text.trim()));
    }
    Ok(())
}

struct McpSession<'a> {
    admin: &'a Admin,
    url: Url,
    provider: &'a str,
    id: Option<String>,
    version: Option<String>,
}

impl McpSession<'_> {
    async fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcpr-cli", "version": env!("CARGO_PKG_VERSION")},
        }});
        let init = rpc_result(
            self.post(&init, Some(1))
                .await?
                .context("initialize got no answer")?,
        )
        .map_err(|e| anyhow!("initialize failed: {e}"))?;
        self.version = Some(
            init["protocolVersion"]
                .as_str()
                .unwrap_or(PROTOCOL_VERSION)
                .to_string(),
        );
        self.post(
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            None,
        )
        .await?;
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}});
        let answer = self
            .post(&call, Some(2))
            .await?
            .context("tools/call got no answer")?;
        rpc_result(answer)
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(id) = self.id.as_deref().and_then(|v| v.parse().ok()) {
            headers.insert(SESSION_HEADER, id);
        }
        if let Some(version) = self.version.as_deref().and_then(|v| v.parse().ok()) {
            headers.insert(VERSION_HEADER, version);
        }
        headers
    }

    /// POSTs one message; for a request (`id`), returns the response found in the JSON or
    /// SSE body.
    async fn post(&mut self, message: &Value, id: Option<u64>) -> anyhow::Result<Option<Value>> {
        let request = self
            .admin
            .client
            .post(self.url.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .headers(self.headers())
            .body(message.to_string());
        let request = match credentials::api_key() {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = self.admin.send(request).await?;
        let status = response.status();
        if let Some(session) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.id = Some(session.to_string());
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            if status == StatusCode::NOT_FOUND && serde_json::from_str::<Value>(&body).is_err() {
                bail!(
                    "no MCP provider \"{}\" at {} (404)",
                    clean(self.provider),
                    self.url
                );
            }
            // A JSON-RPC error body names the problem like an API error does.
            bail!("{}", api_error_line(status.as_u16(), &body, None));
        }
        let Some(id) = id else { return Ok(None) };
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if is_sse {
            let mut parser = mcpr_core::sse::SseParser::default();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.admin.transport_error(e))?;
                if let Some(found) = events_response(parser.push(&chunk), id) {
                    return Ok(Some(found));
                }
            }
            return Ok(events_response(parser.finish(), id));
        }
        let text = response
            .text()
            .await
            .map_err(|e| self.admin.transport_error(e))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("the MCP endpoint answered with invalid JSON ({e})"))?;
        Ok(find_response(value, id))
    }

    /// Ends the session (best effort: a server may not support DELETE).
    async fn close(&self) {
        if self.id.is_some() {
            let request = self
                .admin
                .client
                .delete(self.url.clone())
                .headers(self.headers());
            let _ = tokio::time::timeout(Duration::from_secs(5), request.send()).await;
        }
    }
}

fn events_response(events: Vec<String>, id: u64) -> Option<Value> {
    events
        .into_iter()
        .filter_map(|data| serde_json::from_str::<Value>(&data).ok())
        .find_map(|m| find_response(m, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_response_among_messages() {
        let events = vec![
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#.to_string(),
            r#"{"jsonrpc":"2.0","id":1,"result":{"other":true}}"#.to_string(),
            r#"[{"jsonrpc":"2.0","id":2,"result":{"content":[]}}]"#.to_string(),
        ];
        assert_eq!(
            events_response(events.clone(), 2).unwrap()["result"],
            json!({"content": []})
        );
        assert!(events_response(events, 3).is_none());
        let err = rpc_result(
            json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"unknown tool"}}),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "unknown tool (JSON-RPC error -32602)"
        );
    }

    #[test]
    fn renders_call_results() {
        let result = json!({"content": [{"type": "text", "text": "one"}, {"type": "image", "mimeType": "image/png", "data": "AAAA"}, {"type": "text", "text": "two"}]});
        assert_eq!(
            call_result_text(&result),
            "one\n[image image/png, 4 bytes of base64]\ntwo"
        );
        assert_eq!(
            call_result_text(&json!({"content": [], "structuredContent": {"a": 1}})),
            "{\n  \"a\": 1\n}"
        );
    }
}
