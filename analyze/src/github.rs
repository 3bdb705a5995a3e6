//! The GitHub contents API as the other way to fetch a `github.com` repository: the commit
//! of the reference (`GET /repos/O/R/commits/REF`, the default branch from `GET /repos/O/R`
//! when none is given), then the analyzed directory walked with `GET /repos/O/R/contents/PATH
//! ?ref=COMMIT`, reading only the files the analysis reads (their `content`, base64). With
//! `GITHUB_TOKEN` every request carries it as a bearer token. Bounded like a git fetch: one
//! deadline for the whole walk, a cap on requests, on each answer's bytes, on the bytes of
//! all files, and the same depth and path limits. The base URL is `MCPR_GITHUB_API_URL`
//! (default `https://api.github.com`), so tests serve it on loopback.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use crate::fetch::{FetchError, Limits, skipped_dir, wanted};
use crate::{RepoFiles, join_path};

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Most API requests one analysis makes (a monorepo's directories and files).
const MAX_REQUESTS: usize = 400;
/// Largest answer read (a directory listing, or a file's JSON with its base64 content).
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// Where the contents API is and who asks.
#[derive(Clone)]
pub struct GithubApi {
    pub base: reqwest::Url,
    pub token: Option<String>,
}

impl std::fmt::Debug for GithubApi {
    // The token is a secret: never in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApi")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Default for GithubApi {
    fn default() -> Self {
        GithubApi {
            base: reqwest::Url::parse(DEFAULT_API_URL).expect("the default URL parses"),
            token: None,
        }
    }
}

impl GithubApi {
    /// `MCPR_GITHUB_API_URL` and `GITHUB_TOKEN` through `get`; a bad URL is an error that
    /// names the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<GithubApi, String> {
        let token = get("GITHUB_TOKEN").filter(|t| !t.trim().is_empty());
        let Some(url) = get("MCPR_GITHUB_API_URL").filter(|u| !u.trim().is_empty()) else {
            return Ok(GithubApi {
                token,
                ..GithubApi::default()
            });
        };
        let base = reqwest::Url::parse(url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| format!("MCPR_GITHUB_API_URL {url:?} is not an http(s) URL"))?;
        Ok(GithubApi { base, token })
    }
}

/// `OWNER/REPO` of a github.com git URL.
pub fn repository_of(git_url: &str) -> Option<(String, String)> {
    let rest = git_url
        .strip_prefix("https://github.com/")
        .or_else(|| git_url.strip_prefix("http://github.com/"))?;
    let mut parts = rest.trim_end_matches('/').splitn(3, '/');
    let owner = parts.next().filter(|o| !o.is_empty())?;
    let repo = parts.next()?.trim_end_matches(".git");
    (!repo.is_empty()).then(|| (owner.to_owned(), repo.to_owned()))
}

#[derive(Deserialize)]
struct RepoInfo {
    default_branch: String,
}

#[derive(Deserialize)]
struct CommitInfo {
    sha: String,
}

#[derive(Deserialize)]
struct Item {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: u64,
}

#[derive(Deserialize)]
struct FileContent {
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    content: String,
}

struct Walk<'a> {
    api: &'a GithubApi,
    client: reqwest::Client,
    shown: String,
    owner: String,
    repo: String,
    requests: usize,
}

impl Walk<'_> {
    fn url(&self, segments: &[&str], reference: Option<&str>) -> reqwest::Url {
        let mut url = self.api.base.clone();
        url.path_segments_mut()
            .expect("http URLs have paths")
            .pop_if_empty()
            .extend(["repos", &self.owner, &self.repo])
            .extend(
                segments
                    .iter()
                    .flat_map(|s| s.split('/'))
                    .filter(|s| !s.is_empty()),
            );
        if let Some(reference) = reference {
            url.query_pairs_mut().append_pair("ref", reference);
        }
        url
    }

    fn error(&self, message: String) -> FetchError {
        FetchError::Github {
            url: self.shown.clone(),
            message,
        }
    }

    /// One request's JSON; `what` names it in a 404.
    async fn get<T: serde::de::DeserializeOwned>(
        &mut self,
        url: reqwest::Url,
        what: &str,
    ) -> Result<T, FetchError> {
        self.requests += 1;
        if self.requests > MAX_REQUESTS {
            return Err(FetchError::TooLarge {
                url: self.shown.clone(),
                limit: MAX_REQUESTS as u64,
                what: "GitHub API requests",
            });
        }
        let mut request = self
            .client
            .get(url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(token) = &self.api.token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.error(format!("cannot reach the GitHub API: {e}")))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.error(format!("reading the GitHub API's answer: {e}")))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(self.error(format!(
                    "an answer of the GitHub API is over {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| self.error(format!("unexpected answer for {what}: {e}")));
        }
        let said = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let limited = header("x-ratelimit-remaining").as_deref() == Some("0")
            || header("retry-after").is_some()
            || said.to_ascii_lowercase().contains("rate limit");
        if (status == 403 || status == 429) && limited {
            let resets = header("x-ratelimit-reset")
                .and_then(|r| r.parse::<u64>().ok())
                .map(|at| format!(" (it resets at unix time {at})"))
                .unwrap_or_default();
            let hint = if self.api.token.is_some() {
                "wait, or use another GITHUB_TOKEN"
            } else {
                "set GITHUB_TOKEN for a higher limit, or wait"
            };
            return Err(FetchError::RateLimited {
                url: self.shown.clone(),
                message: format!("the GitHub API's rate limit is reached{resets}: {hint}"),
            });
        }
        Err(self.error(match status.as_u16() {
            401 => "GitHub refused GITHUB_TOKEN (401 Bad credentials)".to_owned(),
            404 if self.api.token.is_some() => {
                format!("GitHub has no {what} (404), or GITHUB_TOKEN may not read it")
            }
            404 => format!("GitHub has no {what} (404); a private repository needs GITHUB_TOKEN"),
            code => format!("the GitHub API answered {code} for {what}: {said}"),
        }))
    }
}

