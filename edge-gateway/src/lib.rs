//! The MCP Router edge gateway: the MCP front door. It serves MCP clients over streamable
//! HTTP and stdio, presents the tool views, and relays calls to the node agent that runs
//! each provider. Configuration arrives as snapshots from the control plane; the request
//! path never calls the control plane.

pub mod access;
pub mod audit;
pub mod observe;
pub mod relay;
pub mod sessions;
pub mod snapshot;
pub mod transport;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use mcpr_tls::host_policy::HostPolicy;

use crate::snapshot::Snapshot;

#[derive(Debug, Clone)]
pub struct Config {
    pub gateway_id: String,
    /// The control planes' gRPC URLs (`--control-plane URL1,URL2,…`): the gateway follows
    /// one and moves to the next when it goes away.
    pub control_planes: mcpr_tls::control_planes::ControlPlanes,
    /// Path of the hierarchical view (`MCP_PATH`, default `/mcp`).
    pub mcp_path: String,
    /// Longest wait for an upstream answer before the client gets a timeout error.
    pub request_timeout: Duration,
    /// The Hosts and browser Origins the listener accepts (`MCPR_ALLOWED_HOSTS`,
    /// `MCPR_ALLOWED_ORIGINS`), on every route.
    pub host_policy: Arc<HostPolicy>,
    /// Batch, response and session limits (`mcpr_core::settings`; `session_idle` also
    /// from `--session-idle-secs`).
    pub limits: mcpr_core::settings::Limits,
    /// Require an API key even when the control plane does not (yet): set when listening
    /// on a non-loopback address, so that a fresh cluster is never open to the network.
    pub require_auth: bool,
    /// The token its gRPC calls (config watch, usage reports, relays) carry
    /// (`MCPR_CLUSTER_TOKEN`; `mcpr up`'s per-process secret).
    pub cluster_token: Option<mcpr_tls::cluster::ClusterToken>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gateway_id: "gateway".into(),
            control_planes: mcpr_tls::control_planes::ControlPlanes::parse(
                "http://127.0.0.1:50051",
                "the default control plane",
            )
            .expect("a valid URL"),
            mcp_path: "/mcp".into(),
            request_timeout: Duration::from_secs(130),
            host_policy: Default::default(),
            limits: *mcpr_core::settings::Limits::current(),
            require_auth: false,
            cluster_token: None,
        }
    }
}

pub struct Gateway {
    pub config: Config,
    pub(crate) snapshot: Arc<ArcSwap<Snapshot>>,
    pub(crate) relays: relay::RelayPool,
    /// Rate limit buckets and unreported API key use (`access/mod.rs`).
    pub(crate) auth: access::AuthState,
    pub(crate) sessions: Arc<sessions::Sessions>,
    pub(crate) delivery: Arc<relay::delivery::Delivery>,
    /// Modern clients' calls waiting for their input responses (`transport/modern_bridge.rs`).
    pub(crate) bridges: transport::modern_bridge::Bridges,
    /// Listen streams the gateway serves for upstreams that do not
    /// (`transport/modern_listen.rs`).
    pub(crate) listeners: transport::modern_listen::Listeners,
    /// The in-process agent's events, for as long as the gateway lives.
    local_events: std::sync::OnceLock<mcpr_core::relay::Subscription>,
    /// Counts snapshot swaps (`snapshot/watch.rs`): what waits for a new snapshot subscribes.
    pub(crate) snapshot_swapped: tokio::sync::watch::Sender<u64>,
    /// Where every finished request is recorded: metrics, and the audit sink once set
    /// (`observe/mod.rs`).
    pub observer: observe::Observer,
    /// The audit records waiting to be shipped, for the metrics of what it holds and lost.
    pub(crate) audit: Arc<audit::AuditQueue>,
}

