//! What the control plane knows that is not stored: the live agents, which agent runs which
//! server (the scheduler's decisions), what the agents report (status, tools, logs), and the
//! configuration version that gateways and agents watch.
//!
//! Invariant: the lock is never held across an `.await`; every change that a gateway or agent
//! must see bumps the version through [`Fleet::changed`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcpr_core::model::{RuntimeSpec, ServerState};
use mcpr_core::placement::{Labels, Requirement};
use mcpr_proto as pb;
use serde::Serialize;
use tokio::sync::watch;

/// Log lines kept per server.
const LOG_LINES_KEPT: usize = 2000;

/// How long an agent may stay silent before its servers are scheduled elsewhere.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(5);
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub relay_url: String,
    pub last_seen: Instant,
    /// Placement labels it registered with (`--label`).
    pub labels: Labels,
    /// Ids of the servers its last status report listed, in any state but stopped: a
    /// server moved off it is placed elsewhere only once this no longer names it.
    pub running: BTreeSet<String>,
}

/// What a control plane writes of one agent at the next cluster sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentNote {
    pub relay_url: String,
    /// Set by a registration.
    pub labels: Option<Labels>,
    /// Set by a status report that changed the agent's running servers.
    pub running: Option<BTreeSet<String>>,
}

impl AgentNote {
    /// Fills what this newer note does not say from an older one.
    fn or_older(&mut self, older: AgentNote) {
        if self.labels.is_none() {
            self.labels = older.labels;
        }
        if self.running.is_none() {
            self.running = older.running;
        }
    }
}

/// An agent as the cluster's shared tables hold it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentRecord {
    pub relay_url: String,
    pub labels: Labels,
    pub running: BTreeSet<String>,
}

/// The latest status an agent reported for one server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerStatusView {
    pub state: ServerState,
    pub agent_id: String,
    pub last_error: String,
    pub restart_count: u32,
    pub tool_count: usize,
    pub updated_at_ms: i64,
    /// What is happening while it starts (an image build's current step), or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub progress: String,
    #[serde(skip)]
    pub tools_json: String,
    #[serde(skip)]
    pub server_info_json: String,
    /// Which restart request the running instance answers (see `POST …/restart`).
    pub restart_generation: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub at_ms: i64,
    pub stream: String,
    pub line: String,
}

#[derive(Default)]
struct Inner {
    agents: HashMap<String, AgentInfo>,
    /// server id -> agent id
    placement: HashMap<String, String>,
    /// The leader epoch the placement was read at (0: this process places).
    epoch: u64,
    /// Shared mode: the cluster's config version the placement was read at.
    installed_version: u64,
    status: HashMap<String, ServerStatusView>,
    logs: HashMap<String, VecDeque<LogEntry>>,
    /// Gateway id -> the snapshot version last sent to it.
    gateways: HashMap<String, GatewaySeen>,
    /// Shared mode: what this control plane heard and has not yet written to the cluster.
    outbox: Outbox,
}

/// A gateway as the control plane that serves its watch sees it.
#[derive(Debug, Clone)]
pub struct GatewaySeen {
    pub version: u64,
    pub last_seen: Instant,
}

/// What agents told this control plane since the last cluster sync (`cluster/`).
#[derive(Debug, Default)]
pub struct Outbox {
    /// Agent id -> what it said: registrations, heartbeats, running servers.
    pub agents: HashMap<String, AgentNote>,
    pub status: HashMap<String, ServerStatusView>,
    /// A change a gateway or agent must see: the cluster's version is bumped.
    pub changed: bool,
}

/// The cluster's view, read from the shared store, installed by the sync loop.
#[derive(Debug, Default)]
pub struct SharedState {
    pub version: u64,
    pub agents: HashMap<String, AgentRecord>,
    pub placement: HashMap<String, String>,
    /// The placement lease's epoch when this was read: never lower than that of the leader
    /// that wrote the placement, and never going down (agents fence on it).
    pub epoch: u64,
    pub status: HashMap<String, ServerStatusView>,
}

