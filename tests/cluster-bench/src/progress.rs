//! What the simulated agents and gateways saw, and when: the coordinator waits on it for a
//! server to be assigned, reported running and callable on every gateway.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use mcpr_proto as pb;
use tokio::sync::Notify;

/// When each step of one server's way happened (the first time it was seen).
#[derive(Debug, Default, Clone)]
pub struct Track {
    /// An agent's `WatchAssignments` stream named it.
    pub assigned: Option<Instant>,
    /// That agent's `ReportStatus` with it running (and its tools) was answered.
    pub reported: Option<Instant>,
    /// Gateways whose snapshot has it callable.
    pub callable_on: usize,
    /// When the last of them received that snapshot.
    pub callable_everywhere: Option<Instant>,
}

#[derive(Default)]
struct State {
    servers: HashMap<String, Track>,
    /// Per gateway: the names callable in its snapshots so far.
    callable: Vec<HashSet<String>>,
    /// Per gateway: snapshots received.
    snapshots: Vec<u64>,
    /// The encoded size of the last snapshot any gateway received.
    last_snapshot_bytes: usize,
    /// Agents in the last snapshot any gateway received.
    last_snapshot_agents: usize,
    /// The last snapshot gateway 0 received, kept for the encode/decode timings.
    last_snapshot: Option<pb::ConfigSnapshot>,
}

pub struct Progress {
    gateways: usize,
    state: Mutex<State>,
    /// Woken on every record.
    pub changed: Notify,
}

impl Progress {
    pub fn new(gateways: usize) -> Progress {
        Progress {
            gateways,
            state: Mutex::new(State {
                callable: vec![HashSet::new(); gateways],
                snapshots: vec![0; gateways],
                ..Default::default()
            }),
            changed: Notify::new(),
        }
    }

    pub fn assigned(&self, name: &str, at: Instant) {
        let mut state = self.state.lock().unwrap();
        let track = state.servers.entry(name.to_owned()).or_default();
        track.assigned.get_or_insert(at);
        drop(state);
        self.changed.notify_waiters();
    }

    pub fn reported(&self, names: &[String], at: Instant) {
        let mut state = self.state.lock().unwrap();
        for name in names {
            let track = state.servers.entry(name.clone()).or_default();
            track.reported.get_or_insert(at);
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Whether gateway `gateway` already has `name` callable (it need not look again).
    pub fn is_callable_on(&self, gateway: usize, name: &str) -> bool {
        self.state.lock().unwrap().callable[gateway].contains(name)
    }

    /// Gateway `gateway` received, at `at`, a snapshot of `bytes` in which `names` became
    /// callable.
    pub fn snapshot(
        &self,
        gateway: usize,
        at: Instant,
        bytes: usize,
        agents: usize,
        names: Vec<String>,
        keep: Option<pb::ConfigSnapshot>,
    ) {
        let mut state = self.state.lock().unwrap();
        state.snapshots[gateway] += 1;
        state.last_snapshot_bytes = bytes;
        state.last_snapshot_agents = agents;
        if keep.is_some() {
            state.last_snapshot = keep;
        }
        for name in names {
            if !state.callable[gateway].insert(name.clone()) {
                continue;
            }
            let track = state.servers.entry(name).or_default();
            track.callable_on += 1;
            if track.callable_on == self.gateways {
                track.callable_everywhere = Some(at);
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }

    pub fn track(&self, name: &str) -> Track {
        self.state
            .lock()
            .unwrap()
            .servers
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The fewest servers callable on any one gateway.
    pub fn callable_everywhere(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.callable.iter().map(HashSet::len).min().unwrap_or(0)
    }

    pub fn snapshots_received(&self) -> u64 {
        self.state.lock().unwrap().snapshots.iter().sum()
    }

    pub fn last_snapshot_bytes(&self) -> usize {
        self.state.lock().unwrap().last_snapshot_bytes
    }

    pub fn last_snapshot_agents(&self) -> usize {
        self.state.lock().unwrap().last_snapshot_agents
    }

    pub fn take_last_snapshot(&self) -> Option<pb::ConfigSnapshot> {
        self.state.lock().unwrap().last_snapshot.take()
    }

    /// Waits until `done` holds (checked after every record).
    pub async fn wait_for(&self, mut done: impl FnMut(&Progress) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(self) {
                return;
            }
            notified.await;
        }
    }
}
