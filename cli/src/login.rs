//! `mcpr login` and `mcpr logout`: exchange `ADMIN_PASSCODE` for an admin token at
//! `POST /api/v1/login` and keep it in the user's config directory (`~/.config/mcpr/token`,
//! directory 0700, file 0600), where every admin command finds it. `MCPR_ADMIN_TOKEN`
//! overrides the file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use crate::client::Admin;
use crate::credentials::token_path;

fn read_passcode() -> anyhow::Result<String> {
    if let Ok(passcode) = std::env::var("MCPR_ADMIN_PASSCODE") {
        return Ok(passcode);
    }
    crate::prompt::secret("Admin passcode: ")
}

fn store_token(token: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path =
        token_path().ok_or_else(|| anyhow!("no config directory: set HOME or MCPR_CONFIG_DIR"))?;
    let dir = path.parent().expect("token path has a parent");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    file.write_all(format!("{token}\n").as_bytes())?;
    Ok(path)
}

pub async fn run_login(admin: &Admin) -> anyhow::Result<()> {
    let passcode = read_passcode()?;
    if passcode.is_empty() {
        bail!("no passcode given");
    }
    let answer: Value = admin
        .post(&["login"], Some(&json!({"passcode": passcode})), None)
        .await?;
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| anyhow!("the router answered without a token"))?;
    let path = store_token(token)?;
    eprintln!("logged in; admin token saved to {}", path.display());
    Ok(())
}

pub async fn run_logout(admin: &Admin) -> anyhow::Result<()> {
    let _ = admin.post(&["logout"], None, None).await;
    if let Some(path) = token_path() {
        match std::fs::remove_file(&path) {
            Ok(()) => eprintln!("logged out; removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("not logged in"),
            Err(e) => bail!("removing {}: {e}", path.display()),
        }
    }
    Ok(())
}
