//! Brings a repository's files for the analysis: a shallow `git` fetch of one commit into a
//! temporary directory, or a local directory read in place. Nothing from the repository is
//! executed: the fetch is [`mcpr_core::git::shallow_fetch`] (no hooks, no LFS smudge, no
//! submodules, no credential prompts, within a time limit and a size limit), the same one
//! the node agent builds a repository's Dockerfile from. Only the files the analysis reads
//! are read, at most [`Limits::max_file_bytes`] each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpr_core::git::{GitError, GitLimits, shallow_fetch};
use tokio::process::Command;

use crate::github::GithubApi;
use crate::{Origin, RepoFiles, join_path};

/// How much a fetch may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Bytes on disk the fetched repository may take.
    pub max_repo_bytes: u64,
    pub max_file_bytes: u64,
    /// Directories below the analyzed one that are walked (monorepos: `src/NAME/…`).
    pub max_depth: usize,
    pub max_paths: usize,
}

impl Limits {
    /// The limits of the git fetch itself.
    pub fn git(&self) -> GitLimits {
        GitLimits {
            timeout: self.timeout,
            max_repo_bytes: self.max_repo_bytes,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(60),
            max_repo_bytes: 200 * 1024 * 1024,
            max_file_bytes: 256 * 1024,
            max_depth: 4,
            max_paths: 20_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    BadUrl(String),
    /// The git fetch (its own limits say the same as `Timeout` and `TooLarge`).
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("fetch of {url} took more than {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("the repository {url} is over {limit} {what}")]
    TooLarge {
        url: String,
        limit: u64,
        what: &'static str,
    },
    #[error("GitHub API fetch of {url} failed: {message}")]
    Github { url: String, message: String },
    #[error("GitHub API fetch of {url}: {message}")]
    RateLimited { url: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// What the user asked to analyze, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Git {
        url: String,
        git_url: String,
        reference: Option<String>,
        path: String,
    },
    Local {
        dir: PathBuf,
        path: String,
    },
}

/// Reads `https://github.com/OWNER/REPO`, `…/tree/REF/PATH`, any git URL (`URL#REF`), or
/// a local path; `reference` and `path` given apart win over what the URL says.
pub fn parse_target(
    url: &str,
    reference: Option<&str>,
    path: Option<&str>,
) -> Result<Target, FetchError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(FetchError::BadUrl("the URL is empty".into()));
    }
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(FetchError::BadUrl(format!(
            "{url:?} is not a URL or a path (no spaces, no leading '-')"
        )));
    }
    let clean_path = |p: &str| -> Result<String, FetchError> {
        let p = p.trim_matches('/');
        if p.split('/').any(|s| s == "..") {
            return Err(FetchError::BadUrl(format!(
                "path {p:?} leaves the repository"
            )));
        }
        Ok(p.to_owned())
    };
    let given_path = path.map(clean_path).transpose()?;
    let given_ref = reference.filter(|r| !r.is_empty()).map(str::to_owned);
    if let Some(r) = &given_ref
        && (r.starts_with('-') || r.contains(char::is_whitespace))
    {
        return Err(FetchError::BadUrl(format!("bad git reference {r:?}")));
    }
    let local = url
        .strip_prefix("file://")
        .filter(|_| !url.ends_with(".git"))
        .unwrap_or(url);
    if local.starts_with('/') || local.starts_with("./") || local.starts_with("../") {
        let dir = PathBuf::from(local);
        if !dir.is_dir() {
            return Err(FetchError::BadUrl(format!("{local} is not a directory")));
        }
        let dir = dir.canonicalize().map_err(|e| FetchError::Io {
            path: local.into(),
            message: e.to_string(),
        })?;
        // A local git checkout at a given reference is fetched like a remote one.
        if given_ref.is_some() {
            return Ok(Target::Git {
                url: url.to_owned(),
                git_url: format!("file://{}", dir.display()),
                reference: given_ref,
                path: given_path.unwrap_or_default(),
            });
        }
        return Ok(Target::Local {
            dir,
            path: given_path.unwrap_or_default(),
        });
    }
    for host in [
        "https://github.com/",
        "http://github.com/",
        "https://gitlab.com/",
    ] {
        let Some(rest) = url.strip_prefix(host) else {
            continue;
        };
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        if segments.len() < 2 || segments[0].is_empty() || segments[1].is_empty() {
            return Err(FetchError::BadUrl(format!(
                "{url}: expected {host}OWNER/REPO[/tree/REF/PATH]"
            )));
        }
        let repo = segments[1].trim_end_matches(".git");
        let git_url = format!("{host}{}/{repo}.git", segments[0]);
        let mut reference = None;
        let mut path = String::new();
        let tree = segments.iter().position(|s| *s == "tree" || *s == "blob");
        if let Some(at) = tree
            && at >= 2
            && let Some(r) = segments.get(at + 1)
        {
            reference = Some((*r).to_owned());
            path = clean_path(&segments[at + 2..].join("/"))?;
        }
        return Ok(Target::Git {
            url: url.to_owned(),
            git_url,
            reference: given_ref.or(reference),
            path: given_path.unwrap_or(path),
        });
    }
    let known = ["https://", "http://", "git://", "ssh://", "file://", "git@"];
    if !known.iter().any(|k| url.starts_with(k)) {
        return Err(FetchError::BadUrl(format!(
            "{url}: give an https://, git://, ssh:// or file:// git URL, or an absolute local path"
        )));
    }
    let (git_url, fragment) = match url.split_once('#') {
        Some((u, f)) => (u.to_owned(), Some(f.to_owned()).filter(|f| !f.is_empty())),
        None => (url.to_owned(), None),
    };
    Ok(Target::Git {
        url: url.to_owned(),
        git_url,
        reference: given_ref.or(fragment),
        path: given_path.unwrap_or_default(),
    })
}

