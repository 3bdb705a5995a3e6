//! The server registry: the one place that changes registered servers. It validates input,
//! writes through the store, keeps an in-memory copy for the watchers, and tells the fleet
//! so that gateways and agents see the change at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use mcpr_core::model::{self, FieldError, RuntimeSpec, ServerSource, SessionMode};
use mcpr_core::placement::Placement;
use serde::{Deserialize, Serialize};

use crate::fleet::{Fleet, ServerStatusView};
use crate::store::{ServerRecord, Store, StoreError, ToolOverrideRecord};

/// Why a registry operation was refused; mapped to HTTP in one place (`api::ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("no server named {0:?}")]
    NotFound(String),
    #[error("a server named {0:?} already exists")]
    Duplicate(String),
    #[error("server {server:?} has no tool {tool:?} (it lists: {known})")]
    UnknownTool {
        server: String,
        tool: String,
        known: String,
    },
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(name) => RegistryError::NotFound(name),
            StoreError::Duplicate(name) => RegistryError::Duplicate(name),
            other => RegistryError::Store(other),
        }
    }
}

/// `POST /api/v1/servers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub runtime: RuntimeSpec,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub session_mode: SessionMode,
    /// Where it came from (an analyzed repository, a registry entry).
    #[serde(default)]
    pub source: Option<ServerSource>,
    /// Which agents may run it (`{"selector": {"zone": "a"}}`); absent: any agent.
    #[serde(default)]
    pub placement: Placement,
}

fn yes() -> bool {
    true
}

/// `PATCH /api/v1/servers/{name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    pub description: Option<String>,
    pub runtime: Option<RuntimeSpec>,
    pub enabled: Option<bool>,
    pub session_mode: Option<SessionMode>,
    pub source: Option<ServerSource>,
    /// Replaces the selector (`{"selector": {}}`: any agent); the server moves when its
    /// agent no longer matches.
    pub placement: Option<Placement>,
}

/// `PATCH /api/v1/servers/{name}/tools/{tool}`: absent fields stay as they are; `""`
/// restores the upstream's name or description.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPatch {
    pub enabled: Option<bool>,
    pub name: Option<String>,
    pub description: Option<String>,
}

/// One tool's settings as the API shows them (`mcpr` of each tool in `GET …/tools`, and
/// the answer of the per-tool routes): the overrides, `None` where the upstream's stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSettings {
    pub server: String,
    pub tool: String,
    pub enabled: bool,
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A server as the API shows it: secrets redacted, live status attached.
#[derive(Debug, Serialize)]
pub struct ServerView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub runtime: RuntimeSpec,
    pub enabled: bool,
    pub session_mode: SessionMode,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ServerSource>,
    pub placement: Placement,
    /// Why it runs on no agent, while it does not (`no agent matches zone=a`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unplaced: Option<String>,
    pub status: ServerStatusView,
}

