//! `GET /api/v1/events`: the admin's live feed, one server-sent event stream (behind the
//! admin check like the rest of the API) that the web UI follows instead of polling.
//!
//! A watcher task wakes on every configuration version bump ([`Fleet::subscribe`]) and on
//! every reported log line ([`Fleet::subscribe_logs`]), compares what the API shows with what
//! it showed before, and appends what changed to a bounded ring of recent events, each with
//! the next id:
//!
//! - `server`: a server added or changed (the whole `ServerView`, as `GET /servers/{name}`);
//! - `server_removed`: `{"name"}`;
//! - `tools`: `{"server", "tools"}`, a server's tool list or the admin's settings of its
//!   tools changed (the list as `GET /servers/{name}/tools`);
//! - `restart`: `{"server", "restart_count"}`, a server restarted;
//! - `keys`: the API key list (as `GET /keys`) after any key change;
//! - `log`: `{"server", "at_ms", "stream", "line"}`;
//! - `audit`: one audit record once stored (as in `GET /api/v1/audit`), recorded only while a
//!   stream is open: the feed is for watching live, the API has the whole log.
//!
//! A stream opens with a `snapshot` event (`{"servers", "keys"}`), unless its
//! `Last-Event-ID` is still in the ring: then it replays what came after that id. A client
//! further behind than the ring gets a fresh `snapshot`, so it never misses a change
//! silently. Log lines a lagging watcher lost are not replayed (the logs endpoint has them).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::audit::Audit;
use crate::keys::KeyRing;
use crate::registry::Registry;

/// Events kept for `Last-Event-ID` resumption.
pub const EVENTS_KEPT: usize = 4096;

#[derive(Clone)]
struct Recorded {
    id: u64,
    kind: &'static str,
    data: String,
}

struct Ring {
    /// The id of the newest event (0: none yet).
    last_id: u64,
    events: VecDeque<Recorded>,
}

/// The ring of recent events and the watcher that fills it.
pub struct Events {
    registry: Arc<Registry>,
    keys: Arc<KeyRing>,
    ring: Mutex<Ring>,
    /// The newest event id, for the streams waiting on it.
    latest: watch::Sender<u64>,
}

impl Events {
    /// Starts the watcher task; it ends when the fleet does.
    pub fn start(registry: Arc<Registry>, keys: Arc<KeyRing>, audit: Arc<Audit>) -> Arc<Events> {
        let events = Arc::new(Events {
            registry,
            keys,
            ring: Mutex::new(Ring {
                last_id: 0,
                events: VecDeque::with_capacity(EVENTS_KEPT),
            }),
            latest: watch::channel(0).0,
        });
        tokio::spawn(watch_changes(events.clone(), audit));
        events
    }

    fn push(&self, kind: &'static str, data: Value) {
        let mut ring = self.ring.lock().unwrap();
        ring.last_id += 1;
        let id = ring.last_id;
        if ring.events.len() == EVENTS_KEPT {
            ring.events.pop_front();
        }
        ring.events.push_back(Recorded {
            id,
            kind,
            data: data.to_string(),
        });
        drop(ring);
        self.latest.send_replace(id);
    }

    /// The events after `after`, or `None` when some of them have left the ring.
    fn since(&self, after: u64) -> Option<Vec<Recorded>> {
        let ring = self.ring.lock().unwrap();
        if after > ring.last_id {
            return None;
        }
        let oldest = ring.events.front().map_or(ring.last_id + 1, |e| e.id);
        if after + 1 < oldest {
            return None;
        }
        Some(
            ring.events
                .iter()
                .filter(|e| e.id > after)
                .cloned()
                .collect(),
        )
    }

    /// Everything a page shows, with the id of the newest event it already reflects.
    fn snapshot(&self) -> Recorded {
        let id = *self.latest.borrow();
        Recorded {
            id,
            kind: "snapshot",
            data: json!({"servers": self.registry.list(), "keys": self.keys.list()}).to_string(),
        }
    }
}

/// What the feed last showed of one server.
struct Seen {
    name: String,
    view: Value,
    /// What `GET /servers/{name}/tools` is made of: the upstream's list and the tool settings
    /// (compared as they are, so that an unchanged server costs no parse).
    tools: (String, Vec<crate::store::ToolOverrideRecord>),
    restart_count: u64,
}

/// A view without what changes on every report (its timestamp), for comparison.
fn comparable(mut view: Value) -> Value {
    if let Some(status) = view.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("updated_at_ms");
    }
    view
}