/// How a repository is fetched: a shallow `git` fetch, or (github.com only) the contents
/// API. `auto` is git, and the contents API when git is not installed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchVia {
    #[default]
    Auto,
    Git,
    GithubApi,
}

/// Fetches (or, for a local directory, reads) the target's files; the returned temporary
/// directory, if any, holds the checkout and is removed when dropped.
pub async fn fetch(
    target: &Target,
    limits: Limits,
    github: &GithubApi,
    via: FetchVia,
) -> Result<(RepoFiles, Origin, Option<tempfile::TempDir>), FetchError> {
    match target {
        Target::Local { dir, path } => {
            let root = dir.join(path);
            let files = read_files(&root, limits).await?;
            let commit = local_commit(dir).await;
            let origin = Origin {
                url: dir.display().to_string(),
                git_url: None,
                reference: None,
                commit,
                path: String::new(),
                local_dir: Some(root.display().to_string()),
            };
            Ok((files, origin, None))
        }
        Target::Git {
            url,
            git_url,
            reference,
            path,
        } => {
            let on_github = crate::github::repository_of(git_url);
            let use_api = match (via, &on_github) {
                (FetchVia::GithubApi, None) => {
                    return Err(FetchError::BadUrl(format!(
                        "{url}: the GitHub contents API fetches https://github.com/OWNER/REPO URLs only"
                    )));
                }
                (FetchVia::GithubApi, Some(_)) => true,
                (FetchVia::Auto, Some(_)) => !git_installed().await,
                _ => false,
            };
            let origin = |commit: String| Origin {
                url: url.clone(),
                git_url: Some(git_url.clone()),
                reference: reference.clone(),
                commit: Some(commit),
                path: path.clone(),
                local_dir: None,
            };
            if let (true, Some((owner, repo))) = (use_api, &on_github) {
                let (files, commit) = crate::github::fetch(
                    github,
                    url,
                    owner,
                    repo,
                    reference.as_deref(),
                    path,
                    limits,
                )
                .await?;
                return Ok((files, origin(commit), None));
            }
            let checkout = tempfile::Builder::new()
                .prefix("mcpr-analyze-")
                .tempdir()
                .map_err(|e| FetchError::Io {
                    path: std::env::temp_dir().display().to_string(),
                    message: e.to_string(),
                })?;
            let commit = shallow_fetch(
                git_url,
                reference.as_deref(),
                checkout.path(),
                limits.git(),
                github.token.as_deref(),
            )
            .await?;
            let root = checkout.path().join(path);
            if !root.is_dir() {
                return Err(FetchError::BadUrl(format!(
                    "{url}: the repository has no directory {path:?}"
                )));
            }
            let files = read_files(&root, limits).await?;
            Ok((files, origin(commit), Some(checkout)))
        }
    }
}

