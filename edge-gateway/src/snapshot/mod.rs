//! The gateway's view of the configuration: what the control plane last sent, turned once
//! into the shapes the data path reads (providers by name, tools parsed for listing and
//! search, the flat view's renamed tools). Swapped atomically; readers never lock.
//!
//! The admin's tool settings are applied here, once per snapshot: a disabled tool is left
//! out of its provider's `tools` (so of every list, search and flat name), a renamed or
//! redescribed one is listed as the admin wants. What the data path still needs of them
//! (refusing a disabled tool by name, mapping a new name back) it finds in
//! `Provider::tool_overrides`, which is empty, and so costs nothing, for most providers.

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
    /// The name clients see: the upstream's, or the admin's override.
    pub name: String,
    /// The name the upstream lists it under, which calls are relayed with and which
    /// `provider/tool` scopes name (a rename does not change what a key may use).
    pub upstream_name: String,
    pub description: String,
    /// The tool exactly as the upstream listed it, but for the admin's name and
    /// description overrides.
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
    /// The tools offered to clients: disabled ones left out, overrides applied.
    pub tools: Vec<Tool>,
    /// The upstream's `initialize` result, when it has connected.
    pub server_info: Option<Map<String, Value>>,
    /// The admin's settings by the upstream's tool name; empty for a provider without any.
    pub tool_overrides: HashMap<String, ToolOverride>,
}

/// What the admin set for one tool (`mcpr tool disable`, `PATCH …/tools/{tool}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOverride {
    pub disabled: bool,
    pub name: Option<String>,
    pub description: Option<String>,
}

impl ToolOverride {
    fn from_proto(o: pb::ToolOverride) -> (String, ToolOverride) {
        let text = |s: String| (!s.is_empty()).then_some(s);
        (
            o.tool,
            ToolOverride {
                disabled: o.disabled,
                name: text(o.name),
                description: text(o.description),
            },
        )
    }
}

impl Provider {
    /// Enabled but not serving yet: not placed on an agent, or placed and not started.
    /// Lists wait a while for such a provider rather than show it empty (`views.rs`). One
    /// placed nowhere and stopped (no agent matches its selector) is not starting.
    pub fn is_starting(&self) -> bool {
        self.enabled
            && match self.agent_id.is_empty() {
                true => self.state != ServerState::Stopped,
                false => matches!(self.state, ServerState::Pending | ServerState::Starting),
            }
    }

    /// Why `name`, which this provider does not offer under that name, is refused: it
    /// names a disabled tool (by its upstream name or its override), or a renamed tool by
    /// its old name. `None`: the admin's settings have nothing to say about it.
    pub fn tool_refusal(&self, name: &str) -> Option<String> {
        if self.tool_overrides.is_empty() {
            return None;
        }
        let provider = &self.name;
        let disabled = self
            .tool_overrides
            .iter()
            .any(|(tool, o)| o.disabled && (tool == name || o.name.as_deref() == Some(name)));
        if disabled {
            return Some(format!(
                "tool {name:?} of provider {provider:?} is disabled by the router's admin"
            ));
        }
        let renamed = self
            .tool_overrides
            .get(name)
            .and_then(|o| o.name.as_deref());
        renamed.map(|new| format!("tool {name:?} of provider {provider:?} is offered as {new:?}"))
    }

    /// The upstream's name of the tool offered as `name`, when the admin renamed it.
    pub fn renamed(&self, name: &str) -> Option<&str> {
        if self.tool_overrides.is_empty() {
            return None;
        }
        self.tools
            .iter()
            .find(|t| t.name == name && t.upstream_name != name)
            .map(|t| t.upstream_name.as_str())
    }

    /// An upstream's own `tools/list` entries as this provider offers them: disabled tools
    /// left out, overrides applied (the transparent view relays the upstream's list).
    pub fn apply_tool_overrides(&self, tools: &mut Vec<Value>) {
        if self.tool_overrides.is_empty() {
            return;
        }
        tools.retain_mut(|tool| {
            let Some(object) = tool.as_object_mut() else {
                return true;
            };
            let upstream = object
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(o) = self.tool_overrides.get(upstream) else {
                return true;
            };
            if o.disabled {
                return false;
            }
            apply(object, o);
            true
        });
    }
}

/// Puts the override's name and description into a tool's JSON.
fn apply(object: &mut Map<String, Value>, o: &ToolOverride) {
    if let Some(name) = &o.name {
        object.insert("name".into(), Value::String(name.clone()));
    }
    if let Some(description) = &o.description {
        object.insert("description".into(), Value::String(description.clone()));
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    /// `version` is the cluster's one growing counter (`ConfigSnapshot.shared_version`).
    pub shared_version: bool,
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
    /// From the control plane's building the snapshot to its arrival here (0 for the empty
    /// one, and when the clocks of the two machines disagree the other way).
    pub propagation_delay: std::time::Duration,
    /// What the audit sink records (`audit.rs`).
    pub audit: AuditPolicy,
}

/// The control plane's audit settings (`MCPR_AUDIT`, `MCPR_AUDIT_ARGUMENTS`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AuditPolicy {
    /// False when the control plane sends none (one from before the audit log).
    pub enabled: bool,
    pub arguments: AuditArguments,
    /// The control plane takes reports as batches (`AuditReport.batch`); false for one of
    /// before them, which is sent `entries` instead.
    pub batches: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum AuditArguments {
    #[default]
    Off,
    Hash,
    Full,
}

impl AuditPolicy {
    fn from_proto(policy: Option<pb::AuditPolicy>) -> AuditPolicy {
        let Some(policy) = policy else {
            return AuditPolicy::default();
        };
        AuditPolicy {
            enabled: policy.enabled,
            arguments: match policy.arguments.as_str() {
                "hash" => AuditArguments::Hash,
                "full" => AuditArguments::Full,
                _ => AuditArguments::Off,
            },
            batches: policy.batches,
        }
    }
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot::from_proto(pb::ConfigSnapshot::default())
    }

    pub fn from_proto(snapshot: pb::ConfigSnapshot) -> Snapshot {
        let propagation_delay = match snapshot.built_at_ms {
            0 => std::time::Duration::ZERO,
            built => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                std::time::Duration::from_millis(now.saturating_sub(built).max(0) as u64)
            }
        };
        let mut providers = HashMap::new();
        for p in snapshot.providers {
            let status = p.status.unwrap_or_default();
            let tool_overrides: HashMap<String, ToolOverride> = p
                .tool_overrides
                .into_iter()
                .map(ToolOverride::from_proto)
                .collect();
            let tools = parse_tools(&p.name, &status.tools_json, &tool_overrides);
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
                tool_overrides,
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
            shared_version: snapshot.shared_version,
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
            propagation_delay,
            audit: AuditPolicy::from_proto(snapshot.audit),
        }
    }
}

fn parse_tools(
    provider: &str,
    tools_json: &str,
    overrides: &HashMap<String, ToolOverride>,
) -> Vec<Tool> {
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
            let (raw, name, description) = match overrides.get(&head.name) {
                None => (raw, head.name.clone(), head.description.unwrap_or_default()),
                Some(o) if o.disabled => return None,
                Some(o) => {
                    let mut object: Map<String, Value> = serde_json::from_str(raw.get()).ok()?;
                    apply(&mut object, o);
                    (
                        mcpr_core::jsonrpc::to_raw(&Value::Object(object)),
                        o.name.clone().unwrap_or_else(|| head.name.clone()),
                        o.description
                            .clone()
                            .or(head.description)
                            .unwrap_or_default(),
                    )
                }
            };
            Some(Tool {
                name,
                upstream_name: head.name,
                description,
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
