//! The SQL of the authorization server (tables of `migrations/0003_oauth.sql`), in the
//! store's portable dialect: `$N` placeholders, TEXT and BIGINT only.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub scope: String,
    pub secret_hash: String,
    pub created_at: String,
}

/// An authorization code or a refresh token: what it grants.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRecord {
    pub client_id: String,
    pub scope: String,
    pub resource: String,
    pub subject: String,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeRecord {
    pub hash: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub grant: GrantRecord,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefreshRecord {
    pub hash: String,
    pub family_id: String,
    pub grant: GrantRecord,
    pub used_at_ms: i64,
    pub revoked_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// Sealed (`enc:v1:…`) PKCS#8 of the private key.
    pub private_key: String,
    pub public_jwk: String,
    pub created_at_ms: i64,
}

fn grant(row: &AnyRow) -> Result<GrantRecord, sqlx::Error> {
    Ok(GrantRecord {
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        resource: row.try_get("resource")?,
        subject: row.try_get("subject")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
    })
}

impl Store {
    pub async fn insert_oauth_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, client_name, redirect_uris, scope, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.client_id)
        .bind(&c.client_name)
        .bind(serde_json::to_string(&c.redirect_uris).expect("strings serialize"))
        .bind(&c.scope)
        .bind(&c.secret_hash)
        .bind(&c.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_oauth_client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, client_name, redirect_uris, scope, secret_hash, created_at \
             FROM oauth_clients WHERE client_id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let uris: String = row.try_get("redirect_uris")?;
        Ok(Some(ClientRecord {
            client_id: row.try_get("client_id")?,
            client_name: row.try_get("client_name")?,
            redirect_uris: serde_json::from_str(&uris)
                .map_err(|e| StoreError::Corrupt(format!("client redirect_uris: {e}")))?,
            scope: row.try_get("scope")?,
            secret_hash: row.try_get("secret_hash")?,
            created_at: row.try_get("created_at")?,
        }))
    }

    pub async fn insert_oauth_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_codes (hash, client_id, redirect_uri, code_challenge, scope, resource, subject, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.hash)
        .bind(&c.grant.client_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.grant.scope)
        .bind(&c.grant.resource)
        .bind(&c.grant.subject)
        .bind(c.grant.expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes a code: deletes and returns it, so that a code is redeemed at most once even
    /// when two requests race (only one DELETE finds the row).
    pub async fn take_oauth_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oauth_codes WHERE hash = $1 \
             RETURNING hash, client_id, redirect_uri, code_challenge, scope, resource, subject, expires_at_ms",
        )
        .bind(hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(CodeRecord {
            hash: row.try_get("hash")?,
            redirect_uri: row.try_get("redirect_uri")?,
            code_challenge: row.try_get("code_challenge")?,
            grant: grant(&row)?,
        }))
    }

    /// Forgets codes and refresh tokens past their expiry.
    pub async fn purge_oauth(&self, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_codes WHERE expires_at_ms < $1")
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM oauth_refresh_tokens WHERE expires_at_ms < $1")
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn insert_refresh_token(&self, r: &RefreshRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_refresh_tokens (hash, family_id, client_id, scope, resource, subject, expires_at_ms, used_at_ms, revoked_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&r.hash)
        .bind(&r.family_id)
        .bind(&r.grant.client_id)
        .bind(&r.grant.scope)
        .bind(&r.grant.resource)
        .bind(&r.grant.subject)
        .bind(r.grant.expires_at_ms)
        .bind(r.used_at_ms)
        .bind(r.revoked_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT hash, family_id, client_id, scope, resource, subject, expires_at_ms, used_at_ms, revoked_at_ms \
             FROM oauth_refresh_tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RefreshRecord {
            hash: row.try_get("hash")?,
            family_id: row.try_get("family_id")?,
            grant: grant(&row)?,
            used_at_ms: row.try_get("used_at_ms")?,
            revoked_at_ms: row.try_get("revoked_at_ms")?,
        }))
    }

    /// Marks a refresh token used; false when it already was (a concurrent or replayed use).
    pub async fn use_refresh_token(&self, hash: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_refresh_tokens SET used_at_ms = $1 WHERE hash = $2 AND used_at_ms = 0",
        )
        .bind(now_ms)
        .bind(hash)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn revoke_refresh_family(&self, family: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE oauth_refresh_tokens SET revoked_at_ms = $1 WHERE family_id = $2 AND revoked_at_ms = 0",
        )
        .bind(now_ms)
        .bind(family)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, private_key, public_jwk, created_at_ms FROM oauth_signing_keys ORDER BY created_at_ms DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: row.try_get("kid")?,
                    private_key: row.try_get("private_key")?,
                    public_jwk: row.try_get("public_jwk")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    pub async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_signing_keys (kid, private_key, public_jwk, created_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&k.kid)
        .bind(&k.private_key)
        .bind(&k.public_jwk)
        .bind(k.created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes keys older than the newest `keep` (retired keys no token can still need).
    pub async fn delete_signing_keys_before(
        &self,
        created_before_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_signing_keys WHERE created_at_ms < $1")
            .bind(created_before_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
