//! Repositories and registries for the "add a server from a repository or the MCP Registry"
//! tests (issue 16): the layouts of public MCP servers in `tests/e2e/data/repos/` as git
//! repositories served by a real `git daemon` on loopback, a loopback stand-in of the
//! official MCP Registry API from real `server.json` documents, and one of the GitHub
//! contents API serving a layout in the API's JSON shapes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::harness::{Proc, free_port, wait_for, workspace_root};

pub fn data_repos() -> PathBuf {
    workspace_root().join("tests/e2e/data/repos")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `git` with no user or system configuration, so the test is the same on every machine.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "layout")
        .env("GIT_AUTHOR_EMAIL", "layout@example.com")
        .env("GIT_COMMITTER_NAME", "layout")
        .env("GIT_COMMITTER_EMAIL", "layout@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A git repository with one commit of the layout `name` of tests/e2e/data/repos; its commit.
pub fn make_repo(base: &Path, name: &str) -> String {
    let dir = base.join(name);
    copy_dir(&data_repos().join(name), &dir);
    commit_all(&dir, "the layout of a public MCP server")
}

/// `dir` made a git repository of one commit (branch `main`) holding all of its files; the
/// commit.
pub fn commit_all(dir: &Path, message: &str) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Every layout in tests/e2e/data/repos as a repository, served by `git daemon` on loopback.
pub struct GitServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub commits: std::collections::BTreeMap<String, String>,
    _daemon: Proc,
}

