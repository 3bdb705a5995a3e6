//! Client sessions and the delivery of what upstream servers send on their own
//! (notifications, server-to-client requests) to the client they concern: on the SSE
//! response of the client request they relate to when that request is still open, else on
//! the session's GET stream.
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
use mcpr_core::relay::{AgentEvent, EventKind};
use tokio::sync::mpsc;

use crate::Gateway;
use crate::views::View;

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

/// Where a streaming request's messages go, and how many have gone.
type RequestStream = (mpsc::Sender<Vec<u8>>, Arc<AtomicU64>);

/// Open client requests that stream (session, client request id as JSON text), and
/// server-to-client requests awaiting the client's answer.
#[derive(Default)]
pub struct Delivery {
    request_streams: DashMap<(String, String), RequestStream>,
    /// (session, our id for the request as JSON text) -> (relay URL, provider)
    server_requests: DashMap<(String, String), (String, String)>,
    /// Relayed client requests still running: (session, client id as JSON text) ->
    /// (relay URL, provider), for cancellations.
    in_flight: DashMap<(String, String), (String, String)>,
}

impl Delivery {
    /// Routes messages related to the client request `id` of `session` to `stream` until
    /// the returned guard drops.
    pub fn open_stream(
        self: &Arc<Self>,
        session: &str,
        id: &str,
        stream: mpsc::Sender<Vec<u8>>,
    ) -> StreamGuard {
        let key = (session.to_owned(), id.to_owned());
        let delivered = Arc::new(AtomicU64::new(0));
        self.request_streams
            .insert(key.clone(), (stream, delivered.clone()));
        StreamGuard {
            delivery: self.clone(),
            key,
            delivered,
        }
    }

    /// Records a relayed client request until the returned guard drops.
    pub fn track(
        self: &Arc<Self>,
        session: &str,
        id: &str,
        relay_url: &str,
        provider: &str,
    ) -> InFlight {
        let key = (session.to_owned(), id.to_owned());
        self.in_flight
            .insert(key.clone(), (relay_url.to_owned(), provider.to_owned()));
        InFlight {
            delivery: self.clone(),
            key,
        }
    }

    /// Where the client request `id` of `session` runs, while it does.
    pub fn in_flight(&self, session: &str, id: &str) -> Option<(String, String)> {
        self.in_flight
            .get(&(session.to_owned(), id.to_owned()))
            .map(|e| e.value().clone())
    }

    /// Where the client's answer to server-to-client request `id` must go.
    pub fn take_server_request(&self, session: &str, id: &str) -> Option<(String, String)> {
        self.server_requests
            .remove(&(session.to_owned(), id.to_owned()))
            .map(|(_, v)| v)
    }
}

pub struct StreamGuard {
    delivery: Arc<Delivery>,
    key: (String, String),
    delivered: Arc<AtomicU64>,
}

impl StreamGuard {
    /// The session whose request the stream belongs to.
    pub fn session(&self) -> &str {
        &self.key.0
    }

    /// How many messages have been delivered to the stream so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.delivery.request_streams.remove(&self.key);
    }
}

pub struct InFlight {
    delivery: Arc<Delivery>,
    key: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.delivery.in_flight.remove(&self.key);
    }
}

