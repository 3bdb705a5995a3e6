//! The MCP Router control plane: the only writer of state. It owns the store, serves the
//! admin REST API and web UI over HTTP, and serves gateways (config snapshots) and agents
//! (assignments, status) over gRPC. `run` is the single start-up path of the binary, of
//! `mcpr up` and of the tests.

pub mod admin_auth;
pub mod analysis;
pub mod api;
pub mod audit;
pub mod cluster;
pub mod data_dir;
pub mod events;
pub mod fleet;
pub mod grpc;
pub mod http_trace;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod ratelimit;
pub mod registry;
pub mod secrets;
pub mod store;
pub mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mcpr_proto as pb;
use mcpr_tls::host_policy::HostPolicy;
use tokio::net::TcpListener;

use crate::admin_auth::AdminAuth;
use crate::fleet::Fleet;
use crate::keys::{AuthMode, KeyRing, RateLimits};
use crate::registry::Registry;
use crate::secrets::MasterKey;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the embedded SQLite database lives (`MCPR_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// `postgres://…` to use Postgres instead of SQLite (`DATABASE_URL`).
    pub database_url: Option<String>,
    pub security: Security,
    /// The token every gRPC call must carry (`MCPR_CLUSTER_TOKEN`; `mcpr up`'s per-process
    /// secret); `None`: loopback or mutual TLS only (`mcpr_tls::cluster`).
    pub cluster_token: Option<mcpr_tls::cluster::ClusterToken>,
}

/// Authentication settings, read once from the environment (`docs/AUTH.md`).
#[derive(Clone, Default)]
pub struct Security {
    /// `ADMIN_PASSCODE`: protects `/api/v1` and the UI; required off loopback.
    pub admin_passcode: Option<String>,
    /// `MCP_API_KEY`: one API key (all scopes) registered at start.
    pub mcp_api_key: Option<String>,
    /// `MCPR_AUTH`: `auto` (default) or `required`.
    pub auth_mode: AuthMode,
    /// `MCPR_MASTER_KEY`: base64 of 32 bytes; default `master.key` in the data dir.
    pub master_key: Option<String>,
    /// `MCPR_RATE_LIMIT_KEY`, `MCPR_RATE_LIMIT_ADDRESS`: `RATE[/BURST]` requests per second.
    pub rate_limits: RateLimits,
    /// `MCPR_COOKIE_SECURE=true`: the UI is served over TLS (by a proxy).
    pub cookie_secure: bool,
    /// `MCP_OAUTH_ENABLED`, `OAUTH_*`: OAuth 2.1 (`oauth/`).
    pub oauth: oauth::OAuthSettings,
    /// `MCPR_RATE_LIMIT_AUTH`: `RATE[/BURST]` per client address on the OAuth registration,
    /// authorization and token endpoints (default 2/s, bursts of 60).
    pub auth_endpoint_limit: (f64, u32),
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "set" } else { "unset" };
        f.debug_struct("Security")
            .field("admin_passcode", &set(&self.admin_passcode))
            .field("mcp_api_key", &set(&self.mcp_api_key))
            .field("auth_mode", &self.auth_mode)
            .field("master_key", &set(&self.master_key))
            .field("rate_limits", &self.rate_limits)
            .field("cookie_secure", &self.cookie_secure)
            .field("oauth", &self.oauth)
            .field("auth_endpoint_limit", &self.auth_endpoint_limit)
            .finish()
    }
}

