//! The MCP Registry client: the official API (`GET /v0/servers?search=…`,
//! `GET /v0/servers/{name}/versions/{version|latest}`) at `MCPR_REGISTRY_URL` (default
//! `https://registry.modelcontextprotocol.io`), or, for air-gapped hosts, a directory of
//! `server.json` files (`MCPR_REGISTRY_DIR`; bare documents, `{"server": …}` entries, or
//! saved `{"servers": […]}` list answers).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::server_json::ServerDoc;

pub const DEFAULT_URL: &str = "https://registry.modelcontextprotocol.io";

/// Largest registry answer read.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub enum Registry {
    Api {
        base: reqwest::Url,
        client: reqwest::Client,
    },
    Dir(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry has no server {0}")]
    NotFound(String),
    #[error("registry {0}")]
    Unreachable(String),
    #[error("registry answer: {0}")]
    Bad(String),
    #[error("{0}")]
    Config(String),
}

/// One server of a search, as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub version: Option<String>,
    /// `npm:@scope/pkg`, `pypi:name`, `oci:image`, `remote:URL`.
    pub runs: Vec<String>,
}

/// A registry entry: the `server.json` document and the registry's `_meta`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub server: serde_json::Value,
    #[serde(rename = "_meta")]
    pub meta: serde_json::Value,
}

impl Entry {
    pub fn doc(&self) -> Result<ServerDoc, RegistryError> {
        serde_json::from_value(self.server.clone())
            .map_err(|e| RegistryError::Bad(format!("not a server.json document: {e}")))
    }
}

impl Registry {
    /// From `MCPR_REGISTRY_DIR` (wins) or `MCPR_REGISTRY_URL`, read through `get`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Registry, RegistryError> {
        if let Some(dir) = get("MCPR_REGISTRY_DIR").filter(|d| !d.trim().is_empty()) {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(RegistryError::Config(format!(
                    "MCPR_REGISTRY_DIR {} is not a directory",
                    dir.display()
                )));
            }
            return Ok(Registry::Dir(dir));
        }
        let url = get("MCPR_REGISTRY_URL")
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let base = reqwest::Url::parse(url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                RegistryError::Config(format!("MCPR_REGISTRY_URL {url:?} is not an http(s) URL"))
            })?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("mcpr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        Ok(Registry::Api { base, client })
    }

    pub fn describe(&self) -> String {
        match self {
            Registry::Api { base, .. } => base.to_string(),
            Registry::Dir(dir) => dir.display().to_string(),
        }
    }

    fn url(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
        let mut url = base.clone();
        url.path_segments_mut()
            .expect("http URLs have paths")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn get_json(
        client: &reqwest::Client,
        url: reqwest::Url,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        let shown = url.to_string();
        let response = client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| RegistryError::Unreachable(format!("{shown}: {e}")))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(RegistryError::Unreachable(format!(
                "{shown}: HTTP {}",
                response.status()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RegistryError::Unreachable(format!("{shown}: {e}")))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(RegistryError::Bad(format!(
                "{shown}: over {MAX_ANSWER_BYTES} bytes"
            )));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Bad(format!("{shown}: {e}")))
    }

    pub async fn search(&self, query: &str, limit: usize) -> Result<Vec<Summary>, RegistryError> {
        let limit = limit.clamp(1, 100);
        let entries = match self {
            Registry::Api { base, client } => {
                let mut url = Self::url(base, &["v0", "servers"]);
                url.query_pairs_mut()
                    .append_pair("search", query)
                    .append_pair("limit", &limit.to_string())
                    .append_pair("version", "latest");
                let answer = Self::get_json(client, url).await?.unwrap_or_default();
                entries_of(answer)
            }
            Registry::Dir(dir) => {
                let needle = query.to_ascii_lowercase();
                read_dir_entries(dir)
                    .await?
                    .into_iter()
                    .filter(|e| {
                        ["name", "title", "description"].iter().any(|k| {
                            e.server
                                .get(*k)
                                .and_then(|v| v.as_str())
                                .is_some_and(|v| v.to_ascii_lowercase().contains(&needle))
                        })
                    })
                    .collect()
            }
        };
        let mut out: Vec<Summary> = Vec::new();
        for entry in latest_only(entries) {
            let Ok(doc) = entry.doc() else { continue };
            out.push(summary(&doc));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The entry of `name` at `version` (`None`: the latest).
    pub async fn get(&self, name: &str, version: Option<&str>) -> Result<Entry, RegistryError> {
        let version = version.filter(|v| !v.is_empty() && *v != "latest");
        match self {
            Registry::Api { base, client } => {
                let url = Self::url(
                    base,
                    &[
                        "v0",
                        "servers",
                        name,
                        "versions",
                        version.unwrap_or("latest"),
                    ],
                );
                let answer = Self::get_json(client, url)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound(with_version(name, version)))?;
                entries_of(answer)
                    .into_iter()
                    .next()
                    .ok_or_else(|| RegistryError::NotFound(with_version(name, version)))
            }
            Registry::Dir(dir) => {
                let matching: Vec<Entry> = read_dir_entries(dir)
                    .await?
                    .into_iter()
                    .filter(|e| e.server.get("name").and_then(|n| n.as_str()) == Some(name))
                    .collect();
                let found = match version {
                    Some(v) => matching
                        .into_iter()
                        .find(|e| e.server.get("version").and_then(|x| x.as_str()) == Some(v)),
                    None => latest_only(matching).into_iter().next(),
                };
                found.ok_or_else(|| RegistryError::NotFound(with_version(name, version)))
            }
        }
    }
}

fn with_version(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_owned(),
    }
}

