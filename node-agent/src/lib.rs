//! The MCP Router node agent: runs the MCP servers assigned to it (`process` and `remote`
//! runtimes), keeps their upstream sessions, supervises them, and serves the relay stream
//! that gateways use to reach them. `start` is the one start-up path for the binary,
//! `mcpr up` and the tests.

pub mod assignment;
pub mod control;
pub mod logs;
pub mod metrics;
pub mod relay;
pub mod runtime;
pub mod supervisor;
pub mod upstream;

use std::sync::Arc;

use mcpr_proto as pb;
use tokio::net::TcpListener;

pub use supervisor::{Agent, Settings};

#[derive(Debug, Clone)]
pub struct Config {
    pub agent_id: String,
    /// Placement labels reported at registration (`--label`, core/src/placement.rs).
    pub labels: mcpr_core::placement::Labels,
    /// The control planes' gRPC URLs, e.g. `http://127.0.0.1:50051` (`--control-plane
    /// URL1,URL2,…`): the agent follows one and moves to the next when it goes away.
    pub control_planes: mcpr_tls::control_planes::ControlPlanes,
    /// The relay URL gateways should dial; derived from the listener when `None`.
    pub advertise_url: Option<String>,
    pub settings: Settings,
    /// Serves the relay over TLS (mutual with a CA) when set and serving.
    pub tls: Option<Arc<mcpr_tls::Tls>>,
    /// The token this agent sends to the control plane and requires of every gateway on
    /// its relay (`MCPR_CLUSTER_TOKEN`; `mcpr up`'s per-process secret).
    pub cluster_token: Option<mcpr_tls::cluster::ClusterToken>,
}

/// Serves the relay on `relay_listener` and connects to the control plane.
pub async fn start(config: Config, relay_listener: TcpListener) -> anyhow::Result<Arc<Agent>> {
    let addr = relay_listener.local_addr()?;
    let relay_url = config.advertise_url.clone().unwrap_or_else(|| {
        match config.tls.as_ref().is_some_and(|t| t.serves()) {
            true => format!("https://{addr}"),
            false => format!("http://{addr}"),
        }
    });
    let mut settings = config.settings.clone();
    if settings.docker.owner.is_empty() {
        settings.docker.owner = docker_owner(&config.agent_id, &config.control_planes.joined());
    }
    let agent = Agent::new(config.agent_id.clone(), settings);
    // Containers a crashed run of this agent left behind go before anything new starts.
    let reaped =
        tokio::time::timeout(std::time::Duration::from_secs(30), agent.docker.reap()).await;
    if let Ok(count @ 1..) = reaped {
        tracing::info!(count, "reaped containers of a previous run of this agent");
    }
    // And so do the checkouts of image builds it was running.
    let checkouts = runtime::repo_build::reap_checkouts(&agent.docker.settings.owner);
    if checkouts > 0 {
        tracing::info!(
            count = checkouts,
            "removed image build checkouts of a previous run of this agent"
        );
    }
    let service = pb::relay_service_server::RelayServiceServer::new(relay::RelayService {
        agent: agent.clone(),
    });
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(relay_listener);
    let token = config.cluster_token.as_ref();
    let server = mcpr_tls::grpc_server(config.tls.as_deref(), token)?;
    let peers = mcpr_tls::cluster::peer_authentication(config.tls.as_deref(), token);
    tokio::spawn(async move {
        let server = server
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(4 * 1024 * 1024))
            .initial_connection_window_size(Some(16 * 1024 * 1024))
            .add_service(service)
            .serve_with_incoming(incoming);
        if let Err(e) = server.await {
            tracing::error!(error = %e, "relay server stopped");
        }
    });
    tracing::info!(agent = %config.agent_id, relay = %relay_url, peers, "node agent relay listening");
    tokio::spawn(control::run(
        agent.clone(),
        config.control_planes,
        relay_url,
        config.labels,
        config.cluster_token,
    ));
    Ok(agent)
}

/// The owner label of this agent's containers: stable across restarts of the same agent
/// (same id, same control plane), distinct from every other agent on the host.
pub fn docker_owner(agent_id: &str, scope: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{agent_id}@{scope}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{agent_id}-{hex}")
}

impl Agent {
    /// Stops every server and removes every container of this agent (agent shutdown),
    /// waiting up to 20 s for Docker.
    pub async fn shutdown(&self) {
        self.stop_all();
        let cleanup = async {
            self.sandbox.close().await;
            self.docker.reap().await;
            // A container whose creation was in flight when the servers stopped.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            self.docker.reap().await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), cleanup).await;
    }
}
