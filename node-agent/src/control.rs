//! The agent's link to the control planes: register, heartbeat, follow assignments, report
//! status and logs. It follows one control plane of `--control-plane URL1,URL2,…` and moves
//! to the next when that one goes away (connect error, stream end, a heartbeat unanswered,
//! HTTP/2 pings unanswered), with backoff once none answers (`mcpr_tls::control_planes`).
//!
//! Placement you can trust, on the agent's side:
//! - **Fencing by epoch.** Assignments carry the leader epoch and the config version they
//!   were read at; the agent ignores any older than the newest it has followed, from
//!   whichever control plane, so a lagging control plane cannot bring back a server the
//!   leader moved away.
//! - **A lease on its servers.** Each answered heartbeat (and registration) renews it until
//!   the moment the control plane may declare the agent dead (`RegisterResponse.lease_ms`,
//!   counted from when the heartbeat was *sent*, so never later than the control plane's own
//!   count), less a margin for stopping. While it runs, the agent keeps its servers answering
//!   the gateways that still reach it; when it runs out the agent stops them, because the
//!   leader is about to start them elsewhere. One exception: while every control plane
//!   refuses connections (none runs), nobody can move the servers, so they keep running,
//!   and for one lease more once a control plane starts answering otherwise (a new leader
//!   expires no agent for two leases, so the agent registers with it first).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mcpr_core::placement::Labels;
use mcpr_proto as pb;
use mcpr_tls::cluster::{ClusterToken, GrpcChannel};
use mcpr_tls::control_planes::{ControlPlanes, Failover, is_connection_refused};
use pb::agent_service_client::AgentServiceClient;
use tokio::sync::watch;

use crate::assignment::Assignment;
use crate::supervisor::Agent;

/// The lease when a control plane does not say (one older than `lease_ms`): its agent
/// timeout then was 5 s.
const DEFAULT_LEASE: Duration = Duration::from_secs(5);
/// Longest wait for a heartbeat's answer before the control plane counts as gone.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the agent knows across its links to every control plane.
struct Link {
    agent: Arc<Agent>,
    control_planes: ControlPlanes,
    channels: Vec<GrpcChannel>,
    /// Placement labels, sent with every registration.
    labels: Labels,
    /// The control plane registered with now (an index of `channels`), for the reporter.
    current: watch::Sender<Option<usize>>,
    /// (epoch, version) of the newest assignments followed.
    newest: Mutex<(u64, u64)>,
    lease: Mutex<Lease>,
    /// Wakes the lease keeper when the lease was renewed or taken.
    renewed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Lease {
    /// Until when the agent may run its servers without hearing from a control plane;
    /// `None` before the first registration.
    until: Option<Instant>,
    /// How long a renewal lasts (the control plane's agent timeout).
    length: Duration,
    /// Per control plane: whether the last attempt since the lease was renewed ended with a
    /// refused connection.
    refused: Vec<bool>,
    /// The lease ran out while every control plane refused connections, and the servers
    /// were kept.
    holding: bool,
    /// Once some control plane answers otherwise than refusing (one starting again), the
    /// hold lasts one lease more: a new leader expires no agent for twice that long
    /// (`control-plane/src/cluster/mod.rs`), so this agent registers first.
    hold_until: Option<Instant>,
}

/// `token`: the cluster token every call carries (`mcpr_tls::cluster`).
pub async fn run(
    agent: Arc<Agent>,
    control_planes: ControlPlanes,
    relay_url: String,
    labels: Labels,
    token: Option<ClusterToken>,
) {
    let mut channels = Vec::new();
    for index in 0..control_planes.len() {
        match control_planes.channel(index, token.as_ref()) {
            Ok(channel) => channels.push(channel),
            Err(e) => {
                let url = &control_planes.urls()[index];
                tracing::error!(url = %url, error = %e, "invalid control plane URL");
                return;
            }
        }
    }
    let link = Arc::new(Link {
        agent,
        lease: Mutex::new(Lease {
            refused: vec![false; channels.len()],
            ..Default::default()
        }),
        control_planes,
        channels,
        labels,
        current: watch::channel(None).0,
        newest: Mutex::new((0, 0)),
        renewed: Default::default(),
    });
    tokio::spawn(report_loop(link.clone()));
    tokio::spawn(keep_lease(link.clone()));
    let mut failover = Failover::new(&link.control_planes);
    loop {
        let index = failover.current();
        let url = &link.control_planes.urls()[index];
        let mut registered = false;
        let outcome = session(&link, index, &relay_url, &mut registered).await;
        link.current.send_replace(None);
        let refused = match &outcome {
            Ok(()) => {
                tracing::warn!(url = %url, "control plane link ended; servers keep running");
                false
            }
            Err(status) => {
                tracing::warn!(url = %url, error = %status, "control plane link down; servers keep running");
                std::error::Error::source(status).is_some_and(is_connection_refused)
            }
        };
        link.lease.lock().unwrap().refused[index] = refused;
        let pause = failover.next(registered);
        if link.control_planes.len() > 1 {
            let next = &link.control_planes.urls()[failover.current()];
            tracing::info!(from = %url, to = %next, "moving to another control plane");
        }
        tokio::time::sleep(pause).await;
    }
}

impl Link {
    /// A registration or heartbeat sent at `sent` was answered.
    fn renew(&self, sent: Instant, lease: Duration) {
        let mut held = self.lease.lock().unwrap();
        // The margin leaves the servers time to stop before the control plane's count ends.
        let until = sent + lease - lease / 10;
        held.until = Some(held.until.map_or(until, |u| u.max(until)));
        held.length = lease;
        held.refused.iter_mut().for_each(|r| *r = false);
        held.holding = false;
        held.hold_until = None;
        drop(held);
        self.agent.set_lapsed(false);
        self.renewed.notify_one();
    }

