//! The control plane's gRPC services: configuration snapshots for gateways (`ConfigService`)
//! and registration, assignments and status for agents (`AgentService`).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use mcpr_proto as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::audit::Audit;
use crate::fleet::{AGENT_TIMEOUT, HEARTBEAT_INTERVAL, Unplaced, Wanted};
use crate::keys::KeyRing;
use crate::registry::Registry;

type GrpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs the scheduler over the enabled servers; returns server id -> agent id.
pub fn schedule(registry: &Registry) -> std::collections::HashMap<String, String> {
    let servers = registry.servers();
    registry.fleet.place(&Wanted::enabled(&servers))
}

/// The whole configuration a gateway needs, as of now.
pub fn build_snapshot(registry: &Registry, keys: &KeyRing) -> pb::ConfigSnapshot {
    let version = registry.fleet.version();
    let placement = schedule(registry);
    let providers = registry
        .servers()
        .iter()
        .map(|s| {
            let mut status = registry.fleet.status(&s.id);
            let agent_id = placement.get(&s.id).cloned().unwrap_or_default();
            if agent_id.is_empty() && s.enabled {
                let docker = matches!(s.runtime, mcpr_core::model::RuntimeSpec::Docker { .. });
                let requirement = s.placement.requirement(docker);
                // Placed nowhere for want of a matching agent: the gateway neither waits for
                // it to start nor hides why its calls fail.
                if let Some(Unplaced::NoMatch(why)) =
                    registry.fleet.unplaced_reason(&s.id, requirement)
                {
                    status.state = mcpr_core::model::ServerState::Stopped;
                    status.last_error = why;
                }
            }
            pb::ProviderConfig {
                id: s.id.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                enabled: s.enabled,
                session_mode: s.session_mode.to_proto() as i32,
                agent_id,
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
                tool_overrides: registry
                    .tool_overrides_of(&s.id)
                    .into_iter()
                    .map(|o| pb::ToolOverride {
                        tool: o.tool,
                        disabled: o.disabled,
                        name: o.name,
                        description: o.description,
                    })
                    .collect(),
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
        // Set by the watch from the audit settings (`audit/`).
        audit: None,
        built_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        shared_version: registry.fleet.is_shared(),
    }
}

fn assignments_for(registry: &Registry, agent_id: &str) -> pb::Assignments {
    let (placement, epoch, version) = match registry.fleet.placement_stamped() {
        Some(stamped) => stamped,
        None => (schedule(registry), 0, registry.fleet.version()),
    };
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
        version,
        servers,
        epoch,
    }
}

/// Streams `make()` now and after every fleet change, skipping repeats (as `normalize`d
/// for the comparison: versions move on every status report), until the peer leaves.
fn watch_stream<T, F>(registry: Arc<Registry>, make: F, normalize: fn(&mut T)) -> GrpcStream<T>
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
            let mut compared = current.clone();
            normalize(&mut compared);
            if last.as_ref() != Some(&compared) {
                if tx.send(Ok(current)).await.is_err() {
                    return;
                }
                last = Some(compared);
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
    pub audit: Arc<Audit>,
    /// The snapshot of the current version, built once for every gateway watching.
    pub latest: Arc<LatestSnapshot>,
}

/// One snapshot per config version, shared by the gateways' watches: at 1,000 servers a
/// build copies megabytes, and each watch building its own was a fifth of the control
/// plane's work per change (issue 15).
#[derive(Default)]
pub struct LatestSnapshot(std::sync::Mutex<Option<Arc<pb::ConfigSnapshot>>>);

impl LatestSnapshot {
    /// The snapshot of the version now, built by the first watch to ask for it. Its
    /// `version` is the one read before it was built: a gateway serving version V has every
    /// change up to V.
    fn current(&self, registry: &Registry, keys: &KeyRing, audit: &pb::AuditPolicy) -> Shared {
        let mut latest = self.0.lock().unwrap();
        let version = registry.fleet.version();
        if let Some(snapshot) = latest.as_ref().filter(|s| s.version == version) {
            return Shared(snapshot.clone());
        }
        let mut snapshot = build_snapshot(registry, keys);
        snapshot.audit = Some(audit.clone());
        let snapshot = Arc::new(snapshot);
        *latest = Some(snapshot.clone());
        Shared(snapshot)
    }
}

/// A shared snapshot, the same as another when it is the same build (the same version).
#[derive(Clone)]
struct Shared(Arc<pb::ConfigSnapshot>);

impl PartialEq for Shared {
    fn eq(&self, other: &Shared) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[tonic::async_trait]
impl pb::config_service_server::ConfigService for ConfigService {
    type WatchStream = GrpcStream<pb::ConfigSnapshot>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let gateway_id = request.get_ref().gateway_id.clone();
        let known = request.get_ref().known_version;
        tracing::info!(gateway = %gateway_id, known_version = known, "gateway watching config");
        self.registry.fleet.heard_version(known);
        // Each version once (a status report moves it too, and the gateway's
        // `mcpr_gateway_config_version` follows the control plane's).
        let (keys, latest) = (self.keys.clone(), self.latest.clone());
        let audit = self.audit.policy();
        let stream = watch_stream(
            self.registry.clone(),
            move |reg| Some(latest.current(reg, &keys, &audit)),
            |_| {},
        );
        let seen = GatewayWatch {
            fleet: self.registry.fleet.clone(),
            gateway_id,
        };
        let stream = futures::StreamExt::map(stream, move |item| {
            item.map(|Shared(s)| {
                seen.fleet.gateway_sent(&seen.gateway_id, s.version);
                Arc::unwrap_or_clone(s)
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

    /// Queued for the audit writer: answered at once, so a slow store never holds a
    /// gateway's shipper (what does not fit is dropped and counted, `audit/`).
    async fn report_audit(
        &self,
        request: Request<pb::AuditReport>,
    ) -> Result<Response<pb::AuditAck>, Status> {
        self.audit.ingest(request.into_inner());
        Ok(Response::new(pb::AuditAck {}))
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
        let labels: mcpr_core::placement::Labels = r.labels.into_iter().collect();
        mcpr_core::placement::validate_labels(&labels, "labels")
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(agent = %r.agent_id, relay = %r.relay_url, ?labels, "agent registered");
        self.registry.fleet.heard_version(r.newest_version);
        self.registry.fleet.heard_epoch(r.newest_epoch);
        self.registry
            .fleet
            .register_agent(&r.agent_id, &r.relay_url, labels);
        Ok(Response::new(pb::RegisterResponse {
            heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u64,
            lease_ms: AGENT_TIMEOUT.as_millis() as u64,
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
        let stream = watch_stream(
            self.registry.clone(),
            move |reg| {
                if !reg.fleet.agents().iter().any(|(id, _)| *id == agent_id) {
                    return None;
                }
                // Sent with its version and epoch, which the agent fences on (`control.rs`).
                Some(assignments_for(reg, &agent_id))
            },
            |a| a.version = 0,
        );
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
