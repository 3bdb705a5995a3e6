//! What the built-in authorization server gave out, for the admin (`/api/v1/oauth/…`, behind
//! the admin check like the rest of the API): the clients that registered and the consents
//! the admin approved, each revocable.
//!
//! Revoking a consent revokes the refresh tokens descended from it; revoking a client
//! revokes its refresh tokens and consents and refuses it at the token and authorization
//! endpoints. Access tokens are JWTs gateways verify without asking anyone, so the ids of
//! what was revoked travel in the next configuration snapshot (`KeyRing::oauth_revoked`),
//! pushed at once like a revoked API key, and gateways refuse tokens naming them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::OAuth;
use super::store::{ClientListing, ConsentRecord};
use crate::api::ApiError;
use crate::keys::{ms_to_rfc3339, now_ms};
use crate::store::StoreError;

/// A registered client as the API shows it (never its secret's hash).
#[derive(Debug, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    /// The scopes it registered for (empty: any).
    pub scopes: Vec<String>,
    /// Whether it authenticates with a client secret.
    pub confidential: bool,
    pub registered_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// `active` or `revoked`.
    pub state: &'static str,
}

/// A consent as the API shows it.
#[derive(Debug, Serialize)]
pub struct ConsentView {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub subject: String,
    pub scopes: Vec<String>,
    pub resource: String,
    pub granted_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// `active` or `revoked`.
    pub state: &'static str,
}

fn client_view(c: ClientListing) -> ClientView {
    ClientView {
        scopes: c
            .client
            .scope
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        confidential: !c.client.secret_hash.is_empty(),
        registered_at: c.client.created_at,
        last_used_at: time_of(c.last_used_ms),
        revoked_at: time_of(c.client.revoked_at_ms),
        state: state(c.client.revoked_at_ms),
        client_id: c.client.client_id,
        client_name: c.client.client_name,
        redirect_uris: c.client.redirect_uris,
    }
}

fn consent_view(c: ConsentRecord) -> ConsentView {
    ConsentView {
        scopes: c.scope.split_whitespace().map(str::to_owned).collect(),
        granted_at: time_of(c.created_at_ms).unwrap_or_default(),
        last_used_at: time_of(c.last_used_ms),
        revoked_at: time_of(c.revoked_at_ms),
        state: state(c.revoked_at_ms),
        id: c.id,
        client_id: c.client_id,
        client_name: c.client_name,
        subject: c.subject,
        resource: c.resource,
    }
}

fn state(revoked_at_ms: i64) -> &'static str {
    if revoked_at_ms == 0 {
        "active"
    } else {
        "revoked"
    }
}

/// RFC 3339 of a Unix-ms time; `None` for 0 (never).
fn time_of(ms: i64) -> Option<String> {
    (ms != 0).then(|| ms_to_rfc3339(ms))
}

/// The routes; without the built-in server each answers 404 `oauth_disabled`.
pub fn router(oauth: Option<Arc<OAuth>>) -> Router {
    let oauth = oauth.filter(|o| o.signing.is_some());
    Router::new()
        .route("/api/v1/oauth/clients", get(list_clients))
        .route("/api/v1/oauth/clients/{id}/revoke", post(revoke_client))
        .route("/api/v1/oauth/consents", get(list_consents))
        .route("/api/v1/oauth/consents/{id}/revoke", post(revoke_consent))
        .with_state(oauth)
}

type Server = State<Option<Arc<OAuth>>>;

fn enabled(oauth: Option<Arc<OAuth>>) -> Result<Arc<OAuth>, ApiError> {
    oauth.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "oauth_disabled",
            None,
            "the built-in OAuth server is not enabled (MCP_OAUTH_ENABLED=true starts it)".into(),
        )
    })
}

fn internal(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        None,
        e.to_string(),
    )
}

async fn list_clients(State(oauth): Server) -> Result<Response, ApiError> {
    let oauth = enabled(oauth)?;
    let clients = oauth.store.list_oauth_clients().await.map_err(internal)?;
    Ok(Json(clients.into_iter().map(client_view).collect::<Vec<_>>()).into_response())
}

async fn list_consents(State(oauth): Server) -> Result<Response, ApiError> {
    let oauth = enabled(oauth)?;
    let consents = oauth.store.list_oauth_consents().await.map_err(internal)?;
    Ok(Json(consents.into_iter().map(consent_view).collect::<Vec<_>>()).into_response())
}

async fn revoke_client(State(oauth): Server, Path(id): Path<String>) -> Result<Response, ApiError> {
    let oauth = enabled(oauth)?;
    if !oauth
        .store
        .revoke_oauth_client(&id, now_ms())
        .await
        .map_err(internal)?
    {
        return Err(ApiError::not_found(format!(
            "no registered OAuth client {id:?}"
        )));
    }
    oauth.keyring.oauth_revoked().await.map_err(internal)?;
    tracing::info!(client_id = %id, "OAuth client revoked by the admin");
    let listing = oauth
        .store
        .list_oauth_clients()
        .await
        .map_err(internal)?
        .into_iter()
        .find(|c| c.client.client_id == id);
    Ok(Json(listing.map(client_view)).into_response())
}

async fn revoke_consent(
    State(oauth): Server,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let oauth = enabled(oauth)?;
    if !oauth
        .store
        .revoke_oauth_consent(&id, now_ms())
        .await
        .map_err(internal)?
    {
        return Err(ApiError::not_found(format!("no OAuth consent {id:?}")));
    }
    oauth.keyring.oauth_revoked().await.map_err(internal)?;
    tracing::info!(consent = %id, "OAuth consent revoked by the admin");
    let consent = oauth.store.get_oauth_consent(&id).await.map_err(internal)?;
    Ok(Json(consent.map(consent_view)).into_response())
}