/// One entry of Claude Desktop's `mcpServers` map. Keys other clients add (`autoApprove`,
/// `timeout`, …) are ignored so that real configuration files import as they are.
#[derive(Debug, Deserialize)]
struct ImportEntry {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Some clients write `"type": "stdio" | "http" | "streamable-http"`; accepted and implied.
    #[serde(default, rename = "type")]
    _kind: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub created: Vec<String>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

pub struct Registry {
    store: Store,
    pub fleet: Arc<Fleet>,
    /// The stored servers, refreshed after every write (the control plane is the only writer).
    servers: RwLock<Arc<Vec<ServerRecord>>>,
    /// The stored tool settings by server id, refreshed with the servers.
    tool_overrides: RwLock<Arc<HashMap<String, Vec<ToolOverrideRecord>>>>,
    /// Held from a reload's read of the store to its swap of the copies above: without it
    /// two writes at once could each read, and the slower read (without the other's row)
    /// be swapped in last, losing a server that was stored and answered 201.
    reloading: tokio::sync::Mutex<()>,
}

impl Registry {
    pub async fn new(store: Store, fleet: Arc<Fleet>) -> Result<Registry, StoreError> {
        let servers = store.list_servers().await?;
        let tool_overrides = by_server(store.list_tool_overrides().await?);
        Ok(Registry {
            store,
            fleet,
            servers: RwLock::new(Arc::new(servers)),
            tool_overrides: RwLock::new(Arc::new(tool_overrides)),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The stored servers as of the last write.
    pub fn servers(&self) -> Arc<Vec<ServerRecord>> {
        self.servers.read().unwrap().clone()
    }

    async fn refresh(&self) -> Result<(), StoreError> {
        self.reload().await?;
        self.fleet.changed();
        Ok(())
    }

    /// Reads the servers again without announcing it (another control plane wrote them and
    /// the cluster's version says so already, `cluster/`).
    pub async fn reload(&self) -> Result<(), StoreError> {
        // Reads in lock order see every write committed before them, so the last swap holds
        // them all.
        let _one_at_a_time = self.reloading.lock().await;
        let servers = self.store.list_servers().await?;
        let tool_overrides = by_server(self.store.list_tool_overrides().await?);
        *self.servers.write().unwrap() = Arc::new(servers);
        *self.tool_overrides.write().unwrap() = Arc::new(tool_overrides);
        Ok(())
    }

    /// The tool settings of the server with id `server_id` (empty: all as the upstream lists).
    pub fn tool_overrides_of(&self, server_id: &str) -> Vec<ToolOverrideRecord> {
        self.tool_overrides
            .read()
            .unwrap()
            .get(server_id)
            .cloned()
            .unwrap_or_default()
    }

    fn find(&self, name: &str) -> Result<ServerRecord, RegistryError> {
        self.servers()
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))
    }

    pub fn view(&self, record: &ServerRecord) -> ServerView {
        let mut status = self.fleet.status(&record.id);
        if !record.enabled {
            status.state = model::ServerState::Stopped;
        }
        ServerView {
            id: record.id.clone(),
            name: record.name.clone(),
            description: record.description.clone(),
            runtime: record.runtime.redacted(),
            enabled: record.enabled,
            session_mode: record.session_mode,
            created_at: record.created_at.clone(),
            updated_at: record.updated_at.clone(),
            source: record.source.clone(),
            placement: record.placement.clone(),
            unplaced: match record.enabled {
                true => self
                    .fleet
                    .unplaced_reason(
                        &record.id,
                        record
                            .placement
                            .requirement(matches!(record.runtime, RuntimeSpec::Docker { .. })),
                    )
                    .map(|u| u.to_string()),
                false => None,
            },
            status,
        }
    }

    pub fn list(&self) -> Vec<ServerView> {
        self.servers().iter().map(|s| self.view(s)).collect()
    }

    pub fn get(&self, name: &str) -> Result<ServerView, RegistryError> {
        Ok(self.view(&self.find(name)?))
    }

    pub fn record(&self, name: &str) -> Result<ServerRecord, RegistryError> {
        self.find(name)
    }

    pub async fn create(&self, new: NewServer) -> Result<ServerView, RegistryError> {
        let record = validated_record(new)?;
        self.store.insert_server(&record).await?;
        self.refresh().await?;
        Ok(self.view(&record))
    }

    pub async fn update(
        &self,
        name: &str,
        patch: ServerPatch,
    ) -> Result<ServerView, RegistryError> {
        let mut record = self.find(name)?;
        if let Some(description) = patch.description {
            model::validate_description(&description)?;
            record.description = description;
        }
        if let Some(mut runtime) = patch.runtime {
            // What `GET` showed (secrets redacted), sent back, keeps the stored secrets.
            runtime.keep_redacted(Some(&record.runtime))?;
            runtime.validate()?;
            record.runtime = runtime;
        }
        if let Some(enabled) = patch.enabled {
            record.enabled = enabled;
        }
        if let Some(mode) = patch.session_mode {
            record.session_mode = mode;
        }
        if let Some(source) = patch.source {
            source.validate()?;
            record.source = Some(source);
        }
        if let Some(placement) = patch.placement {
            placement.validate()?;
            record.placement = placement;
        }
        record.updated_at = now_rfc3339();
        self.store.update_server(&record).await?;
        self.refresh().await?;
        Ok(self.view(&record))
    }

    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<ServerView, RegistryError> {
        self.update(
            name,
            ServerPatch {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
        .await
    }

    /// Asks the agent to restart the server by bumping its restart generation.
    pub async fn restart(&self, name: &str) -> Result<ServerView, RegistryError> {
        let mut record = self.find(name)?;
        record.restart_generation += 1;
        record.updated_at = now_rfc3339();
        self.store.update_server(&record).await?;
        self.refresh().await?;
        Ok(self.view(&record))
    }

    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let record = self.find(name)?;
        self.store.delete_server(name).await?;
        self.fleet.forget_server(&record.id);
        self.refresh().await?;
        Ok(())
    }

    /// Imports Claude Desktop's `{"mcpServers": {...}}`: all entries are validated first and
    /// nothing is written when one is invalid; names already registered are skipped.
    pub async fn import(&self, doc: serde_json::Value) -> Result<ImportReport, RegistryError> {
        let Some(map) = doc.get("mcpServers").and_then(|m| m.as_object()) else {
            return Err(FieldError::new(
                "mcpServers",
                "expected an object {\"mcpServers\": {NAME: {...}}}",
            )
            .into());
        };
        let existing = self.servers();
        let mut to_create = Vec::new();
        let mut skipped = Vec::new();
        for (name, entry) in map {
            let prefix = format!("mcpServers.{name}");
            let entry: ImportEntry = serde_json::from_value(entry.clone())
                .map_err(|e| FieldError::new(prefix.clone(), e.to_string()))?;
            let runtime = match (entry.command, entry.url) {
                (Some(command), None) => RuntimeSpec::Process {
                    command,
                    args: entry.args,
                    env: entry.env,
                    cwd: entry.cwd,
                },
                (None, Some(url)) => RuntimeSpec::Remote {
                    url,
                    headers: entry.headers,
                },
                _ => {
                    return Err(FieldError::new(
                        prefix,
                        "needs exactly one of \"command\" or \"url\"",
                    )
                    .into());
                }
            };
            let new = NewServer {
                name: name.clone(),
                description: entry.description.unwrap_or_default(),
                runtime,
                enabled: !entry.disabled,
                session_mode: SessionMode::default(),
                source: None,
                placement: Placement::default(),
            };
            let record = validated_record(new).map_err(|e| match e {
                RegistryError::Invalid(f) => RegistryError::Invalid(FieldError::new(
                    format!("{prefix}.{}", f.field),
                    f.message,
                )),
                other => other,
            })?;
            if existing.iter().any(|s| s.name == *name) {
                skipped.push(Skipped {
                    name: name.clone(),
                    reason: "a server with this name already exists".into(),
                });
            } else {
                to_create.push(record);
            }
        }
        let mut created = Vec::new();
        for record in to_create {
            match self.store.insert_server(&record).await {
                Ok(()) => created.push(record.name),
                Err(StoreError::Duplicate(name)) => skipped.push(Skipped {
                    name,
                    reason: "a server with this name already exists".into(),
                }),
                Err(e) => {
                    self.refresh().await?;
                    return Err(e.into());
                }
            }
        }
        self.refresh().await?;
        Ok(ImportReport { created, skipped })
    }

    /// The server's tools as its upstream last listed them, each with the admin's settings
    /// for it under `mcpr` (`ToolSettings`, without server and tool).
    pub fn tools(&self, name: &str) -> Result<Vec<serde_json::Value>, RegistryError> {
        let record = self.find(name)?;
        Ok(self.tools_of(&record))
    }

    pub(crate) fn tools_of(&self, record: &ServerRecord) -> Vec<serde_json::Value> {
        let status = self.fleet.status(&record.id);
        let mut tools: Vec<serde_json::Value> =
            serde_json::from_str(&status.tools_json).unwrap_or_default();
        let overrides = self.tool_overrides_of(&record.id);
        for tool in &mut tools {
            let Some(object) = tool.as_object_mut() else {
                continue;
            };
            let upstream = object
                .get("name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let settings = settings_of(&record.name, upstream, &overrides);
            object.insert(
                "mcpr".into(),
                serde_json::json!({
                    "enabled": settings.enabled,
                    "name": settings.name,
                    "description": settings.description,
                }),
            );
        }
        tools
    }

    /// `POST /api/v1/servers/{name}/tools/{tool}/enable|disable`.
    pub async fn set_tool_enabled(
        &self,
        server: &str,
        tool: &str,
        enabled: bool,
    ) -> Result<ToolSettings, RegistryError> {
        self.update_tool(
            server,
            tool,
            ToolPatch {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
        .await
    }

    /// Changes one tool's settings. The tool must be one the server lists, unless it lists
    /// none yet (not started: settings may be made before it runs) or settings exist for it
    /// already (so that they can be undone after the upstream dropped the tool). A name
    /// override may not take the name another tool of the server is shown under.
    pub async fn update_tool(
        &self,
        server: &str,
        tool: &str,
        patch: ToolPatch,
    ) -> Result<ToolSettings, RegistryError> {
        let record = self.find(server)?;
        model::validate_tool_name("tool", tool)?;
        let overrides = self.tool_overrides_of(&record.id);
        let listed: Vec<String> = self
            .tools_of(&record)
            .iter()
            .filter_map(|t| t.get("name").and_then(|n| n.as_str()).map(str::to_owned))
            .collect();
        let existing = overrides.iter().find(|o| o.tool == tool);
        if !listed.is_empty() && !listed.iter().any(|t| t == tool) && existing.is_none() {
            return Err(RegistryError::UnknownTool {
                server: server.to_owned(),
                tool: tool.to_owned(),
                known: listed.join(", "),
            });
        }
        let mut setting = existing.cloned().unwrap_or_else(|| ToolOverrideRecord {
            server_id: record.id.clone(),
            tool: tool.to_owned(),
            disabled: false,
            name: String::new(),
            description: String::new(),
            updated_at: String::new(),
        });
        if let Some(enabled) = patch.enabled {
            setting.disabled = !enabled;
        }
        if let Some(name) = patch.name {
            // Its own name is no override.
            let name = if name == tool { String::new() } else { name };
            if !name.is_empty() {
                model::validate_tool_name("name", &name)?;
                let names = listed
                    .iter()
                    .map(String::as_str)
                    .chain(overrides.iter().map(|o| o.tool.as_str()));
                if let Some(taken) = names
                    .filter(|t| *t != tool)
                    .find(|t| shown_as(&overrides, t) == name)
                {
                    return Err(FieldError::new(
                        "name",
                        format!("tool {taken:?} of server {server:?} is shown as {name:?} already"),
                    )
                    .into());
                }
            }
            setting.name = name;
        }
        if let Some(description) = patch.description {
            model::validate_description(&description)?;
            setting.description = description;
        }
        setting.updated_at = now_rfc3339();
        self.store.put_tool_override(&setting).await?;
        self.refresh().await?;
        Ok(settings_of(
            &record.name,
            tool,
            std::slice::from_ref(&setting),
        ))
    }
}

/// The name tool `upstream` is shown under.
fn shown_as<'a>(overrides: &'a [ToolOverrideRecord], upstream: &'a str) -> &'a str {
    overrides
        .iter()
        .find(|o| o.tool == upstream && !o.name.is_empty())
        .map_or(upstream, |o| o.name.as_str())
}

/// Tool settings grouped by server id.
fn by_server(records: Vec<ToolOverrideRecord>) -> HashMap<String, Vec<ToolOverrideRecord>> {
    let mut grouped: HashMap<String, Vec<ToolOverrideRecord>> = HashMap::new();
    for record in records {
        grouped
            .entry(record.server_id.clone())
            .or_default()
            .push(record);
    }
    grouped
}

fn settings_of(server: &str, tool: &str, overrides: &[ToolOverrideRecord]) -> ToolSettings {
    let setting = overrides.iter().find(|o| o.tool == tool);
    let text =
        |f: fn(&ToolOverrideRecord) -> &String| setting.map(f).filter(|v| !v.is_empty()).cloned();
    ToolSettings {
        server: server.to_owned(),
        tool: tool.to_owned(),
        enabled: !setting.is_some_and(|o| o.disabled),
        name: text(|o| &o.name),
        description: text(|o| &o.description),
    }
}

fn validated_record(mut new: NewServer) -> Result<ServerRecord, RegistryError> {
    model::validate_name(&new.name)?;
    model::validate_description(&new.description)?;
    // A redacted secret copied from another server is not a secret.
    new.runtime.keep_redacted(None)?;
    new.runtime.validate()?;
    if let Some(source) = &new.source {
        source.validate()?;
    }
    new.placement.validate()?;
    let now = now_rfc3339();
    Ok(ServerRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: new.name,
        description: new.description,
        runtime: new.runtime,
        enabled: new.enabled,
        session_mode: new.session_mode,
        restart_generation: 0,
        created_at: now.clone(),
        updated_at: now,
        source: new.source,
        placement: new.placement,
    })
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
