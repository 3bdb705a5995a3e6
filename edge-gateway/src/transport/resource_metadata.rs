//! The gateway's RFC 9728 protected resource metadata, served at
//! `/.well-known/oauth-protected-resource` and at the path-suffixed variant for the resource
//! (`/.well-known/oauth-protected-resource/mcp`); both answer the same document, since every
//! MCP route of the gateway is the one resource. The document comes from the snapshot's
//! `access::oauth::ResourceServer`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Gateway;
use crate::access::oauth::METADATA_PATH;

/// The metadata routes (outside the authentication layer: clients read them to learn how to
/// authenticate).
pub fn router(gateway: Arc<Gateway>) -> Router {
    use axum::routing::get;
    Router::new()
        .route(METADATA_PATH, get(metadata))
        .route(&format!("{METADATA_PATH}/{{*resource}}"), get(metadata))
        .with_state(gateway)
}

async fn metadata(State(gateway): State<Arc<Gateway>>) -> Response {
    let snapshot = gateway.snapshot.load();
    let Some(rs) = snapshot.credentials.oauth.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "error": "not_found",
                "error_description": "OAuth is not enabled on this router (MCP_OAUTH_ENABLED or an external identity provider: docs/AUTH.md)"
            })),
        )
            .into_response();
    };
    let mut body = json!({
        "resource": rs.resource,
        "authorization_servers": rs.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "MCP Router",
    });
    if !rs.scopes_supported.is_empty() {
        body["scopes_supported"] = json!(rs.scopes_supported);
    }
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    response
}
