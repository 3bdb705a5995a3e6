//! The control plane's gRPC services: configuration snapshots for gateways (`ConfigService`)
//! and registration, assignments and status for agents (`AgentService`).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use mcpr_proto as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::fleet::HEARTBEAT_INTERVAL;
use crate::keys::KeyRing;
use crate::registry::Registry;

type GrpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs the scheduler over the enabled servers; returns server id -> agent id.
pub fn schedule(registry: &Registry) -> std::collections::HashMap<String, String> {
    let enabled: Vec<String> = registry
        .servers()
        .iter()
        .filter(|s| s.enabled)
        .map(|s| s.id.clone())
        .collect();
    registry.fleet.place(&enabled)
}

/// The whole configuration a gateway needs, as of now.
pub fn build_snapshot(registry: &Registry, keys: &KeyRing) -> pb::ConfigSnapshot {
    let version = registry.fleet.version();
    let placement = schedule(registry);
    let providers = registry
        .servers()
        .iter()
        .map(|s| {
            let status = registry.fleet.status(&s.id);
            pb::ProviderConfig {
                id: s.id.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                enabled: s.enabled,
                session_mode: s.session_mode.to_proto() as i32,
                agent_id: placement.get(&s.id).cloned().unwrap_or_default(),
                status: Some(pb::ServerStatus {
                    server_id: s.id.clone(),
                    state: status.state.to_proto() as i32,
                    last_error: status.last_error,
                    restart_count: status.restart_count,
                    tools_json: status.tools_json,
                    server_info_json: status.server_info_json,
                    updated_at_ms: status.updated_at_ms,
                    restart_generation: status.restart_generation,
                    progress: status.progress,
                }),
            }
        })
        .collect();
    let agents = registry
        .fleet
        .agents()
        .into_iter()
        .map(|(id, a)| pb::AgentEndpoint {
            id,
            relay_url: a.relay_url,
        })
        .collect();
    let (credentials, auth) = keys.snapshot_part();
    pb::ConfigSnapshot {
        version,
        providers,
        agents,
        credentials,
        auth: Some(auth),
        session_key: registry.fleet.session_key(),
    }
}

fn assignments_for(registry: &Registry, agent_id: &str) -> pb::Assignments {
    let placement = schedule(registry);
    let servers = registry
        .servers()
        .iter()
        .filter(|s| s.enabled && placement.get(&s.id).is_some_and(|a| a == agent_id))
        .map(|s| pb::Assignment {
            id: s.id.clone(),
            name: s.name.clone(),
            enabled: s.enabled,
            session_mode: s.session_mode.to_proto() as i32,
            spec: Some((&s.runtime).into()),
            restart_generation: s.restart_generation,
        })
        .collect();
    pb::Assignments {
        version: registry.fleet.version(),
        servers,
        epoch: registry.fleet.epoch(),
    }
}

/// Streams `make()` now and after every fleet change, skipping repeats, until the peer leaves.
fn watch_stream<T, F>(registry: Arc<Registry>, make: F) -> GrpcStream<T>
where
    T: PartialEq + Clone + Send + 'static,
    F: Fn(&Registry) -> Option<T> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    let mut changes = registry.fleet.subscribe();
    tokio::spawn(async move {
        let mut last: Option<T> = None;
        loop {
            changes.borrow_and_update();
            let Some(current) = make(&registry) else {
                let _ = tx
                    .send(Err(Status::not_found(
                        "agent not registered: call Register first",
                    )))
                    .await;
                return;
            };
            if last.as_ref() != Some(&current) {
                if tx.send(Ok(current.clone())).await.is_err() {
                    return;
                }
                last = Some(current);
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// A gateway's watch, as `mcpr cluster status` shows it: forgotten when the stream ends.
struct GatewayWatch {
    fleet: Arc<crate::fleet::Fleet>,
    gateway_id: String,
}

impl Drop for GatewayWatch {
    fn drop(&mut self) {
        self.fleet.gateway_left(&self.gateway_id);
    }
}

pub struct ConfigService {
    pub registry: Arc<Registry>,
    pub keys: Arc<KeyRing>,
}

#[tonic::async_trait]
impl pb::config_service_server::ConfigService for ConfigService {
    type WatchStream = GrpcStream<pb::ConfigSnapshot>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let gateway_id = request.get_ref().gateway_id.clone();
        tracing::info!(gateway = %gateway_id, "gateway watching config");
        // Versions move on every status report; compare snapshots without the version so
        // that a gateway only hears of real changes.
        let keys = self.keys.clone();
        let stream = watch_stream(self.registry.clone(), move |reg| {
            let mut snapshot = build_snapshot(reg, &keys);
            snapshot.version = 0;
            Some(snapshot)
        });
        let registry = self.registry.clone();
        let seen = GatewayWatch {
            fleet: registry.fleet.clone(),
            gateway_id,
        };
        let stream = futures::StreamExt::map(stream, move |item| {
            item.map(|mut s| {
                s.version = registry.fleet.version();
                seen.fleet.gateway_sent(&seen.gateway_id, s.version);
                s
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_usage(
        &self,
        request: Request<pb::UsageReport>,
    ) -> Result<Response<pb::UsageAck>, Status> {
        let report = request.into_inner();
        self.keys
            .record_usage(&report.usage)
            .await
            .map_err(|e| Status::internal(format!("recording key usage: {e}")))?;
        Ok(Response::new(pb::UsageAck {}))
    }
}

pub struct AgentService {
    pub registry: Arc<Registry>,
}

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentService {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = request.into_inner();
        if r.agent_id.is_empty() {
            return Err(Status::invalid_argument("agent_id must not be empty"));
        }
        if !(r.relay_url.starts_with("http://") || r.relay_url.starts_with("https://")) {
            return Err(Status::invalid_argument(format!(
                "relay_url must be an http(s) URL, got {:?}",
                r.relay_url
            )));
        }
        tracing::info!(agent = %r.agent_id, relay = %r.relay_url, "agent registered");
        self.registry
            .fleet
            .register_agent(&r.agent_id, &r.relay_url);
        Ok(Response::new(pb::RegisterResponse {
            heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let known = self.registry.fleet.heartbeat(&request.get_ref().agent_id);
        Ok(Response::new(pb::HeartbeatResponse { known }))
    }

    type WatchAssignmentsStream = GrpcStream<pb::Assignments>;

    async fn watch_assignments(
        &self,
        request: Request<pb::AssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let agent_id = request.into_inner().agent_id;
        let stream = watch_stream(self.registry.clone(), move |reg| {
            if !reg.fleet.agents().iter().any(|(id, _)| *id == agent_id) {
                return None;
            }
            let mut a = assignments_for(reg, &agent_id);
            a.version = 0;
            Some(a)
        });
        Ok(Response::new(stream))
    }

    async fn report_status(
        &self,
        request: Request<pb::StatusReport>,
    ) -> Result<Response<pb::StatusAck>, Status> {
        let report = request.into_inner();
        let agent_id = report.agent_id.clone();
        if !self.registry.fleet.heartbeat(&agent_id) {
            return Err(Status::not_found(
                "agent not registered: call Register first",
            ));
        }
        self.registry.fleet.report(&agent_id, report);
        Ok(Response::new(pb::StatusAck {}))
    }
}
