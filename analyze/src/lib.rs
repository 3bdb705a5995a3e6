//! Proposes how to run an MCP server from what a repository says about itself, or from an
//! MCP Registry entry. The analysis is pure: [`fetch`] brings the files (a shallow git
//! clone, or a local directory), [`analyze_files`] reads them, one module per kind of
//! evidence, strongest first (`server_json`, `smithery`, `readme`, `package_json`,
//! `pyproject`, `dockerfile`, `cargo`, `go`), and merges what they say about the same server.
//! Nothing from a repository is ever executed here: files are read as text, at most
//! [`fetch::Limits::max_file_bytes`] each. [`claude`] optionally asks Claude to fill what the
//! files leave open; its answer is untrusted and validated like user input. [`registry`] is
//! the client of the official MCP Registry API (or an offline directory of `server.json`).

pub mod cargo;
pub mod claude;
pub mod dockerfile;
pub mod fetch;
pub mod github;
pub mod go;
pub mod package_json;
pub mod pyproject;
pub mod readme;
pub mod registry;
pub mod server_json;
pub mod smithery;

use std::collections::BTreeMap;

use mcpr_core::model::{MAX_NAME_LEN, RuntimeSpec, validate_name};
use serde::{Deserialize, Serialize};

/// The files the analysis reads, by path relative to the analyzed directory (`/`-separated,
/// no leading `./`), plus every path seen while walking (for `go` main packages and for
/// the "looked at" listing).
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    pub files: BTreeMap<String, String>,
    pub paths: Vec<String>,
}

impl RepoFiles {
    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Files named `name` (case-sensitive) anywhere, shallowest first.
    pub fn named<'a>(&'a self, names: &'a [&str]) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut found: Vec<(&str, &str)> = self
            .files
            .iter()
            .filter(|(path, _)| names.contains(&file_name(path)))
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        found.sort_by_key(|(p, _)| (p.matches('/').count(), *p));
        found.into_iter()
    }
}

/// The last segment of a `/`-separated path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The directory of a `/`-separated path (`""` for the root).
pub fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Where the analyzed files came from: what a proposal needs to run the code it found
/// (`uvx --from git+URL@COMMIT#subdirectory=DIR`) and what a saved server remembers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The URL or path as the user gave it.
    pub url: String,
    /// What `git clone` takes (`None` for a local directory that is not a git checkout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_url: Option<String>,
    /// The branch, tag or commit asked for (`None`: the default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The commit analyzed, when known: proposals pin it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The directory inside the repository that was analyzed (`""`: its root).
    #[serde(default)]
    pub path: String,
    /// The local directory analyzed in place (a local path given as the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_dir: Option<String>,
}

impl Origin {
    /// `git+URL@COMMIT#subdirectory=DIR` for pip/uv, or the local directory, for the code in
    /// `dir` (relative to the analyzed directory).
    pub fn python_source(&self, dir: &str) -> Option<String> {
        let sub = join_path(&self.path, dir);
        if let Some(local) = &self.local_dir {
            return Some(join_path(local, dir));
        }
        let git = self.git_url.as_ref()?;
        let git = uv_git_url(git).unwrap_or_else(|_| git.clone());
        let pin = self.commit.as_ref().or(self.reference.as_ref());
        let mut spec = format!("git+{git}");
        if let Some(pin) = pin {
            spec.push('@');
            spec.push_str(pin);
        }
        if !sub.is_empty() {
            spec.push_str("#subdirectory=");
            spec.push_str(&sub);
        }
        Some(spec)
    }

    /// `git+URL#COMMIT` for npm, for a package at the repository's root only (npm cannot
    /// install a subdirectory of a git repository).
    pub fn npm_source(&self, dir: &str) -> Option<String> {
        if !join_path(&self.path, dir).is_empty() {
            return None;
        }
        if let Some(local) = &self.local_dir {
            return Some(local.clone());
        }
        let git = self.git_url.as_ref()?;
        let pin = self.commit.as_ref().or(self.reference.as_ref());
        Some(match pin {
            Some(pin) => format!("git+{git}#{pin}"),
            None => format!("git+{git}"),
        })
    }
}

/// Forges that serve every repository over https too: a `git://` or `http://` URL of theirs
/// is rewritten for uv, which clones over https, ssh and file only.
const HTTPS_FORGES: &[&str] = &["github.com", "gitlab.com", "codeberg.org", "bitbucket.org"];

