//! OAuth settings from the environment (names in docs/AUTH.md).

use std::collections::HashMap;
use std::time::Duration;

/// An external OpenID Connect provider whose access tokens gateways accept.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalIdp {
    /// `OAUTH_EXTERNAL_ISSUER`: the exact `iss` of its tokens.
    pub issuer: String,
    /// `OAUTH_EXTERNAL_JWKS_URL`; default: `jwks_uri` of the issuer's
    /// `/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// `OAUTH_EXTERNAL_AUDIENCE`: the `aud` its tokens must name; default the resource.
    pub audience: Option<String>,
    /// `OAUTH_SCOPES_CLAIM`: the claim carrying scopes (default `scope`).
    pub scopes_claim: String,
    /// `OAUTH_SCOPE_MAP`: `value=scope scope;value=scope`; empty: claim values are scopes.
    pub scope_map: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OAuthSettings {
    /// `MCP_OAUTH_ENABLED=true`: the built-in authorization server.
    pub enabled: bool,
    /// `OAUTH_ISSUER`; default the router's base URL ([`OAuthSettings::public_url`]).
    pub issuer: Option<String>,
    /// `OAUTH_AUDIENCE`: the resource tokens are for; default `{base URL}/mcp`.
    pub audience: Option<String>,
    /// `OAUTH_TOKEN_EXPIRY` (seconds, or with `s`/`m`/`h`): access token lifetime.
    pub token_expiry: Duration,
    /// `OAUTH_REFRESH_TOKEN_EXPIRY`: refresh token lifetime.
    pub refresh_expiry: Duration,
    /// `OAUTH_KEY_ROTATION`: how long a signing key signs before the next one takes over.
    pub key_rotation: Duration,
    /// `OAUTH_ALLOW_HTTP_CLIENT_METADATA=true`: accept `http://127.0.0.1…` client ID
    /// metadata documents (tests and development only; https otherwise).
    pub allow_http_client_metadata: bool,
    /// `MCPR_OAUTH_ALLOW_PRIVATE_FETCH`: client ID metadata documents may come from these
    /// non-public addresses (development only; public addresses only by default).
    pub private_fetch: super::AddressPolicy,
    pub external: Option<ExternalIdp>,
    /// Where the router is reached, set by whoever binds the HTTP listener.
    pub public_url: String,
    /// The listener is on a wildcard address, so `public_url` is a loopback stand-in.
    pub public_url_is_a_guess: bool,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        OAuthSettings {
            enabled: false,
            issuer: None,
            audience: None,
            token_expiry: Duration::from_secs(900),
            refresh_expiry: Duration::from_secs(30 * 86_400),
            key_rotation: Duration::from_secs(30 * 86_400),
            allow_http_client_metadata: false,
            private_fetch: Default::default(),
            external: None,
            public_url: "http://127.0.0.1:8080".into(),
            public_url_is_a_guess: false,
        }
    }
}

/// `900`, `900s`, `15m`, `2h`, `1d`.
fn duration(name: &str, text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        anyhow::anyhow!("{name} must be a positive duration like 900, 15m or 2h, got {text:?}")
    })?;
    let secs = match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86_400,
        _ => anyhow::bail!("{name}: unknown unit {unit:?} in {text:?} (use s, m, h or d)"),
    };
    Ok(Duration::from_secs(secs))
}

fn flag(value: Option<String>) -> bool {
    value.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// `admins=*;readers=time gh/list_issues`.
fn scope_map(text: &str) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let mut map = HashMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (value, scopes) = entry.split_once('=').ok_or_else(|| {
            anyhow::anyhow!(
                "OAUTH_SCOPE_MAP entries are VALUE=SCOPE SCOPE…, separated by ';': got {entry:?}"
            )
        })?;
        map.insert(
            value.trim().to_owned(),
            scopes.split_whitespace().map(str::to_owned).collect(),
        );
    }
    Ok(map)
}

fn http_url(name: &str, text: String) -> anyhow::Result<String> {
    let trimmed = text.trim().trim_end_matches('/').to_owned();
    anyhow::ensure!(
        trimmed.starts_with("https://") || trimmed.starts_with("http://"),
        "{name} must be an http(s) URL, got {text:?}"
    );
    Ok(trimmed)
}

