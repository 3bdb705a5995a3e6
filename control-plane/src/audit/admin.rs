//! Admin changes into the audit log: a layer around the admin API and the OAuth endpoints
//! that records every request that changes state (server add, edit, delete, enable, disable,
//! restart, import; key create, revoke and remove; OAuth client and consent revocation; login and logout; OAuth client registration and
//! consent), refused ones included, with who made it (the admin session, or `open` when the
//! API has no passcode).
//!
//! It sits outside the admin check so that refusals are recorded too. Bodies are never
//! stored: of an answer it reads only the created object's `name` (a key's answer carries
//! the key itself, which must not reach the log) and an error's message.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use super::{Audit, CONTROL_PLANE_SOURCE, bounded, new_id};
use crate::admin_auth::AdminAuth;
use crate::keys::now_ms;
use crate::oauth;
use crate::store::AuditRecord;

/// Answers larger than this are not read for a name (none of the admin API's are).
const MAX_READ_ANSWER: usize = 256 * 1024;

/// The layer's state: where records go and who the admin is.
#[derive(Clone)]
pub struct AdminAudit {
    pub audit: Arc<Audit>,
    pub admin: Arc<AdminAuth>,
}

/// The action an admin request is, and its object (a server or key name): `None` for what
/// is not a change (reads, the token endpoint, the UI's pages).
fn action_of(method: &Method, path: &str) -> Option<(String, String)> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if path == oauth::REGISTER_PATH {
        return Some(("oauth.register".into(), String::new()));
    }
    if path == oauth::AUTHORIZE_PATH {
        return Some(("oauth.consent".into(), String::new()));
    }
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let (action, object) = match (method.as_str(), segments.as_slice()) {
        ("POST", ["servers"]) => ("server.create", ""),
        ("PATCH" | "PUT", ["servers", name]) => ("server.update", *name),
        ("DELETE", ["servers", name]) => ("server.delete", *name),
        ("POST", ["servers", name, verb]) => {
            return Some((format!("server.{verb}"), (*name).to_owned()));
        }
        ("POST", ["import"]) => ("server.import", ""),
        ("POST", ["keys"]) => ("key.create", ""),
        ("DELETE", ["keys", key]) | ("POST", ["keys", key, "revoke"]) => ("key.revoke", *key),
        ("POST", ["keys", key, "remove"]) => ("key.remove", *key),
        ("POST", ["oauth", "clients", id, "revoke"]) => ("oauth.client.revoke", *id),
        ("POST", ["oauth", "consents", id, "revoke"]) => ("oauth.consent.revoke", *id),
        ("POST", ["login"]) => ("admin.login", ""),
        ("POST", ["logout"]) => ("admin.logout", ""),
        ("POST", ["session", "mcp-token"]) => ("admin.mcp_token", ""),
        (m, _) => return Some((format!("{m} {path}"), String::new())),
    };
    Some((action.to_owned(), object.to_owned()))
}

/// Records the admin changes that pass through (see the module doc).
pub async fn record_admin_changes(
    State(state): State<AdminAudit>,
    request: Request,
    next: Next,
) -> Response {
    if !state.audit.settings().enabled {
        return next.run(request).await;
    }
    let Some((action, object)) = action_of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let session = state.admin.session_of(request.headers());
    let (who_kind, who_id, who_name) = match (&session, action.as_str()) {
        (Some(s), _) => ("admin", s.id.clone(), s.kind.clone()),
        // A client registering itself is nobody's session.
        (None, "oauth.register") => ("anonymous", String::new(), String::new()),
        (None, _) if !state.admin.enabled() => ("admin", String::new(), "open".to_owned()),
        (None, _) => ("anonymous", String::new(), String::new()),
    };
    let request_bytes = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let response = next.run(request).await;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_READ_ANSWER)
        .await
        .unwrap_or_default();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let target = if object.is_empty() {
        answer
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    } else {
        object
    };
    let (outcome, reason) = if status.is_success() || status.is_redirection() {
        ("ok", String::new())
    } else {
        let message = answer
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or(""));
        let refused = matches!(status.as_u16(), 401 | 403 | 429);
        (
            if refused { "refused" } else { "error" },
            bounded(message.to_owned(), 1024),
        )
    };
    let provider = if action.starts_with("server.") {
        target.clone()
    } else {
        String::new()
    };
    state.audit.submit(vec![AuditRecord {
        id: new_id(),
        at_ms: now_ms(),
        who_kind: who_kind.to_owned(),
        who_id,
        who_name,
        method: action,
        provider,
        target: bounded(target, 1024),
        outcome: outcome.to_owned(),
        error_code: if outcome == "ok" {
            0
        } else {
            i64::from(status.as_u16())
        },
        reason,
        duration_us: started.elapsed().as_micros() as i64,
        request_bytes,
        response_bytes: bytes.len() as i64,
        source: CONTROL_PLANE_SOURCE.to_owned(),
        ..AuditRecord::default()
    }]);
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_name_what_changed() {
        let post = Method::POST;
        let cases = [
            (Method::GET, "/api/v1/servers", None),
            (post.clone(), "/api/v1/servers", Some(("server.create", ""))),
            (
                Method::PATCH,
                "/api/v1/servers/time",
                Some(("server.update", "time")),
            ),
            (
                Method::DELETE,
                "/api/v1/servers/time",
                Some(("server.delete", "time")),
            ),
            (
                post.clone(),
                "/api/v1/servers/time/disable",
                Some(("server.disable", "time")),
            ),
            (
                post.clone(),
                "/api/v1/servers/time/restart",
                Some(("server.restart", "time")),
            ),
            (post.clone(), "/api/v1/keys", Some(("key.create", ""))),
            (
                post.clone(),
                "/api/v1/keys/key_1/revoke",
                Some(("key.revoke", "key_1")),
            ),
            (
                Method::DELETE,
                "/api/v1/keys/key_1",
                Some(("key.revoke", "key_1")),
            ),
            (
                post.clone(),
                "/api/v1/keys/key_1/remove",
                Some(("key.remove", "key_1")),
            ),
            (
                post.clone(),
                "/api/v1/oauth/consents/mcpg_1/revoke",
                Some(("oauth.consent.revoke", "mcpg_1")),
            ),
            (
                post.clone(),
                "/api/v1/oauth/clients/mcpc_1/revoke",
                Some(("oauth.client.revoke", "mcpc_1")),
            ),
            (
                post.clone(),
                "/oauth/authorize",
                Some(("oauth.consent", "")),
            ),
            (post.clone(), "/oauth/token", None),
            (
                post.clone(),
                "/api/v1/analyze",
                Some(("POST /api/v1/analyze", "")),
            ),
        ];
        for (method, path, want) in cases {
            let got = action_of(&method, path);
            let want = want.map(|(a, o)| (a.to_owned(), o.to_owned()));
            assert_eq!(got, want, "{method} {path}");
        }
    }
}
