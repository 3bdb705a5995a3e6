//! The API of "add a server from a repository or the MCP Registry" (issue 16; `docs/API.md`):
//! `POST /api/v1/analyze` proposes, `GET /api/v1/registry/servers[/{name}]` searches and
//! reads the registry, `POST /api/v1/servers/{name}/reanalyze` analyzes a saved server's
//! source again and, with `"apply": true`, updates it. Proposals are never saved here: the
//! client reviews one, fills its variables and creates the server with `POST
//! /api/v1/servers` (with `source`), like any other.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mcpr_analyze::registry::{Registry as McpRegistry, RegistryError as McpRegistryError};
use mcpr_analyze::{Proposal, RuntimePreference};
use mcpr_core::model::{RuntimeSpec, ServerSource, SourceKind};
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiError, ApiJson, MAX_BODY_BYTES};

use crate::registry::{Registry, ServerPatch, now_rfc3339};

/// What the analysis routes use, read once at start.
pub struct Analyzer {
    pub settings: mcpr_analyze::Settings,
    /// `Err`: `MCPR_REGISTRY_URL`/`MCPR_REGISTRY_DIR` is wrong; the routes say so.
    pub mcp_registry: Result<McpRegistry, String>,
    pub servers: Arc<Registry>,
}

impl Analyzer {
    /// `GITHUB_TOKEN`, `MCPR_GITHUB_API_URL`, `ANTHROPIC_*`, `MCPR_REGISTRY_URL`,
    /// `MCPR_REGISTRY_DIR` through `get`; a bad `MCPR_GITHUB_API_URL` stops the start.
    pub fn from_env(
        servers: Arc<Registry>,
        get: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Analyzer> {
        let mcp_registry = McpRegistry::from_env(&get).map_err(|e| e.to_string());
        if let Err(e) = &mcp_registry {
            tracing::warn!(error = %e, "MCP Registry client not configured");
        }
        Ok(Analyzer {
            settings: mcpr_analyze::Settings::from_env(&get).map_err(anyhow::Error::msg)?,
            mcp_registry,
            servers,
        })
    }

    fn mcp_registry(&self) -> Result<&McpRegistry, ApiError> {
        self.mcp_registry.as_ref().map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "registry_unconfigured",
                None,
                e.clone(),
            )
        })
    }
}

pub fn router(analyzer: Arc<Analyzer>) -> Router {
    Router::new()
        .route("/api/v1/analyze", post(analyze))
        .route("/api/v1/registry/servers", get(search))
        .route("/api/v1/registry/servers/{*name}", get(entry))
        .route("/api/v1/servers/{name}/reanalyze", post(reanalyze))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(analyzer)
}

type St = State<Arc<Analyzer>>;

fn fetch_error(e: mcpr_analyze::fetch::FetchError) -> ApiError {
    use mcpr_analyze::fetch::FetchError;
    use mcpr_core::git::GitError;
    let message = e.to_string();
    match e {
        FetchError::BadUrl(_) | FetchError::Git(GitError::BadUrl(_)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("url".into()),
            message,
        ),
        FetchError::Timeout { .. }
        | FetchError::TooLarge { .. }
        | FetchError::Git(GitError::Timeout { .. } | GitError::TooLarge { .. }) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "fetch_limit",
            Some("url".into()),
            message,
        ),
        FetchError::RateLimited { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "github_rate_limited",
            Some("url".into()),
            message,
        ),
        FetchError::Git(GitError::Git { .. })
        | FetchError::Github { .. }
        | FetchError::Io { .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "fetch_failed",
            Some("url".into()),
            message,
        ),
    }
}

fn registry_error(e: McpRegistryError) -> ApiError {
    let message = e.to_string();
    match e {
        McpRegistryError::NotFound(_) => ApiError::not_found(message),
        McpRegistryError::Config(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry_unconfigured",
            None,
            message,
        ),
        McpRegistryError::Unreachable(_) | McpRegistryError::Bad(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "registry_failed", None, message)
        }
    }
}

