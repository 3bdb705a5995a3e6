//! What the caller's access lets it see of the snapshot: the providers listed to it and the
//! flat view's tools (`access::caller`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::access::caller;
use crate::snapshot::{FLAT_SEPARATOR, Provider, Snapshot};

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
    let mut tools = Vec::new();
    for provider in snapshot
        .listed
        .iter()
        .filter(|p| access.allows_provider(&p.name))
    {
        for tool in provider
            .tools
            .iter()
            .filter(|t| access.allows_tool(&provider.name, &t.name))
        {
            let Ok(mut object) = serde_json::from_str::<Map<String, Value>>(tool.raw.get()) else {
                continue;
            };
            object.insert(
                "name".into(),
                Value::String(format!("{}{FLAT_SEPARATOR}{}", provider.name, tool.name)),
            );
            tools.push(Value::Object(object));
        }
    }
    mcpr_core::jsonrpc::to_raw(&serde_json::json!({ "tools": tools }))
}
