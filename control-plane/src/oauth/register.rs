//! Clients: RFC 7591 dynamic registration, and client ID metadata documents (a `client_id`
//! that is an https URL names a JSON document listing the client's redirect URIs).
//!
//! Registration is open, as MCP expects: a registered client gets nothing until an admin
//! approves it on the consent page, which shows the redirect URI it will send the code to.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::ClientRecord;
use super::{OAuth, no_store, oauth_error, parse_scope};
use crate::keys::{hash_hex, now_ms, now_rfc3339};
use crate::secrets::random_bytes;

const MAX_REDIRECT_URIS: usize = 16;
const MAX_FIELD: usize = 2048;

#[derive(Deserialize)]
pub struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
}

/// A redirect URI a client may register: absolute, no fragment, https or a loopback http
/// (native apps, RFC 8252), or a private-use scheme (`com.example.app:/cb`).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_FIELD || uri.contains('#') || uri.chars().any(char::is_whitespace) {
        return Err(format!(
            "redirect URI {uri:?} is too long, has a fragment or whitespace"
        ));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(format!("redirect URI {uri:?} is not an absolute URI"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" => {
            let host = rest
                .trim_start_matches("//")
                .split(['/', '?'])
                .next()
                .unwrap_or("");
            if crate::is_loopback_host(host) {
                Ok(())
            } else {
                Err(format!(
                    "redirect URI {uri:?}: plain http is only allowed to a loopback address"
                ))
            }
        }
        "javascript" | "data" | "file" | "vbscript" => {
            Err(format!("redirect URI {uri:?} has a forbidden scheme"))
        }
        s if s.contains('.') && !rest.is_empty() => Ok(()),
        _ => Err(format!(
            "redirect URI {uri:?}: use https, http to a loopback address, or a private-use scheme like com.example.app:/callback"
        )),
    }
}

/// `POST /oauth/register`.
pub async fn register(
    State(oauth): State<Arc<OAuth>>,
    body: Result<Json<Registration>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let invalid =
        |what: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", what);
    let Json(r) = match body {
        Ok(body) => body,
        Err(e) => return invalid(&format!("the registration is not valid JSON: {e}")),
    };
    if r.redirect_uris.is_empty() || r.redirect_uris.len() > MAX_REDIRECT_URIS {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            &format!("give 1 to {MAX_REDIRECT_URIS} redirect_uris"),
        );
    }
    for uri in &r.redirect_uris {
        if let Err(why) = check_redirect_uri(uri) {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &why);
        }
    }
    if let Some(types) = &r.grant_types
        && let Some(bad) = types
            .iter()
            .find(|t| !matches!(t.as_str(), "authorization_code" | "refresh_token"))
    {
        return invalid(&format!(
            "grant type {bad:?} is not supported (authorization_code, refresh_token)"
        ));
    }
    if let Some(types) = &r.response_types
        && types.iter().any(|t| t != "code")
    {
        return invalid("only the response type \"code\" is supported");
    }
    let method = r.token_endpoint_auth_method.as_deref().unwrap_or("none");
    if !matches!(
        method,
        "none" | "client_secret_post" | "client_secret_basic"
    ) {
        return invalid(&format!(
            "token_endpoint_auth_method {method:?} is not supported (none, client_secret_post, client_secret_basic)"
        ));
    }
    let scope = r.scope.unwrap_or_default();
    if let Err(why) = parse_scope(&scope) {
        return invalid(&why);
    }
    let name = r.client_name.unwrap_or_default();
    if name.len() > 256 || scope.len() > MAX_FIELD {
        return invalid("client_name or scope is too long");
    }
    let secret = (method != "none").then(|| URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    let record = ClientRecord {
        client_id: format!("mcpc_{}", URL_SAFE_NO_PAD.encode(random_bytes::<16>())),
        client_name: name,
        redirect_uris: r.redirect_uris,
        scope,
        secret_hash: secret.as_deref().map(hash_hex).unwrap_or_default(),
        created_at: now_rfc3339(),
        revoked_at_ms: 0,
    };
    if let Err(e) = oauth.store.insert_oauth_client(&record).await {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &format!("storing the client: {e}"),
        );
    }
    tracing::info!(client_id = %record.client_id, name = %record.client_name, "OAuth client registered");
    let mut answer = json!({
        "client_id": record.client_id,
        "client_id_issued_at": now_ms() / 1000,
        "client_name": record.client_name,
        "redirect_uris": record.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if !record.scope.is_empty() {
        answer["scope"] = json!(record.scope);
    }
    if let Some(secret) = secret {
        answer["client_secret"] = json!(secret);
        answer["client_secret_expires_at"] = json!(0);
    }
    no_store(StatusCode::CREATED, answer)
}

impl OAuth {
    /// The client a `client_id` names: registered, or described by its metadata document.
    pub(super) async fn client(&self, client_id: &str) -> Result<ClientRecord, String> {
        if client_id.starts_with("https://")
            || (client_id.starts_with("http://") && self.settings.allow_http_client_metadata)
        {
            return self.metadata_document(client_id).await;
        }
        match self.store.get_oauth_client(client_id).await {
            Ok(Some(client)) if client.revoked_at_ms != 0 => Err(format!(
                "client_id {client_id:?} was revoked by an administrator: register the client again"
            )),
            Ok(Some(client)) => Ok(client),
            Ok(None) => Err(format!(
                "unknown client_id {client_id:?}: register the client first"
            )),
            Err(e) => Err(format!("looking up the client: {e}")),
        }
    }

    /// Fetches and checks a client ID metadata document: it must name itself as `client_id`.
    /// Anyone may name the URL, so it is fetched from public addresses only (`fetch.rs`).
    async fn metadata_document(&self, url: &str) -> Result<ClientRecord, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("client metadata document {url:?} is not a URL: {e}"))?;
        if let Some(why) = self.document_urls.refusal(&parsed) {
            return Err(format!("client metadata document {url:?}: {why}"));
        }
        let doc = super::fetch::fetch_json(&self.documents, url)
            .await
            .map_err(|e| format!("client metadata document: {e}"))?;
        if doc.get("client_id").and_then(Value::as_str) != Some(url) {
            return Err(format!(
                "client metadata document {url:?} does not name itself as its client_id"
            ));
        }
        let redirect_uris: Vec<String> = doc
            .get("redirect_uris")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err(format!(
                "client metadata document {url:?} lists no redirect_uris"
            ));
        }
        for uri in &redirect_uris {
            check_redirect_uri(uri).map_err(|e| format!("client metadata document: {e}"))?;
        }
        let text = |name: &str| {
            doc.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(ClientRecord {
            client_id: url.to_owned(),
            client_name: text("client_name"),
            redirect_uris,
            scope: text("scope"),
            // Metadata-document clients are public (no shared secret).
            secret_hash: String::new(),
            created_at: String::new(),
            revoked_at_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:3000/callback").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://evil.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#x").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("/relative").is_err());
    }
}