impl OAuthSettings {
    pub fn from_env(get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<OAuthSettings> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut s = OAuthSettings {
            enabled: flag(non_empty("MCP_OAUTH_ENABLED")),
            allow_http_client_metadata: flag(non_empty("OAUTH_ALLOW_HTTP_CLIENT_METADATA")),
            private_fetch: super::AddressPolicy::parse(
                non_empty(super::fetch::ALLOW_PRIVATE_FETCH).as_deref(),
            )?,
            ..Default::default()
        };
        if let Some(v) = non_empty("OAUTH_ISSUER") {
            s.issuer = Some(http_url("OAUTH_ISSUER", v)?);
        }
        if let Some(v) = non_empty("OAUTH_AUDIENCE") {
            s.audience = Some(http_url("OAUTH_AUDIENCE", v)?);
        }
        if let Some(v) = non_empty("OAUTH_TOKEN_EXPIRY") {
            s.token_expiry = duration("OAUTH_TOKEN_EXPIRY", &v)?;
        }
        if let Some(v) = non_empty("OAUTH_REFRESH_TOKEN_EXPIRY") {
            s.refresh_expiry = duration("OAUTH_REFRESH_TOKEN_EXPIRY", &v)?;
        }
        if let Some(v) = non_empty("OAUTH_KEY_ROTATION") {
            s.key_rotation = duration("OAUTH_KEY_ROTATION", &v)?;
        }
        if let Some(issuer) = non_empty("OAUTH_EXTERNAL_ISSUER") {
            s.external = Some(ExternalIdp {
                issuer: http_url("OAUTH_EXTERNAL_ISSUER", issuer)?,
                jwks_url: non_empty("OAUTH_EXTERNAL_JWKS_URL")
                    .map(|v| http_url("OAUTH_EXTERNAL_JWKS_URL", v))
                    .transpose()?,
                audience: non_empty("OAUTH_EXTERNAL_AUDIENCE").map(|v| v.trim().to_owned()),
                scopes_claim: non_empty("OAUTH_SCOPES_CLAIM").unwrap_or_else(|| "scope".into()),
                scope_map: scope_map(&non_empty("OAUTH_SCOPE_MAP").unwrap_or_default())?,
            });
        } else {
            for name in [
                "OAUTH_EXTERNAL_JWKS_URL",
                "OAUTH_EXTERNAL_AUDIENCE",
                "OAUTH_SCOPE_MAP",
            ] {
                anyhow::ensure!(
                    non_empty(name).is_none(),
                    "{name} is set but OAUTH_EXTERNAL_ISSUER is not: set the identity provider's issuer too"
                );
            }
        }
        Ok(s)
    }

    /// Where the router is reached (`http://host:port`): the default issuer. A wildcard
    /// listen address says nothing about that, so loopback stands in (set OAUTH_ISSUER).
    pub fn set_public_address(&mut self, host: &str, port: u16) {
        self.public_url_is_a_guess = matches!(host, "0.0.0.0" | "::" | "[::]");
        let host = if self.public_url_is_a_guess {
            "127.0.0.1"
        } else {
            host
        };
        self.public_url = if host.contains(':') && !host.starts_with('[') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        };
    }

    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| self.public_url.clone())
    }

    /// The resource our tokens are for, and which the gateways protect.
    pub fn resource(&self) -> String {
        self.audience
            .clone()
            .unwrap_or_else(|| format!("{}/mcp", self.public_url.trim_end_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_the_environment() {
        let s = OAuthSettings::from_env(&env(&[
            ("MCP_OAUTH_ENABLED", "true"),
            ("OAUTH_TOKEN_EXPIRY", "5m"),
            ("OAUTH_EXTERNAL_ISSUER", "https://idp.example/"),
            ("OAUTH_SCOPES_CLAIM", "groups"),
            ("OAUTH_SCOPE_MAP", "admins=*; readers=time gh/list"),
        ]))
        .unwrap();
        assert!(s.enabled);
        assert_eq!(s.token_expiry, Duration::from_secs(300));
        let idp = s.external.unwrap();
        assert_eq!(idp.issuer, "https://idp.example");
        assert_eq!(idp.scope_map["readers"], vec!["time", "gh/list"]);
        assert!(OAuthSettings::from_env(&env(&[("OAUTH_TOKEN_EXPIRY", "soon")])).is_err());
        assert!(OAuthSettings::from_env(&env(&[("OAUTH_SCOPE_MAP", "a=b")])).is_err());
        assert!(OAuthSettings::from_env(&env(&[("OAUTH_ISSUER", "ftp://x")])).is_err());
        let mut d = OAuthSettings::default();
        d.set_public_address("0.0.0.0", 8000);
        assert_eq!(d.issuer(), "http://127.0.0.1:8000");
        assert_eq!(d.resource(), "http://127.0.0.1:8000/mcp");
    }
}
