//! Secrets at rest: server environment values and header values are sealed with AES-256-GCM
//! under the master key before the store writes them, and opened when it reads them.
//!
//! The master key comes from `MCPR_MASTER_KEY` (base64 of 32 bytes) or from `master.key` in
//! the data directory, generated on first start with 0600 permissions. A sealed value is a
//! versioned envelope, `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag), inside the runtime's
//! JSON, so no schema change is needed and a plaintext value written before encryption
//! existed still loads (it is sealed on the next write, and at start-up by the registry).
//!
//! Also the one source of randomness for credentials ([`random_bytes`]: the OS RNG).

use std::path::Path;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Marks a sealed value; the version lets a later format (or key rotation) coexist.
pub const ENVELOPE_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("MCPR_MASTER_KEY must be the base64 encoding of exactly 32 bytes ({0})")]
    BadKey(String),
    #[error("master key file {path}: {error}")]
    KeyFile { path: String, error: String },
    #[error("a sealed secret cannot be opened (wrong master key, or the value is damaged)")]
    Open,
}

/// The AES-256-GCM key that seals server secrets.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(********)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey {
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// Decodes `MCPR_MASTER_KEY`.
    pub fn from_base64(text: &str) -> Result<MasterKey, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SecretError::BadKey(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| SecretError::BadKey(format!("got {} bytes", b.len())))?;
        Ok(MasterKey::from_bytes(&bytes))
    }

    /// `master.key` in `data_dir`, created (0600, in a 0700 directory) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<MasterKey, SecretError> {
        let path = data_dir.join("master.key");
        let file_error = |error: std::io::Error| SecretError::KeyFile {
            path: path.display().to_string(),
            error: error.to_string(),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return MasterKey::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(e)),
        }
        crate::data_dir::create(data_dir).map_err(file_error)?;
        let key = random_bytes::<32>();
        write_private(&path, STANDARD.encode(key).as_bytes()).map_err(file_error)?;
        tracing::info!(path = %path.display(), "generated a new master key for secrets at rest");
        Ok(MasterKey::from_bytes(&key))
    }

    /// Seals `plain` into an `enc:v1:` envelope (a fresh random nonce each time).
    pub fn seal(&self, plain: &str) -> String {
        let nonce = random_bytes::<NONCE_LEN>();
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{ENVELOPE_PREFIX}{}", STANDARD.encode(out))
    }

    /// Opens an envelope; a value without the prefix is legacy plaintext and returned as is.
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(body) = stored.strip_prefix(ENVELOPE_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let bytes = STANDARD.decode(body).map_err(|_| SecretError::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain).map_err(|_| SecretError::Open)
    }

    /// Applies `f` to every secret of a runtime spec as JSON: the values of its top-level
    /// `env` and `headers` objects, whatever the runtime kind (process, remote, docker).
    pub fn map_secrets<E>(
        runtime: &mut serde_json::Value,
        mut f: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<(), E> {
        for field in ["env", "headers"] {
            if let Some(map) = runtime.get_mut(field).and_then(|m| m.as_object_mut()) {
                for value in map.values_mut() {
                    if let Some(text) = value.as_str() {
                        *value = serde_json::Value::String(f(text)?);
                    }
                }
            }
        }
        Ok(())
    }
}

/// True when any secret of `runtime` (as stored JSON) is still plaintext.
pub fn has_plaintext(runtime: &serde_json::Value) -> bool {
    let mut plain = false;
    let _ = MasterKey::map_secrets::<()>(&mut runtime.clone(), |v| {
        plain |= !v.starts_with(ENVELOPE_PREFIX);
        Ok(v.to_owned())
    });
    plain
}

/// Writes a file readable by its owner only (0600), replacing any previous one.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_reads_legacy_plaintext() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.seal("s3cret");
        assert!(sealed.starts_with(ENVELOPE_PREFIX));
        assert!(!sealed.contains("s3cret"));
        assert_ne!(sealed, key.seal("s3cret"), "fresh nonce each time");
        assert_eq!(key.open(&sealed).unwrap(), "s3cret");
        assert_eq!(key.open("plain").unwrap(), "plain");
        let other = MasterKey::from_bytes(&[8; 32]);
        assert!(other.open(&sealed).is_err());
        assert!(key.open("enc:v1:AAAA").is_err());
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = MasterKey::load_or_create(dir.path()).unwrap();
        assert_eq!(b.open(&a.seal("x")).unwrap(), "x");
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn maps_env_and_header_values_only() {
        let mut runtime = serde_json::json!({"kind": "process", "command": "c", "args": ["a"], "env": {"K": "v"}});
        assert!(has_plaintext(&runtime));
        MasterKey::map_secrets::<()>(&mut runtime, |v| Ok(format!("{ENVELOPE_PREFIX}{v}")))
            .unwrap();
        assert_eq!(runtime["env"]["K"], "enc:v1:v");
        assert_eq!(runtime["args"][0], "a");
        assert!(!has_plaintext(&runtime));
    }
}
