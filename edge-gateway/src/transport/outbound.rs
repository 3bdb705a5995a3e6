//! What reaches clients without their asking, fanned out to every front door: upstream
//! servers' own messages (notifications, server-to-client requests) and the list changes of
//! each snapshot, to legacy sessions (a request's answer stream, else the GET stream) and to
//! the `subscriptions/listen` streams the gateway serves modern clients (`modern_listen.rs`).

use std::sync::Weak;

use mcpr_core::jsonrpc::Message;
use mcpr_core::relay::{AgentEvent, EventKind};

use crate::Gateway;
use crate::sessions::list_changes::{Changes, diff, notifications};
use crate::transport::MODERN_SESSION;
use crate::views::View;

/// Announces every snapshot's changes to the clients they concern, for as long as the
/// gateway lives.
pub async fn announce(gateway: Weak<Gateway>, mut swapped: tokio::sync::watch::Receiver<u64>) {
    let Some(mut before) = gateway.upgrade().map(|g| g.snapshot.load_full()) else {
        return;
    };
    while swapped.changed().await.is_ok() {
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        let after = gateway.snapshot.load_full();
        let changes = diff(&before, &after);
        if !changes.is_empty() {
            tracing::debug!(version = after.version, ?changes, "lists changed");
            gateway.announce_changes(&changes);
        }
        before = after;
    }
}

impl Gateway {
    /// Announces `changes` to the legacy sessions and the listen streams they concern.
    fn announce_changes(&self, changes: &Changes) {
        for session in self.sessions.iter() {
            for method in notifications(changes.of(&session.view)) {
                if !session.push(Message::notification(method, None).to_bytes()) {
                    tracing::debug!(session = %session.key(), "outbox full; list change dropped");
                }
            }
        }
        self.listeners.announce(changes);
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
            self.delivery
                .expect_answer(&event.client_session, id, relay_url, &event.provider);
        }
        if event.client_session == MODERN_SESSION
            && event.kind == EventKind::Notification
            && event.related_id.is_empty()
        {
            // Addressed to no request of a modern client, so to the listen streams the
            // gateway serves them (their upstream subscriptions are made as this session).
            self.listeners.deliver(&event.provider, &event.message);
            return;
        }
        if self
            .delivery
            .to_request_stream(&event.client_session, &event.related_id, &bytes)
        {
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
