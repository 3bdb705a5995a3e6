//! All SQL of the router lives here. Persisted: the server registry (name, description,
//! runtime spec, enabled, session mode, restart generation, placement selector, timestamps), API keys (hashes,
//! scopes, expiry, revocation, last use), admin sessions and the admin MCP tokens they mint
//! (hashes), per-tool settings
//! (disabled, name and description overrides) and the audit log (`store/audit.rs`). Not
//! persisted: what
//! agents report (status, tools, logs), which is rebuilt from the agents within a heartbeat.
//!
//! Secrets at rest: with a master key ([`Store::with_master_key`]), server env and header
//! values are sealed (AES-256-GCM, `secrets.rs`) inside the runtime JSON before they are
//! written and opened when read; plaintext rows from before still load.
//!
//! One set of migrations and queries serves SQLite (embedded default) and Postgres
//! (`DATABASE_URL=postgres://…`) through sqlx's Any driver, so the SQL stays portable:
//! `$N` placeholders, TEXT/BIGINT columns only.

use std::path::Path;
use std::str::FromStr;

use mcpr_core::model::{RuntimeSpec, ServerSource, SessionMode};
use mcpr_core::placement::Placement;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::secrets::{self, MasterKey};

mod audit;

pub use audit::{
    ActivityRow, AuditCursor, AuditFilter, AuditRecord, MAX_CHUNK, audit_record, batch_of,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a server named {0:?} already exists")]
    Duplicate(String),
    #[error("no server named {0:?}")]
    NotFound(String),
    #[error("no API key {0:?}")]
    KeyNotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A registered server as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub runtime: RuntimeSpec,
    pub enabled: bool,
    pub session_mode: SessionMode,
    pub restart_generation: u64,
    pub created_at: String,
    pub updated_at: String,
    /// Where it came from (`None`: typed in by hand); stored as JSON text, `''` for none.
    pub source: Option<ServerSource>,
    /// Which agents may run it; stored as JSON text, `''` for any agent.
    pub placement: Placement,
}

/// One tool's settings as stored (`tool_overrides`): by the server's id and the tool's name
/// as the upstream lists it; `name` and `description` are `""` where the upstream's stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolOverrideRecord {
    pub server_id: String,
    pub tool: String,
    pub disabled: bool,
    pub name: String,
    pub description: String,
    pub updated_at: String,
}

impl ToolOverrideRecord {
    /// Nothing differs from the upstream's: no row is kept.
    pub fn is_default(&self) -> bool {
        !self.disabled && self.name.is_empty() && self.description.is_empty()
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An API key as stored: never the key itself, only its SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub prefix: String,
    #[serde(skip)]
    pub hash: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    /// Unix ms; 0 = never.
    pub expires_at_ms: i64,
    /// RFC 3339; empty while the key is valid.
    pub revoked_at: String,
    /// Unix ms; 0 = never used.
    pub last_used_ms: i64,
}

/// An admin session (CLI token or web UI cookie), hashed like API keys.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminTokenRecord {
    pub id: String,
    pub hash: String,
    pub kind: String,
    pub csrf: String,
    pub created_at: String,
    pub expires_at_ms: i64,
}

