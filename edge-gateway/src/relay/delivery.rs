//! Which client request an upstream's message belongs to: the client requests whose answer
//! streams (SSE) are open, the relayed requests still running (for cancellations), and the
//! server-to-client requests waiting for the client's answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::mpsc;

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

    /// Remembers where the client's answer to server-to-client request `id` must go.
    pub fn expect_answer(&self, session: &str, id: String, relay_url: &str, provider: &str) {
        self.server_requests.insert(
            (session.to_owned(), id),
            (relay_url.to_owned(), provider.to_owned()),
        );
    }

    /// Sends `message` on the answer stream of the client request `related_id` of
    /// `session`, when that stream is open and has room; false otherwise.
    pub fn to_request_stream(&self, session: &str, related_id: &str, message: &[u8]) -> bool {
        let stream = self
            .request_streams
            .get(&(session.to_owned(), related_id.to_owned()))
            .map(|s| s.clone());
        if let Some((stream, delivered)) = stream
            && stream.try_send(message.to_vec()).is_ok()
        {
            delivered.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
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