pub struct Fleet {
    inner: Mutex<Inner>,
    version: watch::Sender<u64>,
    /// Seals client session ids on every gateway (see `edge-gateway/src/sessions.rs`).
    session_key: std::sync::OnceLock<Vec<u8>>,
    /// Every log line reported, as (server id, line), for the admin's live feed (`events.rs`).
    log_lines: tokio::sync::broadcast::Sender<(String, LogEntry)>,
    /// Set when control planes share a Postgres: agents, placement and status come from the
    /// store (`cluster/`), changes go to the outbox, and only the leader places.
    shared: std::sync::atomic::AtomicBool,
    /// Wakes the cluster sync loop when something is in the outbox.
    outbox_ready: tokio::sync::Notify,
    /// The highest snapshot version a gateway said it holds when it came to watch, or an
    /// agent followed when it registered.
    highest_heard: std::sync::atomic::AtomicU64,
    /// The highest leader epoch an agent followed, as it said when it registered.
    highest_heard_epoch: std::sync::atomic::AtomicU64,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet {
            inner: Mutex::default(),
            version: watch::channel(1).0,
            session_key: Default::default(),
            log_lines: tokio::sync::broadcast::channel(1024).0,
            shared: Default::default(),
            outbox_ready: Default::default(),
            highest_heard: Default::default(),
            highest_heard_epoch: Default::default(),
        }
    }
}