/// Whether a `git` program runs here.
async fn git_installed() -> bool {
    Command::new("git")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The commit of a local checkout, if it is one (read from `.git`, git is not run on it).
async fn local_commit(dir: &Path) -> Option<String> {
    let head = tokio::fs::read_to_string(dir.join(".git/HEAD"))
        .await
        .ok()?;
    let head = head.trim();
    match head.strip_prefix("ref: ") {
        Some(reference) => tokio::fs::read_to_string(dir.join(".git").join(reference))
            .await
            .ok()
            .map(|c| c.trim().to_owned()),
        None => Some(head.to_owned()),
    }
}

/// Directories never walked: dependencies, build output, VCS data.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    "dist",
    "build",
    ".venv",
    "venv",
    "__pycache__",
    "vendor",
    ".next",
    "coverage",
    "test",
    "tests",
    "__tests__",
    "examples",
    "docs",
];

/// Whether a directory is never walked.
pub(crate) fn skipped_dir(name: &str) -> bool {
    SKIPPED_DIRS.contains(&name)
}

/// Whether a file is one the analysis reads.
pub(crate) fn wanted(name: &str) -> bool {
    crate::EVIDENCE_FILES.contains(&name)
        || matches!(
            name,
            "smithery.yml"
                | "readme.md"
                | "Readme.md"
                | "README"
                | "README.markdown"
                | ".env.sample"
                | ".env.template"
        )
}

/// Walks `root` (symlinks are not followed) and reads the files the analysis reads.
pub async fn read_files(root: &Path, limits: Limits) -> Result<RepoFiles, FetchError> {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || read_files_blocking(&root, limits))
        .await
        .map_err(|e| FetchError::Io {
            path: String::new(),
            message: e.to_string(),
        })?
}

fn read_files_blocking(root: &Path, limits: Limits) -> Result<RepoFiles, FetchError> {
    let mut files = RepoFiles::default();
    let mut stack = vec![(root.to_owned(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| FetchError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = join_path(&rel, &name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if files.paths.len() >= limits.max_paths {
                return Ok(files);
            }
            if kind.is_dir() {
                if depth < limits.max_depth && !skipped_dir(&name) {
                    stack.push((entry.path(), path.clone(), depth + 1));
                }
                files.paths.push(path);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            if wanted(&name)
                && entry
                    .metadata()
                    .is_ok_and(|m| m.len() <= limits.max_file_bytes)
                && let Ok(bytes) = std::fs::read(entry.path())
            {
                files
                    .files
                    .insert(path.clone(), String::from_utf8_lossy(&bytes).into_owned());
            }
            files.paths.push(path);
        }
    }
    files.paths.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target(
                "https://github.com/modelcontextprotocol/servers/tree/main/src/time",
                None,
                None
            )
            .unwrap(),
            Target::Git {
                url: "https://github.com/modelcontextprotocol/servers/tree/main/src/time".into(),
                git_url: "https://github.com/modelcontextprotocol/servers.git".into(),
                reference: Some("main".into()),
                path: "src/time".into(),
            }
        );
        assert!(matches!(
            parse_target("git://127.0.0.1:9418/x.git#v1", None, None).unwrap(),
            Target::Git { reference: Some(r), .. } if r == "v1"
        ));
        for bad in [
            "",
            "--upload-pack=evil",
            "ftp://x",
            "https://github.com/only",
        ] {
            assert!(parse_target(bad, None, None).is_err(), "{bad}");
        }
        assert!(parse_target("https://github.com/o/r", None, Some("../etc")).is_err());
    }
}