/// Holds `audit` so that its feed stays open as long as this watcher runs.
async fn watch_changes(events: Arc<Events>, audit: Arc<Audit>) {
    let mut records = audit.subscribe();
    let fleet = events.registry.fleet.clone();
    let mut version = fleet.subscribe();
    let mut logs = fleet.subscribe_logs();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut keys = json!(events.keys.list());
    diff_servers(&events, &mut seen, false);
    loop {
        tokio::select! {
            changed = version.changed() => {
                if changed.is_err() {
                    return;
                }
                diff_servers(&events, &mut seen, true);
                let now = json!(events.keys.list());
                if now != keys {
                    events.push("keys", now.clone());
                    keys = now;
                }
            }
            line = logs.recv() => match line {
                Ok((server_id, entry)) => {
                    if !seen.contains_key(&server_id) {
                        diff_servers(&events, &mut seen, true);
                    }
                    if let Some(server) = seen.get(&server_id) {
                        events.push("log", json!({
                            "server": server.name, "at_ms": entry.at_ms,
                            "stream": entry.stream, "line": entry.line,
                        }));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::debug!(lost, "the admin event feed lost log lines");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            stored = records.recv() => match stored {
                Ok(stored) => {
                    if events.latest.receiver_count() > 0 {
                        for record in stored.records() {
                            events.push("audit", json!(record));
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::debug!(lost, "the admin event feed lost audit records");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Compares the servers with what the feed last showed and records the differences
/// (`announce` false: only learns the current state).
fn diff_servers(events: &Events, seen: &mut HashMap<String, Seen>, announce: bool) {
    let mut current = HashMap::new();
    for record in events.registry.servers().iter() {
        let server = events.registry.view(record);
        let id = server.id.clone();
        let tools = (
            events.registry.fleet.status(&id).tools_json,
            events.registry.tool_overrides_of(&id),
        );
        let restart_count = u64::from(server.status.restart_count);
        let view = serde_json::to_value(&server).unwrap_or(Value::Null);
        let name = server.name;
        if announce {
            match seen.get(&id) {
                None => events.push("server", view.clone()),
                Some(before) => {
                    if comparable(before.view.clone()) != comparable(view.clone()) {
                        events.push("server", view.clone());
                    }
                    if before.restart_count < restart_count {
                        events.push(
                            "restart",
                            json!({"server": name, "restart_count": restart_count}),
                        );
                    }
                    if before.tools != tools {
                        let listed = events.registry.tools_of(record);
                        events.push("tools", json!({"server": name, "tools": listed}));
                    }
                }
            }
        }
        current.insert(
            id,
            Seen {
                name,
                view,
                tools,
                restart_count,
            },
        );
    }
    if announce {
        for (id, before) in seen.iter() {
            if !current.contains_key(id) {
                events.push("server_removed", json!({"name": before.name}));
            }
        }
    }
    *seen = current;
}

/// `GET /api/v1/events`.
pub fn router(events: Arc<Events>) -> Router {
    Router::new()
        .route("/api/v1/events", get(stream))
        .with_state(events)
}

async fn stream(State(events): State<Arc<Events>>, headers: HeaderMap) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let latest = events.latest.subscribe();
    // Subscribed before the snapshot: an event recorded meanwhile is sent, never lost.
    let (after, pending): (u64, VecDeque<Recorded>) =
        match resume.and_then(|id| events.since(id).map(|e| (id, e))) {
            Some((id, replay)) => (id, replay.into()),
            None => {
                let snapshot = events.snapshot();
                (snapshot.id, VecDeque::from([snapshot]))
            }
        };
    let state = Follow {
        events,
        after,
        pending,
        latest,
    };
    let body = futures::stream::unfold(state, |mut state| async move {
        let next = state.next().await?;
        let event = Event::default()
            .id(next.id.to_string())
            .event(next.kind)
            .data(next.data);
        Some((Ok::<_, Infallible>(event), state))
    });
    Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One stream's place in the feed.
struct Follow {
    events: Arc<Events>,
    /// The id of the last event sent.
    after: u64,
    pending: VecDeque<Recorded>,
    latest: watch::Receiver<u64>,
}

impl Follow {
    async fn next(&mut self) -> Option<Recorded> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                self.after = self.after.max(next.id);
                return Some(next);
            }
            match self.events.since(self.after) {
                Some(new) if !new.is_empty() => self.pending.extend(new),
                Some(_) => self.latest.changed().await.ok()?,
                // Fallen behind the ring: start over from a snapshot.
                None => {
                    let snapshot = self.events.snapshot();
                    self.after = snapshot.id;
                    self.pending.push_back(snapshot);
                }
            }
        }
    }
}
