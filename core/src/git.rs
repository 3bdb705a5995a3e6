//! A shallow, locked-down `git` fetch of one commit: what the analysis reads a repository
//! from (mcpr-analyze) and what the node agent builds a repository's Dockerfile from. One
//! implementation, so both get the same guards: no hooks (`core.hooksPath=/dev/null`, an
//! empty template), no LFS smudge, no submodules, no `ext::` transport, no credential
//! prompts or helpers, no user or system configuration, a time limit, and a size limit (the
//! directory is measured while git runs, and git is killed past it).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

/// How much a fetch may take.
#[derive(Debug, Clone, Copy)]
pub struct GitLimits {
    pub timeout: Duration,
    /// Bytes on disk the fetched repository may take.
    pub max_repo_bytes: u64,
}

impl Default for GitLimits {
    fn default() -> Self {
        GitLimits {
            timeout: Duration::from_secs(60),
            max_repo_bytes: 200 * 1024 * 1024,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{0}")]
    BadUrl(String),
    #[error("git fetch of {url} failed: {message}")]
    Git { url: String, message: String },
    #[error("git fetch of {url} took more than {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("the repository {url} is over {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "filter.lfs.smudge=",
            "-c",
            "filter.lfs.process=",
            "-c",
            "filter.lfs.required=false",
            "-c",
            "submodule.recurse=false",
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "credential.helper=",
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_LFS_SKIP_SMUDGE", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run_git(
    mut command: Command,
    url: &str,
    dir: &Path,
    limits: GitLimits,
) -> Result<String, GitError> {
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().map_err(|e| GitError::Git {
        url: url.into(),
        message: format!("cannot start git: {e}"),
    })?;
    let output = child.wait_with_output();
    tokio::pin!(output);
    let deadline = tokio::time::Instant::now() + limits.timeout;
    loop {
        tokio::select! {
            done = &mut output => {
                let out = done.map_err(|e| GitError::Git { url: url.into(), message: e.to_string() })?;
                if !out.status.success() {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let message = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("failed").trim().to_owned();
                    return Err(GitError::Git { url: url.into(), message });
                }
                return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(GitError::Timeout { url: url.into(), seconds: limits.timeout.as_secs() });
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let dir = dir.to_owned();
                let used = tokio::task::spawn_blocking(move || disk_usage(&dir)).await.unwrap_or(0);
                if used > limits.max_repo_bytes {
                    return Err(GitError::TooLarge { url: url.into(), limit: limits.max_repo_bytes, });
                }
            }
        }
    }
}

/// `git init`, `git fetch --depth 1 URL REF`, `git checkout FETCH_HEAD`: one commit, no
/// tags, no history; works for branches, tags and (where the server allows) commits.
pub async fn shallow_fetch(
    git_url: &str,
    reference: Option<&str>,
    dir: &Path,
    limits: GitLimits,
    github_token: Option<&str>,
) -> Result<String, GitError> {
    if git_url.starts_with('-') {
        return Err(GitError::BadUrl(format!("bad git URL {git_url:?}")));
    }
    let mut init = git(dir);
    init.args(["init", "-q", "--template=", "."]);
    run_git(init, git_url, dir, limits).await?;
    let mut fetch = git(dir);
    if let Some(token) = github_token.filter(|_| git_url.starts_with("https://github.com/")) {
        use base64_header::encode;
        fetch.args([
            "-c",
            &format!(
                "http.https://github.com/.extraHeader=Authorization: Basic {}",
                encode(&format!("x-access-token:{token}"))
            ),
        ]);
    }
    fetch.args([
        "fetch",
        "-q",
        "--depth",
        "1",
        "--no-tags",
        "--no-recurse-submodules",
        "--",
        git_url,
        reference.unwrap_or("HEAD"),
    ]);
    run_git(fetch, git_url, dir, limits).await?;
    let mut checkout = git(dir);
    checkout.args(["checkout", "-q", "FETCH_HEAD"]);
    run_git(checkout, git_url, dir, limits).await?;
    let mut rev = git(dir);
    rev.args(["rev-parse", "HEAD"]);
    run_git(rev, git_url, dir, limits).await
}

/// Bytes of the files under `dir` (symlinks not followed).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Base64 for the one HTTP header git sends to GitHub (standard alphabet, padded).
mod base64_header {
    pub fn encode(text: &str) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_github_header_is_base64() {
        assert_eq!(
            super::base64_header::encode("x-access-token:abc"),
            "eC1hY2Nlc3MtdG9rZW46YWJj"
        );
    }
}
