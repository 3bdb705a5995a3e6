//! Where the credentials of the command line come from: the admin token (`MCPR_ADMIN_TOKEN`,
//! else the file `mcpr login` keeps in the user's config directory) and the API key for the
//! MCP endpoint (`MCPR_API_KEY`, else `MCP_API_KEY`).

use std::path::PathBuf;

/// `$MCPR_CONFIG_DIR`, else `$XDG_CONFIG_HOME/mcpr`, else `~/.config/mcpr`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MCPR_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("mcpr"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/mcpr"))
}

pub fn token_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("token"))
}

/// The admin token to send: `MCPR_ADMIN_TOKEN`, else the one `mcpr login` stored.
pub fn admin_token() -> Option<String> {
    if let Ok(token) = std::env::var("MCPR_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Some(token.trim().to_owned());
    }
    let text = std::fs::read_to_string(token_path()?).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The API key `mcpr call` sends to the MCP endpoint (`MCPR_API_KEY`, else `MCP_API_KEY`).
pub fn api_key() -> Option<String> {
    ["MCPR_API_KEY", "MCP_API_KEY"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|k| k.trim().to_owned())
        .find(|k| !k.is_empty())
}
