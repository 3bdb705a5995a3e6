//! The authorization endpoint: `GET /oauth/authorize` checks the request and shows the
//! consent page (after the admin login when `ADMIN_PASSCODE` is set); `POST` takes the
//! admin's decision and redirects back to the client with a code (or `access_denied`).
//!
//! Until the client and its exact redirect URI are known good, errors are shown, never
//! redirected; after that they go back to the client as `error=…` (RFC 6749 §4.1.2.1).
//! The decision form carries the admin session's CSRF token (or, without an admin login, a
//! token of its own) and the id of the pending request, which lives ten minutes, once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::pages::{self, Consent};
use super::store::{CodeRecord, ConsentRecord, GrantRecord};
use super::{ALL, OAuth, parse_scope, scopes_within};
use crate::keys::{hash_hex, now_ms};
use crate::secrets::random_bytes;

/// How long the consent page may stay open.
const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Authorization codes live a minute.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
const MAX_PENDING: usize = 10_000;

/// An authorization request waiting for the admin.
pub struct Pending {
    client_id: String,
    client_name: String,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    scopes: Vec<String>,
    resource: String,
    /// Expected in the form when there is no admin session (no `ADMIN_PASSCODE`).
    csrf: String,
    created: Instant,
}

#[derive(Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `redirect_uri` with `params` appended to its query.
fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = redirect_uri.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&encode(v));
        sep = '&';
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(&url) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => pages::error("the redirect URI cannot be used in a redirect"),
    }
}

impl OAuth {
    /// Back to the client with an error (its redirect URI is known good by now).
    fn refuse(&self, redirect_uri: &str, state: Option<&str>, error: &str, why: &str) -> Response {
        let mut params = vec![("error", error), ("error_description", why)];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", &self.issuer));
        redirect(redirect_uri, &params)
    }