/// The URL uv can clone for `git_url`: as it is (https, ssh, file), rewritten to https for a
/// known forge, or why uv cannot fetch it.
pub fn uv_git_url(git_url: &str) -> Result<String, String> {
    let Some((scheme, rest)) = git_url
        .strip_prefix("git://")
        .map(|r| ("git", r))
        .or_else(|| git_url.strip_prefix("http://").map(|r| ("http", r)))
    else {
        return Ok(git_url.to_owned());
    };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    if HTTPS_FORGES.contains(&host.to_ascii_lowercase().as_str()) {
        return Ok(format!("https://{rest}"));
    }
    Err(format!(
        "uv cannot install from {scheme}:// URLs (it fetches git over https, ssh or file only): \
         analyze the repository by its https://, ssh:// or file:// URL to run it with uvx"
    ))
}

pub(crate) fn join_path(a: &str, b: &str) -> String {
    match (a.trim_end_matches('/'), b.trim_matches('/')) {
        ("", b) => b.to_owned(),
        (a, "") => a.to_owned(),
        (a, b) => format!("{a}/{b}"),
    }
}

/// Which kind of file a proposal comes from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    ServerJson,
    Smithery,
    Readme,
    PackageJson,
    Pyproject,
    Dockerfile,
    Cargo,
    Go,
    /// An entry of the MCP Registry.
    Registry,
    /// Claude's answer: untrusted, validated, never the only thing a user reads.
    Claude,
}

impl Evidence {
    pub fn base_confidence(self) -> f32 {
        match self {
            Evidence::ServerJson | Evidence::Registry => 0.95,
            Evidence::Smithery => 0.85,
            Evidence::Readme => 0.8,
            Evidence::PackageJson | Evidence::Pyproject => 0.7,
            Evidence::Dockerfile => 0.5,
            Evidence::Cargo | Evidence::Go => 0.4,
            Evidence::Claude => 0.3,
        }
    }
}

/// Where a variable goes: the process's or container's environment, or a remote server's
/// HTTP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VariableTarget {
    #[default]
    Env,
    Header,
}

/// A value the server needs from whoever adds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    #[serde(default)]
    pub target: VariableTarget,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    /// A default the files give (never a secret's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A template the value goes into, e.g. `Bearer {token}` for a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The files that mention it.
    #[serde(default)]
    pub found_in: Vec<String>,
}

impl Variable {
    pub fn env(name: &str, found_in: &str) -> Variable {
        Variable {
            name: name.to_owned(),
            target: VariableTarget::Env,
            description: String::new(),
            required: false,
            secret: looks_secret(name),
            default: None,
            template: None,
            found_in: vec![found_in.to_owned()],
        }
    }
}

/// Names that hold credentials, by convention. `MAX_TOKENS`, `DEFAULT_MINIMUM_TOKENS`: a
/// count of (language model) tokens is a limit, not a credential.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper
        .split(['_', '-', '.'])
        .filter(|word| !word.ends_with("TOKENS"))
        .any(word_looks_secret)
}

fn word_looks_secret(word: &str) -> bool {
    [
        "TOKEN",
        "KEY",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
        "PRIVATE",
        "COOKIE",
        "SESSION",
    ]
    .iter()
    .any(|marker| word.contains(marker))
}

/// An environment variable name as the runtimes accept it.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Another way to run the same server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub runtime: RuntimeSpec,
    pub reason: String,
}

/// An image the proposal needs built first (a `Dockerfile` found in the repository).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuild {
    /// What `docker build` takes as its context: `URL#REF:DIR` or a local directory.
    pub context: String,
    pub dockerfile: String,
    pub image: String,
}

/// One server the analysis proposes, complete enough to save once its required variables
/// have values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub runtime: RuntimeSpec,
    #[serde(default)]
    pub variables: Vec<Variable>,
    pub evidence: Evidence,
    /// The file it was read from, relative to the analyzed directory.
    pub file: String,
    /// 0 to 1: how sure the analysis is that this runs as proposed.
    pub confidence: f32,
    pub reasons: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub alternatives: Vec<Alternative>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ImageBuild>,
    /// The package it runs (npm or PyPI name), used to merge what several files say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Comes from Claude's answer, not from the files: read it before saving.
    #[serde(default)]
    pub untrusted: bool,
    /// Whether the runtime runs as it is (false: it needs a build or an install first, said
    /// in `warnings`).
    #[serde(default = "yes")]
    pub runnable: bool,
}

fn yes() -> bool {
    true
}

