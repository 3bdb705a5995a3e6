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
    /// When an admin revoked the client (0: never); a revoked client gets no tokens.
    pub revoked_at_ms: i64,
}

/// A registered client as the admin API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientListing {
    pub client: ClientRecord,
    /// When the client last got tokens from the token endpoint (0: never).
    pub last_used_ms: i64,
}

/// One approval on the consent page (`0009_oauth_consents.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentRecord {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub subject: String,
    pub scope: String,
    pub resource: String,
    pub created_at_ms: i64,
    pub last_used_ms: i64,
    pub revoked_at_ms: i64,
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
    /// The consent it was approved under (its refresh tokens' family).
    pub consent_id: String,
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

const CLIENT_COLUMNS: &str = "client_id, client_name, redirect_uris, scope, secret_hash, created_at, revoked_at_ms, last_used_ms";

fn client_listing(row: &AnyRow) -> Result<ClientListing, StoreError> {
    let uris: String = row.try_get("redirect_uris")?;
    Ok(ClientListing {
        client: ClientRecord {
            client_id: row.try_get("client_id")?,
            client_name: row.try_get("client_name")?,
            redirect_uris: serde_json::from_str(&uris)
                .map_err(|e| StoreError::Corrupt(format!("client redirect_uris: {e}")))?,
            scope: row.try_get("scope")?,
            secret_hash: row.try_get("secret_hash")?,
            created_at: row.try_get("created_at")?,
            revoked_at_ms: row.try_get("revoked_at_ms")?,
        },
        last_used_ms: row.try_get("last_used_ms")?,
    })
}

const CONSENT_COLUMNS: &str = "id, client_id, client_name, subject, scope, resource, created_at_ms, last_used_ms, revoked_at_ms";

