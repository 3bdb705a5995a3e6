//! API keys for MCP clients: the one place that creates, lists and revokes them. Keys go to
//! the gateways in every configuration snapshot (hash, scopes, expiry, revocation), so a
//! gateway checks them locally; a change bumps the fleet version and reaches every gateway
//! at once. Gateways report when keys were used, batched, through `ReportUsage`.
//!
//! A key is `mcpr_` + 43 characters of base64url: 256 bits from the OS RNG, shown once at
//! creation. Only its SHA-256 is stored. A slow password hash (argon2) buys nothing here:
//! it protects low-entropy secrets against guessing, and nobody can enumerate 2^256 keys;
//! a fast hash lets the gateway check a key on every request for the cost of one SHA-256.

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpr_core::model::{self, FieldError};
use mcpr_proto as pb;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fleet::Fleet;
use crate::secrets::random_bytes;
use crate::store::{ApiKeyRecord, Store, StoreError};
use mcp_token::{AdminMcpTokens, MintedToken};

pub mod mcp_token;

/// Every key starts with this, so that secret scanners and people recognise one.
pub const KEY_PREFIX: &str = "mcpr_";
/// Scope granting every provider and tool.
pub const ALL_SCOPES: &str = "*";
const MAX_KEY_NAME: usize = 128;
const MAX_SCOPES: usize = 256;
/// Scope granting the `python_sandbox` meta-tool (the gateway's reserved sandbox provider).
pub const SANDBOX_SCOPE: &str = "_sandbox";
/// The id of the key bootstrapped from `MCP_API_KEY`.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// How the gateway decides whether MCP clients must authenticate (`MCPR_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Required as soon as one API key exists (or `MCP_API_KEY` is set).
    #[default]
    Auto,
    /// Always required, even before the first key exists (everything is refused then).
    Required,
}

impl AuthMode {
    pub fn parse(text: &str) -> Result<AuthMode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(AuthMode::Auto),
            "required" => Ok(AuthMode::Required),
            other => Err(format!(
                "MCPR_AUTH must be \"auto\" or \"required\", got {other:?}"
            )),
        }
    }
}

/// Token bucket settings for the MCP endpoint, pushed to every gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    pub per_key_rate: f64,
    pub per_key_burst: u32,
    pub per_address_rate: f64,
    pub per_address_burst: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("no API key {0:?} (give its id, its prefix or its name)")]
    NotFound(String),
    #[error("{0:?} names several API keys: give the key's id")]
    Ambiguous(String),
    #[error(
        "API key {0:?} is still active: revoke it first, or remove it with force (`mcpr key remove --force`, `?force=true`)"
    )]
    Active(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// `POST /api/v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    /// Default: `["*"]`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// RFC 3339 time at which the key stops working.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Or: seconds from now.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// A key as the API shows it (never the key or its hash).
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
}

/// The answer to a creation: the only time the key itself is shown.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

pub struct KeyRing {
    store: Store,
    fleet: Arc<Fleet>,
    mode: AuthMode,
    limits: RateLimits,
    keys: RwLock<Arc<Vec<ApiKeyRecord>>>,
    /// Set by `oauth`: the JWT issuers gateways accept; makes authentication required.
    oauth: RwLock<Option<pb::OAuthPolicy>>,
    /// Set by `oauth` when the built-in server runs: which of its tokens gateways refuse.
    /// Read from the store with the keys, so that a revocation made by another control
    /// plane arrives with the cluster's reload like a revoked key.
    oauth_revocations: RwLock<Option<OAuthRevocations>>,
    /// The short-lived MCP credentials of admin sessions (`keys/mcp_token.rs`): in snapshots
    /// beside the keys, never in the key list nor in [`KeyRing::required`].
    admin_mcp: AdminMcpTokens,
}

/// Clients and consents an admin revoked, whose access tokens may still be unexpired.
#[derive(Debug, Clone, Default)]
struct OAuthRevocations {
    /// The built-in issuer (`iss`) the revocations apply to.
    issuer: String,
    /// How far back a revocation still matters: the access tokens' lifetime and a margin.
    window_ms: i64,
    clients: Vec<String>,
    consents: Vec<String>,
}

