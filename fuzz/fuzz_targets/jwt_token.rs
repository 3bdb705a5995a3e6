//! Any bytes as a bearer token, alone or spliced into a real ES256 token of a trusted
//! issuer (as its header, claims or signature): verification never panics, and the only
//! token it accepts is the one the issuer really signed.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mcpr_edge_gateway::access::jwt::Verifier;
use mcpr_proto as pb;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "https://router.test/mcp";
const NOW: i64 = 1_800_000_000;

struct Fixture {
    verifier: Verifier,
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap();
        let point = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#);
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "fuzz", "scope": "echo",
            "exp": NOW + 300, "iat": NOW,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature = key.sign(&rng, signed.as_bytes()).unwrap();
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
        let policy = pb::OAuthPolicy {
            resource: AUDIENCE.into(),
            issuers: vec![pb::TokenIssuer {
                issuer: ISSUER.into(),
                audiences: vec![AUDIENCE.into()],
                jwks_json: jwks.to_string(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let verifier = Verifier::from_proto(Some(&policy));
        assert!(verifier.verify(&token, NOW).is_ok(), "the fixture token verifies");
        Fixture { verifier, token }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fixture = fixture();
    let parts: Vec<&str> = fixture.token.split('.').collect();
    let spliced = URL_SAFE_NO_PAD.encode(rest);
    let token = match mode % 5 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => format!("{spliced}.{}.{}", parts[1], parts[2]),
        2 => format!("{}.{spliced}.{}", parts[0], parts[2]),
        3 => format!("{}.{}.{spliced}", parts[0], parts[1]),
        _ => format!("{}.{}", fixture.token, String::from_utf8_lossy(rest)),
    };
    if fixture.verifier.verify(&token, NOW).is_ok() {
        assert_eq!(token, fixture.token, "a token the issuer never signed was accepted");
    }
});
