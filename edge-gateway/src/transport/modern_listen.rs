//! `subscriptions/listen` for modern clients of an upstream that does not know it (a server
//! of the legacy era answers it with -32601): the gateway builds the stream itself from
//! what the upstream sends every client of the provider — list changes, filtered by the
//! client's `notifications` filter, and `notifications/resources/updated` for the URIs the
//! client listed only, which the gateway subscribes to upstream (`resources/subscribe` on
//! the shared upstream session, unsubscribed when the last listener of a URI is gone).
//! Every notification carries the client's subscription id, after the acknowledgement.
//!
//! The views of every provider (`/mcp`, `/mcp/all`) have no upstream to relay a listen to:
//! their listen streams are always the gateway's, and carry the tool list changes of the
//! view (`list_changes.rs`); they offer no resources or prompts, so a filter asking for
//! those is acknowledged without them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mcpr_core::jsonrpc::Message;
use mcpr_core::mcp_headers::META_SUBSCRIPTION_ID;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Gateway;
use crate::transport::MODERN_SESSION;
use crate::views::View;

/// What one listener asked for (SEP-2575 `SubscriptionFilter`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub tools_list_changed: bool,
    pub prompts_list_changed: bool,
    pub resources_list_changed: bool,
    pub resource_uris: Vec<String>,
}

