//! OAuth access tokens: JWTs verified locally against the issuers' keys that arrive in the
//! snapshot (the built-in authorization server's JWKS, an external identity provider's), so
//! the request path never calls anyone.
//!
//! Only ES256 and RS256 are accepted, and the key must be of the algorithm's type: `alg:
//! none` and HMAC tokens (for example one "signed" with a public key as the HMAC secret),
//! tokens over [`MAX_TOKEN_BYTES`] and malformed ones are refused here before any key is
//! touched. Signatures are then checked by the `jsonwebtoken` crate (its pure-Rust
//! backend), while the claims are checked here, against the caller's clock. The claims checked: `iss` (one of the trusted issuers,
//! whose keys then verify the signature), `aud` (names the resource), `exp` (required), `nbf`.
//! The scopes come from a configurable claim, optionally mapped (`groups: admins` -> `*`),
//! and become the same [`Access`] an API key with those scopes has.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpr_proto as pb;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::access::Access;

/// Tolerated clock difference between the issuer and the gateway, in seconds.
const LEEWAY_SECS: i64 = 10;
/// The longest token accepted. Real access tokens are well under 2 KiB; the cap bounds the
/// decoding and hashing a caller can make the gateway do.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// RSA moduli accepted, in bytes: 2048 to 8192 bits (shorter keys are weak; longer ones
/// only slow verification down).
const RSA_MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

/// What `jsonwebtoken` checks: the algorithm and the signature only. The claims are checked
/// in [`Verifier::verify`] with the caller's clock (the crate reads the system's), our leeway
/// and our audience rule (a URL below the resource matches).
fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

static ES256: LazyLock<Validation> = LazyLock::new(|| signature_only(Algorithm::ES256));
static RS256: LazyLock<Validation> = LazyLock::new(|| signature_only(Algorithm::RS256));

/// A verified token: what it may use and until when (unix seconds).
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub subject: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub access: Arc<Access>,
    pub expires_at: i64,
}

struct Key {
    kid: Option<String>,
    /// The only algorithm the key verifies (ES256 for a P-256 key, RS256 for an RSA key).
    alg: Algorithm,
    key: DecodingKey,
}

/// One trusted issuer with its keys.
pub struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<Key>,
    scopes_claim: String,
    scope_map: HashMap<String, Vec<String>>,
    /// `client_id` and `consent_id` claims of tokens an admin revoked (`TokenIssuer`).
    revoked_clients: HashSet<String>,
    revoked_consents: HashSet<String>,
}

/// Every trusted issuer of a snapshot.
#[derive(Default)]
pub struct Verifier {
    issuers: Vec<Issuer>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
}

fn b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// The keys of a JWKS document that can verify signatures (others are skipped).
fn parse_jwks(json: &str) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Value>,
    }
    let jwks: Jwks = serde_json::from_str(json).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys = jwks
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter_map(|k| {
            let (alg, key) = match k.kty.as_str() {
                "EC" if k.crv.as_deref() == Some("P-256") => {
                    let (x, y) = (b64(k.x.as_deref()?)?, b64(k.y.as_deref()?)?);
                    if x.len() != 32 || y.len() != 32 {
                        return None;
                    }
                    // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                    let point = [&[4u8][..], &x, &y].concat();
                    (Algorithm::ES256, DecodingKey::from_ec_der(&point))
                }
                "RSA" => {
                    let n = b64(k.n.as_deref()?)?;
                    let e = b64(k.e.as_deref()?)?;
                    let significant = n.iter().skip_while(|b| **b == 0).count();
                    if !RSA_MODULUS_BYTES.contains(&significant) || e.is_empty() {
                        return None;
                    }
                    (
                        Algorithm::RS256,
                        DecodingKey::from_rsa_raw_components(&n, &e),
                    )
                }
                _ => return None,
            };
            Some(Key {
                kid: k.kid,
                alg,
                key,
            })
        })
        .collect();
    Ok(keys)
}

