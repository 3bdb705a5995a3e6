//! Admin authentication for `/api/v1` and the web UI.
//!
//! Every request that changes state (POST, PUT, PATCH, DELETE) must say
//! `Content-Type: application/json`, with or without a body: no cross-site form or other
//! CORS-simple request can, so a browser must first ask (a preflight) and is refused. The
//! listener's Host and Origin policy (`mcpr_tls::host_policy`) has already run.
//!
//! With `ADMIN_PASSCODE` set, every API route but `health`, `login` and `session` needs
//! either an admin token (`Authorization: Bearer mcpra_…`, from `POST /api/v1/login`, what
//! `mcpr login` stores) or the web UI's session cookie. Cookie-authenticated requests that
//! change state must also carry the session's CSRF token in `X-CSRF-Token` (the UI's JS
//! reads it from `GET /api/v1/session`, which other origins cannot read); SameSite=Strict
//! already keeps the cookie off cross-site requests, the token is the second wall. Bearer
//! tokens are never sent ambiently, so they need no CSRF token.
//!
//! Without `ADMIN_PASSCODE` the API stays open, which `mcpr up` and the control plane only
//! allow on a loopback address (see `lib.rs`). A browser's writes still need a CSRF token
//! there: one made at start and handed out by `GET /api/v1/session`. A write is a browser's
//! when it carries a cookie, an `Origin` or a `Sec-Fetch-Site` header; scripts and the CLI
//! send none of them.
//!
//! The passcode is argon2-hashed in memory at start and verified off the async threads.
//! Login attempts are rate limited per client address. Sessions are stored hashed (SHA-256,
//! they are 256-bit random tokens) so they survive a restart.
//!
//! A session may mint short-lived MCP tokens (`POST /api/v1/session/mcp-token`,
//! `keys/mcp_token.rs`) to call MCP through the gateway as the admin; logging out ends them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::api::{ApiError, ApiJson};
use crate::keys::{KeyRing, hash_hex, now_ms, now_rfc3339};
use crate::ratelimit::{AddressLimiter, client_address, retry_after};
use crate::secrets::random_bytes;
use crate::store::{AdminTokenRecord, Store};

pub const TOKEN_PREFIX: &str = "mcpra_";
pub const SESSION_COOKIE: &str = "mcpr_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Passcodes shorter than this start the router with a warning.
pub const WEAK_PASSCODE_LEN: usize = 12;
const CLI_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 86_400);
const UI_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub struct AdminAuth {
    /// The argon2 PHC string of `ADMIN_PASSCODE`; `None`: the API is open (loopback only).
    passcode: Option<String>,
    store: Store,
    /// token hash (hex) -> session
    sessions: RwLock<HashMap<String, AdminTokenRecord>>,
    /// Login attempts per client address: bursts of 10, then one every 6 s.
    login_attempts: AddressLimiter,
    /// Mark cookies `Secure` even when no `X-Forwarded-Proto: https` says so.
    cookie_secure: bool,
    /// Without a passcode: the CSRF token of browsers' writes, made at start.
    open_csrf: String,
    /// Where the sessions' MCP tokens are minted and ended (`keys/mcp_token.rs`).
    keys: Arc<KeyRing>,
}

