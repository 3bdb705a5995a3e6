//! The agent's link to the control plane: register, heartbeat, follow assignments, report
//! status and logs. When the control plane is away the agent keeps running what it has and
//! reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mcpr_proto as pb;
use mcpr_tls::cluster::{ClusterToken, GrpcChannel};
use pb::agent_service_client::AgentServiceClient;

use crate::assignment::Assignment;
use crate::supervisor::Agent;

/// `token`: the cluster token every call carries (`mcpr_tls::cluster`).
pub async fn run(
    agent: Arc<Agent>,
    control_plane: String,
    relay_url: String,
    token: Option<ClusterToken>,
) {
    let endpoint = match mcpr_tls::grpc_endpoint(&control_plane) {
        Ok(e) => e.connect_timeout(Duration::from_secs(5)).tcp_nodelay(true),
        Err(e) => {
            tracing::error!(url = %control_plane, error = %e, "invalid control plane URL");
            return;
        }
    };
    let channel = mcpr_tls::cluster::with_token(endpoint.connect_lazy(), token.as_ref());
    tokio::spawn(report_loop(
        agent.clone(),
        AgentServiceClient::new(channel.clone()),
    ));
    let mut retry = Duration::from_millis(200);
    loop {
        match session(&agent, AgentServiceClient::new(channel.clone()), &relay_url).await {
            Ok(()) => retry = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(url = %control_plane, error = %e, "control plane link down; servers keep running")
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(Duration::from_secs(5));
    }
}

/// One registration: lives until the stream breaks or the control plane forgets us.
async fn session(
    agent: &Arc<Agent>,
    mut client: AgentServiceClient<GrpcChannel>,
    relay_url: &str,
) -> Result<(), tonic::Status> {
    let registered = client
        .register(pb::RegisterRequest {
            agent_id: agent.id.clone(),
            relay_url: relay_url.to_owned(),
            runtimes: vec!["process".into(), "remote".into(), "docker".into()],
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .await?
        .into_inner();
    tracing::info!(agent = %agent.id, "registered with the control plane");
    agent.changed.notify_one();
    let interval = Duration::from_millis(registered.heartbeat_interval_ms.clamp(100, 10_000));
    let mut heartbeat_client = client.clone();
    let agent_id = agent.id.clone();
    let heartbeat = async move {
        loop {
            tokio::time::sleep(interval).await;
            match heartbeat_client
                .heartbeat(pb::HeartbeatRequest {
                    agent_id: agent_id.clone(),
                })
                .await
            {
                Ok(r) if !r.get_ref().known => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    };
    let mut stream = client
        .watch_assignments(pb::AssignmentsRequest {
            agent_id: agent.id.clone(),
        })
        .await?
        .into_inner();
    let follow = async {
        while let Some(assignments) = stream.next().await {
            let assignments = assignments?;
            let valid: Vec<Assignment> = assignments
                .servers
                .into_iter()
                .filter_map(|a| {
                    Assignment::try_from(a)
                        .map_err(|e| tracing::error!(error = %e, "ignoring invalid assignment"))
                        .ok()
                })
                .collect();
            agent.reconcile(valid);
        }
        Ok(())
    };
    tokio::select! {
        r = heartbeat => r,
        r = follow => r,
    }
}

/// Sends the status of every server (and new log lines) whenever something changed.
async fn report_loop(agent: Arc<Agent>, mut client: AgentServiceClient<GrpcChannel>) {
    loop {
        agent.changed.notified().await;
        // Let a burst of changes (a server starting, its first log lines) go out as one.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let report = agent.status_report();
        let logs = report.logs.clone();
        if let Err(e) = client.report_status(report).await {
            tracing::debug!(error = %e, "status report failed; will resend");
            agent.requeue_logs(logs);
            tokio::time::sleep(Duration::from_millis(500)).await;
            agent.changed.notify_one();
        }
    }
}
