//! Legacy clients' sessions: each a view, a protocol version, an outbox for its GET stream
//! and the recent events a `Last-Event-ID` resumes from (what upstream servers send on their
//! own reaches a session's streams through `transport/outbound.rs`); their sealed ids
//! (`seal.rs`) and the list changes they are told of (`list_changes.rs`).
//!
//! Sessions are bounded (issue 11): each belongs to the credential that created it (another
//! credential naming its id gets 404, here and on any replica: the sealed id carries a tag
//! of the credential), at most `MCPR_MAX_SESSIONS_PER_CREDENTIAL` per credential and
//! `MCPR_MAX_SESSIONS` in all, the least recently used one evicted at a cap, and one unused
//! for `MCPR_SESSION_IDLE_SECS` is forgotten. An ended, evicted or expired id is remembered
//! (as a hash, in a bounded set) so that this gateway does not resume it from its seal.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::views::View;

pub mod list_changes;
pub mod seal;

/// Messages kept for a session whose client has no GET stream open; older ones are dropped.
const OUTBOX_CAPACITY: usize = 1024;

/// The clock of `last_used`: milliseconds since the first session of the process.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// A client session created by `initialize`.
#[derive(Debug)]
pub struct ClientSession {
    pub view: View,
    pub protocol_version: String,
    pub created: Instant,
    /// The credential that created it (`""`: none, on an open instance or stdio).
    owner: Box<str>,
    /// `now_ms` of the last request, for idle expiry and eviction of the least recently used.
    last_used: AtomicU64,
    outbox: mpsc::Sender<Vec<u8>>,
    /// Taken by the GET stream while it is open (one at a time).
    pub inbox: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>>,
    /// The last messages sent on the session's streams, with their event ids (one sequence
    /// for all of them), replayed to a client that reconnects with `Last-Event-ID`.
    sent: std::sync::Mutex<std::collections::VecDeque<Sent>>,
    next_event_id: AtomicU64,
    /// POST answer streams still running, by client request id (JSON text): a client whose
    /// connection dropped resumes one with a GET naming its last event id.
    answer_streams: std::sync::Mutex<std::collections::HashMap<Arc<str>, Arc<AnswerStream>>>,
    /// Tells the open GET stream that a newer one (a reconnecting client) takes over.
    pub takeover: Arc<tokio::sync::Notify>,
}

impl ClientSession {
    pub fn new(view: View, protocol_version: String, owner: &str) -> ClientSession {
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        ClientSession {
            view,
            protocol_version,
            created: Instant::now(),
            owner: owner.into(),
            last_used: AtomicU64::new(now_ms()),
            outbox,
            inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
            sent: Default::default(),
            next_event_id: AtomicU64::new(1),
            answer_streams: Default::default(),
            takeover: Default::default(),
        }
    }

    /// A session that is never idle nor the least recently used (while another is): the
    /// one of a stdio connection, which lives as long as the connection.
    pub fn for_connection(self) -> ClientSession {
        self.last_used.store(u64::MAX, Ordering::Relaxed);
        self
    }

    /// Whether the calling request's credential created this session.
    pub fn owned_by_caller(&self) -> bool {
        with_credential(|credential| *self.owner == *credential)
    }

    /// Marks the session used now, unless it has been idle for `idle` already (false: it
    /// has expired).
    pub fn touch_unless_idle(&self, idle: Duration) -> bool {
        let now = now_ms();
        let last = self.last_used.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= idle.as_millis() as u64 {
            return false;
        }
        if last != u64::MAX {
            self.last_used.store(now, Ordering::Relaxed);
        }
        true
    }

    fn idle_for(&self, now: u64) -> Duration {
        Duration::from_millis(now.saturating_sub(self.last_used.load(Ordering::Relaxed)))
    }

    /// Gives a message leaving on a stream (`None`: the GET stream; else the POST answer
    /// stream of that request) its event id and keeps it for replay.
    pub fn record_sent(&self, stream: Option<&Arc<str>>, message: Vec<u8>) -> Event {
        const KEPT: usize = 256;
        let id = self.next_event_id.fetch_add(1, Ordering::Relaxed);
        let message = Arc::new(message);
        let mut sent = self.sent.lock().unwrap();
        if sent.len() == KEPT {
            sent.pop_front();
        }
        sent.push_back(Sent {
            id,
            stream: stream.cloned(),
            message: message.clone(),
        });
        (id, message)
    }

    /// The stream event `id` went out on, while it is kept: `Some(None)` for the GET
    /// stream, `Some(Some(request))` for a POST answer stream.
    pub fn stream_of(&self, id: u64) -> Option<Option<Arc<str>>> {
        let sent = self.sent.lock().unwrap();
        sent.iter().find(|s| s.id == id).map(|s| s.stream.clone())
    }