/// The `source` a client saves with a proposal from this analysis.
fn repository_source(analysis: &mcpr_analyze::Analysis, proposal: &Proposal) -> ServerSource {
    let origin = &analysis.origin;
    ServerSource {
        kind: SourceKind::Repository,
        url: origin.url.clone(),
        reference: origin.reference.clone(),
        commit: origin.commit.clone(),
        path: (!origin.path.is_empty()).then(|| origin.path.clone()),
        entry: Some(proposal.file.clone()),
        version: None,
        analyzed_at: Some(now_rfc3339()),
    }
}

async fn analyze(
    State(a): St,
    ApiJson(request): ApiJson<mcpr_analyze::Request>,
) -> Result<Response, ApiError> {
    let analysis = mcpr_analyze::analyze_repository(&request, &a.settings)
        .await
        .map_err(fetch_error)?;
    let sources: Vec<ServerSource> = analysis
        .proposals
        .iter()
        .map(|p| repository_source(&analysis, p))
        .collect();
    let mut body = serde_json::to_value(&analysis).expect("an analysis serializes");
    if let Some(list) = body["proposals"].as_array_mut() {
        for (p, source) in list.iter_mut().zip(sources) {
            p["source"] = json!(source);
        }
    }
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    search: String,
    limit: Option<usize>,
}

async fn search(State(a): St, Query(q): Query<SearchQuery>) -> Result<Response, ApiError> {
    let registry = a.mcp_registry()?;
    let servers = registry
        .search(&q.search, q.limit.unwrap_or(30))
        .await
        .map_err(registry_error)?;
    Ok(Json(json!({"registry": registry.describe(), "servers": servers})).into_response())
}

#[derive(Deserialize)]
struct EntryQuery {
    version: Option<String>,
    #[serde(default)]
    prefer: RuntimePreference,
}

/// `NAME` or `NAME@VERSION` (`?version=` wins).
fn split_version(name: &str, version: Option<String>) -> (String, Option<String>) {
    match (version, name.rsplit_once('@')) {
        (Some(v), _) => (name.to_owned(), Some(v)),
        (None, Some((n, v))) if !n.is_empty() => (n.to_owned(), Some(v.to_owned())),
        (None, _) => (name.to_owned(), None),
    }
}

async fn registry_proposal(
    a: &Analyzer,
    name: &str,
    version: Option<&str>,
    prefer: RuntimePreference,
) -> Result<(mcpr_analyze::registry::Entry, Proposal, ServerSource), ApiError> {
    let registry = a.mcp_registry()?;
    let entry = registry.get(name, version).await.map_err(registry_error)?;
    let doc = entry.doc().map_err(registry_error)?;
    let proposal =
        mcpr_analyze::server_json::proposal(&doc, name, mcpr_analyze::Evidence::Registry, prefer)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_runnable", None, e))?;
    let source = ServerSource {
        kind: SourceKind::Registry,
        url: registry.describe(),
        reference: None,
        commit: None,
        path: None,
        entry: Some(doc.name.clone()),
        version: doc.version.clone(),
        analyzed_at: Some(now_rfc3339()),
    };
    Ok((entry, proposal, source))
}