impl Security {
    /// Reads the settings through `get` (the process environment in the binaries).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Security> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let rate = |name: &str| -> anyhow::Result<(f64, u32)> {
            let Some(text) = non_empty(name) else {
                return Ok((0.0, 0));
            };
            let (rate, burst) = match text.split_once('/') {
                Some((r, b)) => (r.trim(), Some(b.trim())),
                None => (text.trim(), None),
            };
            let rate: f64 = rate
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{name} must be RATE or RATE/BURST (requests per second), got {text:?}"
                    )
                })?;
            let burst = match burst {
                Some(b) => b.parse().map_err(|_| {
                    anyhow::anyhow!("{name}: burst must be a whole number, got {b:?}")
                })?,
                None => (rate * 2.0).ceil().max(1.0) as u32,
            };
            Ok((rate, burst))
        };
        let (per_key_rate, per_key_burst) = rate("MCPR_RATE_LIMIT_KEY")?;
        let (per_address_rate, per_address_burst) = rate("MCPR_RATE_LIMIT_ADDRESS")?;
        Ok(Security {
            admin_passcode: get("ADMIN_PASSCODE").filter(|v| !v.is_empty()),
            mcp_api_key: non_empty("MCP_API_KEY"),
            auth_mode: AuthMode::parse(&get("MCPR_AUTH").unwrap_or_default())
                .map_err(anyhow::Error::msg)?,
            master_key: non_empty("MCPR_MASTER_KEY"),
            rate_limits: RateLimits {
                per_key_rate,
                per_key_burst,
                per_address_rate,
                per_address_burst,
            },
            cookie_secure: non_empty("MCPR_COOKIE_SECURE")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
            oauth: oauth::OAuthSettings::from_env(&get)?,
            auth_endpoint_limit: match non_empty("MCPR_RATE_LIMIT_AUTH") {
                Some(_) => rate("MCPR_RATE_LIMIT_AUTH")?,
                None => (2.0, 60),
            },
        })
    }

    /// Refuses to serve the admin API on a non-loopback address without `ADMIN_PASSCODE`,
    /// and makes MCP authentication required there.
    pub fn check_listen(&mut self, host: &str, what: &str) -> anyhow::Result<()> {
        if is_loopback_host(host) {
            return Ok(());
        }
        if self.admin_passcode.is_none() {
            anyhow::bail!(
                "refusing to serve {what} on {host}, which is not a loopback address, without ADMIN_PASSCODE: \
                 set ADMIN_PASSCODE (and create API keys with `mcpr key create`), or listen on 127.0.0.1"
            );
        }
        self.auth_mode = AuthMode::Required;
        Ok(())
    }
}

pub use mcpr_tls::host_policy::is_loopback_host;