    /// What was sent on `stream` after event `last_id`: a stream is resumed, never another
    /// one's messages replayed on it.
    pub fn sent_after(&self, stream: Option<&Arc<str>>, last_id: u64) -> Vec<Event> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.id > last_id && s.stream.as_ref() == stream)
            .map(|s| (s.id, s.message.clone()))
            .collect()
    }

    /// Registers the POST answer stream of `request` while it runs.
    pub fn open_answer_stream(&self, request: &Arc<str>, stream: Arc<AnswerStream>) {
        self.answer_streams
            .lock()
            .unwrap()
            .insert(request.clone(), stream);
    }

    pub fn close_answer_stream(&self, request: &Arc<str>) {
        self.answer_streams.lock().unwrap().remove(request);
    }

    /// The running POST answer stream of `request`.
    pub fn answer_stream(&self, request: &Arc<str>) -> Option<Arc<AnswerStream>> {
        self.answer_streams.lock().unwrap().get(request).cloned()
    }

    /// Queues a message for the session's GET stream; false when the queue is full.
    pub fn push(&self, message: Vec<u8>) -> bool {
        self.outbox.try_send(message).is_ok()
    }
}

/// A message sent on one of a session's streams.
#[derive(Debug)]
struct Sent {
    id: u64,
    stream: Option<Arc<str>>,
    message: Arc<Vec<u8>>,
}

/// An event of a session stream: its id (0: none) and the message.
pub type Event = (u64, Arc<Vec<u8>>);

/// A POST answer stream while its request runs: its events go to whoever reads it now —
/// the POST's own response, or after a dropped connection the GET that resumed it.
#[derive(Debug, Default)]
pub struct AnswerStream {
    pub reader: tokio::sync::Mutex<Option<mpsc::Sender<Event>>>,
}

tokio::task_local! {
    /// The credential of the request being handled (`auth.rs`: an API key's id, an OAuth
    /// client and subject); none on an open instance.
    static CREDENTIAL: String;
}

/// `future` run as a request of `credential`.
pub fn as_credential<F: std::future::Future>(
    credential: String,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    CREDENTIAL.scope(credential, future)
}

/// `f` of the calling request's credential (`""`: none).
pub fn with_credential<R>(f: impl FnOnce(&str) -> R) -> R {
    let mut f = Some(f);
    CREDENTIAL
        .try_with(|credential| (f.take().expect("called once"))(credential))
        .unwrap_or_else(|_| (f.take().expect("called once"))(""))
}

/// The client sessions a gateway holds, within their caps (see the module comment).
pub struct Sessions {
    live: DashMap<String, ClientSession>,
    /// Sessions per owner. Held while a session is added or removed (never per request),
    /// so that the counts and `live` agree; `live`'s own locks are taken inside it only.
    owners: Mutex<HashMap<Box<str>, usize>>,
    ended: Mutex<Tombstones>,
    pub max_sessions: usize,
    pub max_per_credential: usize,
    pub idle: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(mcpr_core::settings::Limits::current())
    }
}

impl Sessions {
    pub fn new(limits: &mcpr_core::settings::Limits) -> Sessions {
        Sessions {
            live: DashMap::new(),
            owners: Default::default(),
            ended: Mutex::new(Tombstones::new((2 * limits.max_sessions).max(1024))),
            max_sessions: limits.max_sessions,
            max_per_credential: limits.max_sessions_per_credential,
            idle: limits.session_idle,
        }
    }

    pub fn get(&self, id: &str) -> Option<dashmap::mapref::one::Ref<'_, String, ClientSession>> {
        self.live.get(id)
    }

    pub fn iter(&self) -> dashmap::iter::Iter<'_, String, ClientSession> {
        self.live.iter()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Adds a session (unless one with this id is there already), first evicting the least
    /// recently used session of its owner, or of all, when a cap is reached. Scans the
    /// sessions only at a cap.
    pub fn admit(&self, id: String, session: ClientSession) {
        let mut owners = self.owners.lock().unwrap();
        if self.live.contains_key(&id) {
            return;
        }
        if owners.get(&session.owner).copied().unwrap_or(0) >= self.max_per_credential
            && let Some(victim) = self.least_recently_used(Some(&session.owner))
        {
            tracing::debug!(session = %victim, "session evicted: MCPR_MAX_SESSIONS_PER_CREDENTIAL reached");
            self.forget(&mut owners, &victim, |_| true);
        }
        if self.live.len() >= self.max_sessions
            && let Some(victim) = self.least_recently_used(None)
        {
            tracing::debug!(session = %victim, "session evicted: MCPR_MAX_SESSIONS reached");
            self.forget(&mut owners, &victim, |_| true);
        }
        *owners.entry(session.owner.clone()).or_insert(0) += 1;
        self.live.insert(id, session);
    }

    /// Ends the session `id` of `view` (DELETE, or its idle expiry); false when there is none.
    pub fn end(&self, id: &str, view: &View) -> bool {
        let mut owners = self.owners.lock().unwrap();
        self.forget(&mut owners, id, |s| &s.view == view)
    }

    /// Whether `id` was ended, evicted or expired here: not to be resumed from its seal.
    pub fn is_ended(&self, id: &str) -> bool {
        self.ended.lock().unwrap().contains(id)
    }

    /// Forgets sessions idle for `idle` or longer; their clients get 404 and initialize
    /// anew, as the transport specifies.
    pub fn expire(&self) -> usize {
        let now = now_ms();
        let idle: Vec<String> = self
            .live
            .iter()
            .filter(|s| s.idle_for(now) >= self.idle)
            .map(|s| s.key().clone())
            .collect();
        let mut owners = self.owners.lock().unwrap();
        idle.iter()
            .filter(|id| self.forget(&mut owners, id, |s| s.idle_for(now) >= self.idle))
            .count()
    }

    fn forget(
        &self,
        owners: &mut HashMap<Box<str>, usize>,
        id: &str,
        condition: impl FnOnce(&ClientSession) -> bool,
    ) -> bool {
        let Some((_, session)) = self.live.remove_if(id, |_, s| condition(s)) else {
            return false;
        };
        if let Some(count) = owners.get_mut(&session.owner) {
            *count -= 1;
            if *count == 0 {
                owners.remove(&session.owner);
            }
        }
        self.ended.lock().unwrap().insert(id);
        true
    }

    fn least_recently_used(&self, owner: Option<&str>) -> Option<String> {
        self.live
            .iter()
            .filter(|s| owner.is_none_or(|owner| *s.owner == *owner))
            .min_by_key(|s| s.last_used.load(Ordering::Relaxed))
            .map(|s| s.key().clone())
    }
}

