//! The gateway's view of the configuration: what the control plane last sent, turned once
//! into the shapes the data path reads (providers by name, tools parsed for listing and
//! search, the flat view's renamed tools). Swapped atomically; readers never lock.

use std::collections::HashMap;
use std::sync::Arc;

use mcpr_core::model::ServerState;
use mcpr_proto as pb;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub mod search;
pub mod watch;

use search::SearchIndex;

/// Separates provider and tool in the flat view (`/mcp/all`): `provider__tool`.
pub const FLAT_SEPARATOR: &str = "__";

#[derive(Debug)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// The tool exactly as the upstream listed it.
    pub raw: Box<RawValue>,
    /// Its arguments mirrored in `Mcp-Param-*` headers (`x-mcp-header`), read once here
    /// rather than from `raw` on every modern call.
    pub header_params: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub agent_id: String,
    pub state: ServerState,
    pub last_error: String,
    pub tools: Vec<Tool>,
    /// The upstream's `initialize` result, when it has connected.
    pub server_info: Option<Map<String, Value>>,
}

impl Provider {
    /// Enabled but not serving yet: not placed on an agent, or placed and not started.
    /// Lists wait a while for such a provider rather than show it empty (`views.rs`).
    pub fn is_starting(&self) -> bool {
        self.enabled
            && (self.agent_id.is_empty()
                || matches!(self.state, ServerState::Pending | ServerState::Starting))
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub providers: HashMap<String, Arc<Provider>>,
    /// Enabled providers sorted by name, as listed to clients.
    pub listed: Vec<Arc<Provider>>,
    /// Whether one of `listed` is still starting: read by every list request, so that the
    /// usual case (all settled) costs one load.
    pub any_starting: bool,
    /// agent id -> relay URL
    pub agents: HashMap<String, String>,
    /// The flat view's `tools/list` result, built once per snapshot.
    pub flat_tools: Box<RawValue>,
    /// Seals client session ids (empty until the control plane sends one).
    pub session_key: Vec<u8>,
    pub search: SearchIndex,
    /// API keys and the authentication policy (`auth.rs`).
    pub credentials: crate::access::Credentials,
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot::from_proto(pb::ConfigSnapshot::default())
    }

    pub fn from_proto(snapshot: pb::ConfigSnapshot) -> Snapshot {
        let mut providers = HashMap::new();
        for p in snapshot.providers {
            let status = p.status.unwrap_or_default();
            let tools = parse_tools(&p.name, &status.tools_json);
            let server_info =
                serde_json::from_str::<Map<String, Value>>(&status.server_info_json).ok();
            let provider = Provider {
                id: p.id,
                description: p.description,
                enabled: p.enabled,
                agent_id: p.agent_id,
                state: ServerState::from_proto(status.state),
                last_error: status.last_error,
                tools,
                server_info,
                name: p.name.clone(),
            };
            providers.insert(p.name, Arc::new(provider));
        }
        let mut listed: Vec<Arc<Provider>> =
            providers.values().filter(|p| p.enabled).cloned().collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        let flat_tools = flat_tools(&listed);
        let search = SearchIndex::build(&listed);
        Snapshot {
            version: snapshot.version,
            providers,
            any_starting: listed.iter().any(|p| p.is_starting()),
            listed,
            agents: snapshot
                .agents
                .into_iter()
                .map(|a| (a.id, a.relay_url))
                .collect(),
            flat_tools,
            search,
            session_key: snapshot.session_key,
            credentials: crate::access::Credentials::from_proto(
                snapshot.credentials,
                snapshot.auth,
            ),
        }
    }
}

fn parse_tools(provider: &str, tools_json: &str) -> Vec<Tool> {
    if tools_json.is_empty() {
        return Vec::new();
    }
    let raw: Vec<Box<RawValue>> = match serde_json::from_str(tools_json) {
        Ok(raw) => raw,
        Err(e) => {
            tracing::warn!(%provider, error = %e, "ignoring an unreadable tool list");
            return Vec::new();
        }
    };
    raw.into_iter()
        .filter_map(|raw| {
            #[derive(serde::Deserialize)]
            struct Head {
                name: String,
                #[serde(default)]
                description: Option<String>,
                #[serde(default, rename = "inputSchema")]
                input_schema: Option<Value>,
            }
            let head: Head = serde_json::from_str(raw.get()).ok()?;
            Some(Tool {
                name: head.name,
                description: head.description.unwrap_or_default(),
                header_params: head
                    .input_schema
                    .as_ref()
                    .map(mcpr_core::mcp_headers::param_annotations)
                    .unwrap_or_default(),
                raw,
            })
        })
        .collect()
}

/// `{"tools": [...]}` with every tool renamed `provider__tool`, all other fields untouched.
fn flat_tools(listed: &[Arc<Provider>]) -> Box<RawValue> {
    flat_tools_of(listed.iter(), |_, _| true)
}

/// The flat view's `{"tools": [...]}` of the given providers' tools that `keep` lets through,
/// each renamed `provider__tool`, all other fields untouched.
pub fn flat_tools_of<'a>(
    providers: impl Iterator<Item = &'a Arc<Provider>>,
    keep: impl Fn(&Provider, &Tool) -> bool,
) -> Box<RawValue> {
    let mut tools = Vec::new();
    for provider in providers {
        for tool in provider.tools.iter().filter(|t| keep(provider, t)) {
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
