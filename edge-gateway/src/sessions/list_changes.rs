//! `notifications/{tools,resources,prompts}/list_changed` for the clients of every view,
//! from the difference between successive snapshots: a provider added, removed, enabled,
//! disabled, started or stopped, or an upstream whose tool list changed (its agent fetches
//! the list again and reports it, so the change reaches the snapshot like any other).
//!
//! Each view hears only of changes to what it shows: the flat view of its tools, the
//! hierarchical view of its providers and their tools (what `list_providers`, `list_tools`
//! and `search_tools` answer), a transparent view of its one provider. Legacy sessions get
//! them on their GET stream (the session's outbox), modern clients on the
//! `subscriptions/listen` streams the gateway serves (`modern_listen.rs`).
//!
//! A transparent view's clients also get what the upstream itself says (`sessions.rs`), so
//! a change may be announced twice: a client lists again, no harm done.

use std::sync::Arc;

use mcpr_core::model::ServerState;

use crate::snapshot::{Provider, Snapshot};
use crate::views::View;

/// Which lists of one view changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lists {
    pub tools: bool,
    pub resources: bool,
    pub prompts: bool,
}

impl Lists {
    pub fn any(&self) -> bool {
        self.tools || self.resources || self.prompts
    }
}

/// What changed from one snapshot to the next, per view.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub hierarchical: bool,
    pub flat: bool,
    /// Transparent views whose lists changed, by provider name.
    pub transparent: Vec<(String, Lists)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.hierarchical && !self.flat && self.transparent.is_empty()
    }

    /// What changed for a client of `view`.
    pub fn of(&self, view: &View) -> Lists {
        match view {
            View::Hierarchical => Lists {
                tools: self.hierarchical,
                ..Lists::default()
            },
            View::Flat => Lists {
                tools: self.flat,
                ..Lists::default()
            },
            View::Transparent(name) => self
                .transparent
                .iter()
                .find(|(provider, _)| provider == name)
                .map(|(_, lists)| *lists)
                .unwrap_or_default(),
        }
    }
}

pub fn diff(before: &Snapshot, after: &Snapshot) -> Changes {
    let mut transparent = Vec::new();
    let names = before.providers.keys().chain(
        after
            .providers
            .keys()
            .filter(|n| !before.providers.contains_key(*n)),
    );
    for name in names {
        let lists = transparent_change(
            before.providers.get(name).map(Arc::as_ref),
            after.providers.get(name).map(Arc::as_ref),
        );
        if lists.any() {
            transparent.push((name.clone(), lists));
        }
    }
    transparent.sort_by(|a, b| a.0.cmp(&b.0));
    let flat = before.flat_tools.get() != after.flat_tools.get();
    let hierarchical =
        flat || before.listed.len() != after.listed.len()
            || before.listed.iter().zip(&after.listed).any(|(b, a)| {
                b.name != a.name || b.state != a.state || b.description != a.description
            });
    Changes {
        hierarchical,
        flat,
        transparent,
    }
}

/// A transparent view shows its provider's lists while the upstream runs, nothing otherwise.
fn transparent_change(before: Option<&Provider>, after: Option<&Provider>) -> Lists {
    fn serving(p: Option<&Provider>) -> Option<&Provider> {
        p.filter(|p| p.enabled && p.state == ServerState::Running)
    }
    let (before, after) = (serving(before), serving(after));
    let offers = |p: Option<&Provider>, list: &str| {
        p.and_then(|p| p.server_info.as_ref())
            .and_then(|info| info.get("capabilities"))
            .is_some_and(|caps| caps.get(list).is_some())
    };
    let started_or_stopped = before.is_some() != after.is_some();
    let tools_differ = match (before, after) {
        (Some(b), Some(a)) => {
            b.tools.len() != a.tools.len()
                || b.tools
                    .iter()
                    .zip(&a.tools)
                    .any(|(b, a)| b.raw.get() != a.raw.get())
        }
        _ => started_or_stopped,
    };
    let changed = |list: &str| started_or_stopped && (offers(before, list) || offers(after, list));
    Lists {
        tools: tools_differ,
        resources: changed("resources"),
        prompts: changed("prompts"),
    }
}

/// The notifications that announce `lists`.
pub fn notifications(lists: Lists) -> impl Iterator<Item = &'static str> {
    [
        (lists.tools, "notifications/tools/list_changed"),
        (lists.resources, "notifications/resources/list_changed"),
        (lists.prompts, "notifications/prompts/list_changed"),
    ]
    .into_iter()
    .filter_map(|(changed, method)| changed.then_some(method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpr_proto as pb;
    use serde_json::json;

    fn provider(name: &str, state: pb::ServerState, tools: &[&str]) -> pb::ProviderConfig {
        let tools: Vec<_> = tools
            .iter()
            .map(|t| json!({"name": t, "inputSchema": {"type": "object"}}))
            .collect();
        pb::ProviderConfig {
            id: name.into(),
            name: name.into(),
            enabled: true,
            agent_id: "a".into(),
            status: Some(pb::ServerStatus {
                state: state as i32,
                tools_json: serde_json::to_string(&tools).unwrap(),
                server_info_json: json!({"capabilities": {"tools": {}, "prompts": {}}}).to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn snapshot(providers: Vec<pb::ProviderConfig>) -> Snapshot {
        Snapshot::from_proto(pb::ConfigSnapshot {
            version: 1,
            providers,
            ..Default::default()
        })
    }

    #[test]
    fn each_view_hears_of_what_it_shows() {
        use pb::ServerState::{Running, Starting};
        let empty = snapshot(vec![]);
        let starting = snapshot(vec![provider("a", Starting, &[])]);
        let running = snapshot(vec![provider("a", Running, &["x"])]);
        // Added, not running yet: the providers list changed, no tool appeared.
        let added = diff(&empty, &starting);
        assert!(added.hierarchical && !added.flat && added.transparent.is_empty());
        // Started: every view, the transparent one for its tools and prompts.
        let started = diff(&starting, &running);
        assert!(started.hierarchical && started.flat);
        let lists = started.of(&View::Transparent("a".into()));
        assert!(
            lists.tools && lists.prompts && !lists.resources,
            "{lists:?}"
        );
        assert_eq!(started.of(&View::Transparent("b".into())), Lists::default());
        // The upstream's tools changed while it ran.
        let more = snapshot(vec![provider("a", Running, &["x", "y"])]);
        let grew = diff(&running, &more);
        let lists = grew.of(&View::Transparent("a".into()));
        assert!(grew.flat && lists.tools && !lists.prompts);
        // Nothing changed.
        assert!(diff(&more, &snapshot(vec![provider("a", Running, &["x", "y"])])).is_empty());
        // Disabled: gone from every view.
        let mut off = provider("a", Running, &["x", "y"]);
        off.enabled = false;
        let disabled = diff(&more, &snapshot(vec![off]));
        assert!(disabled.flat && disabled.hierarchical);
        assert!(disabled.of(&View::Transparent("a".into())).tools);
    }
}
