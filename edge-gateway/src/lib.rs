//! The MCP Router edge gateway: the MCP front door. It serves MCP clients over streamable
//! HTTP and stdio, presents the tool views, and relays calls to the node agent that runs
//! each provider. Configuration arrives as snapshots from the control plane; the request
//! path never calls the control plane.

pub mod http;
pub mod relay;
pub mod search;
pub mod snapshot;
pub mod stdio;
pub mod views;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;

#[derive(Debug, Clone)]
pub struct Config {
    pub gateway_id: String,
    /// The control plane's gRPC URL.
    pub control_plane_url: String,
    /// Path of the hierarchical view (`MCP_PATH`, default `/mcp`).
    pub mcp_path: String,
    /// Longest wait for an upstream answer before the client gets a timeout error.
    pub request_timeout: Duration,
    /// Browser origins allowed besides loopback and the request's own host
    /// (`MCPR_ALLOWED_ORIGINS`, comma-separated; `*` allows any).
    pub allowed_origins: Vec<String>,
    /// Client sessions idle this long are forgotten (`MCPR_SESSION_IDLE_SECS`).
    pub session_idle: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gateway_id: "gateway".into(),
            control_plane_url: "http://127.0.0.1:50051".into(),
            mcp_path: "/mcp".into(),
            request_timeout: Duration::from_secs(130),
            allowed_origins: Vec::new(),
            session_idle: Duration::from_secs(24 * 3600),
        }
    }
}

pub struct Gateway {
    pub config: Config,
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) relays: relay::RelayPool,
    pub(crate) sessions: http::Sessions,
    snapshot_ready: Arc<tokio::sync::Notify>,
}

impl Gateway {
    /// Starts following the control plane; serve with [`Gateway::router`] or [`stdio::serve`].
    pub fn start(config: Config) -> Arc<Gateway> {
        Gateway::start_with_local_agent(config, None)
    }

    /// Like [`Gateway::start`], with an agent in the same process that is called directly
    /// instead of through its relay URL (`mcpr up`): (its relay URL, the agent).
    pub fn start_with_local_agent(
        config: Config,
        local: Option<(String, Arc<dyn mcpr_core::relay::LocalAgent>)>,
    ) -> Arc<Gateway> {
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let ready = Arc::new(tokio::sync::Notify::new());
        let gateway = Arc::new(Gateway {
            relays: relay::RelayPool::new(config.request_timeout, local),
            sessions: Default::default(),
            snapshot: snapshot.clone(),
            snapshot_ready: ready.clone(),
            config: config.clone(),
        });
        tokio::spawn(watch::follow(
            config.control_plane_url,
            config.gateway_id,
            snapshot,
            ready,
        ));
        gateway
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        http::router(self.clone())
    }

    /// The version of the snapshot being served (0 before the first one arrives).
    pub fn snapshot_version(&self) -> u64 {
        self.snapshot.load().version
    }

    /// Waits up to `timeout` for the first snapshot; true when one has arrived.
    pub async fn wait_for_snapshot(&self, timeout: Duration) -> bool {
        let notified = self.snapshot_ready.notified();
        if self.snapshot_version() > 0 {
            return true;
        }
        tokio::time::timeout(timeout, notified).await.is_ok() || self.snapshot_version() > 0
    }
}