    /// Whether `resource` (RFC 8707) is ours: the resource or a URL under it.
    pub(super) fn resource_allowed(&self, resource: &str) -> bool {
        let ours = self.resource.trim_end_matches('/');
        let resource = resource.trim_end_matches('/');
        resource == ours
            || resource
                .strip_prefix(ours)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// `GET /oauth/authorize`.
pub async fn show(
    State(oauth): State<Arc<OAuth>>,
    headers: HeaderMap,
    query: Result<Query<AuthorizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return pages::error(&format!("malformed authorization request: {e}")),
    };
    let Some(client_id) = q.client_id.filter(|c| !c.is_empty()) else {
        return pages::error("the request has no client_id");
    };
    let client = match oauth.client(&client_id).await {
        Ok(client) => client,
        Err(why) => return pages::error(&why),
    };
    let redirect_uri = match q.redirect_uri {
        Some(uri) if client.redirect_uris.contains(&uri) => uri,
        Some(uri) => {
            return pages::error(&format!(
                "redirect_uri {uri:?} is not registered for this client (exact match required)"
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return pages::error(
                "the request has no redirect_uri and the client registered several",
            );
        }
    };
    let state = q.state.as_deref();
    let refuse = |error: &str, why: &str| oauth.refuse(&redirect_uri, state, error, why);
    if q.response_type.as_deref() != Some("code") {
        return refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let challenge = match (q.code_challenge, q.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => c,
        (Some(_), Some("S256")) => {
            return refuse(
                "invalid_request",
                "code_challenge must be 43 to 128 characters",
            );
        }
        (None, _) => return refuse("invalid_request", "PKCE is required: send code_challenge"),
        (Some(_), _) => {
            return refuse(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            );
        }
    };
    let requested = match parse_scope(q.scope.as_deref().unwrap_or_default()) {
        Ok(s) => s,
        Err(why) => return refuse("invalid_scope", &why),
    };
    let registered = parse_scope(&client.scope).unwrap_or_default();
    let scopes = if requested.is_empty() {
        if registered.is_empty() {
            vec![ALL.to_owned()]
        } else {
            registered.clone()
        }
    } else {
        requested
    };
    if !registered.is_empty() && !scopes_within(&scopes, &registered) {
        return refuse(
            "invalid_scope",
            &format!(
                "the client registered the scopes {:?} and may not ask for {:?}",
                registered.join(" "),
                scopes.join(" ")
            ),
        );
    }
    let resource = q.resource.unwrap_or_else(|| oauth.resource.clone());
    if !oauth.resource_allowed(&resource) {
        return refuse(
            "invalid_target",
            &format!(
                "resource {resource:?} is not served here (this router is {:?})",
                oauth.resource
            ),
        );
    }
    let session = oauth.admin.session_of(&headers);
    if oauth.admin.enabled() && session.is_none() {
        return pages::login();
    }
    let request_id = URL_SAFE_NO_PAD.encode(random_bytes::<24>());
    let pending = Pending {
        client_id: client.client_id.clone(),
        client_name: client.client_name.clone(),
        redirect_uri: redirect_uri.clone(),
        state: q.state.clone(),
        code_challenge: challenge,
        scopes: scopes.clone(),
        resource: resource.clone(),
        csrf: URL_SAFE_NO_PAD.encode(random_bytes::<24>()),
        created: Instant::now(),
    };
    let csrf = match &session {
        Some(s) => s.csrf.clone(),
        None => pending.csrf.clone(),
    };
    {
        let mut all = oauth.pending.lock().unwrap();
        all.retain(|_, p| p.created.elapsed() < PENDING_LIFETIME);
        if all.len() >= MAX_PENDING {
            drop(all);
            return refuse(
                "temporarily_unavailable",
                "too many authorization requests are waiting for approval",
            );
        }
        all.insert(request_id.clone(), pending);
    }
    pages::consent(&Consent {
        request_id: &request_id,
        csrf: &csrf,
        client_id: &client.client_id,
        client_name: &client.client_name,
        redirect_uri: &redirect_uri,
        scope: &scopes.join(" "),
        resource: &resource,
    })
}

#[derive(Deserialize)]
pub struct Decision {
    request_id: String,
    csrf: String,
    decision: String,
    #[serde(default)]
    scope: Option<String>,
}

/// `POST /oauth/authorize`: the admin's decision.
pub async fn decide(
    State(oauth): State<Arc<OAuth>>,
    headers: HeaderMap,
    form: Result<Form<Decision>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Form(d) = match form {
        Ok(f) => f,
        Err(e) => return pages::error(&format!("malformed decision: {e}")),
    };
    let session = oauth.admin.session_of(&headers);
    if oauth.admin.enabled() && session.is_none() {
        return pages::login();
    }
    let Some(pending) = oauth.pending.lock().unwrap().remove(&d.request_id) else {
        return pages::error(
            "this authorization request is unknown, was already decided or expired: start again from the client",
        );
    };
    if pending.created.elapsed() >= PENDING_LIFETIME {
        return pages::error("this authorization request expired: start again from the client");
    }
    let expected = session.map_or(pending.csrf.clone(), |s| s.csrf);
    if expected.is_empty() || !bool::from(d.csrf.as_bytes().ct_eq(expected.as_bytes())) {
        return pages::error("missing or wrong CSRF token (cross-site request refused)");
    }
    let state = pending.state.as_deref();
    if d.decision != "approve" {
        tracing::info!(client_id = %pending.client_id, "OAuth authorization denied by the admin");
        return oauth.refuse(
            &pending.redirect_uri,
            state,
            "access_denied",
            "the administrator denied the request",
        );
    }
    // The admin may narrow the scopes, never widen them.
    let granted = match d.scope.as_deref().map(parse_scope) {
        None => pending.scopes.clone(),
        Some(Ok(s)) if !s.is_empty() && scopes_within(&s, &pending.scopes) => s,
        Some(_) => {
            return pages::error(&format!(
                "the granted scopes must be a non-empty subset of the requested {:?}",
                pending.scopes.join(" ")
            ));
        }
    };
    // The approval is a consent the admin can list and revoke later (`admin.rs`).
    let consent = ConsentRecord {
        id: format!("mcpg_{}", URL_SAFE_NO_PAD.encode(random_bytes::<16>())),
        client_id: pending.client_id.clone(),
        client_name: pending.client_name.clone(),
        subject: "admin".into(),
        scope: granted.join(" "),
        resource: pending.resource.clone(),
        created_at_ms: now_ms(),
        last_used_ms: 0,
        revoked_at_ms: 0,
    };
    if let Err(e) = oauth.store.insert_oauth_consent(&consent).await {
        return oauth.refuse(
            &pending.redirect_uri,
            state,
            "server_error",
            &format!("storing the consent: {e}"),
        );
    }
    let code = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let record = CodeRecord {
        hash: hash_hex(&code),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        grant: GrantRecord {
            client_id: pending.client_id.clone(),
            scope: granted.join(" "),
            resource: pending.resource.clone(),
            subject: consent.subject.clone(),
            expires_at_ms: now_ms() + CODE_LIFETIME.as_millis() as i64,
        },
        consent_id: consent.id.clone(),
    };
    if let Err(e) = oauth.store.insert_oauth_code(&record).await {
        return oauth.refuse(
            &pending.redirect_uri,
            state,
            "server_error",
            &format!("storing the code: {e}"),
        );
    }
    tracing::info!(client_id = %pending.client_id, scope = %record.grant.scope, "OAuth authorization approved");
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", &oauth.issuer));
    redirect(&pending.redirect_uri, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_encode_parameters() {
        let r = redirect(
            "http://127.0.0.1:3000/cb?x=1",
            &[("code", "a b&c"), ("state", "s/t")],
        );
        assert_eq!(
            r.headers()[header::LOCATION],
            "http://127.0.0.1:3000/cb?x=1&code=a%20b%26c&state=s%2Ft"
        );
    }
}