impl Verifier {
    pub fn from_proto(policy: Option<&pb::OAuthPolicy>) -> Verifier {
        let Some(policy) = policy else {
            return Verifier::default();
        };
        let issuers = policy
            .issuers
            .iter()
            .map(|i| {
                let keys = parse_jwks(&i.jwks_json).unwrap_or_else(|e| {
                    tracing::warn!(issuer = %i.issuer, error = %e, "unusable JWKS: tokens of this issuer are refused");
                    Vec::new()
                });
                Issuer {
                    issuer: i.issuer.clone(),
                    audiences: i.audiences.clone(),
                    keys,
                    scopes_claim: if i.scopes_claim.is_empty() {
                        "scope".into()
                    } else {
                        i.scopes_claim.clone()
                    },
                    scope_map: i
                        .scope_map
                        .iter()
                        .map(|(k, v)| (k.clone(), v.scopes.clone()))
                        .collect(),
                    revoked_clients: i.revoked_client_ids.iter().cloned().collect(),
                    revoked_consents: i.revoked_consent_ids.iter().cloned().collect(),
                }
            })
            .collect();
        Verifier { issuers }
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies `token` at `now` (unix seconds): the grant, or why it is refused.
    pub fn verify(&self, token: &str, now: i64) -> Result<TokenGrant, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "token is too large ({} bytes, at most {MAX_TOKEN_BYTES})",
                token.len()
            ));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed token (not a JWT)".into());
        };
        let header: Header = b64(header)
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or("malformed token header")?;
        let alg = match header.alg.as_str() {
            "ES256" => Algorithm::ES256,
            "RS256" => Algorithm::RS256,
            other => {
                return Err(format!(
                    "token algorithm {other:?} is not accepted (ES256 or RS256 only)"
                ));
            }
        };
        let claims: Value = b64(payload)
            .and_then(|p| serde_json::from_slice(&p).ok())
            .filter(Value::is_object)
            .ok_or("malformed token claims")?;
        if URL_SAFE_NO_PAD.decode(sig).is_err() {
            return Err("malformed token signature".into());
        }
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .ok_or_else(|| format!("token issuer {iss:?} is not trusted"))?;
        issuer.verify_signature(token, alg, header.kid.as_deref())?;
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|aud| {
            issuer
                .audiences
                .iter()
                .any(|ours| audience_matches(ours, aud))
        }) {
            return Err(format!(
                "token audience {audiences:?} is not this resource (want {:?})",
                issuer.audiences
            ));
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or("token has no expiry (exp)")?;
        if exp + LEEWAY_SECS <= now {
            return Err("token expired".into());
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && nbf > now + LEEWAY_SECS
        {
            return Err("token is not valid yet (nbf)".into());
        }
        let scopes = issuer.scopes(&claims);
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if issuer.revoked_clients.contains(&text("client_id")) {
            return Err("token revoked: an administrator revoked its OAuth client".into());
        }
        if issuer.revoked_consents.contains(&text("consent_id")) {
            return Err(
                "token revoked: an administrator revoked the consent it was issued under".into(),
            );
        }
        Ok(TokenGrant {
            subject: text("sub"),
            client_id: text("client_id"),
            access: Arc::new(Access::from_scopes(&scopes)),
            scopes,
            expires_at: exp,
        })
    }
}

