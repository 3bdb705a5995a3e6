//! An external identity provider: its JWKS is fetched here (discovered through its OpenID
//! configuration unless `OAUTH_EXTERNAL_JWKS_URL` names it), refreshed every few minutes,
//! and pushed to gateways in the snapshot, so they never call the provider per request.

use serde_json::Value;

use super::OAuth;

/// Largest document accepted from another server (JWKS, OpenID configuration, client
/// metadata document).
const MAX_DOCUMENT: usize = 64 * 1024;

impl OAuth {
    /// Fetches the external JWKS; true when it changed.
    pub(super) async fn refresh_external(&self) -> anyhow::Result<bool> {
        let Some(idp) = &self.settings.external else {
            return Ok(false);
        };
        let jwks_url = match &idp.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!("{}/.well-known/openid-configuration", idp.issuer);
                let config = self.fetch_json(&discovery).await?;
                config
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow::anyhow!("{discovery} has no jwks_uri"))?
                    .to_owned()
            }
        };
        let jwks = self.fetch_json(&jwks_url).await?;
        anyhow::ensure!(
            jwks.get("keys").is_some_and(Value::is_array),
            "{jwks_url} is not a JWKS (no \"keys\" array)"
        );
        let text = jwks.to_string();
        let mut current = self.external_jwks.write().unwrap();
        let changed = *current != text;
        *current = text;
        Ok(changed)
    }

    /// GETs a JSON document with the client's timeouts and a size limit, following no
    /// redirects.
    pub(super) async fn fetch_json(&self, url: &str) -> anyhow::Result<Value> {
        let mut response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("fetching {url}: {e}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "fetching {url}: HTTP {}",
            response.status()
        );
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| anyhow::anyhow!("reading {url}: {e}"))?
        {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(
                body.len() <= MAX_DOCUMENT,
                "{url} is larger than {MAX_DOCUMENT} bytes"
            );
        }
        serde_json::from_slice(&body).map_err(|e| anyhow::anyhow!("{url} is not JSON: {e}"))
    }
}