fn consent(row: &AnyRow) -> Result<ConsentRecord, sqlx::Error> {
    Ok(ConsentRecord {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        client_name: row.try_get("client_name")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        resource: row.try_get("resource")?,
        created_at_ms: row.try_get("created_at_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
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
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| client_listing(&row).map(|l| l.client))
            .transpose()
    }

    /// Every registered client, newest first.
    pub async fn list_oauth_clients(&self) -> Result<Vec<ClientListing>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at DESC, client_id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(client_listing).collect()
    }

    /// Revokes a registered client with every refresh token and consent it holds; false when
    /// no client has that id. Revoking twice keeps the first time.
    pub async fn revoke_oauth_client(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_clients SET revoked_at_ms = $1 WHERE client_id = $2 AND revoked_at_ms = 0",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 && self.get_oauth_client(id).await?.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE oauth_refresh_tokens SET revoked_at_ms = $1 WHERE client_id = $2 AND revoked_at_ms = 0",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        sqlx::query(
            "UPDATE oauth_consents SET revoked_at_ms = $1 WHERE client_id = $2 AND revoked_at_ms = 0",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(true)
    }

    pub async fn insert_oauth_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO oauth_consents ({CONSENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&c.id)
        .bind(&c.client_id)
        .bind(&c.client_name)
        .bind(&c.subject)
        .bind(&c.scope)
        .bind(&c.resource)
        .bind(c.created_at_ms)
        .bind(c.last_used_ms)
        .bind(c.revoked_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_oauth_consent(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CONSENT_COLUMNS} FROM oauth_consents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|row| consent(&row)).transpose()?)
    }

    /// Every consent given, newest first.
    pub async fn list_oauth_consents(&self) -> Result<Vec<ConsentRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CONSENT_COLUMNS} FROM oauth_consents ORDER BY created_at_ms DESC, id"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(consent).collect::<Result<_, _>>()?)
    }

    /// Revokes a consent and the refresh tokens descended from it; false when no consent has
    /// that id. Revoking twice keeps the first time.
    pub async fn revoke_oauth_consent(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_consents SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms = 0",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 && self.get_oauth_consent(id).await?.is_none() {
            return Ok(false);
        }
        self.revoke_refresh_family(id, now_ms).await?;
        Ok(true)
    }

    /// The ids of the clients and of the consents revoked since `since_ms`: gateways refuse
    /// access tokens naming them. Older revocations need not travel: every access token
    /// issued before them has expired.
    pub async fn oauth_revocations(
        &self,
        since_ms: i64,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let clients = sqlx::query(
            "SELECT client_id FROM oauth_clients WHERE revoked_at_ms > $1 ORDER BY client_id",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| row.try_get("client_id"))
        .collect::<Result<_, _>>()?;
        let consents =
            sqlx::query("SELECT id FROM oauth_consents WHERE revoked_at_ms > $1 ORDER BY id")
                .bind(since_ms)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<Result<_, _>>()?;
        Ok((clients, consents))
    }

    /// Records that a client got tokens under a consent (what the admin's lists show).
    pub async fn record_oauth_use(
        &self,
        client_id: &str,
        consent_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE oauth_clients SET last_used_ms = $1 WHERE client_id = $2")
            .bind(now_ms)
            .bind(client_id)
            .execute(self.pool())
            .await?;
        sqlx::query("UPDATE oauth_consents SET last_used_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(consent_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn insert_oauth_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_codes (hash, client_id, redirect_uri, code_challenge, scope, resource, subject, expires_at_ms, consent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.hash)
        .bind(&c.grant.client_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.grant.scope)
        .bind(&c.grant.resource)
        .bind(&c.grant.subject)
        .bind(c.grant.expires_at_ms)
        .bind(&c.consent_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes a code: deletes and returns it, so that a code is redeemed at most once even
    /// when two requests race (only one DELETE finds the row).
    pub async fn take_oauth_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oauth_codes WHERE hash = $1 \
             RETURNING hash, client_id, redirect_uri, code_challenge, scope, resource, subject, expires_at_ms, consent_id",
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
            consent_id: row.try_get("consent_id")?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::keys::SigningKeys;
    use crate::secrets::MasterKey;
    use crate::store::tests::fresh_postgres;

    fn grant(expires_at_ms: i64) -> GrantRecord {
        GrantRecord {
            client_id: "c1".into(),
            scope: "alpha".into(),
            resource: "http://h/mcp".into(),
            subject: "admin".into(),
            expires_at_ms,
        }
    }

    /// Codes are taken once; a refresh token is used once; a family is revoked as a whole;
    /// signing keys are sealed and the same key comes back after a reload.
    async fn suite(store: Store) {
        let client = ClientRecord {
            client_id: "c1".into(),
            client_name: "x'); DROP TABLE oauth_clients; --".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            scope: "alpha".into(),
            secret_hash: String::new(),
            created_at: "2026-01-01T00:00:00Z".into(),
            revoked_at_ms: 0,
        };
        store.insert_oauth_client(&client).await.unwrap();
        assert_eq!(store.get_oauth_client("c1").await.unwrap(), Some(client));
        assert_eq!(store.get_oauth_client("c2").await.unwrap(), None);

        let code = CodeRecord {
            hash: "h1".into(),
            redirect_uri: "http://127.0.0.1:9/cb".into(),
            code_challenge: "ch".into(),
            grant: grant(5_000),
            consent_id: "k1".into(),
        };
        store.insert_oauth_code(&code).await.unwrap();
        assert_eq!(store.take_oauth_code("h1").await.unwrap(), Some(code));
        assert_eq!(store.take_oauth_code("h1").await.unwrap(), None);

        for (hash, family) in [("r1", "f1"), ("r2", "f1"), ("r3", "f2")] {
            store
                .insert_refresh_token(&RefreshRecord {
                    hash: hash.into(),
                    family_id: family.into(),
                    grant: grant(10_000),
                    used_at_ms: 0,
                    revoked_at_ms: 0,
                })
                .await
                .unwrap();
        }
        assert!(store.use_refresh_token("r1", 100).await.unwrap());
        assert!(!store.use_refresh_token("r1", 200).await.unwrap());
        store.revoke_refresh_family("f1", 300).await.unwrap();
        assert_eq!(
            store
                .get_refresh_token("r2")
                .await
                .unwrap()
                .unwrap()
                .revoked_at_ms,
            300
        );
        assert_eq!(
            store
                .get_refresh_token("r3")
                .await
                .unwrap()
                .unwrap()
                .revoked_at_ms,
            0
        );
        store.purge_oauth(20_000).await.unwrap();
        assert_eq!(store.get_refresh_token("r3").await.unwrap(), None);

        consents_and_revocation(&store).await;

        let rotation = std::time::Duration::from_secs(3600);
        let keys = SigningKeys::load(store.clone(), rotation).await.unwrap();
        let stored = store.list_signing_keys().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(
            stored[0]
                .private_key
                .starts_with(crate::secrets::ENVELOPE_PREFIX)
        );
        let again = SigningKeys::load(store.clone(), rotation).await.unwrap();
        assert_eq!(again.jwks(), keys.jwks());
        assert!(!again.refresh().await.unwrap());
        let token = again.sign(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(token.split('.').count(), 3);
    }

    /// Consents are listed newest first; revoking one revokes its refresh family; revoking a
    /// client revokes its tokens and consents; both show among the recent revocations.
    async fn consents_and_revocation(store: &Store) {
        let consent = |id: &str, client: &str, at: i64| ConsentRecord {
            id: id.into(),
            client_id: client.into(),
            client_name: "x'); DROP TABLE oauth_consents; --".into(),
            subject: "admin".into(),
            scope: "alpha".into(),
            resource: "http://h/mcp".into(),
            created_at_ms: at,
            last_used_ms: 0,
            revoked_at_ms: 0,
        };
        store
            .insert_oauth_consent(&consent("k1", "c1", 50_000))
            .await
            .unwrap();
        store
            .insert_oauth_consent(&consent("k2", "c1", 60_000))
            .await
            .unwrap();
        store
            .insert_oauth_consent(&consent("k3", "c9", 70_000))
            .await
            .unwrap();
        for (hash, family) in [("t1", "k1"), ("t2", "k2"), ("t3", "k3")] {
            let mut g = grant(90_000);
            g.client_id = if family == "k3" { "c9" } else { "c1" }.into();
            store
                .insert_refresh_token(&RefreshRecord {
                    hash: hash.into(),
                    family_id: family.into(),
                    grant: g,
                    used_at_ms: 0,
                    revoked_at_ms: 0,
                })
                .await
                .unwrap();
        }
        store.record_oauth_use("c1", "k2", 65_000).await.unwrap();
        let ids: Vec<String> = store
            .list_oauth_consents()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["k3", "k2", "k1"]);
        assert_eq!(
            store
                .get_oauth_consent("k2")
                .await
                .unwrap()
                .unwrap()
                .last_used_ms,
            65_000
        );
        assert_eq!(
            store.list_oauth_clients().await.unwrap()[0].last_used_ms,
            65_000
        );

        assert!(store.revoke_oauth_consent("k3", 71_000).await.unwrap());
        assert!(store.revoke_oauth_consent("k3", 72_000).await.unwrap());
        assert!(!store.revoke_oauth_consent("nope", 72_000).await.unwrap());
        assert_eq!(
            store
                .get_oauth_consent("k3")
                .await
                .unwrap()
                .unwrap()
                .revoked_at_ms,
            71_000
        );
        let revoked = |h: &str| {
            let store = store.clone();
            let h = h.to_owned();
            async move {
                store
                    .get_refresh_token(&h)
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked_at_ms
            }
        };
        assert_eq!(revoked("t3").await, 71_000);
        assert_eq!(revoked("t1").await, 0);

        assert!(store.revoke_oauth_client("c1", 80_000).await.unwrap());
        assert!(!store.revoke_oauth_client("c2", 80_000).await.unwrap());
        assert_eq!(
            store
                .get_oauth_client("c1")
                .await
                .unwrap()
                .unwrap()
                .revoked_at_ms,
            80_000
        );
        assert_eq!((revoked("t1").await, revoked("t2").await), (80_000, 80_000));
        assert_eq!(
            store
                .get_oauth_consent("k1")
                .await
                .unwrap()
                .unwrap()
                .revoked_at_ms,
            80_000
        );
        let (clients, consents) = store.oauth_revocations(70_000).await.unwrap();
        assert_eq!(clients, ["c1"]);
        assert_eq!(consents, ["k1", "k2", "k3"]);
        let (clients, consents) = store.oauth_revocations(75_000).await.unwrap();
        assert_eq!(
            (clients.len(), consents),
            (1, vec!["k1".to_owned(), "k2".to_owned()])
        );
    }

    fn sealed(store: Store) -> Store {
        store.with_master_key(MasterKey::from_bytes(&[7; 32]))
    }

    #[tokio::test]
    async fn sqlite_oauth_suite() {
        let dir = tempfile::tempdir().unwrap();
        suite(sealed(Store::open_sqlite(dir.path()).await.unwrap())).await;
    }

    /// Past the rotation period a new key signs and the previous one stays in the JWKS.
    #[tokio::test]
    async fn signing_keys_rotate_and_keep_the_previous_key_published() {
        let dir = tempfile::tempdir().unwrap();
        let store = sealed(Store::open_sqlite(dir.path()).await.unwrap());
        let period = std::time::Duration::from_millis(1500);
        let keys = SigningKeys::load(store.clone(), period).await.unwrap();
        let kid = |token: &str| {
            use base64::Engine;
            let header = token.split('.').next().unwrap();
            let header: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(header)
                    .unwrap(),
            )
            .unwrap();
            header["kid"].as_str().unwrap().to_owned()
        };
        let first = kid(&keys.sign(&serde_json::json!({})).unwrap());
        assert!(!keys.refresh().await.unwrap());
        tokio::time::sleep(period + std::time::Duration::from_millis(100)).await;
        assert!(keys.refresh().await.unwrap());
        let second = kid(&keys.sign(&serde_json::json!({})).unwrap());
        assert_ne!(first, second);
        let jwks: serde_json::Value = serde_json::from_str(&keys.jwks()).unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, vec![second.as_str(), first.as_str()]);
    }

    #[tokio::test]
    async fn postgres_oauth_suite() {
        let Some(url) = fresh_postgres().await else {
            return;
        };
        suite(sealed(Store::connect(&url).await.unwrap())).await;
    }
}