impl Proposal {
    pub fn new(evidence: Evidence, file: &str, name: &str, runtime: RuntimeSpec) -> Proposal {
        Proposal {
            name: proposal_name(name),
            description: String::new(),
            runtime,
            variables: Vec::new(),
            evidence,
            file: file.to_owned(),
            confidence: evidence.base_confidence(),
            reasons: Vec::new(),
            warnings: Vec::new(),
            alternatives: Vec::new(),
            build: None,
            package: None,
            untrusted: false,
            runnable: true,
        }
    }

    /// Adds or completes a variable (a later mention fills what an earlier one left open).
    pub fn add_variable(&mut self, variable: Variable) {
        if let Some(known) = self
            .variables
            .iter_mut()
            .find(|v| v.name == variable.name && v.target == variable.target)
        {
            known.required |= variable.required;
            known.secret |= variable.secret;
            if known.description.is_empty() {
                known.description = variable.description;
            }
            if known.default.is_none() && !known.secret {
                known.default = variable.default;
            }
            if known.template.is_none() {
                known.template = variable.template;
            }
            for file in variable.found_in {
                if !known.found_in.contains(&file) {
                    known.found_in.push(file);
                }
            }
            return;
        }
        self.variables.push(variable);
    }

    /// The names of required variables that have no default.
    pub fn missing_required(&self) -> Vec<&Variable> {
        self.variables
            .iter()
            .filter(|v| v.required && v.default.is_none())
            .collect()
    }
}

/// Every file named one of `names` (shallowest first), read by `read` into a proposal or the
/// reason it makes none; each file is listed in `looked_at` with what came of it.
pub(crate) fn propose_from_each(
    cx: &Context,
    names: &[&str],
    looked_at: &mut Vec<LookedAt>,
    read: impl Fn(&str, &str) -> Result<Proposal, String>,
) -> Vec<Proposal> {
    let mut found = Vec::new();
    for (file, text) in cx.files.named(names) {
        let finding = match read(file, text) {
            Ok(p) => {
                let finding = p.reasons.join("; ");
                found.push(p);
                finding
            }
            Err(why) => why,
        };
        looked_at.push(LookedAt {
            file: file.to_owned(),
            finding,
        });
    }
    found
}

/// A file the analysis read or looked for, and what it made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookedAt {
    pub file: String,
    pub finding: String,
}

/// What the analysis found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub origin: Origin,
    pub proposals: Vec<Proposal>,
    pub looked_at: Vec<LookedAt>,
    /// "found no way to run this …" when there is no proposal, with what was looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claude: Option<claude::ClaudeReport>,
}

/// Runs what the files say in a container or as a host process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuntimePreference {
    #[default]
    Process,
    Docker,
}

/// What every evidence module gets: the files, where they came from, and what to prefer.
pub struct Context<'a> {
    pub files: &'a RepoFiles,
    pub origin: &'a Origin,
    pub prefer: RuntimePreference,
}

/// Every file kind the analysis reads, for the "looked at" listing of a miss.
pub const EVIDENCE_FILES: &[&str] = &[
    "server.json",
    "smithery.yaml",
    "README.md",
    "package.json",
    "pyproject.toml",
    "Dockerfile",
    "Cargo.toml",
    "go.mod",
    ".env.example",
];

/// Reads the files and proposes the servers they describe, strongest evidence first.
pub fn analyze_files(files: &RepoFiles, origin: &Origin, prefer: RuntimePreference) -> Analysis {
    let cx = Context {
        files,
        origin,
        prefer,
    };
    let mut looked_at = Vec::new();
    let mut findings = Vec::new();
    findings.extend(server_json::analyze(&cx, &mut looked_at));
    findings.extend(smithery::analyze(&cx, &mut looked_at));
    findings.extend(readme::analyze(&cx, &mut looked_at));
    findings.extend(package_json::analyze(&cx, &mut looked_at));
    findings.extend(pyproject::analyze(&cx, &mut looked_at));
    findings.extend(dockerfile::analyze(&cx, &mut looked_at));
    findings.extend(cargo::analyze(&cx, &mut looked_at));
    findings.extend(go::analyze(&cx, &mut looked_at));
    let mut proposals = merge(findings);
    let env_files = readme::env_example_variables(&cx, &mut looked_at);
    for proposal in &mut proposals {
        let dir = dir_of(&proposal.file).to_owned();
        for (file, variable) in &env_files {
            if dir_of(file) == dir || dir.starts_with(&format!("{}/", dir_of(file))) {
                proposal.add_variable(variable.clone());
            }
        }
    }
    unique_names(&mut proposals);
    for kind in EVIDENCE_FILES {
        if !files.files.keys().any(|p| file_name(p) == *kind)
            && !looked_at.iter().any(|l| file_name(&l.file) == *kind)
        {
            looked_at.push(LookedAt {
                file: (*kind).to_owned(),
                finding: "not found".into(),
            });
        }
    }
    let message = proposals.is_empty().then(|| no_way_message(&looked_at));
    Analysis {
        origin: origin.clone(),
        proposals,
        looked_at,
        message,
        claude: None,
    }
}