/// A short-lived MCP credential an admin session minted (`keys/mcp_token.rs`), hashed like keys.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminMcpTokenRecord {
    pub id: String,
    pub hash: String,
    /// The admin session that minted it ('' without `ADMIN_PASSCODE`).
    pub session_id: String,
    /// That session's kind: `ui`, `cli` or `open`.
    pub session_kind: String,
    pub created_at: String,
    pub expires_at_ms: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    master_key: Option<MasterKey>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database `mcpr.db` in `data_dir`, which is
    /// made 0700 and the database 0600 (`data_dir.rs`).
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join("mcpr.db");
        crate::data_dir::create(data_dir)
            .and_then(|()| crate::data_dir::create_private_file(&path))
            .map_err(|e| {
                StoreError::Database(sqlx::Error::Configuration(
                    format!("cannot create {}: {e}", path.display()).into(),
                ))
            })?;
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!(
                    "unsupported database URL (want sqlite:// or postgres://): {}",
                    redact_url(url)
                )
                .into(),
            )));
        };
        let mut options =
            AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 10 });
        if backend == Backend::Sqlite {
            // WAL lets readers proceed while the single writer commits.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode=WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout=5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let _ = sqlx::any::AnyConnectOptions::from_str(url)?;
        let pool = options.connect(url).await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let store = Store {
            pool,
            backend,
            master_key: None,
        };
        let moved = store.move_audit_rows_into_chunks().await?;
        if moved > 0 {
            tracing::info!(
                records = moved,
                "moved the audit log into chunks (migration 0012)"
            );
        }
        Ok(store)
    }

    /// Seals server secrets under `key` from now on (and opens sealed ones when reading).
    pub fn with_master_key(mut self, key: MasterKey) -> Store {
        self.master_key = Some(key);
        self
    }

    /// The pool, for the SQL of modules with their own tables (`oauth/store.rs`).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn master_key(&self) -> Option<&MasterKey> {
        self.master_key.as_ref()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The runtime as it goes into the `runtime` column: JSON, secrets sealed.
    fn runtime_column(&self, runtime: &RuntimeSpec) -> String {
        let mut value = serde_json::to_value(runtime).expect("runtime serializes");
        if let Some(key) = &self.master_key {
            MasterKey::map_secrets::<()>(&mut value, |plain| Ok(key.seal(plain)))
                .expect("sealing cannot fail");
        }
        value.to_string()
    }

    fn record_from_row(&self, row: &AnyRow) -> Result<ServerRecord, StoreError> {
        let name: String = row.try_get("name")?;
        let runtime: String = row.try_get("runtime")?;
        let mut runtime: serde_json::Value = serde_json::from_str(&runtime)
            .map_err(|e| StoreError::Corrupt(format!("runtime of server {name:?}: {e}")))?;
        MasterKey::map_secrets(&mut runtime, |stored| match &self.master_key {
            Some(key) => key.open(stored).map_err(|e| e.to_string()),
            None if stored.starts_with(secrets::ENVELOPE_PREFIX) => {
                Err("a secret is sealed but no master key is configured".to_owned())
            }
            None => Ok(stored.to_owned()),
        })
        .map_err(|e| StoreError::Corrupt(format!("runtime of server {name:?}: {e}")))?;
        record_from_row(row, name, runtime)
    }

    /// Seals secrets that were stored in plaintext (rows written before encryption at rest);
    /// returns how many servers were rewritten.
    pub async fn seal_plaintext_secrets(&self) -> Result<usize, StoreError> {
        if self.master_key.is_none() {
            return Ok(0);
        }
        let rows = sqlx::query("SELECT id, runtime FROM servers")
            .fetch_all(&self.pool)
            .await?;
        let mut sealed = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let runtime: String = row.try_get("runtime")?;
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&runtime) else {
                continue;
            };
            if !secrets::has_plaintext(&value) {
                continue;
            }
            let key = self.master_key.as_ref().expect("checked above");
            let mut value = value;
            MasterKey::map_secrets::<()>(&mut value, |v| {
                Ok(if v.starts_with(secrets::ENVELOPE_PREFIX) {
                    v.to_owned()
                } else {
                    key.seal(v)
                })
            })
            .expect("sealing cannot fail");
            sqlx::query("UPDATE servers SET runtime = $1 WHERE id = $2")
                .bind(value.to_string())
                .bind(&id)
                .execute(&self.pool)
                .await?;
            sealed += 1;
        }
        Ok(sealed)
    }

    pub async fn list_servers(&self) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM servers ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| self.record_from_row(row)).collect()
    }

    pub async fn get_server(&self, name: &str) -> Result<ServerRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM servers WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        self.record_from_row(&row)
    }

    /// Inserts a new server; a duplicate name is refused and nothing changes.
    pub async fn insert_server(&self, record: &ServerRecord) -> Result<(), StoreError> {
        let runtime = self.runtime_column(&record.runtime);
        let result = sqlx::query(
            "INSERT INTO servers (id, name, description, runtime, enabled, session_mode, restart_generation, created_at, updated_at, source, placement) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(&record.description)
        .bind(runtime)
        .bind(record.enabled as i64)
        .bind(record.session_mode.as_str())
        .bind(record.restart_generation as i64)
        .bind(&record.created_at)
        .bind(&record.updated_at)
        .bind(source_column(record.source.as_ref()))
        .bind(placement_column(&record.placement))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Duplicate(record.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the mutable fields of the server with `record.id`.
    pub async fn update_server(&self, record: &ServerRecord) -> Result<(), StoreError> {
        let runtime = self.runtime_column(&record.runtime);
        let done = sqlx::query(
            "UPDATE servers SET description = $1, runtime = $2, enabled = $3, session_mode = $4, \
             restart_generation = $5, updated_at = $6, source = $7, placement = $8 WHERE id = $9",
        )
        .bind(&record.description)
        .bind(runtime)
        .bind(record.enabled as i64)
        .bind(record.session_mode.as_str())
        .bind(record.restart_generation as i64)
        .bind(&record.updated_at)
        .bind(source_column(record.source.as_ref()))
        .bind(placement_column(&record.placement))
        .bind(&record.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(record.name.clone()));
        }
        Ok(())
    }

    pub async fn delete_server(&self, name: &str) -> Result<(), StoreError> {
        // Its tool settings first: a server added later under the same name starts clean
        // (the ids differ anyway, but rows of no server are never kept).
        sqlx::query(
            "DELETE FROM tool_overrides WHERE server_id IN (SELECT id FROM servers WHERE name = $1)",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        let done = sqlx::query("DELETE FROM servers WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(name.to_owned()));
        }
        Ok(())
    }
}

impl Store {
    /// Every server's tool settings.
    pub async fn list_tool_overrides(&self) -> Result<Vec<ToolOverrideRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT server_id, tool, disabled, name, description, updated_at FROM tool_overrides \
             ORDER BY server_id, tool",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ToolOverrideRecord {
                    server_id: row.try_get("server_id")?,
                    tool: row.try_get("tool")?,
                    disabled: row.try_get::<i64, _>("disabled")? != 0,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Writes one tool's settings, or deletes its row when they are all the upstream's.
    pub async fn put_tool_override(&self, record: &ToolOverrideRecord) -> Result<(), StoreError> {
        if record.is_default() {
            sqlx::query("DELETE FROM tool_overrides WHERE server_id = $1 AND tool = $2")
                .bind(&record.server_id)
                .bind(&record.tool)
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        // `ON CONFLICT … DO UPDATE` is the same upsert in SQLite (3.24+) and Postgres.
        sqlx::query(
            "INSERT INTO tool_overrides (server_id, tool, disabled, name, description, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (server_id, tool) DO UPDATE SET disabled = excluded.disabled, \
             name = excluded.name, description = excluded.description, updated_at = excluded.updated_at",
        )
        .bind(&record.server_id)
        .bind(&record.tool)
        .bind(record.disabled as i64)
        .bind(&record.name)
        .bind(&record.description)
        .bind(&record.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Store {
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, prefix, hash, scopes, created_at, expires_at_ms, revoked_at, last_used_ms \
             FROM api_keys ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let scopes: String = row.try_get("scopes")?;
                let scopes = serde_json::from_str(&scopes)
                    .map_err(|e| StoreError::Corrupt(format!("scopes of API key {id:?}: {e}")))?;
                Ok(ApiKeyRecord {
                    name: row.try_get("name")?,
                    prefix: row.try_get("prefix")?,
                    hash: row.try_get("hash")?,
                    scopes,
                    created_at: row.try_get("created_at")?,
                    expires_at_ms: row.try_get("expires_at_ms")?,
                    revoked_at: row.try_get("revoked_at")?,
                    last_used_ms: row.try_get("last_used_ms")?,
                    id,
                })
            })
            .collect()
    }

    /// Inserts a key; false (and nothing changes) when a key with the same hash exists.
    pub async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, hash, scopes, created_at, expires_at_ms, revoked_at, last_used_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(serde_json::to_string(&key.scopes).expect("scopes serialize"))
        .bind(&key.created_at)
        .bind(key.expires_at_ms)
        .bind(&key.revoked_at)
        .bind(key.last_used_ms)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn revoke_api_key(&self, id: &str, at: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::KeyNotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Deletes a key for good (`KeyRing::remove` decides whether it may go).
    pub async fn delete_api_key(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::KeyNotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Moves a key's last use forward (never back: gateways report independently).
    pub async fn record_key_use(&self, id: &str, last_used_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2 AND last_used_ms < $1")
            .bind(last_used_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT id, hash, kind, csrf, created_at, expires_at_ms FROM admin_tokens")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(AdminTokenRecord {
                    id: row.try_get("id")?,
                    hash: row.try_get("hash")?,
                    kind: row.try_get("kind")?,
                    csrf: row.try_get("csrf")?,
                    created_at: row.try_get("created_at")?,
                    expires_at_ms: row.try_get("expires_at_ms")?,
                })
            })
            .collect()
    }

    pub async fn insert_admin_token(&self, token: &AdminTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, hash, kind, csrf, created_at, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(&token.hash)
        .bind(&token.kind)
        .bind(&token.csrf)
        .bind(&token.created_at)
        .bind(token.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes the admin session `id`, and every session that expired before `now_ms`.
    pub async fn delete_admin_token(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_tokens WHERE id = $1 OR expires_at_ms < $2")
            .bind(id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The admin MCP tokens that have not expired by `now_ms`.
    pub async fn list_admin_mcp_tokens(
        &self,
        now_ms: i64,
    ) -> Result<Vec<AdminMcpTokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, hash, session_id, session_kind, created_at, expires_at_ms \
             FROM admin_mcp_tokens WHERE expires_at_ms > $1",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AdminMcpTokenRecord {
                    id: row.try_get("id")?,
                    hash: row.try_get("hash")?,
                    session_id: row.try_get("session_id")?,
                    session_kind: row.try_get("session_kind")?,
                    created_at: row.try_get("created_at")?,
                    expires_at_ms: row.try_get("expires_at_ms")?,
                })
            })
            .collect()
    }

    /// Stores a new admin MCP token, and forgets those expired before it was made.
    pub async fn insert_admin_mcp_token(
        &self,
        token: &AdminMcpTokenRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_mcp_tokens WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO admin_mcp_tokens (id, hash, session_id, session_kind, created_at, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(&token.hash)
        .bind(&token.session_id)
        .bind(&token.session_kind)
        .bind(&token.created_at)
        .bind(token.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes every admin MCP token of the admin session `session_id` (it logged out);
    /// answers how many went.
    pub async fn delete_admin_mcp_tokens_of(&self, session_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM admin_mcp_tokens WHERE session_id = $1")
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

const COLUMNS: &str = "id, name, description, runtime, enabled, session_mode, restart_generation, created_at, updated_at, source, placement";

fn placement_column(placement: &Placement) -> String {
    if placement.is_empty() {
        return String::new();
    }
    serde_json::to_string(placement).expect("a placement serializes")
}

fn source_column(source: Option<&ServerSource>) -> String {
    source
        .map(|s| serde_json::to_string(s).expect("a source serializes"))
        .unwrap_or_default()
}

fn record_from_row(
    row: &AnyRow,
    name: String,
    runtime: serde_json::Value,
) -> Result<ServerRecord, StoreError> {
    let runtime: RuntimeSpec = serde_json::from_value(runtime)
        .map_err(|e| StoreError::Corrupt(format!("runtime of server {name:?}: {e}")))?;
    let session_mode: String = row.try_get("session_mode")?;
    Ok(ServerRecord {
        id: row.try_get("id")?,
        description: row.try_get("description")?,
        runtime,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        session_mode: SessionMode::parse(&session_mode)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        restart_generation: row.try_get::<i64, _>("restart_generation")? as u64,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        source: {
            let text: String = row.try_get("source")?;
            if text.is_empty() {
                None
            } else {
                Some(
                    serde_json::from_str(&text).map_err(|e| {
                        StoreError::Corrupt(format!("source of server {name:?}: {e}"))
                    })?,
                )
            }
        },
        placement: {
            let text: String = row.try_get("placement")?;
            if text.is_empty() {
                Placement::default()
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    StoreError::Corrupt(format!("placement of server {name:?}: {e}"))
                })?
            }
        },
        name,
    })
}

/// A database URL fit for an error message: the password is hidden.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! One suite, run against SQLite always and against Postgres when `MCPR_TEST_DATABASE_URL`
    //! (or a local server found by `.ci/run`) is set.
    use super::*;

    pub fn record(name: &str) -> ServerRecord {
        ServerRecord {
            id: format!("id-{name}"),
            name: name.to_owned(),
            description: "a server".into(),
            runtime: RuntimeSpec::Process {
                command: "uvx".into(),
                args: vec!["mcp-server-time".into()],
                env: [("TZ".to_owned(), "UTC".to_owned())].into(),
                cwd: None,
            },
            enabled: true,
            session_mode: SessionMode::Shared,
            restart_generation: 0,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            source: None,
            placement: Placement::default(),
        }
    }

    async fn suite(store: Store) {
        let time = record("time");
        store.insert_server(&time).await.unwrap();
        assert_eq!(store.get_server("time").await.unwrap(), time);
        // Duplicate: refused, the stored one untouched.
        let mut dup = record("time");
        dup.id = "other".into();
        dup.description = "impostor".into();
        assert!(matches!(
            store.insert_server(&dup).await,
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(
            store.get_server("time").await.unwrap().description,
            "a server"
        );
        // Injection strings are data, not SQL.
        let evil = record("x'); DROP TABLE servers; --");
        store.insert_server(&evil).await.unwrap();
        assert_eq!(store.list_servers().await.unwrap().len(), 2);
        let mut changed = time.clone();
        changed.enabled = false;
        changed.session_mode = SessionMode::PerClient;
        changed.restart_generation = 3;
        changed.source = Some(ServerSource {
            kind: mcpr_core::model::SourceKind::Repository,
            url: "https://github.com/modelcontextprotocol/servers".into(),
            reference: Some("main".into()),
            commit: Some("0123abcd".into()),
            path: Some("src/time".into()),
            entry: Some("pyproject.toml".into()),
            version: None,
            analyzed_at: Some("2026-01-01T00:00:00Z".into()),
        });
        changed.placement = Placement {
            selector: [
                ("zone".to_owned(), "a".to_owned()),
                ("docker".to_owned(), "true".to_owned()),
            ]
            .into(),
        };
        store.update_server(&changed).await.unwrap();
        assert_eq!(store.get_server("time").await.unwrap(), changed);
        store.delete_server("time").await.unwrap();
        assert!(matches!(
            store.get_server("time").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.delete_server("time").await,
            Err(StoreError::NotFound(_))
        ));
        keys_and_sessions(&store).await;
        audit::tests::audit_suite(&store).await;
        tool_overrides(&store).await;
    }

    async fn tool_overrides(store: &Store) {
        let server = record("tooled");
        store.insert_server(&server).await.unwrap();
        let mut setting = ToolOverrideRecord {
            server_id: server.id.clone(),
            tool: "get_time".into(),
            disabled: true,
            name: String::new(),
            description: "x'); DROP TABLE tool_overrides; --".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
        };
        store.put_tool_override(&setting).await.unwrap();
        assert_eq!(
            store.list_tool_overrides().await.unwrap(),
            vec![setting.clone()]
        );
        // The same key again replaces the row.
        setting.disabled = false;
        setting.name = "now".into();
        store.put_tool_override(&setting).await.unwrap();
        assert_eq!(
            store.list_tool_overrides().await.unwrap(),
            vec![setting.clone()]
        );
        // All back to the upstream's: no row.
        setting.name.clear();
        setting.description.clear();
        store.put_tool_override(&setting).await.unwrap();
        assert!(store.list_tool_overrides().await.unwrap().is_empty());
        // Deleting the server deletes its settings.
        setting.disabled = true;
        store.put_tool_override(&setting).await.unwrap();
        store.delete_server("tooled").await.unwrap();
        assert!(store.list_tool_overrides().await.unwrap().is_empty());
    }

    async fn keys_and_sessions(store: &Store) {
        let key = ApiKeyRecord {
            id: "key_1".into(),
            name: "x'); DROP TABLE api_keys; --".into(),
            prefix: "mcpr_abcdef".into(),
            hash: "00ff".into(),
            scopes: vec!["time".into(), "gh/create_issue".into()],
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at_ms: 42,
            revoked_at: String::new(),
            last_used_ms: 0,
        };
        assert!(store.insert_api_key(&key).await.unwrap());
        let mut same_hash = key.clone();
        same_hash.id = "key_2".into();
        assert!(!store.insert_api_key(&same_hash).await.unwrap());
        assert_eq!(store.list_api_keys().await.unwrap(), vec![key.clone()]);
        store.record_key_use("key_1", 1000).await.unwrap();
        store.record_key_use("key_1", 500).await.unwrap();
        store
            .revoke_api_key("key_1", "2026-01-02T00:00:00Z")
            .await
            .unwrap();
        let stored = &store.list_api_keys().await.unwrap()[0];
        assert_eq!(
            (stored.last_used_ms, stored.revoked_at.as_str()),
            (1000, "2026-01-02T00:00:00Z")
        );
        assert!(matches!(
            store.revoke_api_key("nope", "x").await,
            Err(StoreError::KeyNotFound(_))
        ));
        store.delete_api_key("key_1").await.unwrap();
        assert!(store.list_api_keys().await.unwrap().is_empty());
        assert!(matches!(
            store.delete_api_key("key_1").await,
            Err(StoreError::KeyNotFound(_))
        ));
        let token = AdminTokenRecord {
            id: "t1".into(),
            hash: "abcd".into(),
            kind: "cli".into(),
            csrf: "c".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at_ms: 10_000,
        };
        store.insert_admin_token(&token).await.unwrap();
        assert_eq!(store.list_admin_tokens().await.unwrap(), vec![token]);
        store.delete_admin_token("t1", 0).await.unwrap();
        assert!(store.list_admin_tokens().await.unwrap().is_empty());
        let mcp = |id: &str, session: &str, expires_at_ms: i64| AdminMcpTokenRecord {
            id: id.into(),
            hash: format!("hash-{id}"),
            session_id: session.into(),
            session_kind: "ui".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at_ms,
        };
        store
            .insert_admin_mcp_token(&mcp("m1", "s1", 5_000), 0)
            .await
            .unwrap();
        store
            .insert_admin_mcp_token(&mcp("m2", "s2", 9_000), 0)
            .await
            .unwrap();
        // Expired ones are not listed, and go when the next one is made.
        assert_eq!(
            store.list_admin_mcp_tokens(6_000).await.unwrap(),
            vec![mcp("m2", "s2", 9_000)]
        );
        store
            .insert_admin_mcp_token(&mcp("m3", "s2", 20_000), 6_000)
            .await
            .unwrap();
        assert_eq!(store.list_admin_mcp_tokens(0).await.unwrap().len(), 2);
        assert_eq!(store.delete_admin_mcp_tokens_of("s2").await.unwrap(), 2);
        assert!(store.list_admin_mcp_tokens(0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn secrets_are_sealed_at_rest_and_plaintext_rows_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::from_bytes(&[3; 32]);
        // A row written before encryption existed.
        let legacy = Store::open_sqlite(dir.path()).await.unwrap();
        legacy.insert_server(&record("old")).await.unwrap();
        let store = Store::open_sqlite(dir.path())
            .await
            .unwrap()
            .with_master_key(key.clone());
        assert_eq!(store.get_server("old").await.unwrap(), record("old"));
        assert_eq!(store.seal_plaintext_secrets().await.unwrap(), 1);
        assert_eq!(store.seal_plaintext_secrets().await.unwrap(), 0);
        store.insert_server(&record("new")).await.unwrap();
        for name in ["old", "new"] {
            assert_eq!(
                store.get_server(name).await.unwrap().runtime,
                record(name).runtime
            );
            // Without the key a sealed secret does not load, and the column holds no plaintext.
            assert!(matches!(
                legacy.get_server(name).await,
                Err(StoreError::Corrupt(_))
            ));
        }
        let raw: String = sqlx::query("SELECT runtime FROM servers WHERE name = 'new'")
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .try_get("runtime")
            .unwrap();
        assert!(raw.contains("enc:v1:") && !raw.contains("\"UTC\""), "{raw}");
    }

    #[tokio::test]
    async fn sqlite_suite() {
        let dir = tempfile::tempdir().unwrap();
        suite(Store::open_sqlite(dir.path()).await.unwrap()).await;
        // Reopening keeps the data and re-running migrations is a no-op.
        let again = Store::open_sqlite(dir.path()).await.unwrap();
        assert_eq!(again.list_servers().await.unwrap().len(), 1);
    }

    /// Creates a fresh database on the Postgres named by `MCPR_TEST_DATABASE_URL`.
    pub async fn fresh_postgres() -> Option<String> {
        let Ok(base) = std::env::var("MCPR_TEST_DATABASE_URL") else {
            if std::env::var("MCPR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("MCPR_REQUIRE_POSTGRES=1 but MCPR_TEST_DATABASE_URL is not set");
            }
            eprintln!(
                "\n!!! SKIPPING Postgres store tests: set MCPR_TEST_DATABASE_URL=postgres://… (scripts/test does) !!!\n"
            );
            return None;
        };
        sqlx::any::install_default_drivers();
        let db = format!("mcpr_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&base)
            .await
            .expect("connect to MCPR_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&admin)
            .await
            .unwrap();
        let (prefix, _) = base.rsplit_once('/').expect("database URL ends in /DBNAME");
        Some(format!("{prefix}/{db}"))
    }

    #[tokio::test]
    async fn postgres_suite() {
        let Some(url) = fresh_postgres().await else {
            return;
        };
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        suite(store).await;
        let again = Store::connect(&url).await.unwrap();
        assert_eq!(again.list_servers().await.unwrap().len(), 1);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }
}