impl Filter {
    pub fn from_params(params: Option<&Value>) -> Filter {
        let filter = params.and_then(|p| p.get("notifications"));
        let flag = |name: &str| {
            filter
                .and_then(|f| f.get(name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Filter {
            tools_list_changed: flag("toolsListChanged"),
            prompts_list_changed: flag("promptsListChanged"),
            resources_list_changed: flag("resourcesListChanged"),
            resource_uris: filter
                .and_then(|f| f.get("resourceSubscriptions"))
                .and_then(Value::as_array)
                .map(|uris| {
                    uris.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether a notification of the provider belongs on this listener's stream.
    fn wants(&self, method: &str, params: Option<&Value>) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools_list_changed,
            "notifications/prompts/list_changed" => self.prompts_list_changed,
            "notifications/resources/list_changed" => self.resources_list_changed,
            "notifications/resources/updated" => params
                .and_then(|p| p.get("uri"))
                .and_then(Value::as_str)
                .is_some_and(|uri| self.resource_uris.iter().any(|u| u == uri)),
            _ => false,
        }
    }

    /// The filter as the acknowledgement echoes it.
    fn to_json(&self) -> Value {
        json!({
            "toolsListChanged": self.tools_list_changed,
            "promptsListChanged": self.prompts_list_changed,
            "resourcesListChanged": self.resources_list_changed,
            "resourceSubscriptions": self.resource_uris,
        })
    }
}

struct Listener {
    view: View,
    filter: Filter,
    subscription_id: Value,
    stream: mpsc::Sender<Vec<u8>>,
}

/// The listen streams the gateway serves itself, and its upstream resource subscriptions.
#[derive(Default)]
pub struct Listeners {
    open: Mutex<HashMap<u64, Listener>>,
    next: AtomicU64,
    /// (provider, URI) -> how many listeners want it.
    subscribed: Mutex<HashMap<(String, String), usize>>,
}

impl Listeners {
    /// Hands a notification the provider sent every client to the listeners that want it.
    pub fn deliver(&self, provider: &str, message: &Message) {
        let Some(method) = message.method.as_deref() else {
            return;
        };
        let params = message.params_value().ok().map(Value::Object);
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for listener in open.values() {
            let of_provider = matches!(&listener.view, View::Transparent(p) if p == provider);
            if of_provider && listener.filter.wants(method, params.as_ref()) {
                let tagged = tag(method, params.clone(), &listener.subscription_id);
                if listener.stream.try_send(tagged).is_err() {
                    tracing::debug!(provider, "listen stream full or gone; notification dropped");
                }
            }
        }
    }

    /// Hands the list changes of a new snapshot to the listeners of the views they concern.
    pub fn announce(&self, changes: &crate::sessions::list_changes::Changes) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for listener in open.values() {
            for method in crate::sessions::list_changes::notifications(changes.of(&listener.view)) {
                if listener.filter.wants(method, None) {
                    let tagged = tag(method, None, &listener.subscription_id);
                    if listener.stream.try_send(tagged).is_err() {
                        tracing::debug!("listen stream full or gone; list change dropped");
                    }
                }
            }
        }
    }

    /// URIs this listener is the first to want (to subscribe upstream).
    fn add(&self, listener: Listener) -> (u64, Vec<String>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut subscribed = self.subscribed.lock().unwrap_or_else(|e| e.into_inner());
        let mut first = Vec::new();
        let provider = listener.provider().to_owned();
        for uri in &listener.filter.resource_uris {
            let count = subscribed
                .entry((provider.clone(), uri.clone()))
                .or_default();
            *count += 1;
            if *count == 1 {
                first.push(uri.clone());
            }
        }
        drop(subscribed);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, listener);
        (id, first)
    }

    /// URIs no listener wants any more (to unsubscribe upstream).
    fn remove(&self, id: u64) -> (String, Vec<String>) {
        let Some(listener) = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
        else {
            return (String::new(), Vec::new());
        };
        let mut subscribed = self.subscribed.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = Vec::new();
        let provider = listener.provider().to_owned();
        for uri in listener.filter.resource_uris {
            let key = (provider.clone(), uri.clone());
            if let Some(count) = subscribed.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    subscribed.remove(&key);
                    last.push(uri);
                }
            }
        }
        (provider, last)
    }
}

impl Listener {
    /// The provider of a transparent view's listener ("" for the views of every provider,
    /// whose filters hold no resource subscriptions).
    fn provider(&self) -> &str {
        match &self.view {
            View::Transparent(provider) => provider,
            View::Hierarchical | View::Flat => "",
        }
    }
}

/// A notification with the listener's subscription id in `_meta`.
fn tag(method: &str, params: Option<Value>, subscription_id: &Value) -> Vec<u8> {
    let mut params = match params {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert(META_SUBSCRIPTION_ID.into(), subscription_id.clone());
    }
    Message::notification(method, Some(Value::Object(params))).to_bytes()
}

/// Serves a listen stream for `view` from the gateway: the acknowledgement first, then
/// what the filter lets through, until the client hangs up (the returned receiver's
/// sender is dropped with the `Registration`).
pub async fn open(
    gateway: &Arc<Gateway>,
    view: View,
    subscription_id: Value,
    mut filter: Filter,
) -> (Registration, mpsc::Receiver<Vec<u8>>) {
    if !matches!(view, View::Transparent(_)) {
        // Tools are all these views offer.
        filter = Filter {
            tools_list_changed: filter.tools_list_changed,
            ..Filter::default()
        };
    }
    let (stream, events) = mpsc::channel(64);
    let ack = json!({
        "_meta": {(META_SUBSCRIPTION_ID): subscription_id},
        "notifications": filter.to_json(),
    });
    let _ = stream
        .send(
            Message::notification("notifications/subscriptions/acknowledged", Some(ack)).to_bytes(),
        )
        .await;
    let provider = match &view {
        View::Transparent(provider) => provider.clone(),
        View::Hierarchical | View::Flat => String::new(),
    };
    let (id, first) = gateway.listeners.add(Listener {
        view,
        filter,
        subscription_id,
        stream,
    });
    subscribe(gateway, &provider, "resources/subscribe", first).await;
    let registration = Registration {
        gateway: gateway.clone(),
        id,
    };
    (registration, events)
}

/// (Un)subscribes the provider's shared upstream session to `uris`.
async fn subscribe(gateway: &Arc<Gateway>, provider: &str, method: &str, uris: Vec<String>) {
    let view = View::Transparent(provider.to_owned());
    for uri in uris {
        let request = Message::request(
            crate::transport::modern::internal_id(),
            method,
            Some(json!({"uri": uri})),
        );
        let answer = gateway.handle(&view, MODERN_SESSION, request).await;
        if let Some(error) = answer.and_then(|a| a.error) {
            tracing::debug!(provider, %uri, error = %error.get(), "upstream {method} failed");
        }
    }
}

/// A listen stream served by the gateway; dropping it unregisters it (and unsubscribes the
/// URIs nobody else listens to).
pub struct Registration {
    gateway: Arc<Gateway>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (provider, last) = self.gateway.listeners.remove(self.id);
        if last.is_empty() {
            return;
        }
        let gateway = self.gateway.clone();
        tokio::spawn(crate::access::inherit(async move {
            subscribe(&gateway, &provider, "resources/unsubscribe", last).await;
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_let_through_what_was_asked_only() {
        let filter = Filter::from_params(Some(&json!({"notifications": {
            "toolsListChanged": true, "resourceSubscriptions": ["test://a"]
        }})));
        assert!(filter.wants("notifications/tools/list_changed", None));
        assert!(!filter.wants("notifications/prompts/list_changed", None));
        assert!(filter.wants(
            "notifications/resources/updated",
            Some(&json!({"uri": "test://a"}))
        ));
        assert!(!filter.wants(
            "notifications/resources/updated",
            Some(&json!({"uri": "test://b"}))
        ));
        let tagged = tag("notifications/tools/list_changed", None, &json!(7));
        assert!(
            String::from_utf8(tagged)
                .unwrap()
                .contains(r#""io.modelcontextprotocol/subscriptionId":7"#)
        );
    }
}
