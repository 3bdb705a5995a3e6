//! The token endpoint: an authorization code (with its PKCE verifier, the exact redirect URI
//! and, if given, the same resource) or a refresh token, for a short-lived JWT access token
//! and a new refresh token.
//!
//! Refresh tokens rotate: each is good once. Presenting one that was already used means it
//! leaked (the client and a thief both hold it), so the whole family, every token descended
//! from the same authorization, is revoked (OAuth 2.1 §4.3.1).

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::store::{GrantRecord, RefreshRecord};
use super::{OAuth, no_store, oauth_error, parse_scope, scopes_within};
use crate::keys::{hash_hex, now_ms};
use crate::secrets::random_bytes;

#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

fn invalid_grant(why: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

fn server_error(e: impl std::fmt::Display) -> Response {
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        &e.to_string(),
    )
}

fn invalid_request(why: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why)
}

/// `client_id:client_secret` of HTTP Basic authentication (RFC 6749 §2.3.1, form-encoded).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| percent_decode(s);
    Some((unescape(id), unescape(secret)))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /oauth/token`.
pub async fn token(
    State(oauth): State<Arc<OAuth>>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Form(mut r) = match form {
        Ok(f) => f,
        Err(e) => {
            return invalid_request(&format!(
                "the token request must be application/x-www-form-urlencoded: {e}"
            ));
        }
    };
    if let Some((id, secret)) = basic_credentials(&headers) {
        if r.client_id.as_ref().is_some_and(|c| *c != id) {
            return invalid_request("client_id differs from the one in Authorization");
        }
        r.client_id = Some(id);
        r.client_secret = Some(secret);
    }
    let Some(client_id) = r.client_id.clone().filter(|c| !c.is_empty()) else {
        return invalid_request("client_id is missing");
    };
    if let Err(response) = oauth
        .authenticate_client(&client_id, r.client_secret.as_deref())
        .await
    {
        return response;
    }
    match r.grant_type.as_deref() {
        Some("authorization_code") => oauth.redeem_code(&client_id, r).await,
        Some("refresh_token") => oauth.refresh(&client_id, r).await,
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other:?} is not supported (authorization_code, refresh_token)"),
        ),
        None => invalid_request("grant_type is missing"),
    }
}

impl OAuth {
    /// Confidential clients must present their secret; public ones have none.
    async fn authenticate_client(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<(), Response> {
        let invalid_client =
            |why: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
        if client_id.starts_with("https://") || client_id.starts_with("http://") {
            // Metadata-document clients are public: nothing to check beyond PKCE.
            return Ok(());
        }
        let client = match self.store.get_oauth_client(client_id).await {
            Ok(Some(c)) if c.revoked_at_ms != 0 => {
                return Err(invalid_client(&format!(
                    "client_id {client_id:?} was revoked by an administrator"
                )));
            }
            Ok(Some(c)) => c,
            Ok(None) => return Err(invalid_client(&format!("unknown client_id {client_id:?}"))),
            Err(e) => {
                return Err(server_error(e));
            }
        };
        if client.secret_hash.is_empty() {
            return Ok(());
        }
        let presented = hash_hex(secret.unwrap_or_default());
        if secret.is_none()
            || !bool::from(presented.as_bytes().ct_eq(client.secret_hash.as_bytes()))
        {
            return Err(invalid_client("wrong or missing client_secret"));
        }
        Ok(())
    }

    async fn redeem_code(&self, client_id: &str, r: TokenRequest) -> Response {
        let (Some(code), Some(verifier)) = (r.code, r.code_verifier) else {
            return invalid_request("code and code_verifier are required");
        };
        let record = match self.store.take_oauth_code(&hash_hex(&code)).await {
            Ok(Some(record)) => record,
            Ok(None) => return invalid_grant("the code is unknown, already used or expired"),
            Err(e) => {
                return server_error(e);
            }
        };
        if record.grant.expires_at_ms <= now_ms() {
            return invalid_grant("the code expired (codes live one minute)");
        }
        if record.grant.client_id != client_id {
            return invalid_grant("the code was issued to another client");
        }
        if r.redirect_uri.as_deref() != Some(record.redirect_uri.as_str()) {
            return invalid_grant(
                "redirect_uri does not match the one of the authorization request",
            );
        }
        if !(43..=128).contains(&verifier.len()) {
            return invalid_grant("code_verifier must be 43 to 128 characters");
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !bool::from(computed.as_bytes().ct_eq(record.code_challenge.as_bytes())) {
            return invalid_grant(
                "PKCE verification failed: code_verifier does not match the code_challenge",
            );
        }
        if let Some(resource) = &r.resource
            && resource.trim_end_matches('/') != record.grant.resource.trim_end_matches('/')
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "resource differs from the one of the authorization request",
            );
        }
        // Codes from before consents were recorded start a family of their own.
        let family = if record.consent_id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            record.consent_id.clone()
        };
        self.issue(record.grant, &family).await
    }

    async fn refresh(&self, client_id: &str, r: TokenRequest) -> Response {
        let Some(token) = r.refresh_token else {
            return invalid_request("refresh_token is required");
        };
        let hash = hash_hex(&token);
        let record = match self.store.get_refresh_token(&hash).await {
            Ok(Some(record)) => record,
            Ok(None) => return invalid_grant("unknown refresh token"),
            Err(e) => {
                return server_error(e);
            }
        };
        if record.grant.client_id != client_id {
            return invalid_grant("the refresh token was issued to another client");
        }
        if record.revoked_at_ms != 0 {
            return invalid_grant("the refresh token was revoked");
        }
        let now = now_ms();
        if record.grant.expires_at_ms <= now {
            return invalid_grant("the refresh token expired");
        }
        if record.used_at_ms != 0 {
            return self.reuse_detected(client_id, &record, now).await;
        }
        // A refresh that raced the revocation of its consent may have stored a token the
        // revocation did not see: the consent itself decides.
        match self.store.get_oauth_consent(&record.family_id).await {
            Ok(Some(consent)) if consent.revoked_at_ms != 0 => {
                return invalid_grant("the consent behind this refresh token was revoked");
            }
            Ok(_) => {}
            Err(e) => return server_error(e),
        }
        // Scope and resource before spending the token: a refused request does not.
        let mut grant = record.grant.clone();
        if let Some(scope) = r.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            let wanted = match parse_scope(scope) {
                Ok(s) => s,
                Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &why),
            };
            let granted: Vec<String> = grant.scope.split_whitespace().map(str::to_owned).collect();
            if !scopes_within(&wanted, &granted) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("the scopes {scope:?} exceed the granted {:?}", grant.scope),
                );
            }
            grant.scope = wanted.join(" ");
        }
        if let Some(resource) = &r.resource
            && !self.resource_allowed(resource)
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                &format!("resource {resource:?} is not served here"),
            );
        }
        let first_use = match self.store.use_refresh_token(&hash, now).await {
            Ok(first) => first && record.used_at_ms == 0,
            Err(e) => {
                return server_error(e);
            }
        };
        if !first_use {
            return self.reuse_detected(client_id, &record, now).await;
        }
        self.issue(grant, &record.family_id).await
    }

    /// A used refresh token came back: it leaked, so its whole family is revoked.
    async fn reuse_detected(&self, client_id: &str, record: &RefreshRecord, now: i64) -> Response {
        if let Err(e) = self
            .store
            .revoke_refresh_family(&record.family_id, now)
            .await
        {
            tracing::error!(error = %e, "revoking a refresh token family");
        }
        tracing::warn!(client_id, family = %record.family_id, "refresh token reused: family revoked");
        invalid_grant(
            "refresh token reuse detected: it was already used, so every token of its family is revoked; authorize again",
        )
    }

    /// A signed access token and a new refresh token of `family`.
    async fn issue(&self, grant: GrantRecord, family: &str) -> Response {
        let Some(keys) = &self.signing else {
            return oauth_error(
                StatusCode::NOT_FOUND,
                "server_error",
                "no built-in authorization server",
            );
        };
        let now = now_ms() / 1000;
        let expires_in = self.settings.token_expiry.as_secs() as i64;
        let claims = json!({
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": grant.resource,
            "client_id": grant.client_id,
            "scope": grant.scope,
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            // Gateways refuse the token once this consent (or the client) is revoked.
            "consent_id": family,
        });
        let access_token = match keys.sign(&claims) {
            Ok(t) => t,
            Err(e) => {
                return server_error(e);
            }
        };
        let refresh_token = format!("mcprt_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
        let record = RefreshRecord {
            hash: hash_hex(&refresh_token),
            family_id: family.to_owned(),
            grant: GrantRecord {
                expires_at_ms: now_ms() + self.settings.refresh_expiry.as_millis() as i64,
                ..grant.clone()
            },
            used_at_ms: 0,
            revoked_at_ms: 0,
        };
        if let Err(e) = self.store.insert_refresh_token(&record).await {
            return server_error(e);
        }
        if let Err(e) = self
            .store
            .record_oauth_use(&grant.client_id, family, now_ms())
            .await
        {
            tracing::warn!(error = %e, "recording when the OAuth client was last used");
        }
        no_store(
            StatusCode::OK,
            json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "refresh_token": refresh_token,
                "scope": grant.scope,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode("my%20id:s%3Acret"));
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        assert_eq!(
            basic_credentials(&h),
            Some(("my id".to_owned(), "s:cret".to_owned()))
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