impl AdminAuth {
    pub async fn new(
        passcode: Option<&str>,
        store: Store,
        cookie_secure: bool,
        keys: Arc<KeyRing>,
    ) -> anyhow::Result<AdminAuth> {
        let passcode = match passcode.filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => {
                if p.chars().count() < WEAK_PASSCODE_LEN {
                    tracing::warn!(
                        "ADMIN_PASSCODE is weak (fewer than {WEAK_PASSCODE_LEN} characters): use a long random passcode"
                    );
                }
                let salt = SaltString::encode_b64(&random_bytes::<16>())
                    .map_err(|e| anyhow::anyhow!("argon2 salt: {e}"))?;
                let hash = argon2::Argon2::default()
                    .hash_password(p.as_bytes(), &salt)
                    .map_err(|e| anyhow::anyhow!("hashing ADMIN_PASSCODE: {e}"))?
                    .to_string();
                Some(hash)
            }
        };
        let now = now_ms();
        let sessions = store
            .list_admin_tokens()
            .await?
            .into_iter()
            .filter(|t| t.expires_at_ms > now)
            .map(|t| (t.hash.clone(), t))
            .collect();
        Ok(AdminAuth {
            passcode,
            store,
            sessions: RwLock::new(sessions),
            login_attempts: AddressLimiter::new(1.0 / 6.0, 10),
            cookie_secure,
            open_csrf: URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
            keys,
        })
    }

    /// Whether `/api/v1` needs an admin credential.
    pub fn enabled(&self) -> bool {
        self.passcode.is_some()
    }

    /// The session a token belongs to, if it is valid. The lookup is by SHA-256 of a 256-bit
    /// token; the final comparison is constant-time all the same.
    fn session(&self, token: &str) -> Option<AdminTokenRecord> {
        let hash = hash_hex(token);
        let sessions = self.sessions.read().unwrap();
        let found = sessions.get(&hash)?;
        let same: bool = found.hash.as_bytes().ct_eq(hash.as_bytes()).into();
        (same && found.expires_at_ms > now_ms()).then(|| found.clone())
    }

    /// The valid admin session a request carries (bearer token or UI cookie), if any: the
    /// OAuth consent page is behind the admin login.
    pub fn session_of(&self, headers: &HeaderMap) -> Option<AdminTokenRecord> {
        match presented(headers) {
            Presented::Bearer(t) | Presented::Cookie(t) => self.session(t),
            Presented::Nothing => None,
        }
    }

    async fn verify_passcode(&self, attempt: String) -> bool {
        let Some(hash) = self.passcode.clone() else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(attempt.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false)
    }

    async fn open_session(&self, kind: &str) -> anyhow::Result<(String, AdminTokenRecord)> {
        let token = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        );
        let lifetime = if kind == "ui" {
            UI_SESSION_LIFETIME
        } else {
            CLI_TOKEN_LIFETIME
        };
        let record = AdminTokenRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            hash: hash_hex(&token),
            kind: kind.to_owned(),
            csrf: URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
            created_at: now_rfc3339(),
            expires_at_ms: now_ms() + lifetime.as_millis() as i64,
        };
        self.store.insert_admin_token(&record).await?;
        self.sessions
            .write()
            .unwrap()
            .insert(record.hash.clone(), record.clone());
        Ok((token, record))
    }

    async fn close_session(&self, session: &AdminTokenRecord) {
        let now = now_ms();
        self.sessions
            .write()
            .unwrap()
            .retain(|_, s| s.id != session.id && s.expires_at_ms > now);
        if let Err(e) = self.store.delete_admin_token(&session.id, now).await {
            tracing::error!(error = %e, "forgetting an admin session");
        }
        if let Err(e) = self.keys.end_admin_mcp_tokens(&session.id).await {
            tracing::error!(error = %e, "ending an admin session's MCP tokens");
        }
    }
}

/// The credential a request carries: a bearer token, else the session cookie.
enum Presented<'a> {
    Bearer(&'a str),
    Cookie(&'a str),
    Nothing,
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some((scheme, token)) = value.split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Presented::Bearer(token.trim());
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else {
            continue;
        };
        for pair in cookies.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == SESSION_COOKIE
                && !value.is_empty()
            {
                return Presented::Cookie(value);
            }
        }
    }
    Presented::Nothing
}

fn refusal(status: StatusCode, code: &'static str, message: &str) -> Response {
    let mut response = ApiError::new(status, code, None, message.to_owned()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mcp-router-admin\""),
        );
    }
    response
}

/// The middleware in front of every `/api/v1` route: writes are JSON, then the admin
/// credential, then the CSRF token of writes a browser makes.
pub async fn require_admin(
    State(auth): State<Arc<AdminAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if write && let Err(refused) = json_write(&request) {
        return refused;
    }
    let headers = request.headers();
    let path = request.uri().path();
    let exempt = matches!(path, "/api/v1/health" | "/api/v1/login" | "/api/v1/session");
    // The CSRF token this request must carry, if any.
    let expected_csrf = match (auth.enabled(), presented(headers)) {
        (_, _) if exempt => None,
        (true, Presented::Bearer(token)) => {
            if auth.session(token).is_none() {
                return refusal(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the admin token is unknown or expired: run `mcpr login` again",
                );
            }
            None
        }
        (true, Presented::Cookie(token)) => match auth.session(token) {
            Some(session) => Some(session.csrf),
            None => {
                return refusal(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the session expired: log in again",
                );
            }
        },
        (true, Presented::Nothing) => {
            return refusal(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "admin authentication required: run `mcpr login`, or log in to the web UI",
            );
        }
        (false, Presented::Bearer(_)) => None,
        (false, Presented::Cookie(_)) => Some(auth.open_csrf.clone()),
        (false, Presented::Nothing) => {
            let from_browser =
                headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site");
            from_browser.then(|| auth.open_csrf.clone())
        }
    };
    if write && let Some(expected) = expected_csrf {
        let sent = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let ok: bool = sent.ct_eq(expected.as_bytes()).into();
        if !ok || expected.is_empty() {
            return refusal(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token header (cross-site request refused)",
            );
        }
    }
    next.run(request).await
}

