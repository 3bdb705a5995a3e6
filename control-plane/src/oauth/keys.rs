//! Token signing keys: ES256 (P-256), generated here, stored with the private half sealed by
//! the master key (`secrets.rs`), so they survive restarts and every control plane of a
//! cluster sharing the database signs with the same key. The newest key signs; it is
//! replaced once older than the rotation period, and the previous one stays published in
//! the JWKS for another period so tokens it signed still verify until they expire.
//!
//! `ring` makes the keys (PKCS#8); `jsonwebtoken` signs the tokens with them.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use super::store::SigningKeyRecord;
use crate::keys::now_ms;
use crate::store::Store;

struct Current {
    /// The JWS header of every token it signs (`kid` names the key in the JWKS).
    header: Header,
    key: EncodingKey,
}

struct KeySet {
    current: Current,
    /// `{"keys": [current, previous]}`.
    jwks: String,
}

pub struct SigningKeys {
    store: Store,
    rotation: Duration,
    set: RwLock<Arc<KeySet>>,
    rng: SystemRandom,
}

impl SigningKeys {
    /// Loads the keys, making (or rotating to) a new one when none is current.
    pub async fn load(store: Store, rotation: Duration) -> anyhow::Result<SigningKeys> {
        let rng = SystemRandom::new();
        let set = Self::load_set(&store, rotation, &rng).await?;
        Ok(SigningKeys {
            store,
            rotation,
            set: RwLock::new(Arc::new(set)),
            rng,
        })
    }

    async fn load_set(
        store: &Store,
        rotation: Duration,
        rng: &SystemRandom,
    ) -> anyhow::Result<KeySet> {
        let now = now_ms();
        let period = rotation.as_millis() as i64;
        let mut records = store.list_signing_keys().await?;
        if records
            .first()
            .is_none_or(|k| now - k.created_at_ms >= period)
        {
            let record = new_key(store, rng, now)?;
            store.insert_signing_key(&record).await?;
            tracing::info!(kid = %record.kid, "new OAuth token signing key");
            // Keys older than two periods signed nothing still valid.
            store.delete_signing_keys_before(now - 2 * period).await?;
            records = store.list_signing_keys().await?;
        }
        let newest = records
            .first()
            .context("no signing key after creating one")?;
        let master = store
            .master_key()
            .context("the store has no master key to open signing keys")?;
        let pkcs8 = STANDARD
            .decode(master.open(&newest.private_key)?)
            .context("signing key is not base64")?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(newest.kid.clone());
        let key = EncodingKey::from_ec_der(&pkcs8);
        // Found out here, once, rather than on every token request.
        jsonwebtoken::encode(&header, &json!({}), &key)
            .map_err(|e| anyhow::anyhow!("signing key {} is unusable: {e}", newest.kid))?;
        let keys: Vec<Value> = records
            .iter()
            .filter(|k| now - k.created_at_ms < 2 * period)
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(KeySet {
            current: Current { header, key },
            jwks: json!({ "keys": keys }).to_string(),
        })
    }

    /// Rotates when the current key is older than the period (another control plane may
    /// have done it already: the store is the truth). True when the key set changed.
    pub async fn refresh(&self) -> anyhow::Result<bool> {
        let set = Self::load_set(&self.store, self.rotation, &self.rng).await?;
        let changed = set.jwks != self.jwks();
        *self.set.write().unwrap() = Arc::new(set);
        Ok(changed)
    }

    pub fn jwks(&self) -> String {
        self.set.read().unwrap().jwks.clone()
    }

    /// A compact JWS (ES256) of `claims`.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let set = self.set.read().unwrap().clone();
        jsonwebtoken::encode(&set.current.header, claims, &set.current.key)
            .map_err(|e| anyhow::anyhow!("signing a token failed: {e}"))
    }
}

fn new_key(store: &Store, rng: &SystemRandom, now: i64) -> anyhow::Result<SigningKeyRecord> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| anyhow::anyhow!("generating a P-256 key failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|e| anyhow::anyhow!("the generated key is unusable: {e}"))?;
    let point = pair.public_key().as_ref();
    let kid = URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes::<12>());
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    });
    let master = store
        .master_key()
        .context("the store has no master key to seal signing keys")?;
    Ok(SigningKeyRecord {
        kid,
        private_key: master.seal(&STANDARD.encode(pkcs8.as_ref())),
        public_jwk: jwk.to_string(),
        created_at_ms: now,
    })
}
