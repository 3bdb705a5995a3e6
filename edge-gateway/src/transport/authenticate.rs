//! The authentication step in front of every MCP route of the HTTP front door. In order:
//! the per-address rate limit; then, when the control plane says authentication is required
//! (a key exists, `MCP_API_KEY`, `MCPR_AUTH=required`, or a non-loopback `mcpr up`) or the
//! gateway itself listens on a non-loopback address (`Config::require_auth`), the API key
//! from `Authorization: Bearer …` or `X-API-Key` (401 with `WWW-Authenticate` and a JSON-RPC
//! error naming the problem: missing, unknown, revoked, expired); the per-key rate limit
//! (429 with `Retry-After`); on `/mcp/p/{provider}`, whether the key may use that provider
//! (403). The handler then runs with the caller's `Access` (`access::caller`).
//!
//! With OAuth (`access/oauth.rs`, `access/jwt.rs`), a bearer token that is a JWT is verified
//! against the trusted issuers' keys from the snapshot instead, and its scopes become the
//! same `Access`; refusals then carry `resource_metadata` in the challenge (RFC 9728) and a
//! refused provider answers 403 with `error="insufficient_scope"`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::Gateway;
use crate::access::oauth::ResourceServer;
use crate::access::{
    self, Access, RATE_LIMITED, REALM_CHALLENGE, ScopeRefusal, UNAUTHORIZED, presented_key,
};
use crate::sessions;
use crate::transport::rpc_refusal;

/// 401 naming the problem; with OAuth, the challenge points at the resource metadata and
/// says `invalid_token` when a token was presented and refused.
fn unauthorized(problem: &str, oauth: Option<&ResourceServer>, token_refused: bool) -> Response {
    let how = if oauth.is_some() {
        "send an OAuth access token (see the resource metadata in WWW-Authenticate) or an API key as \"Authorization: Bearer …\""
    } else {
        "send an API key as \"Authorization: Bearer mcpr_…\" (or X-API-Key); create one with `mcpr key create`"
    };
    let mut response = rpc_refusal(
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
        &format!("{problem}: {how}"),
    );
    let challenge = match oauth {
        Some(rs) => rs.challenge(token_refused.then_some(problem)),
        None => HeaderValue::from_static(REALM_CHALLENGE),
    };
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

/// A JWT (three base64url parts), as opposed to an API key (`mcpr_…`).
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("ey") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Who is calling: an API key or an OAuth token.
struct Caller {
    /// Rate limit bucket.
    bucket: String,
    /// What to name in a refusal.
    name: String,
    access: Arc<Access>,
    /// Key id whose use is reported (API keys only).
    key_id: Option<String>,
}

fn too_many(what: &str, wait: Duration) -> Response {
    let mut response = rpc_refusal(
        StatusCode::TOO_MANY_REQUESTS,
        RATE_LIMITED,
        &format!(
            "rate limit exceeded for this {what}: retry after {:.1} s",
            wait.as_secs_f64()
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs_f64().ceil().max(1.0) as u64),
    );
    response
}

/// The provider of a `/mcp/p/{provider}` path.
fn transparent_provider(path: &str) -> Option<&str> {
    path.strip_prefix("/mcp/p/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .filter(|p| !p.is_empty())
}

/// The layer in front of every MCP route (see the module comment).
pub async fn authenticate(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let snapshot = gateway.snapshot.load();
    let credentials = &snapshot.credentials;
    if credentials.per_address.rate > 0.0
        && let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(wait) = gateway
            .auth
            .take_per_address(&addr.ip(), credentials.per_address)
    {
        return too_many("client address", wait);
    }
    if !credentials.required && !gateway.config.require_auth {
        return next.run(request).await;
    }
    let oauth = credentials.oauth.as_ref();
    let Some(key) = presented_key(request.headers()) else {
        let what = if oauth.is_some() {
            "missing credentials"
        } else {
            "missing API key"
        };
        return unauthorized(what, oauth, false);
    };
    let now_ms = unix_ms();
    let caller = match oauth {
        Some(rs) if looks_like_jwt(key) => match rs.check(key, now_ms / 1000) {
            Ok(grant) => Caller {
                bucket: format!("oauth:{}:{}", grant.client_id, grant.subject),
                name: format!("OAuth token of client {:?}", grant.client_id),
                access: grant.access.clone(),
                key_id: None,
            },
            Err(problem) => return unauthorized(&format!("invalid token: {problem}"), oauth, true),
        },
        _ => match credentials.check(key, now_ms) {
            Ok(grant) => Caller {
                bucket: grant.id.clone(),
                name: format!("API key {:?}", grant.name),
                access: grant.access.clone(),
                key_id: Some(grant.id.clone()),
            },
            Err(problem) => return unauthorized(problem, oauth, oauth.is_some()),
        },
    };
    if let Err(wait) = gateway
        .auth
        .take_per_key(&caller.bucket, credentials.per_key)
    {
        return too_many("API key", wait);
    }
    if let Some(provider) = transparent_provider(request.uri().path())
        && !caller.access.allows_provider(provider)
    {
        let mut response = rpc_refusal(
            StatusCode::FORBIDDEN,
            UNAUTHORIZED,
            &format!(
                "{} may not use provider {provider:?} (not in its scopes)",
                caller.name
            ),
        );
        if let Some(rs) = oauth {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, rs.insufficient_scope(provider));
        }
        return response;
    }
    if let Some(id) = &caller.key_id {
        gateway.auth.record_use(id, now_ms);
    }
    drop(snapshot);
    // Sessions belong to the credential that creates them (`sessions/mod.rs`).
    let handled = sessions::as_credential(caller.bucket, next.run(request));
    let mut response = access::as_caller(caller.access, handled).await;
    if let Some(ScopeRefusal(scope)) = response.extensions_mut().remove::<ScopeRefusal>()
        && let Some(rs) = &gateway.snapshot.load().credentials.oauth
    {
        // The step-up challenge of the authorization spec: a client may ask for a token
        // with this scope and send the request again.
        *response.status_mut() = StatusCode::FORBIDDEN;
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, rs.insufficient_scope(&scope));
    }
    response
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_paths() {
        assert_eq!(transparent_provider("/mcp/p/time"), Some("time"));
        assert_eq!(transparent_provider("/mcp/p/time/"), Some("time"));
        assert_eq!(transparent_provider("/mcp/all"), None);
    }
}