pub fn summary(doc: &ServerDoc) -> Summary {
    let mut runs: Vec<String> = doc
        .packages
        .iter()
        .map(|p| format!("{}:{}", p.registry_type, p.identifier))
        .collect();
    runs.extend(doc.remotes.iter().map(|r| format!("remote:{}", r.url)));
    Summary {
        name: doc.name.clone(),
        title: doc.title.clone(),
        description: doc.description.clone(),
        version: doc.version.clone(),
        runs,
    }
}

/// The entries of a list answer (`{"servers": [...]}`), of one entry (`{"server": …}`), or
/// of a bare `server.json`.
fn entries_of(answer: serde_json::Value) -> Vec<Entry> {
    let one = |v: serde_json::Value| -> Option<Entry> {
        match v.get("server") {
            Some(server) if server.is_object() => Some(Entry {
                server: server.clone(),
                meta: v.get("_meta").cloned().unwrap_or_default(),
            }),
            _ if v.get("name").is_some() => Some(Entry {
                meta: v.get("_meta").cloned().unwrap_or_default(),
                server: v,
            }),
            _ => None,
        }
    };
    match answer.get("servers").and_then(|s| s.as_array()) {
        Some(list) => list.iter().cloned().filter_map(one).collect(),
        None => one(answer).into_iter().collect(),
    }
}

/// One entry per server name: the one the registry marks latest, else the highest version.
fn latest_only(entries: Vec<Entry>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for entry in entries {
        let name = entry.server.get("name").cloned();
        match out
            .iter_mut()
            .find(|e| e.server.get("name").cloned() == name)
        {
            Some(known) => {
                if is_latest(&entry)
                    || (!is_latest(known) && version_key(&entry) > version_key(known))
                {
                    *known = entry;
                }
            }
            None => out.push(entry),
        }
    }
    out
}

fn is_latest(entry: &Entry) -> bool {
    entry
        .meta
        .get("io.modelcontextprotocol.registry/official")
        .and_then(|o| o.get("isLatest"))
        .and_then(|l| l.as_bool())
        .unwrap_or(false)
}

fn version_key(entry: &Entry) -> Vec<u64> {
    entry
        .server
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

async fn read_dir_entries(dir: &std::path::Path) -> Result<Vec<Entry>, RegistryError> {
    let mut out = Vec::new();
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| RegistryError::Config(format!("MCPR_REGISTRY_DIR {}: {e}", dir.display())))?;
    let mut paths = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    for path in paths {
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(value) => out.extend(entries_of(value)),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "registry file is not JSON")
            }
        }
    }
    // Validate once here, so a broken file shows in the log rather than as a missing server.
    out.retain(|e| match e.doc() {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(error = %error, "registry entry skipped");
            false
        }
    });
    Ok(out)
}