impl KeyRing {
    pub async fn new(
        store: Store,
        fleet: Arc<Fleet>,
        mode: AuthMode,
        limits: RateLimits,
    ) -> Result<KeyRing, StoreError> {
        let keys = store.list_api_keys().await?;
        let admin_mcp = AdminMcpTokens::load(store.clone()).await?;
        Ok(KeyRing {
            store,
            fleet,
            mode,
            limits,
            keys: RwLock::new(Arc::new(keys)),
            oauth: RwLock::new(None),
            oauth_revocations: RwLock::new(None),
            admin_mcp,
        })
    }

    pub fn keys(&self) -> Arc<Vec<ApiKeyRecord>> {
        self.keys.read().unwrap().clone()
    }

    /// Whether MCP clients must present a credential.
    pub fn required(&self) -> bool {
        self.mode == AuthMode::Required
            || !self.keys().is_empty()
            || self.oauth.read().unwrap().is_some()
    }

    /// Publishes what gateways need to accept OAuth tokens (new keys, a rotated JWKS).
    pub fn set_oauth_policy(&self, policy: pb::OAuthPolicy) {
        let mut current = self.oauth.write().unwrap();
        if current.as_ref() != Some(&policy) {
            *current = Some(policy);
            drop(current);
            self.fleet.changed();
        }
    }

    async fn refresh(&self) -> Result<(), StoreError> {
        self.reload().await?;
        self.fleet.changed();
        Ok(())
    }

