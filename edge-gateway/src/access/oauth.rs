//! The gateway as an OAuth 2.1 resource server: its RFC 9728 metadata (where clients learn
//! which authorization server issues tokens for it), the `WWW-Authenticate` challenges that
//! point there, and the verified-token cache.
//!
//! The metadata document is served by `transport/resource_metadata.rs`.

use std::sync::Arc;

use axum::http::HeaderValue;
use dashmap::DashMap;
use mcpr_proto as pb;
use sha2::{Digest, Sha256};

use crate::access::jwt::{TokenGrant, Verifier};

/// Verified tokens kept per snapshot; beyond this many the cache starts over.
const CACHE_LIMIT: usize = 10_000;
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// What a snapshot says about OAuth on this gateway.
pub struct ResourceServer {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    verifier: Verifier,
    /// SHA-256 of a token -> its verified grant: a token is verified once per snapshot.
    cache: DashMap<[u8; 32], Arc<TokenGrant>>,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("resource", &self.resource)
            .field("authorization_servers", &self.authorization_servers)
            .finish_non_exhaustive()
    }
}

impl ResourceServer {
    pub fn from_proto(policy: Option<&pb::OAuthPolicy>) -> Option<ResourceServer> {
        let policy = policy.filter(|p| !p.issuers.is_empty())?;
        Some(ResourceServer {
            resource: policy.resource.clone(),
            authorization_servers: policy.authorization_servers.clone(),
            scopes_supported: policy.scopes_supported.clone(),
            verifier: Verifier::from_proto(Some(policy)),
            cache: DashMap::new(),
        })
    }

    /// The grant of a bearer token, verified or from the cache; expiry is checked every time.
    pub fn check(&self, token: &str, now_secs: i64) -> Result<Arc<TokenGrant>, String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(grant) = self.cache.get(&digest) {
            if grant.expires_at <= now_secs {
                return Err("token expired".into());
            }
            return Ok(grant.clone());
        }
        let grant = Arc::new(self.verifier.verify(token, now_secs)?);
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.retain(|_, g| g.expires_at > now_secs);
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
        }
        self.cache.insert(digest, grant.clone());
        Ok(grant)
    }

    /// Where the metadata of the resource lives (RFC 9728 §3.1: the well-known prefix
    /// inserted before the resource's path).
    pub fn metadata_url(&self) -> String {
        let (origin, path) = split_origin(&self.resource);
        format!("{origin}{METADATA_PATH}{}", path.trim_end_matches('/'))
    }

    /// `WWW-Authenticate` for a 401: with `error="invalid_token"` when a token was refused.
    pub fn challenge(&self, invalid_token: Option<&str>) -> HeaderValue {
        let mut value = format!(
            "Bearer realm=\"mcp-router\", resource_metadata=\"{}\"",
            self.metadata_url()
        );
        if let Some(why) = invalid_token {
            value.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{}\"",
                quoted(why)
            ));
        }
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// `WWW-Authenticate` for a 403: the token lacks `scope`.
    pub fn insufficient_scope(&self, scope: &str) -> HeaderValue {
        let value = format!(
            "Bearer realm=\"mcp-router\", error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
            quoted(scope),
            self.metadata_url()
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

/// A value fit for a quoted-string: no quotes, backslashes or control characters.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\' && c.is_ascii())
        .collect()
}

/// `http://host:port/path` -> (`http://host:port`, `/path`).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_prefix() {
        assert_eq!(
            split_origin("http://127.0.0.1:8000/mcp"),
            ("http://127.0.0.1:8000", "/mcp")
        );
        assert_eq!(split_origin("https://h"), ("https://h", ""));
        let rs = ResourceServer {
            resource: "http://127.0.0.1:8000/mcp".into(),
            authorization_servers: vec![],
            scopes_supported: vec![],
            verifier: Verifier::default(),
            cache: DashMap::new(),
        };
        assert_eq!(
            rs.metadata_url(),
            "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(quoted("a\"b\\c\n"), "abc");
    }
}
