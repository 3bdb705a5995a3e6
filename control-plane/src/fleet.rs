//! What the control plane knows that is not stored: the live agents, which agent runs which
//! server (the scheduler's decisions), what the agents report (status, tools, logs), and the
//! configuration version that gateways and agents watch.
//!
//! Invariant: the lock is never held across an `.await`; every change that a gateway or agent
//! must see bumps the version through [`Fleet::changed`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcpr_core::model::ServerState;
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
    /// The leader epoch under which the placement was written (0: this process places).
    epoch: u64,
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
    /// Agent id -> relay URL, for registrations and heartbeats.
    pub agents: HashMap<String, String>,
    pub status: HashMap<String, ServerStatusView>,
    /// A change a gateway or agent must see: the cluster's version is bumped.
    pub changed: bool,
}

/// The cluster's view, read from the shared store, installed by the sync loop.
#[derive(Debug, Default)]
pub struct SharedState {
    pub version: u64,
    pub agents: HashMap<String, String>,
    pub placement: HashMap<String, String>,
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
        for (id, url) in old.agents {
            outbox.agents.entry(id).or_insert(url);
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
            .map(|(id, relay_url)| {
                let last_seen = previous.get(&id).map_or(now, |a| a.last_seen);
                (
                    id,
                    AgentInfo {
                        relay_url,
                        last_seen,
                    },
                )
            })
            .collect();
        inner.placement = shared.placement;
        inner.epoch = shared.epoch;
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

    pub fn register_agent(&self, id: &str, relay_url: &str) {
        let mut inner = self.inner.lock().unwrap();
        if self.is_shared() {
            inner
                .outbox
                .agents
                .insert(id.to_owned(), relay_url.to_owned());
        }
        inner.agents.insert(
            id.to_owned(),
            AgentInfo {
                relay_url: relay_url.to_owned(),
                last_seen: Instant::now(),
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
                    inner.outbox.agents.insert(id.to_owned(), relay_url);
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

    /// The scheduler: keeps every server in `server_ids` on a live agent, placing new ones
    /// on the agent with the fewest servers, and forgets servers that no longer exist.
    /// Returns server id -> agent id.
    /// In shared mode only the leader places (`cluster/`): this returns its placement.
    pub fn place(&self, server_ids: &[String]) -> HashMap<String, String> {
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
        status.retain(|server, _| server_ids.contains(server));
        logs.retain(|server, _| server_ids.contains(server));
        let live: Vec<&String> = agents.keys().collect();
        let moved = plan(placement, &live, server_ids);
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
        for s in report.servers {
            // A report from an agent that no longer holds the server is stale.
            if inner
                .placement
                .get(&s.server_id)
                .is_some_and(|a| a != agent_id)
            {
                continue;
            }
            let tool_count = serde_json::from_str::<Vec<serde_json::Value>>(&s.tools_json)
                .map(|t| t.len())
                .unwrap_or(0);
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

    pub fn forget_server(&self, server_id: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.placement.remove(server_id);
        inner.status.remove(server_id);
        inner.logs.remove(server_id);
    }
}

/// The scheduler's rule: keeps every server in `server_ids` on a live agent, placing new
/// ones on the agent with the fewest servers, and forgets servers that no longer exist or
/// whose agent is gone. Returns whether anything moved.
pub fn plan(
    placement: &mut HashMap<String, String>,
    live_agents: &[&String],
    server_ids: &[String],
) -> bool {
    let before = placement.len();
    placement.retain(|server, agent| server_ids.contains(server) && live_agents.contains(&&*agent));
    let mut moved = placement.len() != before;
    if live_agents.is_empty() {
        return moved;
    }
    for server in server_ids {
        if placement.contains_key(server) {
            continue;
        }
        let mut load: Vec<(usize, &String)> = live_agents
            .iter()
            .map(|agent| (placement.values().filter(|a| a == agent).count(), *agent))
            .collect();
        load.sort();
        placement.insert(server.clone(), load[0].1.clone());
        moved = true;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_on_least_loaded_agent_and_moves_off_dead_ones() {
        let fleet = Fleet::default();
        let servers: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
        assert!(fleet.place(&servers).is_empty(), "no agent, no placement");
        fleet.register_agent("a", "http://a");
        fleet.register_agent("b", "http://b");
        let placed = fleet.place(&servers);
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
        let placed = fleet.place(&servers);
        assert!(placed.values().all(|a| a == "b"));
        assert_eq!(placed.len(), 4);
    }
}