/// What an analysis may use: fetch limits, the GitHub API (`MCPR_GITHUB_API_URL`,
/// `GITHUB_TOKEN`), and Claude when configured.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub limits: fetch::Limits,
    pub github: github::GithubApi,
    pub claude: Option<claude::ClaudeSettings>,
}

impl Settings {
    /// `GITHUB_TOKEN`, `MCPR_GITHUB_API_URL`, `ANTHROPIC_*`, read through `get`; a bad
    /// `MCPR_GITHUB_API_URL` is an error naming it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        Ok(Settings {
            limits: fetch::Limits::default(),
            github: github::GithubApi::from_env(&get)?,
            claude: claude::ClaudeSettings::from_env(&get),
        })
    }
}

/// What to analyze and how.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub url: String,
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub prefer: RuntimePreference,
    /// `git`, `github_api`, or `auto` (git; the contents API where git is not installed).
    #[serde(default)]
    pub fetch: fetch::FetchVia,
    /// Ask Claude even when the files gave proposals (it is asked anyway when they gave
    /// none and a key is configured).
    #[serde(default)]
    pub claude: bool,
}

/// Fetches the repository, reads it, and asks Claude if configured and needed.
pub async fn analyze_repository(
    request: &Request,
    settings: &Settings,
) -> Result<Analysis, fetch::FetchError> {
    let target = fetch::parse_target(
        &request.url,
        request.reference.as_deref(),
        request.path.as_deref(),
    )?;
    let (files, origin, _checkout) =
        fetch::fetch(&target, settings.limits, &settings.github, request.fetch).await?;
    let mut analysis = analyze_files(&files, &origin, request.prefer);
    if let Some(claude) = &settings.claude
        && (analysis.proposals.is_empty() || request.claude)
    {
        let (proposals, report) = claude::ask(claude, &files, &origin.url).await;
        analysis.proposals.extend(proposals);
        unique_names(&mut analysis.proposals);
        if !analysis.proposals.is_empty() {
            analysis.message = None;
        }
        analysis.claude = Some(report);
    }
    Ok(analysis)
}

/// "found no way to run this" and the list of what was looked at.
pub fn no_way_message(looked_at: &[LookedAt]) -> String {
    let listing: Vec<String> = looked_at
        .iter()
        .map(|l| format!("{}: {}", l.file, l.finding))
        .collect();
    format!(
        "found no way to run this: looked at {}",
        if listing.is_empty() {
            "nothing (the directory is empty)".to_owned()
        } else {
            listing.join("; ")
        }
    )
}

/// Merges findings about the same server: the same package, or the same directory when one
/// of the two names no package. The stronger finding keeps its runtime unless it is not
/// runnable as it is and the weaker one is; the weaker adds its variables, its reasons and
/// its runtime as an alternative.
fn merge(mut findings: Vec<Proposal>) -> Vec<Proposal> {
    findings.sort_by_key(|f| f.evidence);
    let mut merged: Vec<Proposal> = Vec::new();
    for finding in findings {
        let same = merged.iter_mut().find(|known| {
            let same_dir = dir_of(&known.file) == dir_of(&finding.file);
            match (&known.package, &finding.package) {
                (Some(a), Some(b)) => a == b,
                (None, _) | (_, None) => same_dir,
            }
        });
        let Some(known) = same else {
            merged.push(finding);
            continue;
        };
        let mut weaker = finding;
        if !known.runnable && weaker.runnable {
            std::mem::swap(&mut known.runtime, &mut weaker.runtime);
            std::mem::swap(&mut known.warnings, &mut weaker.warnings);
            known.runnable = true;
            known.reasons.push(format!(
                "runs as {} says ({} alone needs a build first)",
                weaker.file, known.file
            ));
        }
        known.confidence = (known.confidence + 0.05).min(0.99);
        known.reasons.extend(
            weaker
                .reasons
                .into_iter()
                .map(|r| format!("{}: {r}", weaker.file)),
        );
        if known.description.is_empty() {
            known.description = weaker.description;
        }
        if known.package.is_none() {
            known.package = weaker.package;
        }
        if known.build.is_none() {
            known.build = weaker.build;
        }
        for variable in weaker.variables {
            known.add_variable(variable);
        }
        if weaker.runtime != known.runtime
            && !known
                .alternatives
                .iter()
                .any(|a| a.runtime == weaker.runtime)
        {
            known.alternatives.push(Alternative {
                runtime: weaker.runtime,
                reason: format!("from {}", weaker.file),
            });
        }
        known.alternatives.extend(weaker.alternatives);
    }
    merged
}

