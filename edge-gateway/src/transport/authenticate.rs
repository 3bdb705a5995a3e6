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
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::Gateway;
use crate::access::oauth::ResourceServer;
use crate::access::{
    self, Access, Caller, RATE_LIMITED, REALM_CHALLENGE, ScopeRefusal, UNAUTHORIZED, Who,
    presented_key,
};
use crate::observe::{CallRecord, Outcome, Refusal};
use crate::sessions;
use crate::transport::http::SESSION;
use crate::transport::{VERSION, rpc_refusal};
use crate::views::SUPPORTED_VERSIONS;
use mcpr_core::mcp_headers::MODERN_VERSION;

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

/// Who is calling: an API key, an OAuth token or an admin MCP token.
struct Credential {
    /// Rate limit bucket.
    bucket: String,
    /// What to name in a refusal.
    name: String,
    access: Arc<Access>,
    /// Key id whose use is reported (API keys only).
    key_id: Option<String>,
    who: Who,
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

/// The view a path of the MCP routes serves, by name (`View::label`).
fn view_label(path: &str) -> &'static str {
    if transparent_provider(path).is_some() {
        "transparent"
    } else if path == "/mcp/all" {
        "flat"
    } else {
        "hierarchical"
    }
}

/// The protocol version a request names in `MCP-Protocol-Version`, when it is one the
/// gateway speaks (a label, so never the client's own text).
fn protocol_version(request: &Request) -> Option<&'static str> {
    let named = request.headers().get(&VERSION)?.to_str().ok()?;
    SUPPORTED_VERSIONS
        .iter()
        .copied()
        .chain(std::iter::once(MODERN_VERSION))
        .find(|v| *v == named)
}

/// Records a request refused here, before any view saw it (`observe/mod.rs`): its method
/// is not known, its provider only when the path names one the snapshot has.
fn record_refusal(
    gateway: &Gateway,
    request: &Request,
    who: &Who,
    refusal: Refusal,
    started: Instant,
) {
    let path = request.uri().path();
    let snapshot = gateway.snapshot.load();
    let provider = transparent_provider(path)
        .and_then(|p| snapshot.providers.get_key_value(p))
        .map(|(name, _)| name.as_str());
    gateway.observer.record(&CallRecord {
        method: "",
        target: None,
        tool_known: false,
        provider,
        view: view_label(path),
        caller: who,
        session: request
            .headers()
            .get(&SESSION)
            .and_then(|v| v.to_str().ok()),
        protocol_version: protocol_version(request),
        outcome: Outcome::Refused(refusal),
        duration: started.elapsed(),
        request_bytes: 0,
        response_bytes: 0,
        arguments: None,
    });
}

/// A refusal answered before the request's body was read, for HTTP/1: hyper reads what
/// has already arrived and otherwise closes the connection after the answer, which would
/// not say so; a client that reuses the connection for its next request (its retry with a
/// token, say) then meets a closed socket. `Connection: close` tells it to open a new one.
fn closing(request: &Request, mut response: Response) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length != "0");
    if request.version() <= axum::http::Version::HTTP_11 && has_body {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// `response`, refusing `request`: recorded, and closing the connection where it must.
fn refused(
    gateway: &Gateway,
    request: &Request,
    who: &Who,
    refusal: Refusal,
    started: Instant,
    response: Response,
) -> Response {
    record_refusal(gateway, request, who, refusal, started);
    closing(request, response)
}

/// The layer in front of every MCP route (see the module comment).
pub async fn authenticate(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let refuse =
        |who: &Who, refusal, response| refused(&gateway, &request, who, refusal, started, response);
    let snapshot = gateway.snapshot.load();
    let credentials = &snapshot.credentials;
    if credentials.per_address.rate > 0.0
        && let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(wait) = gateway
            .auth
            .take_per_address(&addr.ip(), credentials.per_address)
    {
        return refuse(
            &Who::Anonymous,
            Refusal::RateLimitAddress,
            too_many("client address", wait),
        );
    }
    if !credentials.required && !gateway.config.require_auth {
        let caller = Caller {
            access: access::everything(),
            who: Who::Anonymous,
            protocol_version: protocol_version(&request),
        };
        return access::as_caller(caller, next.run(request)).await;
    }
    let oauth = credentials.oauth.as_ref();
    let Some(key) = presented_key(request.headers()) else {
        let what = if oauth.is_some() {
            "missing credentials"
        } else {
            "missing API key"
        };
        return refuse(
            &Who::Anonymous,
            Refusal::MissingCredentials,
            unauthorized(what, oauth, false),
        );
    };
    let now_ms = unix_ms();
    // An admin MCP token (`mcprm_…`) is looked up first: it is neither a JWT nor an API key.
    let credential = match credentials.check_admin(key, now_ms) {
        Some(Ok(grant)) => Credential {
            bucket: format!("admin:{}", grant.id),
            name: "the admin MCP token".to_owned(),
            access: grant.access.clone(),
            key_id: None,
            who: Who::Admin(grant.clone()),
        },
        Some(Err(problem)) => {
            return refuse(
                &Who::Anonymous,
                Refusal::ExpiredKey,
                unauthorized(problem, oauth, oauth.is_some()),
            );
        }
        None => match oauth {
            Some(rs) if looks_like_jwt(key) => match rs.check(key, now_ms / 1000) {
                Ok(grant) => Credential {
                    bucket: format!("oauth:{}:{}", grant.client_id, grant.subject),
                    name: format!("OAuth token of client {:?}", grant.client_id),
                    access: grant.access.clone(),
                    key_id: None,
                    who: Who::OAuth(grant),
                },
                Err(problem) => {
                    return refuse(
                        &Who::Anonymous,
                        Refusal::InvalidToken,
                        unauthorized(&format!("invalid token: {problem}"), oauth, true),
                    );
                }
            },
            _ => match credentials.check(key, now_ms) {
                Ok(grant) => Credential {
                    bucket: grant.id.clone(),
                    name: format!("API key {:?}", grant.name),
                    access: grant.access.clone(),
                    key_id: Some(grant.id.clone()),
                    who: Who::ApiKey(grant.clone()),
                },
                Err(problem) => {
                    return refuse(
                        &Who::Anonymous,
                        Refusal::of_key_problem(problem),
                        unauthorized(problem, oauth, oauth.is_some()),
                    );
                }
            },
        },
    };
    if let Err(wait) = gateway
        .auth
        .take_per_key(&credential.bucket, credentials.per_key)
    {
        return refuse(
            &credential.who,
            Refusal::RateLimitKey,
            too_many("API key", wait),
        );
    }
    if let Some(provider) = transparent_provider(request.uri().path())
        && !credential.access.allows_provider(provider)
    {
        let mut response = rpc_refusal(
            StatusCode::FORBIDDEN,
            UNAUTHORIZED,
            &format!(
                "{} may not use provider {provider:?} (not in its scopes)",
                credential.name
            ),
        );
        if let Some(rs) = oauth {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, rs.insufficient_scope(provider));
        }
        return refuse(&credential.who, Refusal::Scope, response);
    }
    if let Some(id) = &credential.key_id {
        gateway.auth.record_use(id, now_ms);
    }
    drop(snapshot);
    let caller = Caller {
        access: credential.access,
        who: credential.who,
        protocol_version: protocol_version(&request),
    };
    // Sessions belong to the credential that creates them (`sessions/mod.rs`).
    let handled = sessions::as_credential(credential.bucket, next.run(request));
    let mut response = access::as_caller(caller, handled).await;
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
