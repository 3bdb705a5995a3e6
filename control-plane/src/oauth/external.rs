//! An external identity provider: its JWKS is fetched here (discovered through its OpenID
//! configuration unless `OAUTH_EXTERNAL_JWKS_URL` names it), refreshed every few minutes,
//! and pushed to gateways in the snapshot, so they never call the provider per request.

use serde_json::Value;

use super::OAuth;
use super::fetch::fetch_json;

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
                let config = fetch_json(&self.http, &discovery).await?;
                config
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow::anyhow!("{discovery} has no jwks_uri"))?
                    .to_owned()
            }
        };
        let jwks = fetch_json(&self.http, &jwks_url).await?;
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
}