fn unique_names(proposals: &mut [Proposal]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for proposal in proposals {
        let count = seen.entry(proposal.name.clone()).or_default();
        *count += 1;
        if *count > 1 {
            let suffix = format!("-{count}");
            let mut base = proposal.name.clone();
            base.truncate(MAX_NAME_LEN - suffix.len());
            proposal.name = format!("{base}{suffix}");
        }
    }
}

/// A provider name from a package or server name: `@scope/server-github` → `github`,
/// `io.github.owner/mcp-time` → `time`, `mcp-server-git` → `git`; always valid for
/// [`validate_name`].
pub fn proposal_name(raw: &str) -> String {
    let last = raw
        .rsplit('/')
        .next()
        .unwrap_or(raw)
        .trim_start_matches('@');
    let lower = last.to_ascii_lowercase().replace('_', "-");
    let mut name = lower.as_str();
    for prefix in ["mcp-server-", "server-", "mcp-"] {
        if let Some(rest) = name.strip_prefix(prefix)
            && !rest.is_empty()
        {
            name = rest;
            break;
        }
    }
    for suffix in ["-mcp-server", "-server-mcp", "-mcp", "-server"] {
        if let Some(rest) = name.strip_suffix(suffix)
            && !rest.is_empty()
        {
            name = rest;
            break;
        }
    }
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    let mut out = out.trim_end_matches('-').to_owned();
    out.truncate(MAX_NAME_LEN);
    let out = out.trim_end_matches('-').to_owned();
    if validate_name(&out).is_ok() {
        out
    } else {
        "server".to_owned()
    }
}

/// Text that a README or an example puts where the user's own value goes.
pub fn looks_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    value.contains('<')
        || value.contains("${")
        || lower.contains("your")
        || lower.contains("path/to")
        || lower.contains("/users/")
        || lower.contains("xxxx")
        || lower.contains("here")
        || lower.starts_with("ghp_")
        || lower.starts_with("sk-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_packages() {
        for (raw, want) in [
            ("@modelcontextprotocol/server-github", "github"),
            ("mcp-server-time", "time"),
            ("io.github.owner/weather-mcp", "weather"),
            ("mcp_server_git", "git"),
            ("Brave Search", "brave-search"),
            ("@@@", "server"),
            ("mcp-server-", "server"),
        ] {
            assert_eq!(proposal_name(raw), want, "{raw}");
        }
    }

    #[test]
    fn secrets_by_name() {
        for secret in [
            "GITHUB_TOKEN",
            "BRAVE_API_KEY",
            "apikey",
            "DB_PASSWORD",
            "X-Auth",
        ] {
            assert!(looks_secret(secret), "{secret}");
        }
        for plain in ["MAX_TOKENS", "DEFAULT_MINIMUM_TOKENS", "LOG_LEVEL", "TZ"] {
            assert!(!looks_secret(plain), "{plain}");
        }
    }

    #[test]
    fn python_and_npm_sources() {
        let origin = Origin {
            url: "https://github.com/o/r/tree/main/src/time".into(),
            git_url: Some("https://github.com/o/r.git".into()),
            reference: Some("main".into()),
            commit: Some("abc123".into()),
            path: "src/time".into(),
            local_dir: None,
        };
        assert_eq!(
            origin.python_source("").unwrap(),
            "git+https://github.com/o/r.git@abc123#subdirectory=src/time"
        );
        assert_eq!(origin.npm_source(""), None);
        let forge = Origin {
            git_url: Some("git://github.com/o/r.git".into()),
            ..origin.clone()
        };
        assert_eq!(
            forge.python_source("").unwrap(),
            "git+https://github.com/o/r.git@abc123#subdirectory=src/time"
        );
        assert!(
            uv_git_url("git://127.0.0.1:9418/r")
                .unwrap_err()
                .starts_with("uv cannot install from git:// URLs")
        );
        assert_eq!(uv_git_url("ssh://git@h/r").unwrap(), "ssh://git@h/r");
        let root = Origin {
            path: String::new(),
            ..origin
        };
        assert_eq!(
            root.npm_source("").unwrap(),
            "git+https://github.com/o/r.git#abc123"
        );
    }
}
