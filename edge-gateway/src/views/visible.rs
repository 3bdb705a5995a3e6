//! What the caller's access lets it see of the snapshot: the providers listed to it and the
//! flat view's tools (`access::caller`).

use std::sync::Arc;

use crate::access::caller;
use crate::snapshot::{Provider, Snapshot, flat_tools_of};

/// The providers listed to the caller.
pub fn visible_providers(snapshot: &Snapshot) -> Vec<&Arc<Provider>> {
    let access = caller();
    snapshot
        .listed
        .iter()
        .filter(|p| access.allows_provider(&p.name))
        .collect()
}

/// The flat view's `tools/list` result for the caller: the prebuilt one when it may use
/// everything, else rebuilt from the allowed tools.
pub fn flat_tools(snapshot: &Snapshot) -> Box<serde_json::value::RawValue> {
    let access = caller();
    if access.is_all() {
        return snapshot.flat_tools.clone();
    }
    let providers = snapshot
        .listed
        .iter()
        .filter(|p| access.allows_provider(&p.name));
    flat_tools_of(providers, |provider, tool| {
        access.allows_tool(&provider.name, &tool.upstream_name)
    })
}
