//! OAuth 2.1 for MCP clients (docs/AUTH.md). With `MCP_OAUTH_ENABLED=true` the control
//! plane is an authorization server: RFC 8414 metadata, RFC 7591 dynamic registration and
//! client ID metadata documents, authorization code with PKCE (S256 only) behind a consent
//! page that needs the admin login, RFC 8707 resource binding, short-lived ES256 JWT access
//! tokens and rotating refresh tokens. With `OAUTH_EXTERNAL_ISSUER` gateways also (or
//! instead) accept an external identity provider's tokens.
//!
//! Gateways verify tokens themselves: what they need (issuers, audiences, JWKS, scope claim
//! and mapping) goes into every configuration snapshot through [`KeyRing::set_oauth_policy`];
//! a key rotation or a new external JWKS bumps the version like any other change.
//!
//! Endpoints, all under the issuer URL:
//! `/.well-known/oauth-authorization-server`, `/oauth/register`, `/oauth/authorize` (GET:
//! consent page; POST: the admin's decision), `/oauth/token`, `/oauth/jwks`.

pub mod admin;
mod authorize;
mod external;
mod fetch;
mod keys;
mod pages;
mod register;
mod settings;
pub mod store;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpr_proto as pb;
use serde_json::json;

pub use fetch::AddressPolicy;
pub use settings::{ExternalIdp, OAuthSettings};

use crate::admin_auth::AdminAuth;
use crate::keys::KeyRing;
use crate::store::Store;
use keys::SigningKeys;

/// Paths of the endpoints, relative to the issuer.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
pub const REGISTER_PATH: &str = "/oauth/register";
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
pub const TOKEN_PATH: &str = "/oauth/token";
pub const JWKS_PATH: &str = "/oauth/jwks";
/// The scope granting everything (as for API keys).
pub const ALL: &str = "*";

/// The authorization server (when enabled) and the policy it publishes to gateways.
pub struct OAuth {
    settings: OAuthSettings,
    /// Resolved issuer (no trailing slash) and resource (the audience of our tokens).
    issuer: String,
    resource: String,
    store: Store,
    /// `None` when only an external identity provider is configured.
    signing: Option<SigningKeys>,
    admin: Arc<AdminAuth>,
    keyring: Arc<KeyRing>,
    pending: Mutex<HashMap<String, authorize::Pending>>,
    external_jwks: RwLock<String>,
    /// The external IdP's documents (configured by the operator).
    http: reqwest::Client,
    /// Client ID metadata documents (named by anyone): public addresses only.
    documents: reqwest::Client,
    document_urls: fetch::DocumentUrls,
}

impl OAuth {
    /// Starts OAuth when configured (built-in server, external IdP, or both); `None` when not.
    pub async fn start(
        settings: &OAuthSettings,
        store: Store,
        admin: Arc<AdminAuth>,
        keyring: Arc<KeyRing>,
    ) -> anyhow::Result<Option<Arc<OAuth>>> {
        if !settings.enabled && settings.external.is_none() {
            return Ok(None);
        }
        let issuer = settings.issuer();
        let resource = settings.resource();
        if settings.public_url_is_a_guess
            && (settings.issuer.is_none() || settings.audience.is_none())
        {
            tracing::warn!(
                %issuer, %resource,
                "listening on a wildcard address without OAUTH_ISSUER and OAUTH_AUDIENCE: set them to the URLs clients use, or tokens will name loopback"
            );
        }
        let signing = if settings.enabled {
            keyring
                .track_oauth_revocations(issuer.clone(), settings.token_expiry)
                .await?;
            Some(SigningKeys::load(store.clone(), settings.key_rotation).await?)
        } else {
            None
        };
        // An external IdP's documents and client metadata documents: verified against the
        // system's roots and the components' authority (MCPR_TLS_CA), like every client of
        // the router.
        let http = mcpr_tls::http_client()?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let document_urls = fetch::DocumentUrls::new(
            settings.private_fetch.clone(),
            settings.allow_http_client_metadata,
        );
        if settings.private_fetch != fetch::AddressPolicy::PublicOnly {
            tracing::warn!(policy = ?settings.private_fetch, "{} is set: client metadata documents may come from private and loopback addresses (development only)", fetch::ALLOW_PRIVATE_FETCH);
        }
        let oauth = Arc::new(OAuth {
            settings: settings.clone(),
            issuer,
            resource,
            store,
            signing,
            admin,
            keyring,
            pending: Mutex::default(),
            external_jwks: RwLock::new(String::new()),
            http,
            documents: document_urls.client()?,
            document_urls,
        });
        if let Some(idp) = &oauth.settings.external {
            // The first fetch before serving, so that tokens work from the start; a failure
            // is retried in the background (the IdP may start after the router).
            if let Err(e) = oauth.refresh_external().await {
                tracing::warn!(issuer = %idp.issuer, error = %e, "fetching the external identity provider's keys; retrying");
            }
        }
        oauth.publish();
        tokio::spawn(maintain(Arc::downgrade(&oauth)));
        tracing::info!(
            built_in = oauth.settings.enabled,
            issuer = %oauth.issuer,
            resource = %oauth.resource,
            external = ?oauth.settings.external.as_ref().map(|e| &e.issuer),
            "OAuth enabled"
        );
        Ok(Some(oauth))
    }