/// Ids not to resume, as 64-bit hashes (random keys: no one can aim a collision), the oldest
/// forgotten beyond `capacity`: the memory an attacker can make it take is bounded.
struct Tombstones {
    order: VecDeque<u64>,
    set: HashSet<u64>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl Tombstones {
    fn new(capacity: usize) -> Tombstones {
        Tombstones {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity,
            hasher: Default::default(),
        }
    }

    fn insert(&mut self, id: &str) {
        let hash = self.hasher.hash_one(id);
        if !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(&self.hasher.hash_one(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max: usize, per_credential: usize) -> Sessions {
        Sessions::new(&mcpr_core::settings::Limits {
            max_sessions: max,
            max_sessions_per_credential: per_credential,
            ..Default::default()
        })
    }

    fn add(sessions: &Sessions, id: &str, owner: &str) {
        sessions.admit(id.into(), ClientSession::new(View::Flat, "v".into(), owner));
        // Distinct last uses, as the clock counts milliseconds.
        std::thread::sleep(Duration::from_millis(3));
    }

    fn ids(sessions: &Sessions) -> Vec<String> {
        let mut ids: Vec<String> = sessions.iter().map(|s| s.key().clone()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn the_least_recently_used_session_goes_at_a_cap() {
        let sessions = sessions(3, 2);
        add(&sessions, "a1", "a");
        add(&sessions, "a2", "a");
        assert!(
            sessions
                .get("a1")
                .unwrap()
                .touch_unless_idle(Duration::from_secs(60))
        );
        std::thread::sleep(Duration::from_millis(3));
        add(&sessions, "a3", "a");
        assert_eq!(ids(&sessions), ["a1", "a3"], "a's own least recently used");
        assert!(sessions.is_ended("a2"), "not to be resumed");
        add(&sessions, "b1", "b");
        add(&sessions, "b2", "b");
        assert_eq!(
            ids(&sessions),
            ["a3", "b1", "b2"],
            "the least recently used of all"
        );
        // The counts follow removals: b may have two again after one ends.
        assert!(sessions.end("b1", &View::Flat));
        assert!(!sessions.end("b1", &View::Flat));
        add(&sessions, "b3", "b");
        assert_eq!(ids(&sessions), ["a3", "b2", "b3"]);
        // An id that is there already is not replaced.
        add(&sessions, "b3", "c");
        assert!(sessions.get("b3").unwrap().owner.as_ref() == "b");
    }

    #[test]
    fn idle_sessions_expire_and_connection_sessions_do_not() {
        let sessions = Sessions::new(&mcpr_core::settings::Limits {
            session_idle: Duration::from_millis(1),
            ..Default::default()
        });
        add(&sessions, "idle", "");
        sessions.admit(
            "stdio".into(),
            ClientSession::new(View::Hierarchical, "v".into(), "").for_connection(),
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            !sessions
                .get("idle")
                .unwrap()
                .touch_unless_idle(sessions.idle)
        );
        assert_eq!(sessions.expire(), 1);
        assert_eq!(ids(&sessions), ["stdio"]);
        assert!(sessions.is_ended("idle"));
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut tombstones = Tombstones::new(2);
        for id in ["x", "y", "z"] {
            tombstones.insert(id);
        }
        assert!(!tombstones.contains("x"));
        assert!(tombstones.contains("y") && tombstones.contains("z"));
        assert_eq!(tombstones.set.len(), 2);
    }
}
