//! `GET /api/v1/cluster` (and `mcpr cluster status`): the control planes and which leads
//! (holder and epoch of the placement lease), the agents with their servers and how long
//! since their last heartbeat, the gateways with the config version they last received and
//! how far behind the cluster's they are. On Postgres it is read from the shared tables, so
//! every control plane answers the same; the SQLite all-in-one reports itself as the one
//! control plane, always leading.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;

use super::Cluster;
use super::store::MemberTable;
use crate::api::ApiError;
use crate::registry::Registry;

#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    /// `cluster` (several control planes on Postgres) or `single` (SQLite, one process).
    pub mode: &'static str,
    /// The control plane that answered.
    pub this_control_plane: String,
    pub config_version: u64,
    /// The placement lease (`cluster` mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<super::store::Lease>,
    pub control_planes: Vec<ControlPlaneStatus>,
    pub agents: Vec<AgentStatus>,
    pub gateways: Vec<GatewayStatus>,
    /// Enabled servers running nowhere (no agent matches their selector, …).
    pub unplaced: Vec<UnplacedServer>,
}

#[derive(Debug, Serialize)]
pub struct ControlPlaneStatus {
    pub id: String,
    pub grpc_addr: String,
    pub leader: bool,
    /// The lease epoch it holds (leader only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    pub silent_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct AgentStatus {
    pub id: String,
    pub relay_url: String,
    /// Milliseconds since its last heartbeat.
    pub silent_ms: i64,
    /// Its placement labels (`--label`).
    pub labels: mcpr_core::placement::Labels,
    /// Names of the servers placed on it.
    pub servers: Vec<String>,
}

/// An enabled server placed on no agent, and why.
#[derive(Debug, Serialize)]
pub struct UnplacedServer {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct GatewayStatus {
    pub id: String,
    /// The control plane whose config watch it follows.
    pub control_plane: String,
    /// The snapshot version it was last sent.
    pub version: u64,
    /// How many config versions it is behind the cluster's.
    pub lag: u64,
    pub silent_ms: i64,
}

#[derive(Clone)]
struct StatusState {
    registry: Arc<Registry>,
    cluster: Option<Arc<Cluster>>,
}

pub fn router(registry: Arc<Registry>, cluster: Option<Arc<Cluster>>) -> Router {
    Router::new()
        .route("/api/v1/cluster", get(show))
        .with_state(StatusState { registry, cluster })
}

async fn show(State(state): State<StatusState>) -> Result<Json<ClusterStatus>, ApiError> {
    let status = match &state.cluster {
        Some(cluster) => cluster_status(cluster, &state.registry).await,
        None => Ok(single_status(&state.registry)),
    };
    status.map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_store_unavailable",
            None,
            format!("reading the cluster's state from Postgres: {e}"),
        )
    })
}

fn unplaced(registry: &Registry) -> Vec<UnplacedServer> {
    let mut unplaced: Vec<UnplacedServer> = registry
        .list()
        .into_iter()
        .filter_map(|view| {
            let reason = view.unplaced?;
            Some(UnplacedServer {
                name: view.name,
                reason,
            })
        })
        .collect();
    unplaced.sort_by(|a, b| a.name.cmp(&b.name));
    unplaced
}

fn servers_by_agent(registry: &Registry) -> HashMap<String, Vec<String>> {
    let names: HashMap<String, String> = registry
        .servers()
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    let mut by_agent: HashMap<String, Vec<String>> = HashMap::new();
    for (server, agent) in registry.fleet.placement() {
        let name = names.get(&server).cloned().unwrap_or(server);
        by_agent.entry(agent).or_default().push(name);
    }
    for servers in by_agent.values_mut() {
        servers.sort();
    }
    by_agent
}

async fn cluster_status(
    cluster: &Cluster,
    registry: &Registry,
) -> Result<ClusterStatus, crate::store::StoreError> {
    let store = cluster.store();
    let lease = store.lease().await?;
    let config_version = store.config_version().await?;
    let mut by_agent = servers_by_agent(registry);
    let leading = lease.expires_in_ms > 0;
    let control_planes = store
        .cluster_members(MemberTable::ControlPlanes)
        .await?
        .into_iter()
        .map(|m| {
            let leader = leading && m.id == lease.holder;
            ControlPlaneStatus {
                leader,
                epoch: leader.then_some(lease.epoch),
                id: m.id,
                grpc_addr: m.address,
                silent_ms: m.silent_ms,
            }
        })
        .collect();
    let labels: HashMap<String, mcpr_core::placement::Labels> = registry
        .fleet
        .agents()
        .into_iter()
        .map(|(id, a)| (id, a.labels))
        .collect();
    let agents = store
        .cluster_members(MemberTable::Agents)
        .await?
        .into_iter()
        .map(|m| AgentStatus {
            servers: by_agent.remove(&m.id).unwrap_or_default(),
            labels: labels.get(&m.id).cloned().unwrap_or_default(),
            id: m.id,
            relay_url: m.address,
            silent_ms: m.silent_ms,
        })
        .collect();
    let gateways = store
        .cluster_members(MemberTable::Gateways)
        .await?
        .into_iter()
        .map(|m| GatewayStatus {
            lag: config_version.saturating_sub(m.version),
            id: m.id,
            control_plane: m.address,
            version: m.version,
            silent_ms: m.silent_ms,
        })
        .collect();
    Ok(ClusterStatus {
        mode: "cluster",
        this_control_plane: cluster.id.clone(),
        config_version,
        lease: Some(lease),
        control_planes,
        agents,
        gateways,
        unplaced: unplaced(registry),
    })
}

fn single_status(registry: &Registry) -> ClusterStatus {
    let fleet = &registry.fleet;
    let config_version = fleet.version();
    let mut by_agent = servers_by_agent(registry);
    let agents = fleet
        .agents()
        .into_iter()
        .map(|(id, a)| AgentStatus {
            servers: by_agent.remove(&id).unwrap_or_default(),
            labels: a.labels,
            relay_url: a.relay_url,
            silent_ms: a.last_seen.elapsed().as_millis() as i64,
            id,
        })
        .collect();
    let gateways = fleet
        .gateways()
        .into_iter()
        .map(|(id, g)| GatewayStatus {
            id,
            control_plane: "local".into(),
            version: g.version,
            lag: config_version.saturating_sub(g.version),
            silent_ms: g.last_seen.elapsed().as_millis() as i64,
        })
        .collect();
    ClusterStatus {
        mode: "single",
        this_control_plane: "local".into(),
        config_version,
        lease: None,
        control_planes: vec![ControlPlaneStatus {
            id: "local".into(),
            grpc_addr: String::new(),
            leader: true,
            epoch: None,
            silent_ms: 0,
        }],
        agents,
        gateways,
        unplaced: unplaced(registry),
    }
}