    /// Reads the keys again without announcing it (`cluster/`: another control plane wrote
    /// them).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let keys = self.store.list_api_keys().await?;
        *self.keys.write().unwrap() = Arc::new(keys);
        self.admin_mcp.reload().await?;
        self.reload_oauth_revocations().await
    }

    /// Mints an admin MCP token for an admin session (`keys/mcp_token.rs`) and announces it,
    /// as a new key is: gateways accept it once they serve the next snapshot.
    pub async fn mint_admin_mcp_token(
        &self,
        session_id: &str,
        session_kind: &str,
        session_expires_at_ms: i64,
    ) -> Result<MintedToken, StoreError> {
        let minted = self
            .admin_mcp
            .mint(session_id, session_kind, session_expires_at_ms)
            .await?;
        self.fleet.changed();
        Ok(minted)
    }

    /// The admin session `session_id` ended: so do its MCP tokens, on every gateway.
    pub async fn end_admin_mcp_tokens(&self, session_id: &str) -> Result<(), StoreError> {
        if self.admin_mcp.end_session(session_id).await? {
            self.fleet.changed();
        }
        Ok(())
    }

    /// Starts publishing the built-in issuer's revocations (`oauth`): access tokens live
    /// `token_lifetime`, so a revocation older than that (and a margin for clocks) is left
    /// out of snapshots.
    pub async fn track_oauth_revocations(
        &self,
        issuer: String,
        token_lifetime: std::time::Duration,
    ) -> Result<(), StoreError> {
        *self.oauth_revocations.write().unwrap() = Some(OAuthRevocations {
            issuer,
            window_ms: token_lifetime.as_millis() as i64 + 60_000,
            ..OAuthRevocations::default()
        });
        self.reload_oauth_revocations().await
    }

    /// An OAuth client or consent was revoked: gateways learn it with the next snapshot,
    /// pushed now, as for a revoked key.
    pub async fn oauth_revoked(&self) -> Result<(), StoreError> {
        self.reload_oauth_revocations().await?;
        self.fleet.changed();
        Ok(())
    }

    async fn reload_oauth_revocations(&self) -> Result<(), StoreError> {
        let Some(window_ms) = self
            .oauth_revocations
            .read()
            .unwrap()
            .as_ref()
            .map(|r| r.window_ms)
        else {
            return Ok(());
        };
        let (clients, consents) = self.store.oauth_revocations(now_ms() - window_ms).await?;
        if let Some(r) = self.oauth_revocations.write().unwrap().as_mut() {
            r.clients = clients;
            r.consents = consents;
        }
        Ok(())
    }

    /// Registers `MCP_API_KEY` (all scopes) unless a key with its hash exists: idempotent
    /// across restarts, and only the hash is stored.
    pub async fn bootstrap(&self, key: &str) -> Result<(), KeyError> {
        let key = key.trim();
        if key.len() < 16 {
            return Err(FieldError::new("MCP_API_KEY", "must be at least 16 characters").into());
        }
        if key.len() < 32 {
            tracing::warn!("MCP_API_KEY is short (< 32 characters): prefer `mcpr key create`");
        }
        let hash = hash_hex(key);
        if self.keys().iter().any(|k| k.hash == hash) {
            return Ok(());
        }
        let mut id = BOOTSTRAP_ID.to_owned();
        if self.keys().iter().any(|k| k.id == id) {
            // MCP_API_KEY changed since the last start: the old bootstrap key stays (revoke
            // it explicitly) and the new one gets its own id.
            id = format!("{BOOTSTRAP_ID}-{}", &hash[..8]);
        }
        let record = ApiKeyRecord {
            id,
            name: "MCP_API_KEY".into(),
            prefix: display_prefix(key),
            hash,
            scopes: vec![ALL_SCOPES.into()],
            created_at: now_rfc3339(),
            expires_at_ms: 0,
            revoked_at: String::new(),
            last_used_ms: 0,
        };
        self.store.insert_api_key(&record).await?;
        self.refresh().await?;
        tracing::info!("API key from MCP_API_KEY registered (all scopes)");
        Ok(())
    }

    pub async fn create(&self, new: NewKey) -> Result<CreatedKey, KeyError> {
        validate_key_name(&new.name)?;
        let scopes = new.scopes.unwrap_or_else(|| vec![ALL_SCOPES.into()]);
        validate_scopes(&scopes)?;
        let now_ms = now_ms();
        let expires_at_ms = match (new.expires_at, new.expires_in_secs) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "expires_at",
                    "give expires_at or expires_in_secs, not both",
                )
                .into());
            }
            (Some(at), None) => {
                let at = time::OffsetDateTime::parse(
                    &at,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| FieldError::new("expires_at", format!("not an RFC 3339 time: {e}")))?;
                (at.unix_timestamp_nanos() / 1_000_000) as i64
            }
            (None, Some(secs)) => {
                if secs == 0 || secs > 100 * 365 * 86_400 {
                    return Err(FieldError::new(
                        "expires_in_secs",
                        "must be between 1 and 100 years in seconds",
                    )
                    .into());
                }
                now_ms + secs as i64 * 1000
            }
            (None, None) => 0,
        };
        let key = format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        );
        let record = ApiKeyRecord {
            id: format!("key_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            name: new.name,
            prefix: display_prefix(&key),
            hash: hash_hex(&key),
            scopes,
            created_at: now_rfc3339(),
            expires_at_ms,
            revoked_at: String::new(),
            last_used_ms: 0,
        };
        if !self.store.insert_api_key(&record).await? {
            // 256 random bits collided: cannot happen; refuse rather than overwrite.
            return Err(StoreError::Corrupt("API key hash collision".into()).into());
        }
        self.refresh().await?;
        Ok(CreatedKey {
            key,
            view: view(&record),
        })
    }

    pub fn list(&self) -> Vec<KeyView> {
        self.keys().iter().map(view).collect()
    }

    /// The key named by its id, its displayed prefix or its (unique) name.
    fn find(&self, which: &str) -> Result<ApiKeyRecord, KeyError> {
        let keys = self.keys();
        let found: Vec<&ApiKeyRecord> = match keys.iter().find(|k| k.id == which) {
            Some(k) => vec![k],
            None => keys
                .iter()
                .filter(|k| k.prefix == which || k.name == which)
                .collect(),
        };
        match found.as_slice() {
            [] => Err(KeyError::NotFound(which.to_owned())),
            [one] => Ok((*one).clone()),
            _ => Err(KeyError::Ambiguous(which.to_owned())),
        }
    }

    /// Revokes the key named by its id, its displayed prefix or its (unique) name.
    pub async fn revoke(&self, which: &str) -> Result<KeyView, KeyError> {
        let record = self.find(which)?;
        if record.revoked_at.is_empty() {
            self.store
                .revoke_api_key(&record.id, &now_rfc3339())
                .await?;
            self.refresh().await?;
        }
        let keys = self.keys();
        let record = keys.iter().find(|k| k.id == record.id).unwrap_or(&record);
        Ok(view(record))
    }

    /// Deletes a revoked or expired key from the store (it leaves lists; gateways then know
    /// it no more and refuse it as unknown). An active key only with `force`, so that a
    /// slip cannot cut off clients without the admin saying so. Answers the key as it was.
    pub async fn remove(&self, which: &str, force: bool) -> Result<KeyView, KeyError> {
        let record = self.find(which)?;
        let shown = view(&record);
        if shown.state == "active" && !force {
            return Err(KeyError::Active(record.name));
        }
        self.store.delete_api_key(&record.id).await?;
        self.refresh().await?;
        Ok(shown)
    }

    /// A gateway's usage report: moves last-used times forward (not part of snapshots, so
    /// no version bump).
    pub async fn record_usage(&self, usage: &[pb::CredentialUsage]) -> Result<(), StoreError> {
        for u in usage {
            let known = self
                .keys()
                .iter()
                .any(|k| k.id == u.credential_id && k.last_used_ms < u.last_used_ms);
            if !known {
                continue;
            }
            self.store
                .record_key_use(&u.credential_id, u.last_used_ms)
                .await?;
            let mut guard = self.keys.write().unwrap();
            let mut keys = (**guard).clone();
            if let Some(k) = keys.iter_mut().find(|k| k.id == u.credential_id) {
                k.last_used_ms = k.last_used_ms.max(u.last_used_ms);
            }
            *guard = Arc::new(keys);
        }
        Ok(())
    }

    /// What goes into a configuration snapshot: every key (revoked ones too, so that the
    /// gateway can say "revoked"), the admin MCP tokens not expired, and the policy.
    pub fn snapshot_part(&self) -> (Vec<pb::Credential>, pb::AuthPolicy) {
        let mut credentials: Vec<pb::Credential> = self
            .keys()
            .iter()
            .filter_map(|k| {
                Some(pb::Credential {
                    id: k.id.clone(),
                    kind: "api_key".into(),
                    hash: hex_decode(&k.hash)?,
                    scopes: k.scopes.clone(),
                    name: k.name.clone(),
                    expires_at_ms: k.expires_at_ms,
                    revoked: !k.revoked_at.is_empty(),
                })
            })
            .collect();
        credentials.extend(self.admin_mcp.credentials(now_ms()));
        let policy = pb::AuthPolicy {
            required: self.required(),
            per_key_rate: self.limits.per_key_rate,
            per_key_burst: self.limits.per_key_burst,
            per_address_rate: self.limits.per_address_rate,
            per_address_burst: self.limits.per_address_burst,
            oauth: self.oauth_policy(),
        };
        (credentials, policy)
    }
}

