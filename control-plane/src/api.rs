//! The admin REST API under `/api/v1` (documented in `docs/API.md`). Every error leaves here
//! through [`ApiError`], the one mapping from registry errors to HTTP status and JSON body.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::keys::{KeyError, KeyRing, NewKey};
use crate::registry::{NewServer, Registry, RegistryError, ServerPatch, ToolPatch};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/servers", get(list).post(create))
        .route(
            "/api/v1/servers/{name}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/servers/{name}/enable", post(enable))
        .route("/api/v1/servers/{name}/disable", post(disable))
        .route("/api/v1/servers/{name}/restart", post(restart))
        .route("/api/v1/servers/{name}/status", get(status))
        .route("/api/v1/servers/{name}/tools", get(tools))
        .route(
            "/api/v1/servers/{name}/tools/{tool}",
            axum::routing::patch(update_tool),
        )
        .route(
            "/api/v1/servers/{name}/tools/{tool}/enable",
            post(enable_tool),
        )
        .route(
            "/api/v1/servers/{name}/tools/{tool}/disable",
            post(disable_tool),
        )
        .route("/api/v1/servers/{name}/logs", get(logs))
        .route("/api/v1/import", post(import))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(registry)
}

type Reg = State<Arc<Registry>>;

/// `/api/v1/keys`: API keys for MCP clients (`keys.rs`).
pub fn keys_router(keys: Arc<KeyRing>) -> Router {
    Router::new()
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route("/api/v1/keys/{key}", axum::routing::delete(revoke_key))
        .route("/api/v1/keys/{key}/revoke", post(revoke_key))
        .route("/api/v1/keys/{key}/remove", post(remove_key))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(keys)
}

async fn list_keys(State(keys): State<Arc<KeyRing>>) -> Response {
    Json(keys.list()).into_response()
}

async fn create_key(
    State(keys): State<Arc<KeyRing>>,
    ApiJson(new): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(keys.create(new).await?)).into_response())
}

/// Revocation keeps the key listed (as `revoked`); gateways refuse it within a snapshot push.
async fn revoke_key(
    State(keys): State<Arc<KeyRing>>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(keys.revoke(&key).await?).into_response())
}

#[derive(Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

/// Removal deletes the key (`DELETE` keeps meaning revoke: scripts rely on it); an active
/// key only with `?force=true`.
async fn remove_key(
    State(keys): State<Arc<KeyRing>>,
    Path(key): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(keys.remove(&key, q.force).await?).into_response())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn list(State(reg): Reg) -> Response {
    Json(reg.list()).into_response()
}

async fn create(State(reg): Reg, ApiJson(new): ApiJson<NewServer>) -> Result<Response, ApiError> {
    let view = reg.create(new).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn show(State(reg): Reg, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(reg.get(&name)?).into_response())
}

async fn update(
    State(reg): Reg,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<ServerPatch>,
) -> Result<Response, ApiError> {
    Ok(Json(reg.update(&name, patch).await?).into_response())
}

async fn remove(State(reg): Reg, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    reg.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable(State(reg): Reg, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(reg.set_enabled(&name, true).await?).into_response())
}

async fn disable(State(reg): Reg, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(reg.set_enabled(&name, false).await?).into_response())
}

async fn restart(State(reg): Reg, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(reg.restart(&name).await?)).into_response())
}

async fn status(State(reg): Reg, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(reg.get(&name)?.status).into_response())
}

async fn tools(State(reg): Reg, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(reg.tools(&name)?).into_response())
}

/// A disabled tool leaves every view's lists and is refused on call, within a snapshot push.
async fn disable_tool(
    State(reg): Reg,
    Path((name, tool)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(reg.set_tool_enabled(&name, &tool, false).await?).into_response())
}

async fn enable_tool(
    State(reg): Reg,
    Path((name, tool)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(reg.set_tool_enabled(&name, &tool, true).await?).into_response())
}

async fn update_tool(
    State(reg): Reg,
    Path((name, tool)): Path<(String, String)>,
    ApiJson(patch): ApiJson<ToolPatch>,
) -> Result<Response, ApiError> {
    Ok(Json(reg.update_tool(&name, &tool, patch).await?).into_response())
}

#[derive(Deserialize)]
struct LogQuery {
    tail: Option<usize>,
}

async fn logs(
    State(reg): Reg,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let record = reg.record(&name)?;
    Ok(Json(reg.fleet.logs(&record.id, q.tail.unwrap_or(200))).into_response())
}

async fn import(
    State(reg): Reg,
    ApiJson(doc): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    Ok(Json(reg.import(doc).await?).into_response())
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        format!(
            "no such API route: {} {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// `Json` whose rejections speak our error format.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        None,
                        format!("request body is over {MAX_BODY_BYTES} bytes"),
                    )
                }
                JsonRejection::JsonDataError(e) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    None,
                    format!("invalid request body: {}", e.body_text()),
                ),
                other => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    None,
                    other.body_text(),
                ),
            }),
        }
    }
}

/// A request the listener's Host and Origin policy refuses (`mcpr_tls::host_policy`).
pub fn host_refusal(refusal: &mcpr_tls::host_policy::Refusal) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        refusal.code(),
        None,
        refusal.to_string(),
    )
    .into_response()
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    field: Option<String>,
    message: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        field: Option<String>,
        message: String,
    ) -> Self {
        ApiError {
            status,
            code,
            field,
            message,
        }
    }

    /// 404 `not_found`: what was asked for does not exist (`message` names it).
    pub fn not_found(message: String) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", None, message)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::Invalid(f) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                Some(f.field),
                message,
            ),
            RegistryError::NotFound(_) => ApiError::not_found(message),
            RegistryError::UnknownTool { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                Some("tool".into()),
                message,
            ),
            RegistryError::Duplicate(_) => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate",
                Some("name".into()),
                message,
            ),
            RegistryError::Store(_) => {
                tracing::error!(error = %message, "store failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", None, message)
            }
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        let message = e.to_string();
        match e {
            KeyError::Invalid(f) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                Some(f.field),
                message,
            ),
            KeyError::NotFound(_) => ApiError::not_found(message),
            KeyError::Ambiguous(_) => {
                ApiError::new(StatusCode::CONFLICT, "ambiguous", None, message)
            }
            KeyError::Active(_) => ApiError::new(StatusCode::CONFLICT, "key_active", None, message),
            KeyError::Store(_) => {
                tracing::error!(error = %message, "store failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", None, message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error =
            json!({"status": self.status.as_u16(), "code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