impl Gateway {
    /// Starts following the control plane; serve with [`Gateway::router`] or
    /// [`transport::stdio::serve`].
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
        let (swapped, _) = tokio::sync::watch::channel(0u64);
        // Audit records of every call, shipped to the control plane off the request path.
        let audit = Arc::new(audit::AuditQueue::new(snapshot.clone()));
        let gateway = Arc::new(Gateway {
            relays: relay::RelayPool::new(
                config.request_timeout,
                local.clone(),
                config.cluster_token.clone(),
            ),
            local_events: Default::default(),
            delivery: Default::default(),
            bridges: Default::default(),
            listeners: Default::default(),
            auth: Default::default(),
            sessions: Arc::new(sessions::Sessions::new(&config.limits)),
            snapshot: snapshot.clone(),
            snapshot_swapped: swapped.clone(),
            observer: Default::default(),
            audit: audit.clone(),
            config: config.clone(),
        });
        tokio::spawn(access::report_usage(
            Arc::downgrade(&gateway),
            config.control_planes.clone(),
            config.gateway_id.clone(),
        ));
        let _ = gateway.observer.set_audit(audit.clone());
        tokio::spawn(audit::ship(
            Arc::downgrade(&gateway),
            audit,
            config.control_planes.clone(),
        ));
        tokio::spawn(snapshot::watch::follow(
            config.control_planes,
            config.gateway_id,
            config.cluster_token,
            snapshot,
            swapped,
        ));
        // Clients of every view hear when the lists it shows change.
        tokio::spawn(transport::outbound::announce(
            Arc::downgrade(&gateway),
            gateway.snapshot_swapped.subscribe(),
        ));
        // Upstream servers' own messages, from every agent, to the sessions they concern,
        // delivered synchronously so that they always precede the answer they belong to.
        let weak = Arc::downgrade(&gateway);
        let handler: relay::EventHandler = Arc::new(
            move |relay_url: &str, event: &Arc<mcpr_core::relay::AgentEvent>| {
                if let Some(gateway) = weak.upgrade() {
                    gateway.deliver(relay_url, event);
                }
            },
        );
        gateway.relays.set_event_handler(handler.clone());
        if let Some((relay_url, agent)) = &local {
            let relay_url = relay_url.clone();
            let subscription = agent.subscribe(Arc::new(move |event| handler(&relay_url, event)));
            let _ = gateway.local_events.set(subscription);
        }
        // Idle client sessions expire (a request on one finds it expired by itself too).
        let weak = Arc::downgrade(&gateway);
        let sweep =
            (config.limits.session_idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweep);
            loop {
                tick.tick().await;
                let Some(gateway) = weak.upgrade() else {
                    return;
                };
                let expired = gateway.sessions.expire();
                if expired > 0 {
                    tracing::debug!(expired, "idle client sessions expired");
                }
            }
        });
        gateway
    }

    pub(crate) fn sessions_handle(&self) -> Arc<sessions::Sessions> {
        self.sessions.clone()
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        transport::router(self.clone())
    }

    /// The version of the snapshot being served (0 before the first one arrives).
    pub fn snapshot_version(&self) -> u64 {
        self.snapshot.load().version
    }

    /// Hands this gateway's audit reports to a control plane in the same process (`mcpr
    /// up`) instead of sending them over gRPC.
    pub fn report_audit_locally(&self, local: audit::LocalAudit) {
        self.audit.report_locally(local);
    }

    /// Waits up to `timeout` for the first snapshot; true when one has arrived.
    pub async fn wait_for_snapshot(&self, timeout: Duration) -> bool {
        self.wait_for_version(1, timeout).await
    }

    /// Waits up to `timeout` for a snapshot of at least `version`; true when it is served.
    pub async fn wait_for_version(&self, version: u64, timeout: Duration) -> bool {
        self.wait_for_served(timeout, |snapshot| snapshot.version >= version)
            .await
    }

    /// Waits up to `timeout` for a snapshot that lists agent `agent_id`; true when it is
    /// served. The first snapshot may predate the agent's registration, and until a snapshot
    /// names an agent nothing is relayed to it (servers, the sandbox).
    pub async fn wait_for_agent(&self, agent_id: &str, timeout: Duration) -> bool {
        self.wait_for_served(timeout, |snapshot| snapshot.agents.contains_key(agent_id))
            .await
    }

    async fn wait_for_served(&self, timeout: Duration, served: impl Fn(&Snapshot) -> bool) -> bool {
        let mut swapped = self.snapshot_swapped.subscribe();
        let arrived = swapped.wait_for(|_| served(&self.snapshot.load()));
        tokio::time::timeout(timeout, arrived)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