impl GitServer {
    pub async fn start() -> GitServer {
        let dir = tempfile::tempdir().unwrap();
        let mut commits = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(data_repos()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let commit = make_repo(dir.path(), &name);
            commits.insert(name, commit);
        }
        let port = free_port();
        let mut command = Command::new("git");
        command
            .arg("daemon")
            .arg("--export-all")
            .arg(format!("--base-path={}", dir.path().display()))
            .args([
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                "--reuseaddr",
            ])
            .arg(dir.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        let daemon = Proc::spawn("git-daemon", command);
        let url = format!("git://127.0.0.1:{port}/mcp-server-time");
        wait_for("git daemon to serve", Duration::from_secs(15), || {
            let url = url.clone();
            async move {
                Command::new("git")
                    .args(["ls-remote", &url])
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .ok()
                    .filter(|s| s.success())
            }
        })
        .await;
        GitServer {
            dir,
            port,
            commits,
            _daemon: daemon,
        }
    }

    pub fn url(&self, layout: &str) -> String {
        format!("git://127.0.0.1:{}/{layout}", self.port)
    }

    /// A `file://` URL of the layout's repository (a bare clone beside it, made once): what
    /// uv can install from, where it cannot from `git://`.
    pub fn file_url(&self, layout: &str) -> String {
        let bare = self.dir.path().join(format!("{layout}.git"));
        if !bare.exists() {
            git(
                self.dir.path(),
                &["clone", "-q", "--bare", layout, bare.to_str().unwrap()],
            );
        }
        format!("file://{}", bare.display())
    }
}

/// A loopback stand-in of the official registry API, from server.json documents.
pub struct RegistryStandIn {
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl RegistryStandIn {
    pub async fn start(documents: Vec<Value>) -> RegistryStandIn {
        use axum::extract::{Path as UrlPath, Query, State};
        use axum::routing::get;
        type Docs = Arc<Vec<Value>>;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let docs: Docs = Arc::new(documents);
        let latest_of = |docs: &[Value], name: &str| -> Option<Value> {
            docs.iter()
                .filter(|d| d["name"] == name)
                .max_by_key(|d| d["version"].as_str().unwrap_or_default().to_owned())
                .cloned()
        };
        let entry = |doc: &Value, latest: bool| {
            json!({"server": doc, "_meta": {"io.modelcontextprotocol.registry/official": {
                "status": "active", "isLatest": latest}}})
        };
        let app = axum::Router::new()
            .route(
                "/v0/servers",
                get(
                    move |State(docs): State<Docs>,
                          Query(q): Query<std::collections::HashMap<String, String>>| async move {
                        let needle = q.get("search").cloned().unwrap_or_default().to_lowercase();
                        let mut names: Vec<&str> =
                            docs.iter().filter_map(|d| d["name"].as_str()).collect();
                        names.dedup();
                        let servers: Vec<Value> = names
                            .into_iter()
                            .filter_map(|n| latest_of(&docs, n))
                            .filter(|d| {
                                d["name"].as_str().unwrap().to_lowercase().contains(&needle)
                                    || d["description"]
                                        .as_str()
                                        .unwrap_or_default()
                                        .to_lowercase()
                                        .contains(&needle)
                            })
                            .map(|d| entry(&d, true))
                            .collect();
                        axum::Json(json!({"servers": servers, "metadata": {"count": servers.len()}}))
                    },
                ),
            )
            .route(
                "/v0/servers/{name}/versions/{version}",
                get(
                    move |State(docs): State<Docs>,
                          UrlPath((name, version)): UrlPath<(String, String)>| async move {
                        let found = if version == "latest" {
                            latest_of(&docs, &name)
                        } else {
                            docs.iter()
                                .find(|d| d["name"] == name.as_str() && d["version"] == version.as_str())
                                .cloned()
                        };
                        match found {
                            Some(doc) => axum::Json(entry(&doc, version == "latest")).into_response(),
                            None => (
                                axum::http::StatusCode::NOT_FOUND,
                                axum::Json(json!({"title": "Not Found", "status": 404})),
                            )
                                .into_response(),
                        }
                    },
                ),
            )
            .layer(axum::middleware::from_fn_with_state(
                seen.clone(),
                |State(seen): State<Arc<Mutex<Vec<String>>>>,
                 request: axum::extract::Request,
                 next: axum::middleware::Next| async move {
                    seen.lock().unwrap().push(
                        request
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                    );
                    next.run(request).await
                },
            ))
            .with_state(docs);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RegistryStandIn {
            url,
            seen,
            _server: server,
        }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// What the GitHub stand-in answers instead of the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GithubMode {
    Serve,
    /// `403` with `x-ratelimit-remaining: 0`, as GitHub answers a client over its limit.
    RateLimited,
}

/// A loopback stand-in of the GitHub REST API's repository and contents endpoints
/// (`GET /repos/O/R`, `/repos/O/R/commits/REF`, `/repos/O/R/contents/PATH?ref=`), serving
/// layouts of `tests/e2e/data/repos/` as repository `mcp/LAYOUT` in the API's JSON shapes
/// (files' `content` in base64, broken into lines as GitHub does); unknown repositories
/// and paths answer GitHub's 404. It records each request's path and `Authorization`.
/// Each request's path and query, and its `Authorization` header.
type SeenRequests = Arc<Mutex<Vec<(String, Option<String>)>>>;

pub struct GithubStandIn {
    pub url: String,
    pub mode: Arc<Mutex<GithubMode>>,
    seen: SeenRequests,
    _server: tokio::task::JoinHandle<()>,
}

/// The commit every layout is at in the stand-in.
pub const GITHUB_STANDIN_COMMIT: &str = "6c1d2a8f0e4b7c3d9a5e1f2b8c4d0a6e2f7b3c91";

impl GithubStandIn {
    pub async fn start() -> GithubStandIn {
        use axum::extract::{Request, State};
        type St = (Arc<Mutex<GithubMode>>, SeenRequests);
        let mode = Arc::new(Mutex::new(GithubMode::Serve));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(
                |State((mode, seen)): State<St>, request: Request| async move {
                    let auth = request
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let uri = request.uri().clone();
                    seen.lock().unwrap().push((
                        uri.path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        auth,
                    ));
                    let mode = *mode.lock().unwrap();
                    github_answer(mode, uri.path(), uri.query().unwrap_or_default())
                },
            )
            .with_state((mode.clone(), seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GithubStandIn {
            url,
            mode,
            seen,
            _server: server,
        }
    }

    /// Each request's path and query, and its `Authorization` header.
    pub fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

fn github_not_found() -> axum::response::Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
            "status": "404"})),
    )
        .into_response()
}

fn github_answer(mode: GithubMode, path: &str, query: &str) -> axum::response::Response {
    use base64::Engine;
    if mode == GithubMode::RateLimited {
        return (
            axum::http::StatusCode::FORBIDDEN,
            [
                ("x-ratelimit-limit", "60"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1767225600"),
                ("x-ratelimit-used", "60"),
                ("x-ratelimit-resource", "core"),
            ],
            axum::Json(json!({
                "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)",
                "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"})),
        )
            .into_response();
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["repos", "mcp", layout, rest @ ..] = segments.as_slice() else {
        return github_not_found();
    };
    let root = data_repos().join(layout);
    if layout.contains("..") || !root.is_dir() {
        return github_not_found();
    }
    let api = |p: &str| format!("https://api.github.com/repos/mcp/{layout}/contents/{p}");
    match rest {
        [] => axum::Json(json!({
            "id": 1, "name": layout, "full_name": format!("mcp/{layout}"), "private": false,
            "default_branch": "main", "visibility": "public"}))
        .into_response(),
        ["commits", reference] if ["main", "HEAD", GITHUB_STANDIN_COMMIT].contains(reference) => {
            axum::Json(json!({"sha": GITHUB_STANDIN_COMMIT, "node_id": "C_standin",
                "commit": {"message": "the layout of a public MCP server"},
                "url": format!("https://api.github.com/repos/mcp/{layout}/commits/{GITHUB_STANDIN_COMMIT}")}))
            .into_response()
        }
        ["contents", inner @ ..] => {
            if !query.contains(&format!("ref={GITHUB_STANDIN_COMMIT}")) {
                return github_not_found();
            }
            let rel = inner.join("/");
            if rel.split('/').any(|s| s == "..") {
                return github_not_found();
            }
            let target = root.join(&rel);
            let item = |p: &Path, rel: &str| {
                let meta = std::fs::metadata(p).unwrap();
                json!({"name": p.file_name().unwrap().to_string_lossy(), "path": rel,
                    "sha": "0000000000000000000000000000000000000000",
                    "size": if meta.is_dir() { 0 } else { meta.len() },
                    "url": api(rel), "type": if meta.is_dir() { "dir" } else { "file" },
                    "download_url": if meta.is_dir() { Value::Null } else {
                        json!(format!("https://raw.githubusercontent.com/mcp/{layout}/main/{rel}")) }})
            };
            if target.is_dir() {
                let mut list: Vec<Value> = std::fs::read_dir(&target)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        let child = if rel.is_empty() {
                            e.file_name().to_string_lossy().into_owned()
                        } else {
                            format!("{rel}/{}", e.file_name().to_string_lossy())
                        };
                        item(&e.path(), &child)
                    })
                    .collect();
                list.sort_by_key(|v| v["name"].as_str().unwrap().to_owned());
                axum::Json(Value::Array(list)).into_response()
            } else if target.is_file() {
                let b64 = base64::engine::general_purpose::STANDARD
                    .encode(std::fs::read(&target).unwrap());
                // GitHub breaks the base64 into lines of 60 characters.
                let lines: Vec<String> = b64
                    .as_bytes()
                    .chunks(60)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                let mut file = item(&target, &rel);
                file["encoding"] = json!("base64");
                file["content"] = json!(lines.join("\n") + "\n");
                axum::Json(file).into_response()
            } else {
                github_not_found()
            }
        }
        _ => github_not_found(),
    }
}