/// The files of `path` at `reference` (the default branch when `None`), and the commit read.
pub async fn fetch(
    api: &GithubApi,
    url: &str,
    owner: &str,
    repo: &str,
    reference: Option<&str>,
    path: &str,
    limits: Limits,
) -> Result<(RepoFiles, String), FetchError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("mcpr/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Github {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    let mut walk = Walk {
        api,
        client,
        shown: url.to_owned(),
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        requests: 0,
    };
    let walking = walk_repository(&mut walk, reference, path, limits);
    tokio::time::timeout(limits.timeout, walking)
        .await
        .map_err(|_| FetchError::Timeout {
            url: url.to_owned(),
            seconds: limits.timeout.as_secs(),
        })?
}

async fn walk_repository(
    walk: &mut Walk<'_>,
    reference: Option<&str>,
    path: &str,
    limits: Limits,
) -> Result<(RepoFiles, String), FetchError> {
    let repository = format!("repository {}/{}", walk.owner, walk.repo);
    let reference = match reference {
        Some(r) => r.to_owned(),
        None => {
            let url = walk.url(&[], None);
            walk.get::<RepoInfo>(url, &repository).await?.default_branch
        }
    };
    let url = walk.url(&["commits", &reference], None);
    let commit = walk
        .get::<CommitInfo>(url, &format!("reference {reference:?} in {repository}"))
        .await?
        .sha;
    let mut files = RepoFiles::default();
    let mut total_bytes = 0u64;
    let mut queue = std::collections::VecDeque::from([(path.to_owned(), String::new(), 0usize)]);
    while let Some((dir, rel, depth)) = queue.pop_front() {
        let url = walk.url(&["contents", &dir], Some(&commit));
        let what = if dir.is_empty() {
            format!("root directory in {repository}")
        } else {
            format!("directory {dir:?} at {reference} in {repository}")
        };
        let items: Vec<Item> = walk.get(url, &what).await.map_err(|e| match e {
            // A path that names a file, not a directory, answers an object.
            FetchError::Github { url, message } if message.starts_with("unexpected answer") => {
                FetchError::BadUrl(format!(
                    "{url}: {dir:?} is not a directory of the repository"
                ))
            }
            other => other,
        })?;
        for item in items {
            if files.paths.len() >= limits.max_paths {
                break;
            }
            let child = join_path(&rel, &item.name);
            match item.kind.as_str() {
                "dir" if depth < limits.max_depth && !skipped_dir(&item.name) => {
                    queue.push_back((join_path(&dir, &item.name), child.clone(), depth + 1));
                }
                "file" if wanted(&item.name) && item.size <= limits.max_file_bytes => {
                    total_bytes += item.size;
                    if total_bytes > limits.max_repo_bytes {
                        return Err(FetchError::TooLarge {
                            url: walk.shown.clone(),
                            limit: limits.max_repo_bytes,
                            what: "bytes",
                        });
                    }
                    let file_path = join_path(&dir, &item.name);
                    let url = walk.url(&["contents", &file_path], Some(&commit));
                    let file: FileContent = walk.get(url, &format!("file {file_path:?}")).await?;
                    if let Some(text) = decode(&file) {
                        files.files.insert(child.clone(), text);
                    }
                }
                _ => {}
            }
            files.paths.push(child);
        }
    }
    files.paths.sort();
    Ok((files, commit))
}

/// A file's text from its base64 `content` (GitHub breaks it into lines).
fn decode(file: &FileContent) -> Option<String> {
    if file.encoding != "base64" {
        return None;
    }
    let packed: String = file
        .content
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(packed)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_of_urls() {
        assert_eq!(
            repository_of("https://github.com/o/r.git"),
            Some(("o".into(), "r".into()))
        );
        assert_eq!(repository_of("git://127.0.0.1/r"), None);
        assert_eq!(repository_of("https://github.com/o"), None);
        let file = FileContent {
            encoding: "base64".into(),
            content: "eyJu\nYW1lIjoieCJ9\n".into(),
        };
        assert_eq!(decode(&file).unwrap(), r#"{"name":"x"}"#);
        let debug = format!(
            "{:?}",
            GithubApi {
                token: Some("ghp_secret".into()),
                ..GithubApi::default()
            }
        );
        assert!(!debug.contains("ghp_secret"), "{debug}");
    }
}