impl KeyRing {
    /// The OAuth policy with the built-in issuer's revocations filled in.
    fn oauth_policy(&self) -> Option<pb::OAuthPolicy> {
        let mut policy = self.oauth.read().unwrap().clone()?;
        if let Some(r) = self.oauth_revocations.read().unwrap().as_ref()
            && let Some(issuer) = policy.issuers.iter_mut().find(|i| i.issuer == r.issuer)
        {
            issuer.revoked_client_ids = r.clients.clone();
            issuer.revoked_consent_ids = r.consents.clone();
        }
        Some(policy)
    }
}

fn view(k: &ApiKeyRecord) -> KeyView {
    let state = if !k.revoked_at.is_empty() {
        "revoked"
    } else if k.expires_at_ms != 0 && k.expires_at_ms <= now_ms() {
        "expired"
    } else {
        "active"
    };
    KeyView {
        id: k.id.clone(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scopes: k.scopes.clone(),
        created_at: k.created_at.clone(),
        expires_at: (k.expires_at_ms != 0).then(|| ms_to_rfc3339(k.expires_at_ms)),
        revoked_at: (!k.revoked_at.is_empty()).then(|| k.revoked_at.clone()),
        last_used_at: (k.last_used_ms != 0).then(|| ms_to_rfc3339(k.last_used_ms)),
        state,
    }
}

/// Names are free text (shown in lists, escaped by every renderer), without control
/// characters.
fn validate_key_name(name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if name.chars().count() > MAX_KEY_NAME {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_KEY_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// `*`, `_sandbox`, `provider` or `provider/tool`; provider names follow the server name
/// rules. The gateway matches scopes exactly (`edge-gateway/src/auth.rs`, `Access`), so a
/// scope that could never match (a pattern such as `every/*`, a reserved name) is refused
/// here with the reason instead of making a key that silently grants nothing.
pub fn validate_scopes(scopes: &[String]) -> Result<(), FieldError> {
    if scopes.is_empty() {
        return Err(FieldError::new(
            "scopes",
            "must name at least one scope: \"*\", \"provider\" or \"provider/tool\"",
        ));
    }
    if scopes.len() > MAX_SCOPES {
        return Err(FieldError::new(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    for scope in scopes {
        validate_scope(scope).map_err(|why| FieldError::new("scopes", why))?;
    }
    Ok(())
}

fn validate_scope(scope: &str) -> Result<(), String> {
    if scope == ALL_SCOPES || scope == SANDBOX_SCOPE {
        return Ok(());
    }
    let (provider, tool) = match scope.split_once('/') {
        Some((p, t)) => (p, Some(t)),
        None => (scope, None),
    };
    if scope.contains('*') {
        let instead = match (tool, model::validate_name(provider)) {
            (Some("*"), Ok(())) => {
                format!("\"{provider}\" grants every tool of provider \"{provider}\"")
            }
            _ => "\"*\" alone grants everything".to_owned(),
        };
        return Err(format!(
            "scope {scope:?} grants nothing: scopes are matched exactly, not as patterns; {instead}"
        ));
    }
    if provider == SANDBOX_SCOPE {
        return Err(format!(
            "scope {scope:?} grants nothing: \"{SANDBOX_SCOPE}\" alone grants the python_sandbox meta-tool"
        ));
    }
    model::validate_name(provider)
        .map_err(|e| format!("scope {scope:?}: provider {}", e.message))?;
    if let Some(tool) = tool
        && (tool.is_empty()
            || tool.len() > 128
            || tool.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        return Err(format!(
            "scope {scope:?}: the tool must be 1 to 128 characters without spaces"
        ));
    }
    Ok(())
}

/// SHA-256 of a key, hex.
pub fn hash_hex(key: &str) -> String {
    hex_encode(&Sha256::digest(key.as_bytes()))
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// What lists show of a key: enough to recognise it, far too little to use it.
fn display_prefix(key: &str) -> String {
    let shown = if key.starts_with(KEY_PREFIX) {
        KEY_PREFIX.len() + 6
    } else {
        4
    };
    key.chars().take(shown).collect()
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn now_rfc3339() -> String {
    ms_to_rfc3339(now_ms())
}

pub fn ms_to_rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_validated() {
        let ok = |s: &[&str]| validate_scopes(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&["*"]).is_ok());
        assert!(ok(&["time", "gh/create_issue", "a/b.c-d"]).is_ok());
        assert!(ok(&[]).is_err());
        assert!(ok(&["bad name"]).is_err());
        assert!(ok(&["x'); DROP TABLE api_keys; --"]).is_err());
        assert!(ok(&["time/"]).is_err());
        assert!(ok(&["time/has space"]).is_err());
        assert!(ok(&["_sandbox", "alpha/x/y"]).is_ok());
    }

    #[test]
    fn scopes_that_match_nothing_are_refused_with_the_reason() {
        let why = |s: &str| validate_scope(s).unwrap_err();
        assert_eq!(
            why("every/*"),
            "scope \"every/*\" grants nothing: scopes are matched exactly, not as patterns; \"every\" grants every tool of provider \"every\""
        );
        for pattern in ["*/echo", "gh/create_*", "ti*me", "**"] {
            assert_eq!(
                why(pattern),
                format!(
                    "scope {pattern:?} grants nothing: scopes are matched exactly, not as patterns; \"*\" alone grants everything"
                )
            );
        }
        assert_eq!(
            why("_sandbox/python_sandbox"),
            "scope \"_sandbox/python_sandbox\" grants nothing: \"_sandbox\" alone grants the python_sandbox meta-tool"
        );
        assert_eq!(
            why("_other"),
            "scope \"_other\": provider must start with a letter or digit"
        );
    }

    #[test]
    fn names_and_prefixes() {
        assert!(validate_key_name("<script>alert(1)</script>").is_ok());
        assert!(validate_key_name("").is_err());
        assert!(validate_key_name("a\nb").is_err());
        assert_eq!(display_prefix("mcpr_abcdefghij"), "mcpr_abcdef");
        assert_eq!(hex_decode(&hash_hex("k")).unwrap().len(), 32);
    }
}
