//! Admin MCP tokens: short-lived credentials with which an admin calls MCP through the
//! gateway, as the web UI's "Try a tool" does (`POST /api/v1/session/mcp-token`).
//!
//! Where MCP clients must authenticate (an API key exists, `MCPR_AUTH=required`, OAuth),
//! the gateway would refuse the admin's own browser: the session cookie is the control
//! plane's and never reaches the gateway's check. So a logged-in admin mints a token here:
//! 256 random bits, valid [`LIFETIME`] (never past the admin session), stored only as its
//! SHA-256 like API keys and admin sessions (in `admin_mcp_tokens`, so that it survives a
//! restart and every control plane sharing a database publishes it, as admin sessions are
//! stored), and published to the gateways in the snapshot as a credential of kind
//! [`CREDENTIAL_KIND`]: access to everything, audited as the admin session that minted it.
//!
//! It is not an API key: it is never listed with them, and it never makes an open router
//! require keys (`KeyRing::required` counts API keys only). Logging the session out ends its
//! tokens; an expired token drops out of the next snapshot, and gateways refuse it on their
//! own clock before that.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpr_proto as pb;

use super::{ALL_SCOPES, hash_hex, hex_decode, now_ms, now_rfc3339};
use crate::secrets::random_bytes;
use crate::store::{AdminMcpTokenRecord, Store, StoreError};

/// Every admin MCP token starts with this (API keys: `mcpr_`, admin sessions: `mcpra_`).
pub const TOKEN_PREFIX: &str = "mcprm_";
/// How long a token works.
pub const LIFETIME: Duration = Duration::from_secs(15 * 60);
/// `Credential.kind` of these tokens in the configuration snapshot.
pub const CREDENTIAL_KIND: &str = "admin";
/// `who_client` of the audit records gateways make of these tokens' calls (`who_kind`
/// `admin`, `who_id` the session, `who_name` its kind): the only admin records the control
/// plane takes from a gateway (`audit/mod.rs`).
pub const AUDIT_CLIENT: &str = "mcp_token";

/// The admin MCP tokens not yet expired, as read from the store.
pub struct AdminMcpTokens {
    store: Store,
    tokens: RwLock<Arc<Vec<AdminMcpTokenRecord>>>,
}

/// A token just minted: the only time it is shown.
#[derive(Debug, serde::Serialize)]
pub struct MintedToken {
    pub token: String,
    pub expires_at_ms: i64,
}

impl AdminMcpTokens {
    pub async fn load(store: Store) -> Result<AdminMcpTokens, StoreError> {
        let tokens = store.list_admin_mcp_tokens(now_ms()).await?;
        Ok(AdminMcpTokens {
            store,
            tokens: RwLock::new(Arc::new(tokens)),
        })
    }

    /// Reads the tokens again (another control plane may have minted or ended some).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let tokens = self.store.list_admin_mcp_tokens(now_ms()).await?;
        *self.tokens.write().unwrap() = Arc::new(tokens);
        Ok(())
    }

    /// Mints a token for the admin session `session_id` (of `session_kind`), valid
    /// [`LIFETIME`] but never past `session_expires_at_ms` (0: no session to outlive).
    pub async fn mint(
        &self,
        session_id: &str,
        session_kind: &str,
        session_expires_at_ms: i64,
    ) -> Result<MintedToken, StoreError> {
        let token = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        );
        let now = now_ms();
        let mut expires_at_ms = now + LIFETIME.as_millis() as i64;
        if session_expires_at_ms > 0 {
            expires_at_ms = expires_at_ms.min(session_expires_at_ms);
        }
        let record = AdminMcpTokenRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            hash: hash_hex(&token),
            session_id: session_id.to_owned(),
            session_kind: session_kind.to_owned(),
            created_at: now_rfc3339(),
            expires_at_ms,
        };
        self.store.insert_admin_mcp_token(&record, now).await?;
        self.reload().await?;
        Ok(MintedToken {
            token,
            expires_at_ms,
        })
    }

    /// Ends every token of the admin session `session_id`; whether there were any.
    pub async fn end_session(&self, session_id: &str) -> Result<bool, StoreError> {
        let ended = self.store.delete_admin_mcp_tokens_of(session_id).await? > 0;
        if ended {
            self.reload().await?;
        }
        Ok(ended)
    }

    /// The snapshot's credentials: every token not expired by `now_ms`, with access to
    /// everything, named by the session that minted it (id and kind), as the audit log
    /// names the admin.
    pub fn credentials(&self, now_ms: i64) -> Vec<pb::Credential> {
        self.tokens
            .read()
            .unwrap()
            .iter()
            .filter(|t| t.expires_at_ms > now_ms)
            .filter_map(|t| {
                Some(pb::Credential {
                    id: t.session_id.clone(),
                    kind: CREDENTIAL_KIND.into(),
                    hash: hex_decode(&t.hash)?,
                    scopes: vec![ALL_SCOPES.into()],
                    name: t.session_kind.clone(),
                    expires_at_ms: t.expires_at_ms,
                    revoked: false,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_hashed_bounded_by_their_session_and_end_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let tokens = AdminMcpTokens::load(store.clone()).await.unwrap();
        let session_end = now_ms() + 60_000;
        let minted = tokens.mint("s1", "ui", session_end).await.unwrap();
        assert!(minted.token.starts_with(TOKEN_PREFIX));
        assert_eq!(
            minted.expires_at_ms, session_end,
            "never outlives its session"
        );
        let other = tokens.mint("s2", "cli", 0).await.unwrap();
        assert!(other.expires_at_ms > now_ms() + LIFETIME.as_millis() as i64 - 5_000);

        // Only the hash is stored, and the snapshot carries it with kind "admin".
        let stored = store.list_admin_mcp_tokens(0).await.unwrap();
        assert!(stored.iter().all(|t| !t.hash.contains(&minted.token)));
        let credentials = tokens.credentials(now_ms());
        assert_eq!(credentials.len(), 2);
        let first = credentials.iter().find(|c| c.id == "s1").unwrap();
        assert_eq!(
            (
                first.kind.as_str(),
                first.name.as_str(),
                first.scopes.clone()
            ),
            ("admin", "ui", vec!["*".to_owned()])
        );
        assert_eq!(hex_decode(&hash_hex(&minted.token)).unwrap(), first.hash);
        // Expired ones drop out; a logout ends its session's tokens only.
        assert_eq!(tokens.credentials(session_end).len(), 1);
        assert!(tokens.end_session("s1").await.unwrap());
        assert!(!tokens.end_session("s1").await.unwrap());
        let left = tokens.credentials(now_ms());
        assert_eq!(
            left.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["s2"]
        );
    }
}
