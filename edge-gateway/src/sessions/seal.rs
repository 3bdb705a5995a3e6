//! Sealed session ids: `s1.<payload>.<tag>`, where the payload names the view, protocol
//! version and a tag of the credential that created the session, and the tag is an HMAC-SHA-256 under the key every gateway gets in its snapshot.
//! Any replica can verify an id and resume the session, so no sticky load balancing is
//! needed; an id cannot be forged or moved to another view without the key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::views::View;

const PREFIX: &str = "s1";

fn tag(key: &[u8], encoded: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(encoded.as_bytes());
    mac.finalize().into_bytes()[..16].to_vec()
}

/// `<prefix>.<payload>.<tag>`, the payload in base64url, the tag an HMAC-SHA-256 of it
/// (truncated to 128 bits) under `key`: what the router hands out and must get back
/// unchanged from any replica (session ids, the bridge's `requestState`).
pub fn seal_bytes(key: &[u8], prefix: &str, payload: &[u8]) -> String {
    let encoded = B64.encode(payload);
    let tag = B64.encode(tag(key, &encoded));
    format!("{prefix}.{encoded}.{tag}")
}

/// The payload of a `seal_bytes` text with this prefix, when its tag is right.
pub fn unseal_bytes(key: &[u8], prefix: &str, sealed: &str) -> Option<Vec<u8>> {
    let rest = sealed.strip_prefix(prefix)?.strip_prefix('.')?;
    let (encoded, given) = rest.split_once('.')?;
    let given = B64.decode(given).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(encoded.as_bytes());
    // Constant-time comparison of the truncated tag.
    mac.verify_truncated_left(&given).ok()?;
    B64.decode(encoded).ok()
}

pub(crate) fn view_text(view: &View) -> String {
    match view {
        View::Hierarchical => "h".into(),
        View::Flat => "f".into(),
        View::Transparent(provider) => format!("p/{provider}"),
    }
}

/// A session id of `view` and `protocol_version`, bound to `owner` (a credential).
pub fn seal(key: &[u8], view: &View, protocol_version: &str, owner: &str) -> String {
    let nonce: [u8; 16] = rand::random();
    let payload = format!(
        "{}\n{}\n{}\n{}",
        view_text(view),
        protocol_version,
        hex(&nonce),
        owner_tag(key, owner)
    );
    seal_bytes(key, PREFIX, payload.as_bytes())
}

/// What names a credential in a sealed id: a keyed hash, so the id reveals nothing of
/// the credential and any replica (which has the key) can check it.
pub fn owner_tag(key: &[u8], owner: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"session owner\n");
    mac.update(owner.as_bytes());
    hex(&mac.finalize().into_bytes()[..12])
}

/// The view, protocol version and owner tag of a sealed id, when its tag is right.
/// An id sealed before sessions had owners has none, and is not resumed.
pub fn unseal(key: &[u8], id: &str) -> Option<(View, String, String)> {
    let payload = String::from_utf8(unseal_bytes(key, PREFIX, id)?).ok()?;
    let mut fields = payload.split('\n');
    let view = match fields.next()? {
        "h" => View::Hierarchical,
        "f" => View::Flat,
        other => View::Transparent(other.strip_prefix("p/")?.to_owned()),
    };
    let version = fields.next()?.to_owned();
    let _nonce = fields.next()?;
    let owner = fields.next()?.to_owned();
    Some((view, version, owner))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_ids_round_trip_and_resist_forgery() {
        let key = b"0123456789abcdef0123456789abcdef";
        let id = seal(
            key,
            &View::Transparent("time".into()),
            "2025-06-18",
            "key-1",
        );
        assert!(
            id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII only: {id}"
        );
        assert_eq!(
            unseal(key, &id),
            Some((
                View::Transparent("time".into()),
                "2025-06-18".into(),
                owner_tag(key, "key-1")
            ))
        );
        assert_ne!(owner_tag(key, "key-1"), owner_tag(key, "key-2"));
        assert_ne!(owner_tag(key, "key-1"), owner_tag(b"another key", "key-1"));
        assert_ne!(
            seal(key, &View::Flat, "x", ""),
            seal(key, &View::Flat, "x", ""),
            "unique"
        );
        assert_eq!(unseal(b"another key", &id), None);
        // Moving the session to another view breaks the tag.
        let parts: Vec<&str> = id.split('.').collect();
        let forged_payload = B64.encode("h\n2025-06-18\n00");
        assert_eq!(
            unseal(key, &format!("s1.{forged_payload}.{}", parts[2])),
            None
        );
        assert_eq!(unseal(key, "not-a-session"), None);
        // A sealed text is good for its own kind only.
        assert_eq!(unseal_bytes(key, "mcpr-bridge", &id), None);
        let other = seal_bytes(key, "mcpr-bridge", b"{}");
        assert_eq!(
            unseal_bytes(key, "mcpr-bridge", &other).as_deref(),
            Some(&b"{}"[..])
        );
        assert_eq!(unseal(key, &other), None);
    }
}
