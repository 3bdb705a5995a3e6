//! The HTTP client of every admin command: where the router is, its REST API under
//! `/api/v1` (docs/API.md) with the admin token (`credentials.rs`), and one clear line for
//! every failure, whether the router is unreachable or refuses the request.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;

use crate::credentials;
use crate::output::{clean, shorten};

/// Shared by all admin commands: where the router is and how to print.
pub struct Admin {
    pub(crate) client: reqwest::Client,
    base: Url,
}

impl Admin {
    /// `base_url` like `http://127.0.0.1:8000` (a missing `http://` is added).
    pub fn new(base_url: &str) -> anyhow::Result<Admin> {
        let trimmed = base_url.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let base =
            Url::parse(&with_scheme).map_err(|e| anyhow!("invalid router URL {trimmed:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("invalid router URL {trimmed:?}: expected http://HOST:PORT");
        }
        let client = mcpr_tls::http_client()?
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("mcpr-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Admin { client, base })
    }

    /// The base URL as the user would type it (no trailing slash).
    pub(crate) fn base_str(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `{base}/{segments…}`, each segment percent-encoded (a name cannot escape its place).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("checked in Admin::new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub(crate) fn api(&self, segments: &[&str]) -> Url {
        let mut all = vec!["api", "v1"];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    /// Sends a request, turning transport failures into one clear line.
    pub(crate) async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request.send().await.map_err(|e| self.transport_error(e))
    }

    pub(crate) fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        let base = self.base_str();
        if e.is_connect() {
            anyhow!("cannot reach the router at {base}: is it running? (start it with: mcpr up)")
        } else if e.is_timeout() {
            anyhow!("the router at {base} did not answer in time")
        } else {
            anyhow!(
                "request to the router at {base} failed: {}",
                mcpr_core::error_chain(&e)
            )
        }
    }

    /// Calls the REST API; a non-2xx answer becomes the formatted error line. `name` is the
    /// server the call is about (for `server "x" not found (404)`).
    async fn call_api(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        name: Option<&str>,
    ) -> anyhow::Result<Option<Value>> {
        let write = method != Method::GET;
        let mut request = self
            .client
            .request(method, url)
            .header(ACCEPT, "application/json");
        if let Some(token) = credentials::admin_token() {
            request = request.bearer_auth(token);
        }
        match body {
            Some(body) => request = request.json(body),
            // The API refuses writes that are not JSON, with or without a body.
            None if write => request = request.header(CONTENT_TYPE, "application/json"),
            None => {}
        }
        let response = self.send(request).await?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            bail!("{}", api_error_line(status.as_u16(), &text, name));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("the router answered with invalid JSON ({e})"))?;
        Ok(Some(value))
    }

    pub(crate) async fn get(&self, segments: &[&str], name: Option<&str>) -> anyhow::Result<Value> {
        Ok(self
            .call_api(Method::GET, self.api(segments), None, name)
            .await?
            .unwrap_or(Value::Null))
    }

    /// `GET` with a query string (`segments` as in [`Admin::api`]).
    pub(crate) async fn get_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        self.call_with_query(Method::GET, segments, query).await
    }

    /// A call without a body, with a query string: what `get_query` and `post_query` send.
    async fn call_with_query(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let mut url = self.api(segments);
        url.query_pairs_mut().extend_pairs(query);
        Ok(self
            .call_api(method, url, None, None)
            .await?
            .unwrap_or(Value::Null))
    }