/// The token's audience names our resource: exactly, or a URL under it (a client may bind
/// its token to `…/mcp/all` when the resource is `…/mcp`).
fn audience_matches(ours: &str, aud: &str) -> bool {
    let ours = ours.trim_end_matches('/');
    let aud = aud.trim_end_matches('/');
    aud == ours
        || aud
            .strip_prefix(ours)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Issuer {
    /// Some key of the issuer for `alg` (the one named `kid`, when the token names one)
    /// signed `token`.
    fn verify_signature(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<(), String> {
        let validation = match alg {
            Algorithm::ES256 => &*ES256,
            _ => &*RS256,
        };
        let candidates = self
            .keys
            .iter()
            .filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid));
        for key in candidates {
            // The claims are checked by the caller: only the signature matters here.
            match jsonwebtoken::decode::<IgnoredAny>(token, &key.key, validation) {
                Ok(_) => return Ok(()),
                Err(e) => match e.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidEcdsaKey
                    | ErrorKind::InvalidRsaKey(_)
                    | ErrorKind::InvalidKeyFormat => continue,
                    // A header the crate refuses (unknown `crit`, `b64: false`) or encoding
                    // it reads more strictly than the checks above.
                    _ => return Err(format!("malformed token ({e})")),
                },
            }
        }
        Err("token signature is invalid".into())
    }

    /// The scopes the token's claim grants, through the map when there is one.
    fn scopes(&self, claims: &Value) -> Vec<String> {
        let values: Vec<String> = match claims.get(&self.scopes_claim) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if self.scope_map.is_empty() {
            return values;
        }
        values
            .iter()
            .filter_map(|v| self.scope_map.get(v))
            .flatten()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_match_exactly_or_below() {
        assert!(audience_matches("http://h/mcp", "http://h/mcp"));
        assert!(audience_matches("http://h/mcp", "http://h/mcp/"));
        assert!(audience_matches("http://h/mcp", "http://h/mcp/all"));
        assert!(!audience_matches("http://h/mcp", "http://h/mcpx"));
        assert!(!audience_matches("http://h/mcp", "http://other/mcp"));
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused_before_any_key() {
        let verifier = Verifier::default();
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = enc(&serde_json::json!({"iss": "x", "aud": "y", "exp": 9_999_999_999i64}));
        for alg in ["none", "HS256"] {
            let token = format!("{}.{claims}.", enc(&serde_json::json!({"alg": alg})));
            let err = verifier.verify(&token, 0).unwrap_err();
            assert!(err.contains("is not accepted"), "{err}");
        }
        assert!(verifier.verify("abc", 0).unwrap_err().contains("not a JWT"));
        let huge = format!("{}.{claims}.", "e".repeat(MAX_TOKEN_BYTES));
        assert_eq!(
            verifier.verify(&huge, 0).unwrap_err(),
            format!("token is too large ({} bytes, at most 16384)", huge.len())
        );
    }

    /// A real ES256 key: a good token passes with its scopes mapped; every claim check and a
    /// tampered signature refuse it with the reason.
    #[test]
    fn es256_tokens_are_verified_with_claims_and_scope_mapping() {
        use ring::rand::SystemRandom;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        let policy = pb::OAuthPolicy {
            issuers: vec![pb::TokenIssuer {
                issuer: "https://idp".into(),
                audiences: vec!["http://h/mcp".into()],
                jwks_json: jwks.to_string(),
                scopes_claim: "groups".into(),
                scope_map: [(
                    "admins".to_owned(),
                    pb::ScopeList {
                        scopes: vec!["*".into()],
                    },
                )]
                .into(),
                revoked_client_ids: vec!["gone-client".into()],
                revoked_consent_ids: vec!["gone-consent".into()],
            }],
            ..Default::default()
        };
        let verifier = Verifier::from_proto(Some(&policy));
        let sign = |claims: Value| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1"}"#),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = pair.sign(&rng, input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        };
        let good = serde_json::json!({"iss": "https://idp", "aud": "http://h/mcp/all", "exp": 1000, "groups": ["admins", "x"]});
        let grant = verifier.verify(&sign(good.clone()), 900).unwrap();
        assert!(grant.access.is_all());
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            sign(c)
        };
        let refused = |token: String, now: i64| verifier.verify(&token, now).unwrap_err();
        assert_eq!(refused(sign(good.clone()), 1010), "token expired");
        assert!(refused(with("aud", "http://other/mcp".into()), 900).starts_with("token audience"));
        assert_eq!(
            refused(with("iss", "https://evil".into()), 900),
            "token issuer \"https://evil\" is not trusted"
        );
        assert_eq!(
            refused(with("nbf", 2000.into()), 900),
            "token is not valid yet (nbf)"
        );
        let no_exp = {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("exp");
            sign(c)
        };
        assert_eq!(refused(no_exp, 900), "token has no expiry (exp)");
        // Revoked in the snapshot: the client, or the consent the token came from.
        assert_eq!(
            refused(with("client_id", "gone-client".into()), 900),
            "token revoked: an administrator revoked its OAuth client"
        );
        assert_eq!(
            refused(with("consent_id", "gone-consent".into()), 900),
            "token revoked: an administrator revoked the consent it was issued under"
        );
        assert!(
            verifier
                .verify(&with("consent_id", "kept".into()), 900)
                .is_ok()
        );
        let token = sign(good.clone());
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        bytes[0] ^= 1;
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(refused(tampered, 900), "token signature is invalid");
        // The P-256 key cannot verify an RS256 token, whatever its signature.
        let (_, rest) = token.split_once('.').unwrap();
        let as_rs256 = format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#)
        );
        assert_eq!(refused(as_rs256, 900), "token signature is invalid");
        // A critical header extension nobody understands.
        let crit_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1","crit":["exp"]}"#),
            URL_SAFE_NO_PAD.encode(good.to_string())
        );
        let crit_sig = pair.sign(&rng, crit_input.as_bytes()).unwrap();
        let crit = format!("{crit_input}.{}", URL_SAFE_NO_PAD.encode(crit_sig.as_ref()));
        assert!(refused(crit, 900).starts_with("malformed token ("));
        // A group outside the map grants nothing.
        let grant = verifier
            .verify(&with("groups", serde_json::json!(["visitors"])), 900)
            .unwrap();
        assert!(!grant.access.allows_provider("anything"));
    }
}
