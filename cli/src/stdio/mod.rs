//! `mcpr stdio`: MCP on stdin/stdout for desktop clients. By default the whole router runs
//! in this process (`up::serve_stdio`); with the global `--url` given on the command line,
//! the `bridge` forwards every message to the router already running there.

mod bridge;

use std::sync::Arc;

use crate::credentials;
use crate::up::{self, UpArgs};

/// `bridge_to` is the router's URL when `--url` was given on the command line; `api_key`
/// the `--api-key` flag (else the environment's, as `mcpr call` reads it).
pub async fn run(
    bridge_to: Option<&str>,
    api_key: Option<String>,
    up: &UpArgs,
    tls: Option<Arc<mcpr_tls::Tls>>,
) -> anyhow::Result<()> {
    let _telemetry = mcpr_core::telemetry::init("mcpr").map_err(anyhow::Error::msg)?;
    mcpr_core::settings::Limits::install_from_env()?;
    match bridge_to {
        Some(url) => {
            let api_key = api_key
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .or_else(credentials::api_key);
            bridge::run(url, api_key.as_deref()).await
        }
        None => up::serve_stdio(&up.options(), tls).await,
    }
}