    /// Opens the admin's live feed (`GET /api/v1/events`, server-sent events); the answer's
    /// body is the stream.
    pub(crate) async fn open_events(&self) -> anyhow::Result<Response> {
        let mut request = self
            .client
            .get(self.api(&["events"]))
            .header(ACCEPT, "text/event-stream");
        if let Some(token) = credentials::admin_token() {
            request = request.bearer_auth(token);
        }
        let response = self.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{}", api_error_line(status.as_u16(), &text, None));
        }
        Ok(response)
    }

    pub(crate) async fn post(
        &self,
        segments: &[&str],
        body: Option<&Value>,
        name: Option<&str>,
    ) -> anyhow::Result<Value> {
        Ok(self
            .call_api(Method::POST, self.api(segments), body, name)
            .await?
            .unwrap_or(Value::Null))
    }

    /// `POST` without a body, with a query string (`segments` as in [`Admin::api`]).
    pub(crate) async fn post_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        self.call_with_query(Method::POST, segments, query).await
    }

    pub(crate) async fn patch(
        &self,
        segments: &[&str],
        body: &Value,
        name: Option<&str>,
    ) -> anyhow::Result<Value> {
        Ok(self
            .call_api(Method::PATCH, self.api(segments), Some(body), name)
            .await?
            .unwrap_or(Value::Null))
    }

    pub(crate) async fn delete(&self, segments: &[&str], name: Option<&str>) -> anyhow::Result<()> {
        self.call_api(Method::DELETE, self.api(segments), None, name)
            .await?;
        Ok(())
    }
}

/// One line for an error answer of the REST API (`{"error":{"status","code","field"?,"message"}}`),
/// e.g. `server "time" not found (404)` or `invalid name: must not be empty (422)`.
pub fn api_error_line(status: u16, body: &str, name: Option<&str>) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str);
    match (code, message, name) {
        (Some("not_found"), _, Some(name)) => {
            format!("server \"{}\" not found ({status})", clean(name))
        }
        (Some("invalid_field"), Some(message), _) => {
            format!("invalid {} ({status})", clean(message))
        }
        (_, Some(message), _) => format!("{} ({status})", clean(message)),
        _ => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let body = clean(&shorten(body.trim(), 200));
            let mut line = format!("the router answered {status} {reason}")
                .trim_end()
                .to_string();
            if !body.is_empty() {
                line.push_str(": ");
                line.push_str(&body);
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_api_errors() {
        let not_found =
            r#"{"error":{"status":404,"code":"not_found","message":"no server named \"time\""}}"#;
        assert_eq!(
            api_error_line(404, not_found, Some("time")),
            "server \"time\" not found (404)"
        );
        assert_eq!(
            api_error_line(404, not_found, None),
            "no server named \"time\" (404)"
        );
        let invalid = r#"{"error":{"status":422,"code":"invalid_field","field":"name","message":"name: must not be empty"}}"#;
        assert_eq!(
            api_error_line(422, invalid, None),
            "invalid name: must not be empty (422)"
        );
        let dup = r#"{"error":{"status":409,"code":"duplicate","field":"name","message":"a server named \"x\" already exists"}}"#;
        assert_eq!(
            api_error_line(409, dup, None),
            "a server named \"x\" already exists (409)"
        );
        assert_eq!(
            api_error_line(502, "upstream\nboom", None),
            "the router answered 502 Bad Gateway: upstream boom"
        );
        assert_eq!(
            api_error_line(500, "", None),
            "the router answered 500 Internal Server Error"
        );
        let hostile = r#"{"error":{"status":400,"code":"bad_request","message":"bad \u001b[31m"}}"#;
        assert_eq!(api_error_line(400, hostile, None), "bad \\u{1b}[31m (400)");
    }

    #[test]
    fn urls_encode_names() {
        let admin = Admin::new("127.0.0.1:8000/").unwrap();
        assert_eq!(
            admin.api(&["servers", "a/b"]).as_str(),
            "http://127.0.0.1:8000/api/v1/servers/a%2Fb"
        );
        assert_eq!(
            admin.url(&["mcp", "p", "time"]).as_str(),
            "http://127.0.0.1:8000/mcp/p/time"
        );
        assert_eq!(admin.base_str(), "http://127.0.0.1:8000");
        assert!(Admin::new("ftp://x").is_err());
    }
}