/// A started control plane: its registry and the address of its gRPC services.
pub struct ControlPlane {
    /// Repository analysis and the MCP Registry client (`analysis.rs`).
    pub analyzer: Arc<analysis::Analyzer>,
    pub registry: Arc<Registry>,
    pub keys: Arc<KeyRing>,
    /// The admin's live feed (`GET /api/v1/events`).
    pub events: Arc<events::Events>,
    /// The audit log and the Activity window (`audit/`).
    pub audit: Arc<audit::Audit>,
    pub admin: Arc<AdminAuth>,
    pub oauth: Option<Arc<oauth::OAuth>>,
    /// `MCPR_RATE_LIMIT_AUTH` buckets of the OAuth endpoints.
    pub auth_limiter: Arc<ratelimit::AddressLimiter>,
    pub grpc_addr: SocketAddr,
    /// Set on Postgres: this control plane's membership of the cluster (`cluster/`).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl ControlPlane {
    /// Opens the store and serves the gRPC services on `grpc_listener`, over TLS (mutual
    /// with a CA) when `grpc_tls` serves it.
    pub async fn start(
        config: &Config,
        grpc_listener: TcpListener,
        grpc_tls: Option<&mcpr_tls::Tls>,
    ) -> anyhow::Result<ControlPlane> {
        // Files an earlier version or an operator left readable to others are tightened
        // before anything opens them.
        if config.data_dir.is_dir() {
            data_dir::tighten(&config.data_dir);
        }
        let store = match &config.database_url {
            Some(url) if !url.is_empty() => Store::connect(url)
                .await
                .with_context(|| format!("opening database {}", store::redact_url(url)))?,
            _ => Store::open_sqlite(&config.data_dir)
                .await
                .with_context(|| {
                    format!("opening SQLite database in {}", config.data_dir.display())
                })?,
        };
        tracing::info!(backend = ?store.backend(), "store ready");
        let security = &config.security;
        let master_key = match &security.master_key {
            Some(text) => MasterKey::from_base64(text)?,
            None => MasterKey::load_or_create(&config.data_dir)?,
        };
        let store = store.with_master_key(master_key);
        let sealed = store.seal_plaintext_secrets().await?;
        if sealed > 0 {
            tracing::info!(
                servers = sealed,
                "sealed plaintext secrets with the master key"
            );
        }
        let fleet = Arc::new(Fleet::default());
        fleet.set_session_key(session_key(&config.data_dir)?);
        let keys = Arc::new(
            KeyRing::new(
                store.clone(),
                fleet.clone(),
                security.auth_mode,
                security.rate_limits,
            )
            .await?,
        );
        if let Some(key) = &security.mcp_api_key {
            keys.bootstrap(key).await.context("MCP_API_KEY")?;
        }
        let admin = Arc::new(
            AdminAuth::new(
                security.admin_passcode.as_deref(),
                store.clone(),
                security.cookie_secure,
                keys.clone(),
            )
            .await?,
        );
        let oauth =
            oauth::OAuth::start(&security.oauth, store.clone(), admin.clone(), keys.clone())
                .await
                .context("starting OAuth")?;
        let audit = audit::Audit::start(
            store.clone(),
            audit::AuditSettings::from_env(|name| std::env::var(name).ok())?,
        )
        .await
        .context("starting the audit log")?;
        let cluster_store = (store.backend() == store::Backend::Postgres).then(|| store.clone());
        let registry = Arc::new(Registry::new(store, fleet).await?);
        tracing::info!(
            mcp_keys_required = keys.required(),
            admin_login = admin.enabled(),
            "authentication (docs/AUTH.md)"
        );
        let grpc_addr = grpc_listener.local_addr()?;
        let cluster = match cluster_store {
            Some(store) => Some(
                cluster::Cluster::join(
                    store,
                    registry.clone(),
                    keys.clone(),
                    grpc_addr.to_string(),
                )
                .await
                .context("joining the cluster")?,
            ),
            None => None,
        };
        let services = mcpr_tls::grpc_server(grpc_tls, config.cluster_token.as_ref())?
            .add_service(pb::config_service_server::ConfigServiceServer::new(
                grpc::ConfigService {
                    registry: registry.clone(),
                    keys: keys.clone(),
                    audit: audit.clone(),
                    latest: Default::default(),
                },
            ))
            .add_service(pb::agent_service_server::AgentServiceServer::new(
                grpc::AgentService {
                    registry: registry.clone(),
                },
            ));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc_listener);
        tokio::spawn(async move {
            if let Err(e) = services.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "control plane gRPC server stopped");
            }
        });
        // Forget silent agents so their servers move elsewhere (in a cluster, the leader does).
        let reaper = registry.clone();
        tokio::spawn(async move {
            if reaper.fleet.is_shared() {
                return;
            }
            let mut tick = tokio::time::interval(fleet::HEARTBEAT_INTERVAL);
            loop {
                tick.tick().await;
                for agent in reaper.fleet.expire_agents() {
                    tracing::warn!(%agent, "agent missed its heartbeats; rescheduling its servers");
                }
                grpc::schedule(&reaper);
            }
        });
        let peers = mcpr_tls::cluster::peer_authentication(grpc_tls, config.cluster_token.as_ref());
        tracing::info!(%grpc_addr, peers, "control plane gRPC listening");
        let analyzer = Arc::new(analysis::Analyzer::from_env(registry.clone(), |name| {
            std::env::var(name).ok()
        })?);
        Ok(ControlPlane {
            events: events::Events::start(registry.clone(), keys.clone(), audit.clone()),
            audit,
            analyzer,
            registry,
            keys,
            admin,
            oauth,
            auth_limiter: Arc::new(ratelimit::AddressLimiter::new(
                security.auth_endpoint_limit.0,
                security.auth_endpoint_limit.1,
            )),
            grpc_addr,
            cluster,
        })
    }

    /// The configuration's version now: a gateway serving a snapshot of it has every change
    /// made so far.
    pub fn config_version(&self) -> u64 {
        self.registry.fleet.version()
    }

    /// The HTTP side: REST API (behind the admin check), web UI and OAuth, all behind the
    /// listener's Host and Origin policy.
    pub fn http_router(&self, host_policy: &Arc<HostPolicy>) -> axum::Router {
        let admin_check =
            axum::middleware::from_fn_with_state(self.admin.clone(), admin_auth::require_admin);
        api::router(self.registry.clone())
            .merge(api::keys_router(self.keys.clone()))
            .merge(events::router(self.events.clone()))
            .merge(audit::api::router(self.audit.clone()))
            .merge(analysis::router(self.analyzer.clone()))
            .merge(cluster::status::router(
                self.registry.clone(),
                self.cluster.clone(),
            ))
            .merge(admin_auth::router(self.admin.clone()))
            .merge(oauth::admin::router(self.oauth.clone()))
            .route_layer(admin_check)
            .merge(ui::router())
            .merge(
                self.oauth
                    .as_ref()
                    .map(|o| o.router(self.auth_limiter.clone()))
                    .unwrap_or_default(),
            )
            .route_layer(axum::middleware::from_fn(http_trace::http_span))
            // Outside the admin check, so that refused changes are recorded too.
            .layer(axum::middleware::from_fn_with_state(
                audit::admin::AdminAudit {
                    audit: self.audit.clone(),
                    admin: self.admin.clone(),
                },
                audit::admin::record_admin_changes,
            ))
            .layer(host_policy.layer(api::host_refusal))
    }
}