impl Gateway {
    /// Delivers one upstream-originated message from the agent at `relay_url`.
    pub(crate) fn deliver(&self, relay_url: &str, event: &AgentEvent) {
        let bytes = event.message.to_bytes();
        if event.client_session.is_empty() {
            // Modern clients' listen streams the gateway serves take what they asked for.
            self.listeners.deliver(&event.provider, &event.message);
            // For every client of the provider: its transparent-view sessions.
            for session in self.sessions.iter() {
                if matches!(&session.view, View::Transparent(p) if *p == event.provider)
                    && !session.push(bytes.clone())
                {
                    tracing::debug!(session = %session.key(), "outbox full; notification dropped");
                }
            }
            return;
        }
        if event.kind == EventKind::Request {
            let id = event
                .message
                .id
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_default();
            self.delivery.server_requests.insert(
                (event.client_session.clone(), id),
                (relay_url.to_owned(), event.provider.clone()),
            );
        }
        if event.client_session == crate::modern::MODERN_SESSION
            && event.kind == EventKind::Notification
            && event.related_id.is_empty()
        {
            // Addressed to no request of a modern client, so to the listen streams the
            // gateway serves them (their upstream subscriptions are made as this session).
            self.listeners.deliver(&event.provider, &event.message);
            return;
        }
        let stream = self
            .delivery
            .request_streams
            .get(&(event.client_session.clone(), event.related_id.clone()))
            .map(|s| s.clone());
        if let Some((stream, delivered)) = stream
            && stream.try_send(bytes.clone()).is_ok()
        {
            delivered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.sessions.get(&event.client_session) {
            Some(session) => {
                if !session.push(bytes) {
                    tracing::debug!(session = %event.client_session, "outbox full; message dropped");
                }
            }
            None => {
                tracing::debug!(session = %event.client_session, "message for an unknown session dropped")
            }
        }
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

/// Sealed session ids: `s1.<payload>.<tag>`, where the payload names the view, protocol
/// version and a tag of the credential that created the session, and the tag is an HMAC-SHA-256 under the key every gateway gets in its snapshot.
/// Any replica can verify an id and resume the session, so no sticky load balancing is
/// needed; an id cannot be forged or moved to another view without the key.
pub mod seal {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use crate::views::View;

    const PREFIX: &str = "s1";

    fn tag(key: &[u8], encoded: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(encoded.as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }

    /// `<prefix>.<payload>.<tag>`, the payload in base64url, the tag an HMAC-SHA-256 of it
    /// (truncated to 128 bits) under `key`: what the router hands out and must get back
    /// unchanged from any replica (session ids, the bridge's `requestState`).
    pub fn seal_bytes(key: &[u8], prefix: &str, payload: &[u8]) -> String {
        let encoded = B64.encode(payload);
        let tag = B64.encode(tag(key, &encoded));
        format!("{prefix}.{encoded}.{tag}")
    }

    /// The payload of a `seal_bytes` text with this prefix, when its tag is right.
    pub fn unseal_bytes(key: &[u8], prefix: &str, sealed: &str) -> Option<Vec<u8>> {
        let rest = sealed.strip_prefix(prefix)?.strip_prefix('.')?;
        let (encoded, given) = rest.split_once('.')?;
        let given = B64.decode(given).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(encoded.as_bytes());
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(&given).ok()?;
        B64.decode(encoded).ok()
    }

    pub(crate) fn view_text(view: &View) -> String {
        match view {
            View::Hierarchical => "h".into(),
            View::Flat => "f".into(),
            View::Transparent(provider) => format!("p/{provider}"),
        }
    }

    /// A session id of `view` and `protocol_version`, bound to `owner` (a credential).
    pub fn seal(key: &[u8], view: &View, protocol_version: &str, owner: &str) -> String {
        let nonce: [u8; 16] = rand::random();
        let payload = format!(
            "{}\n{}\n{}\n{}",
            view_text(view),
            protocol_version,
            hex(&nonce),
            owner_tag(key, owner)
        );
        seal_bytes(key, PREFIX, payload.as_bytes())
    }

    /// What names a credential in a sealed id: a keyed hash, so the id reveals nothing of
    /// the credential and any replica (which has the key) can check it.
    pub fn owner_tag(key: &[u8], owner: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(b"session owner\n");
        mac.update(owner.as_bytes());
        hex(&mac.finalize().into_bytes()[..12])
    }

    /// The view, protocol version and owner tag of a sealed id, when its tag is right.
    /// An id sealed before sessions had owners has none, and is not resumed.
    pub fn unseal(key: &[u8], id: &str) -> Option<(View, String, String)> {
        let payload = String::from_utf8(unseal_bytes(key, PREFIX, id)?).ok()?;
        let mut fields = payload.split('\n');
        let view = match fields.next()? {
            "h" => View::Hierarchical,
            "f" => View::Flat,
            other => View::Transparent(other.strip_prefix("p/")?.to_owned()),
        };
        let version = fields.next()?.to_owned();
        let _nonce = fields.next()?;
        let owner = fields.next()?.to_owned();
        Some((view, version, owner))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sealed_ids_round_trip_and_resist_forgery() {
            let key = b"0123456789abcdef0123456789abcdef";
            let id = seal(
                key,
                &View::Transparent("time".into()),
                "2025-06-18",
                "key-1",
            );
            assert!(
                id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "visible ASCII only: {id}"
            );
            assert_eq!(
                unseal(key, &id),
                Some((
                    View::Transparent("time".into()),
                    "2025-06-18".into(),
                    owner_tag(key, "key-1")
                ))
            );
            assert_ne!(owner_tag(key, "key-1"), owner_tag(key, "key-2"));
            assert_ne!(owner_tag(key, "key-1"), owner_tag(b"another key", "key-1"));
            assert_ne!(
                seal(key, &View::Flat, "x", ""),
                seal(key, &View::Flat, "x", ""),
                "unique"
            );
            assert_eq!(unseal(b"another key", &id), None);
            // Moving the session to another view breaks the tag.
            let parts: Vec<&str> = id.split('.').collect();
            let forged_payload = B64.encode("h\n2025-06-18\n00");
            assert_eq!(
                unseal(key, &format!("s1.{forged_payload}.{}", parts[2])),
                None
            );
            assert_eq!(unseal(key, "not-a-session"), None);
            // A sealed text is good for its own kind only.
            assert_eq!(unseal_bytes(key, "mcpr-bridge", &id), None);
            let other = seal_bytes(key, "mcpr-bridge", b"{}");
            assert_eq!(
                unseal_bytes(key, "mcpr-bridge", &other).as_deref(),
                Some(&b"{}"[..])
            );
            assert_eq!(unseal(key, &other), None);
        }
    }
}