/// Refuses a write that does not say `Content-Type: application/json` (parameters such as
/// `charset` allowed): a cross-site form or `text/plain` fetch must not change anything.
fn json_write(request: &Request) -> Result<(), Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    });
    if is_json {
        return Ok(());
    }
    let got = match &content_type {
        Some(ct) => format!("{ct:?}"),
        None => "none".to_owned(),
    };
    Err(refusal(
        StatusCode::FORBIDDEN,
        "content_type",
        &format!(
            "{} {} needs content-type application/json, got {got} (cross-site request refused)",
            request.method(),
            request.uri().path()
        ),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    passcode: String,
    /// `true` (the web UI): answer with a session cookie instead of a token.
    #[serde(default)]
    cookie: bool,
}

/// `POST /api/v1/login`, `POST /api/v1/logout`, `GET /api/v1/session`,
/// `POST /api/v1/session/mcp-token`.
pub fn router(auth: Arc<AdminAuth>) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/session", get(session))
        .route("/api/v1/session/mcp-token", post(mint_mcp_token))
        .with_state(auth)
}

/// A short-lived MCP token for the admin session the request carries (`keys/mcp_token.rs`):
/// `{"token", "expires_at_ms"}`. Behind [`require_admin`] like every write: an admin token,
/// or the UI's cookie with its CSRF token; without `ADMIN_PASSCODE`, the open API's rules.
async fn mint_mcp_token(State(auth): State<Arc<AdminAuth>>, headers: HeaderMap) -> Response {
    let (session_id, session_kind, session_expires_at_ms) = match auth.session_of(&headers) {
        Some(s) => (s.id, s.kind, s.expires_at_ms),
        None if !auth.enabled() => (String::new(), "open".to_owned(), 0),
        None => return refusal(StatusCode::UNAUTHORIZED, "unauthorized", "not logged in"),
    };
    match auth
        .keys
        .mint_admin_mcp_token(&session_id, &session_kind, session_expires_at_ms)
        .await
    {
        Ok(minted) => Json(minted).into_response(),
        Err(e) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("storing the MCP token: {e}"),
        ),
    }
}

async fn login(
    State(auth): State<Arc<AdminAuth>>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Login>,
) -> Response {
    if !auth.enabled() {
        return refusal(
            StatusCode::CONFLICT,
            "not_configured",
            "no ADMIN_PASSCODE is set: the API is open on loopback, nothing to log in to",
        );
    }
    let addr = client_address(connect.as_ref().map(|c| &c.0));
    if let Err(wait) = auth.login_attempts.charge(addr) {
        let mut response = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many login attempts from this address: wait and try again",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after(wait));
        return response;
    }
    if !auth.verify_passcode(body.passcode).await {
        tracing::warn!(%addr, "admin login refused: wrong passcode");
        return refusal(StatusCode::UNAUTHORIZED, "unauthorized", "wrong passcode");
    }
    let kind = if body.cookie { "ui" } else { "cli" };
    let (token, session) = match auth.open_session(kind).await {
        Ok(opened) => opened,
        Err(e) => {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("storing the session: {e}"),
            );
        }
    };
    tracing::info!(%addr, kind, "admin logged in");
    let expires_at = session.expires_at_ms;
    if !body.cookie {
        return Json(json!({"token": token, "expires_at_ms": expires_at})).into_response();
    }
    let secure = auth.cookie_secure
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        UI_SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response =
        Json(json!({"csrf": session.csrf, "expires_at_ms": expires_at})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
    );
    response
}

async fn logout(State(auth): State<Arc<AdminAuth>>, headers: HeaderMap) -> Response {
    let token = match presented(&headers) {
        Presented::Bearer(t) | Presented::Cookie(t) => t,
        Presented::Nothing => "",
    };
    if let Some(session) = auth.session(token) {
        auth.close_session(&session).await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("mcpr_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// What the UI needs to know: whether login is needed, and the CSRF token of its session.
async fn session(State(auth): State<Arc<AdminAuth>>, headers: HeaderMap) -> Response {
    if !auth.enabled() {
        return Json(json!({"auth": false, "authenticated": true, "csrf": auth.open_csrf}))
            .into_response();
    }
    let session = match presented(&headers) {
        Presented::Bearer(t) | Presented::Cookie(t) => auth.session(t),
        Presented::Nothing => None,
    };
    match session {
        Some(s) => {
            Json(json!({"auth": true, "authenticated": true, "csrf": s.csrf})).into_response()
        }
        None => refusal(StatusCode::UNAUTHORIZED, "unauthorized", "not logged in"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_then_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=b; mcpr_session=tok".parse().unwrap());
        assert!(matches!(presented(&headers), Presented::Cookie("tok")));
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(matches!(presented(&headers), Presented::Bearer("abc")));
    }
}