/// The key that seals client session ids: `MCPR_SESSION_KEY` (at least 32 characters; give
/// every control plane of a cluster the same), else `session.key` in the data dir, made on
/// first start (0600).
fn session_key(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(key) = std::env::var("MCPR_SESSION_KEY") {
        anyhow::ensure!(
            key.len() >= 32,
            "MCPR_SESSION_KEY must be at least 32 characters"
        );
        return Ok(key.into_bytes());
    }
    let path = data_dir.join("session.key");
    if let Ok(key) = std::fs::read(&path) {
        anyhow::ensure!(
            key.len() >= 32,
            "{} is shorter than 32 bytes",
            path.display()
        );
        return Ok(key);
    }
    data_dir::create(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let key = secrets::random_bytes::<32>().to_vec();
    secrets::write_private(&path, &key).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A settings source of `pairs` (tests never touch the process environment).
    pub(crate) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn security_settings_from_the_environment() {
        let s = Security::from_env(env(&[
            ("ADMIN_PASSCODE", "pw"),
            ("MCPR_RATE_LIMIT_KEY", "5"),
            ("MCPR_RATE_LIMIT_ADDRESS", "2.5/7"),
            ("MCPR_AUTH", "required"),
        ]))
        .unwrap();
        assert_eq!(s.admin_passcode.as_deref(), Some("pw"));
        assert_eq!(s.auth_mode, AuthMode::Required);
        assert_eq!(
            (s.rate_limits.per_key_rate, s.rate_limits.per_key_burst),
            (5.0, 10)
        );
        assert_eq!(
            (
                s.rate_limits.per_address_rate,
                s.rate_limits.per_address_burst
            ),
            (2.5, 7)
        );
        assert!(!format!("{s:?}").contains("pw\""), "{s:?}");
        assert!(Security::from_env(env(&[("MCPR_AUTH", "maybe")])).is_err());
        assert!(Security::from_env(env(&[("MCPR_RATE_LIMIT_KEY", "fast")])).is_err());
    }

    #[test]
    fn non_loopback_needs_a_passcode() {
        let mut open = Security::default();
        assert!(open.check_listen("127.0.0.1", "x").is_ok());
        assert!(open.check_listen("0.0.0.0", "x").is_err());
        let mut guarded = Security {
            admin_passcode: Some("long enough passcode".into()),
            ..Default::default()
        };
        guarded.check_listen("0.0.0.0:8080", "x").unwrap();
        assert_eq!(guarded.auth_mode, AuthMode::Required);
    }
}