async fn entry(
    State(a): St,
    Path(name): Path<String>,
    Query(q): Query<EntryQuery>,
) -> Result<Response, ApiError> {
    let (name, version) = split_version(name.trim_start_matches('/'), q.version);
    let (entry, proposal, source) =
        registry_proposal(&a, &name, version.as_deref(), q.prefer).await?;
    let mut proposal = serde_json::to_value(proposal).expect("a proposal serializes");
    proposal["source"] = json!(source);
    Ok(Json(json!({"entry": entry, "proposal": proposal})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reanalyze {
    #[serde(default)]
    apply: bool,
    #[serde(default)]
    prefer: RuntimePreference,
    /// Values for variables the new proposal needs and the saved server has not.
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// The secrets map of a runtime (`env`, or a remote's `headers`).
fn values(runtime: &RuntimeSpec) -> &BTreeMap<String, String> {
    match runtime {
        RuntimeSpec::Process { env, .. } | RuntimeSpec::Docker { env, .. } => env,
        RuntimeSpec::Remote { headers, .. } => headers,
    }
}

fn values_mut(runtime: &mut RuntimeSpec) -> &mut BTreeMap<String, String> {
    match runtime {
        RuntimeSpec::Process { env, .. } | RuntimeSpec::Docker { env, .. } => env,
        RuntimeSpec::Remote { headers, .. } => headers,
    }
}

async fn reanalyze(
    State(a): St,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: none means "show what a new analysis proposes".
    let request: Reanalyze = if body.iter().all(u8::is_ascii_whitespace) {
        Reanalyze::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                None,
                format!("invalid request body: {e}"),
            )
        })?
    };
    let record = a.servers.record(&name)?;
    let Some(source) = record.source.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_source",
            Some("source".into()),
            format!(
                "server {name:?} was not added from a repository or the registry: nothing to analyze again"
            ),
        ));
    };
    let (proposal, new_source) = match source.kind {
        SourceKind::Registry => {
            let entry_name = source.entry.clone().unwrap_or_default();
            let (_, proposal, new_source) =
                registry_proposal(&a, &entry_name, None, request.prefer).await?;
            (proposal, new_source)
        }
        SourceKind::Repository => {
            let analysis = mcpr_analyze::analyze_repository(
                &mcpr_analyze::Request {
                    url: source.url.clone(),
                    reference: source.reference.clone(),
                    path: source.path.clone(),
                    prefer: request.prefer,
                    fetch: Default::default(),
                    claude: false,
                },
                &a.settings,
            )
            .await
            .map_err(fetch_error)?;
            let proposal = analysis
                .proposals
                .iter()
                .find(|p| Some(&p.file) == source.entry.as_ref())
                .or_else(|| analysis.proposals.first())
                .cloned()
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "not_runnable",
                        None,
                        analysis.message.clone().unwrap_or_default(),
                    )
                })?;
            let new_source = repository_source(&analysis, &proposal);
            (proposal, new_source)
        }
    };
    // The saved values (secrets included) carry over to the variables of the same name.
    let mut runtime = proposal.runtime.clone();
    let stored = values(&record.runtime).clone();
    let wanted: Vec<String> = proposal.variables.iter().map(|v| v.name.clone()).collect();
    for (key, value) in stored.iter().chain(request.env.iter()) {
        if wanted.contains(key)
            || values(&runtime).contains_key(key)
            || request.env.contains_key(key)
        {
            values_mut(&mut runtime).insert(key.clone(), value.clone());
        }
    }
    let missing: Vec<String> = proposal
        .missing_required()
        .iter()
        .filter(|v| !values(&runtime).contains_key(&v.name))
        .map(|v| v.name.clone())
        .collect();
    let changed = runtime != record.runtime;
    let mut shown = proposal.clone();
    shown.runtime = runtime.redacted();
    let mut body = json!({
        "server": name,
        "changed": changed,
        "missing": missing,
        "proposal": shown,
        "source": new_source,
        "applied": false,
    });
    if request.apply {
        if !missing.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                Some(format!("env.{}", missing[0])),
                format!(
                    "the new proposal needs values for {}: give them in \"env\"",
                    missing.join(", ")
                ),
            ));
        }
        let view = a
            .servers
            .update(
                &name,
                ServerPatch {
                    runtime: Some(runtime),
                    source: Some(new_source),
                    ..Default::default()
                },
            )
            .await?;
        body["applied"] = json!(true);
        body["updated"] = json!(view);
    }
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_names() {
        assert_eq!(
            split_version("io.github.o/time@1.2.0", None),
            ("io.github.o/time".into(), Some("1.2.0".into()))
        );
        assert_eq!(
            split_version("io.github.o/time", Some("2".into()))
                .1
                .as_deref(),
            Some("2")
        );
        assert_eq!(split_version("io.github.o/time", None).1, None);
    }
}