    /// Assignments from a control plane: applied unless older than the newest followed.
    fn follow(&self, assignments: pb::Assignments) {
        let stamp = (assignments.epoch, assignments.version);
        // Epoch 0: one control plane and no leases (SQLite), whose versions restart with it.
        if stamp.0 > 0 {
            let mut newest = self.newest.lock().unwrap();
            if stamp < *newest {
                tracing::info!(
                    epoch = stamp.0,
                    version = stamp.1,
                    newest_epoch = newest.0,
                    newest_version = newest.1,
                    "ignoring assignments older than ones already followed"
                );
                return;
            }
            *newest = stamp;
        }
        let valid: Vec<Assignment> = assignments
            .servers
            .into_iter()
            .filter_map(|a| {
                Assignment::try_from(a)
                    .map_err(|e| tracing::error!(error = %e, "ignoring invalid assignment"))
                    .ok()
            })
            .collect();
        self.agent.reconcile(valid);
    }
}

/// One registration with the control plane at `index`: lives until the stream breaks, a
/// heartbeat goes unanswered, or the control plane forgets us. `registered` is set once it
/// answered the registration.
async fn session(
    link: &Arc<Link>,
    index: usize,
    relay_url: &str,
    registered: &mut bool,
) -> Result<(), tonic::Status> {
    let agent = &link.agent;
    let mut client = AgentServiceClient::new(link.channels[index].clone());
    let sent = Instant::now();
    let (newest_epoch, newest_version) = *link.newest.lock().unwrap();
    let answer = client
        .register(pb::RegisterRequest {
            agent_id: agent.id.clone(),
            relay_url: relay_url.to_owned(),
            runtimes: vec!["process".into(), "remote".into(), "docker".into()],
            version: env!("CARGO_PKG_VERSION").into(),
            labels: link.labels.clone().into_iter().collect(),
            newest_epoch,
            newest_version,
        })
        .await?
        .into_inner();
    *registered = true;
    let lease = match answer.lease_ms {
        0 => DEFAULT_LEASE,
        ms => Duration::from_millis(ms),
    };
    link.renew(sent, lease);
    let url = &link.control_planes.urls()[index];
    tracing::info!(agent = %agent.id, control_plane = %url, "registered with the control plane");
    link.current.send_replace(Some(index));
    agent.changed.notify_one();
    let interval = Duration::from_millis(answer.heartbeat_interval_ms.clamp(100, 10_000));
    let mut heartbeat_client = client.clone();
    let agent_id = agent.id.clone();
    let heartbeat = async move {
        loop {
            tokio::time::sleep(interval).await;
            let sent = Instant::now();
            let request = pb::HeartbeatRequest {
                agent_id: agent_id.clone(),
            };
            let answer =
                tokio::time::timeout(HEARTBEAT_TIMEOUT, heartbeat_client.heartbeat(request)).await;
            match answer {
                Ok(Ok(r)) if r.get_ref().known => link.renew(sent, lease),
                Ok(Ok(_)) => {
                    // In a cluster the leader forgot us: our servers may be starting
                    // elsewhere already. Stop them now; the new registration brings back
                    // whatever is still ours.
                    if link.newest.lock().unwrap().0 > 0 {
                        tracing::warn!(agent = %agent_id, "the cluster forgot this agent; stopping its servers until it registers again");
                        link.agent.reconcile(Vec::new());
                    }
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(tonic::Status::unavailable(format!(
                        "no heartbeat answer within {} s",
                        HEARTBEAT_TIMEOUT.as_secs()
                    )));
                }
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
            link.follow(assignments?);
        }
        Ok(())
    };
    tokio::select! {
        r = heartbeat => r,
        r = follow => r,
    }
}

/// Stops the servers when the lease runs out, unless every control plane refuses
/// connections (then none can have moved them; see [`Lease::hold_until`]).
async fn keep_lease(link: Arc<Link>) {
    let mut announced_hold = false;
    loop {
        let now = Instant::now();
        let (until, keep) = {
            let mut lease = link.lease.lock().unwrap();
            let all_refused = lease.refused.iter().all(|r| *r);
            let keep = match lease.until {
                Some(until) if now >= until => {
                    if all_refused {
                        lease.holding = true;
                        true
                    } else if lease.holding {
                        let length = lease.length;
                        let hold_until =
                            *lease.hold_until.get_or_insert(now + length - length / 10);
                        now < hold_until
                    } else {
                        false
                    }
                }
                _ => true,
            };
            (lease.until, keep)
        };
        let Some(until) = until else {
            link.renewed.notified().await;
            continue;
        };
        if now < until {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = link.renewed.notified() => {}
            }
            announced_hold = false;
            continue;
        }
        let running = link.agent.server_count();
        if keep {
            if !announced_hold && running > 0 {
                tracing::warn!(
                    servers = running,
                    "lease ran out, but every control plane refuses connections (none runs, none can move servers): keeping them"
                );
                announced_hold = true;
            }
        } else if running > 0 {
            tracing::warn!(
                servers = running,
                "lease ran out: no control plane answered in time, the leader may start these servers elsewhere; stopping them"
            );
            link.agent.set_lapsed(true);
            link.agent.reconcile(Vec::new());
        }
        // Checked again when the lease is renewed, or shortly (a control plane's refusal
        // may turn into a timeout).
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = link.renewed.notified() => {}
        }
    }
}

/// Sends the status of every server (and new log lines) whenever something changed, to the
/// control plane registered with.
async fn report_loop(link: Arc<Link>) {
    let agent = &link.agent;
    let mut current = link.current.subscribe();
    loop {
        agent.changed.notified().await;
        // Let a burst of changes (a server starting, its first log lines) go out as one.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(index) = *current.borrow_and_update() else {
            // Not registered: the registration wakes us again.
            continue;
        };
        let mut client = AgentServiceClient::new(link.channels[index].clone());
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