impl Fleet {
    /// Announces a change to every watcher (gateways' snapshots, agents' assignments). In
    /// shared mode the cluster's version is bumped by the sync loop, which then installs it.
    pub fn changed(&self) {
        if self.is_shared() {
            self.inner.lock().unwrap().outbox.changed = true;
            self.outbox_ready.notify_one();
            return;
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Switches to shared mode (several control planes, `cluster/`).
    pub fn set_shared(&self) {
        self.shared
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until the outbox has something (shared mode).
    pub async fn outbox_ready(&self) {
        self.outbox_ready.notified().await
    }

    /// Takes what was heard since the last sync.
    pub fn take_outbox(&self) -> Outbox {
        std::mem::take(&mut self.inner.lock().unwrap().outbox)
    }

    /// Puts back an outbox the store could not take; newer entries win.
    pub fn restore_outbox(&self, old: Outbox) {
        let mut inner = self.inner.lock().unwrap();
        let outbox = &mut inner.outbox;
        for (id, note) in old.agents {
            match outbox.agents.entry(id) {
                std::collections::hash_map::Entry::Occupied(mut newer) => {
                    newer.get_mut().or_older(note)
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(note);
                }
            }
        }
        for (id, status) in old.status {
            outbox.status.entry(id).or_insert(status);
        }
        outbox.changed |= old.changed;
    }

    /// Installs the cluster's state; watchers wake when its version moved.
    pub fn install(&self, shared: SharedState) {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        let previous = std::mem::take(&mut inner.agents);
        inner.agents = shared
            .agents
            .into_iter()
            .map(|(id, agent)| {
                let last_seen = previous.get(&id).map_or(now, |a| a.last_seen);
                (
                    id,
                    AgentInfo {
                        relay_url: agent.relay_url,
                        last_seen,
                        labels: agent.labels,
                        running: agent.running,
                    },
                )
            })
            .collect();
        inner.placement = shared.placement;
        inner.epoch = shared.epoch;
        inner.installed_version = shared.version;
        inner.status = shared.status;
        let servers: Vec<String> = inner.placement.keys().cloned().collect();
        inner.logs.retain(|server, _| servers.contains(server));
        drop(inner);
        self.version.send_if_modified(|v| {
            let moved = *v != shared.version;
            *v = shared.version;
            moved
        });
    }

    /// The leader epoch of the current placement (0 outside a cluster).
    pub fn epoch(&self) -> u64 {
        self.inner.lock().unwrap().epoch
    }

    /// Server id -> agent id, as placed now.
    pub fn placement(&self) -> HashMap<String, String> {
        self.inner.lock().unwrap().placement.clone()
    }

    /// Shared mode: the placement with the leader epoch and config version it was read at,
    /// taken together so that an agent fencing on (epoch, version) never follows a
    /// placement newer or older than its stamp. `None` outside a cluster.
    pub fn placement_stamped(&self) -> Option<(HashMap<String, String>, u64, u64)> {
        if !self.is_shared() {
            return None;
        }
        let inner = self.inner.lock().unwrap();
        Some((
            inner.placement.clone(),
            inner.epoch,
            inner.installed_version,
        ))
    }

    /// Records the snapshot version a gateway was sent.
    pub fn gateway_sent(&self, gateway_id: &str, version: u64) {
        self.inner.lock().unwrap().gateways.insert(
            gateway_id.to_owned(),
            GatewaySeen {
                version,
                last_seen: Instant::now(),
            },
        );
    }

    /// Forgets a gateway whose watch ended.
    pub fn gateway_left(&self, gateway_id: &str) {
        self.inner.lock().unwrap().gateways.remove(gateway_id);
    }

    pub fn gateways(&self) -> Vec<(String, GatewaySeen)> {
        let mut gateways: Vec<_> = self
            .inner
            .lock()
            .unwrap()
            .gateways
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        gateways.sort_by(|a, b| a.0.cmp(&b.0));
        gateways
    }

    pub fn set_session_key(&self, key: Vec<u8>) {
        let _ = self.session_key.set(key);
    }

    pub fn session_key(&self) -> Vec<u8> {
        self.session_key.get().cloned().unwrap_or_default()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Log lines as agents report them (a lagging receiver loses the oldest).
    pub fn subscribe_logs(&self) -> tokio::sync::broadcast::Receiver<(String, LogEntry)> {
        self.log_lines.subscribe()
    }

    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// A gateway came to watch holding snapshot `version` (`WatchRequest.known_version`), or
    /// an agent registered having followed assignments of `version`: perhaps from another
    /// control plane, or from before this one started.
    pub fn heard_version(&self, version: u64) {
        self.highest_heard
            .fetch_max(version, std::sync::atomic::Ordering::Relaxed);
    }

    /// An agent registered having followed assignments of leader epoch `epoch`.
    pub fn heard_epoch(&self, epoch: u64) {
        self.highest_heard_epoch
            .fetch_max(epoch, std::sync::atomic::Ordering::Relaxed);
    }

    /// The highest leader epoch installed here or followed by an agent that registered: a
    /// new lease's epoch must be above it (`cluster::Cluster::lead`).
    pub fn highest_epoch_seen(&self) -> u64 {
        self.epoch().max(
            self.highest_heard_epoch
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The highest version served here or held by a gateway or agent that came: in a
    /// cluster, the shared counter must not be below it (`cluster::Cluster::sync`).
    pub fn highest_seen(&self) -> u64 {
        self.version().max(
            self.highest_heard
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    pub fn register_agent(&self, id: &str, relay_url: &str, labels: Labels) {
        let mut inner = self.inner.lock().unwrap();
        if self.is_shared() {
            let mut note = AgentNote {
                relay_url: relay_url.to_owned(),
                labels: Some(labels.clone()),
                running: None,
            };
            if let Some(older) = inner.outbox.agents.remove(id) {
                note.or_older(older);
            }
            inner.outbox.agents.insert(id.to_owned(), note);
        }
        // What it runs is known again from its next report; until then what it last said.
        let running = inner
            .agents
            .get(id)
            .map(|a| a.running.clone())
            .unwrap_or_default();
        inner.agents.insert(
            id.to_owned(),
            AgentInfo {
                relay_url: relay_url.to_owned(),
                last_seen: Instant::now(),
                labels,
                running,
            },
        );
        drop(inner);
        self.changed();
    }

    /// Records a heartbeat; false when the agent is unknown (it must register again).
    pub fn heartbeat(&self, id: &str) -> bool {
        let mut inner = self.inner.lock().unwrap();
        match inner.agents.get_mut(id) {
            Some(agent) => {
                agent.last_seen = Instant::now();
                let relay_url = agent.relay_url.clone();
                if self.is_shared() {
                    // A pending note (a registration, a report) says more: keep it.
                    inner
                        .outbox
                        .agents
                        .entry(id.to_owned())
                        .or_insert_with(|| AgentNote {
                            relay_url,
                            ..Default::default()
                        });
                }
                true
            }
            None => false,
        }
    }

    pub fn agents(&self) -> Vec<(String, AgentInfo)> {
        let inner = self.inner.lock().unwrap();
        let mut agents: Vec<_> = inner
            .agents
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        agents
    }

    /// Forgets agents silent for longer than [`AGENT_TIMEOUT`]; their servers get rescheduled.
    pub fn expire_agents(&self) -> Vec<String> {
        let mut inner = self.inner.lock().unwrap();
        let dead: Vec<String> = inner
            .agents
            .iter()
            .filter(|(_, a)| a.last_seen.elapsed() > AGENT_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            inner.agents.remove(id);
            inner.placement.retain(|_, agent| agent != id);
            inner.status.retain(|_, s| &s.agent_id != id);
        }
        drop(inner);
        if !dead.is_empty() {
            self.changed();
        }
        dead
    }

    /// The scheduler: keeps every server of `wanted` on a live agent that its requirement
    /// admits, placing new ones on the least loaded of those, and forgets servers that no
    /// longer exist. Returns server id -> agent id.
    /// In shared mode only the leader places (`cluster/`): this returns its placement.
    pub fn place(&self, wanted: &[Wanted<'_>]) -> HashMap<String, String> {
        let mut inner = self.inner.lock().unwrap();
        if self.is_shared() {
            return inner.placement.clone();
        }
        let Inner {
            agents,
            placement,
            status,
            logs,
            ..
        } = &mut *inner;
        let ids: std::collections::HashSet<&str> = wanted.iter().map(|w| w.id).collect();
        status.retain(|server, _| ids.contains(server.as_str()));
        logs.retain(|server, _| ids.contains(server.as_str()));
        let live: Vec<Candidate<'_>> = agents
            .iter()
            .map(|(id, a)| Candidate::new(id, &a.labels, &a.running))
            .collect();
        let moved = plan(placement, &live, wanted);
        // What an agent reported of a server it no longer holds is not the server's status.
        status.retain(|server, s| placement.get(server).is_some_and(|a| *a == s.agent_id));
        let result = placement.clone();
        drop(inner);
        if moved {
            self.changed();
        }
        result
    }

    /// Applies an agent's report; bumps the version when anything a gateway sees changed.
    /// In shared mode the status goes to the outbox and comes back with the cluster's state.
    pub fn report(&self, agent_id: &str, report: pb::StatusReport) {
        let mut inner = self.inner.lock().unwrap();
        let shared = self.is_shared();
        let mut changed = false;
        let running: BTreeSet<String> = report
            .servers
            .iter()
            .filter(|s| ServerState::from_proto(s.state) != ServerState::Stopped)
            .map(|s| s.server_id.clone())
            .collect();
        let Inner { agents, outbox, .. } = &mut *inner;
        if let Some(agent) = agents.get_mut(agent_id)
            && agent.running != running
        {
            // A server waiting for this agent to stop it may be placed now.
            changed = true;
            if shared {
                outbox
                    .agents
                    .entry(agent_id.to_owned())
                    .or_insert_with(|| AgentNote {
                        relay_url: agent.relay_url.clone(),
                        ..Default::default()
                    })
                    .running = Some(running.clone());
            }
            agent.running = running;
        }
        for s in report.servers {
            // A report from an agent that no longer holds the server is stale. Alone, this
            // process placed every server an agent runs, so one placed nowhere (moved off
            // it, waiting for it to stop) is stale too; in a cluster the store decides.
            let holder = inner.placement.get(&s.server_id);
            let stale = match shared {
                true => holder.is_some_and(|a| a != agent_id),
                false => holder.is_none_or(|a| a != agent_id),
            };
            if stale {
                continue;
            }
            let tool_count = count_tools(&s.tools_json);
            let view = ServerStatusView {
                state: ServerState::from_proto(s.state),
                agent_id: agent_id.to_owned(),
                last_error: s.last_error,
                restart_count: s.restart_count,
                tool_count,
                updated_at_ms: s.updated_at_ms,
                tools_json: s.tools_json,
                server_info_json: s.server_info_json,
                restart_generation: s.restart_generation,
                progress: s.progress,
            };
            let previous = inner.status.get(&s.server_id);
            let same = previous.is_some_and(|p| {
                p.state == view.state
                    && p.last_error == view.last_error
                    && p.restart_count == view.restart_count
                    && p.tools_json == view.tools_json
                    && p.progress == view.progress
                    && p.server_info_json == view.server_info_json
                    && p.agent_id == view.agent_id
            });
            changed |= !same;
            if shared {
                inner.outbox.status.insert(s.server_id, view);
            } else {
                inner.status.insert(s.server_id, view);
            }
        }
        for line in report.logs {
            let entry = LogEntry {
                at_ms: line.at_ms,
                stream: line.stream,
                line: line.line,
            };
            // No receiver (nobody watching the feed) is not an error.
            let _ = self.log_lines.send((line.server_id.clone(), entry.clone()));
            let ring = inner.logs.entry(line.server_id).or_default();
            if ring.len() == LOG_LINES_KEPT {
                ring.pop_front();
            }
            ring.push_back(entry);
        }
        drop(inner);
        if changed {
            self.changed();
        }
    }

    pub fn status(&self, server_id: &str) -> ServerStatusView {
        let inner = self.inner.lock().unwrap();
        let mut view = inner.status.get(server_id).cloned().unwrap_or_default();
        if view.agent_id.is_empty() {
            view.agent_id = inner.placement.get(server_id).cloned().unwrap_or_default();
        }
        view
    }

    pub fn logs(&self, server_id: &str, tail: usize) -> Vec<LogEntry> {
        let inner = self.inner.lock().unwrap();
        inner
            .logs
            .get(server_id)
            .map(|ring| {
                ring.iter()
                    .skip(ring.len().saturating_sub(tail))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Why the enabled server `id` with `requirement` runs on no agent, when it does not:
    /// no live agent admits it, or a copy still runs on an agent it moved off.
    pub fn unplaced_reason(&self, id: &str, requirement: Requirement<'_>) -> Option<Unplaced> {
        let inner = self.inner.lock().unwrap();
        if inner.placement.contains_key(id) {
            return None;
        }
        if let Some((agent, _)) = inner.agents.iter().find(|(_, a)| a.running.contains(id)) {
            return Some(Unplaced::Draining(agent.clone()));
        }
        if inner.agents.values().any(|a| requirement.admits(&a.labels)) {
            return None;
        }
        Some(match requirement.is_any() {
            true => Unplaced::NoAgent,
            false => Unplaced::NoMatch(requirement.unmatched()),
        })
    }

    pub fn forget_server(&self, server_id: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.placement.remove(server_id);
        inner.status.remove(server_id);
        inner.logs.remove(server_id);
    }
}

/// How many tools a reported `tools/list` array holds (0 if it is not one), counted without
/// building them: at 1,000 servers of 20 tools the parse into values dominated (issue 15).
pub fn count_tools(tools_json: &str) -> usize {
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(tools_json).map_or(0, |t| t.len())
}

/// Why an enabled server runs on no agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplaced {
    NoAgent,
    /// No live agent's labels satisfy it: `no agent matches zone=a`.
    NoMatch(String),
    /// Moved off this agent, which has not stopped its copy yet.
    Draining(String),
}

impl std::fmt::Display for Unplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unplaced::NoAgent => f.write_str("no agent is connected"),
            Unplaced::NoMatch(why) => f.write_str(why),
            Unplaced::Draining(agent) => write!(f, "waiting for agent {agent} to stop its copy"),
        }
    }
}

/// A server the scheduler places, with what it asks of an agent.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub id: &'a str,
    pub requirement: Requirement<'a>,
}

impl<'a> Wanted<'a> {
    /// The enabled servers of `records`, each with its placement's requirement.
    pub fn enabled(records: &'a [crate::store::ServerRecord]) -> Vec<Wanted<'a>> {
        records
            .iter()
            .filter(|s| s.enabled)
            .map(|s| Wanted {
                id: &s.id,
                requirement: s
                    .placement
                    .requirement(matches!(s.runtime, RuntimeSpec::Docker { .. })),
            })
            .collect()
    }
}

/// A live agent as the scheduler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub labels: &'a Labels,
    pub running: &'a BTreeSet<String>,
}

impl<'a> Candidate<'a> {
    pub fn new(id: &'a str, labels: &'a Labels, running: &'a BTreeSet<String>) -> Self {
        Candidate {
            id,
            labels,
            running,
        }
    }
}

/// The scheduler's rule: keeps every server of `wanted` on a live agent its requirement
/// admits, placing new ones on the least loaded such agent, and forgets servers that no
/// longer exist, whose agent is gone, or whose agent no longer matches (a selector or the
/// agent's labels changed). A server is never placed while some live agent still reports
/// it running: one moved off an agent starts elsewhere once that agent stopped it, so it
/// never runs twice. Returns whether anything moved.
pub fn plan(
    placement: &mut HashMap<String, String>,
    live_agents: &[Candidate<'_>],
    wanted: &[Wanted<'_>],
) -> bool {
    let by_id: HashMap<&str, &Wanted<'_>> = wanted.iter().map(|w| (w.id, w)).collect();
    let agents: HashMap<&str, &Candidate<'_>> = live_agents.iter().map(|a| (a.id, a)).collect();
    let before = placement.len();
    placement.retain(|server, agent| {
        let want = by_id.get(server.as_str());
        let agent = agents.get(agent.as_str());
        matches!((want, agent), (Some(w), Some(a)) if w.requirement.admits(a.labels))
    });
    let mut moved = placement.len() != before;
    if live_agents.is_empty() {
        return moved;
    }
    let mut load: HashMap<&str, usize> = live_agents.iter().map(|a| (a.id, 0)).collect();
    for agent in placement.values() {
        if let Some(count) = load.get_mut(agent.as_str()) {
            *count += 1;
        }
    }
    for want in wanted {
        if placement.contains_key(want.id) {
            continue;
        }
        if live_agents.iter().any(|a| a.running.contains(want.id)) {
            continue;
        }
        let chosen = live_agents
            .iter()
            .filter(|a| want.requirement.admits(a.labels))
            .min_by_key(|a| (load[a.id], a.id));
        let Some(agent) = chosen else {
            continue;
        };
        *load.get_mut(agent.id).expect("every live agent has a load") += 1;
        placement.insert(want.id.to_owned(), agent.id.to_owned());
        moved = true;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpr_core::placement::{Placement, parse_labels};

    fn any(ids: &[String]) -> Vec<Wanted<'_>> {
        ids.iter()
            .map(|id| Wanted {
                id,
                requirement: Requirement::ANY,
            })
            .collect()
    }

    fn report(agent: &str, servers: &[&str]) -> pb::StatusReport {
        pb::StatusReport {
            agent_id: agent.into(),
            servers: servers
                .iter()
                .map(|id| pb::ServerStatus {
                    server_id: (*id).into(),
                    state: ServerState::Running.to_proto() as i32,
                    ..Default::default()
                })
                .collect(),
            logs: Vec::new(),
        }
    }

    #[test]
    fn places_on_least_loaded_agent_and_moves_off_dead_ones() {
        let fleet = Fleet::default();
        let servers: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
        assert!(
            fleet.place(&any(&servers)).is_empty(),
            "no agent, no placement"
        );
        fleet.register_agent("a", "http://a", Labels::new());
        fleet.register_agent("b", "http://b", Labels::new());
        let placed = fleet.place(&any(&servers));
        assert_eq!(placed.values().filter(|a| *a == "a").count(), 2);
        assert_eq!(placed.values().filter(|a| *a == "b").count(), 2);
        fleet
            .inner
            .lock()
            .unwrap()
            .agents
            .get_mut("a")
            .unwrap()
            .last_seen -= AGENT_TIMEOUT * 2;
        assert_eq!(fleet.expire_agents(), vec!["a".to_owned()]);
        let placed = fleet.place(&any(&servers));
        assert!(placed.values().all(|a| a == "b"));
        assert_eq!(placed.len(), 4);
    }

    /// A selector picks the agent; with none matching the server waits, with its reason;
    /// a selector changed moves it, once the old agent stopped its copy.
    #[test]
    fn selectors_pick_agents_and_a_move_waits_for_the_old_copy_to_stop() {
        let fleet = Fleet::default();
        let zone = |z: &str| Placement {
            selector: parse_labels([z], "selector").unwrap(),
        };
        let (zone_a, zone_c) = (zone("zone=a"), zone("zone=c"));
        fn want(p: &Placement) -> Vec<Wanted<'_>> {
            vec![Wanted {
                id: "s",
                requirement: p.requirement(false),
            }]
        }
        fleet.register_agent("a", "http://a", parse_labels(["zone=a"], "l").unwrap());
        fleet.register_agent("b", "http://b", parse_labels(["zone=b"], "l").unwrap());
        assert!(fleet.place(&want(&zone_c)).is_empty());
        assert_eq!(
            fleet
                .unplaced_reason("s", zone_c.requirement(false))
                .map(|u| u.to_string())
                .as_deref(),
            Some("no agent matches zone=c")
        );
        fleet.register_agent("c", "http://c", parse_labels(["zone=c"], "l").unwrap());
        assert_eq!(fleet.unplaced_reason("s", zone_c.requirement(false)), None);
        assert_eq!(fleet.place(&want(&zone_c))["s"], "c");
        fleet.report("c", report("c", &["s"]));
        // Moved to zone a: off c at once, onto a only when c no longer runs it.
        assert!(fleet.place(&want(&zone_a)).is_empty());
        assert_eq!(
            fleet
                .unplaced_reason("s", zone_a.requirement(false))
                .map(|u| u.to_string())
                .as_deref(),
            Some("waiting for agent c to stop its copy")
        );
        assert!(fleet.place(&want(&zone_a)).is_empty(), "still running on c");
        fleet.report("c", report("c", &[]));
        assert_eq!(fleet.place(&want(&zone_a))["s"], "a");
        // Docker servers skip hosts labelled docker=false unless their selector says so.
        let docker = Placement::default();
        let wanted = [Wanted {
            id: "d",
            requirement: docker.requirement(true),
        }];
        let only = Fleet::default();
        only.register_agent(
            "x",
            "http://x",
            parse_labels(["docker=false"], "l").unwrap(),
        );
        assert!(only.place(&wanted).is_empty());
        assert_eq!(
            only.unplaced_reason("d", docker.requirement(true))
                .map(|u| u.to_string())
                .as_deref(),
            Some("no agent matches docker!=false")
        );
        only.register_agent("y", "http://y", Labels::new());
        assert_eq!(only.place(&wanted)["d"], "y");
    }
}