    /// What gateways need, into the snapshot.
    fn publish(&self) {
        let mut issuers = Vec::new();
        let mut authorization_servers = Vec::new();
        if let Some(keys) = &self.signing {
            authorization_servers.push(self.issuer.clone());
            issuers.push(pb::TokenIssuer {
                issuer: self.issuer.clone(),
                audiences: vec![self.resource.clone()],
                jwks_json: keys.jwks(),
                scopes_claim: "scope".into(),
                scope_map: HashMap::new(),
                // Filled in by the key ring, which keeps them current (`keys.rs`).
                revoked_client_ids: Vec::new(),
                revoked_consent_ids: Vec::new(),
            });
        }
        if let Some(idp) = &self.settings.external {
            authorization_servers.push(idp.issuer.clone());
            issuers.push(pb::TokenIssuer {
                issuer: idp.issuer.clone(),
                audiences: vec![
                    idp.audience
                        .clone()
                        .unwrap_or_else(|| self.resource.clone()),
                ],
                jwks_json: self.external_jwks.read().unwrap().clone(),
                scopes_claim: idp.scopes_claim.clone(),
                scope_map: idp
                    .scope_map
                    .iter()
                    .map(|(k, v)| (k.clone(), pb::ScopeList { scopes: v.clone() }))
                    .collect(),
                revoked_client_ids: Vec::new(),
                revoked_consent_ids: Vec::new(),
            });
        }
        self.keyring.set_oauth_policy(pb::OAuthPolicy {
            resource: self.resource.clone(),
            authorization_servers,
            scopes_supported: Vec::new(),
            issuers,
        });
    }

    /// The routes of the authorization server (outside the admin API's check: the consent
    /// page checks the admin session itself). Nothing but 404s when only an external IdP
    /// is configured.
    /// Registration, authorization and token requests are charged to `limiter` by client
    /// address; the metadata and the JWKS are not (clients and gateways poll them).
    pub fn router(self: &Arc<Self>, limiter: Arc<crate::ratelimit::AddressLimiter>) -> Router {
        use axum::routing::{get, post};
        if self.signing.is_none() {
            return Router::new();
        }
        let limited = Router::new()
            .route(REGISTER_PATH, post(register::register))
            .route(AUTHORIZE_PATH, get(authorize::show).post(authorize::decide))
            .route(TOKEN_PATH, post(token::token))
            .route_layer(axum::middleware::from_fn_with_state(
                limiter,
                crate::ratelimit::oauth_endpoints,
            ));
        Router::new()
            .route(METADATA_PATH, get(metadata))
            // An issuer with a path (OAUTH_ISSUER=https://host/auth) is looked up with the
            // path after the well-known prefix (RFC 8414 §3.1).
            .route(&format!("{METADATA_PATH}/{{*issuer_path}}"), get(metadata))
            .route(JWKS_PATH, get(jwks))
            .merge(limited)
            .with_state(self.clone())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

/// Rotates signing keys, refreshes the external JWKS and forgets expired codes and tokens.
async fn maintain(oauth: std::sync::Weak<OAuth>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        let Some(oauth) = oauth.upgrade() else { return };
        rounds += 1;
        let mut changed = false;
        if let Some(keys) = &oauth.signing {
            match keys.refresh().await {
                Ok(c) => changed |= c,
                Err(e) => tracing::error!(error = %e, "rotating OAuth signing keys"),
            }
        }
        // The external JWKS every 5 minutes, or every round while we have none.
        let have_external = !oauth.external_jwks.read().unwrap().is_empty();
        if oauth.settings.external.is_some() && (rounds.is_multiple_of(10) || !have_external) {
            match oauth.refresh_external().await {
                Ok(c) => changed |= c,
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing the external identity provider's keys")
                }
            }
        }
        if changed {
            oauth.publish();
        }
        if let Err(e) = oauth.store.purge_oauth(crate::keys::now_ms()).await {
            tracing::warn!(error = %e, "purging expired OAuth codes and tokens");
        }
    }
}

/// A JSON answer that caches must not keep (RFC 6749 §5.1).
fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// An OAuth error answer (`error`, `error_description`).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// RFC 8414 metadata.
async fn metadata(State(oauth): State<Arc<OAuth>>) -> Response {
    Json(json!({
        "issuer": oauth.issuer,
        "authorization_endpoint": oauth.url(AUTHORIZE_PATH),
        "token_endpoint": oauth.url(TOKEN_PATH),
        "registration_endpoint": oauth.url(REGISTER_PATH),
        "jwks_uri": oauth.url(JWKS_PATH),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": [ALL],
    }))
    .into_response()
}

async fn jwks(State(oauth): State<Arc<OAuth>>) -> Response {
    let jwks = oauth.signing.as_ref().map(|k| k.jwks()).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        jwks,
    )
        .into_response()
}

/// Whether every scope of `wanted` is within `allowed` (`*` covers all, `provider` covers
/// `provider/tool`).
pub fn scopes_within(wanted: &[String], allowed: &[String]) -> bool {
    wanted.iter().all(|w| {
        allowed.iter().any(|a| {
            a == ALL || a == w || w.split_once('/').is_some_and(|(provider, _)| provider == a)
        })
    })
}

/// Splits a space-separated scope parameter, refusing characters RFC 6749 §3.3 excludes.
pub fn parse_scope(text: &str) -> Result<Vec<String>, String> {
    let scopes: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    if let Some(bad) = scopes.iter().find(|s| {
        s.chars()
            .any(|c| c == '"' || c == '\\' || !c.is_ascii_graphic())
    }) {
        return Err(format!("scope {bad:?} has characters a scope cannot have"));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scope_coverage() {
        assert!(scopes_within(&v(&["time", "gh/x"]), &v(&["*"])));
        assert!(scopes_within(&v(&["gh/x"]), &v(&["gh"])));
        assert!(!scopes_within(&v(&["gh"]), &v(&["gh/x"])));
        assert!(!scopes_within(&v(&["*"]), &v(&["time"])));
        assert!(scopes_within(&v(&[]), &v(&[])));
        assert!(parse_scope("a b/c *").is_ok());
        assert!(parse_scope("a\"b").is_err());
    }
}
