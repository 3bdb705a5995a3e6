//! The domain model of a registered MCP server, validated once at the edge of the system
//! (REST input, gRPC input) and used with strict types everywhere else.

use std::collections::BTreeMap;

use mcpr_proto as pb;
use serde::{Deserialize, Serialize};

/// What the API shows in place of a secret (an environment or header value); sent back, it
/// means "unchanged" ([`RuntimeSpec::keep_redacted`]).
pub const REDACTED: &str = "********";

/// Longest accepted provider name; names appear in tool names (`provider__tool`) and URLs.
pub const MAX_NAME_LEN: usize = 64;

/// What a caller got wrong, naming the field so a UI or script can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How client sessions map onto upstream sessions (see README, "Session modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// One upstream session multiplexed for every client: cheap, and right for the
    /// stateless tool servers that make up most of the ecosystem.
    #[default]
    Shared,
    /// One upstream session (and process) per client session.
    PerClient,
}

impl SessionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Shared => "shared",
            SessionMode::PerClient => "per_client",
        }
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s {
            "shared" => Ok(SessionMode::Shared),
            "per_client" => Ok(SessionMode::PerClient),
            other => Err(FieldError::new(
                "session_mode",
                format!("must be \"shared\" or \"per_client\", got {other:?}"),
            )),
        }
    }
}

/// How a server is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuntimeSpec {
    /// A child process speaking MCP over stdio.
    Process {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
    },
    /// A streamable-HTTP MCP server elsewhere.
    Remote {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A stdio MCP server in a locked-down container of its own (docs/DOCKER.md). Exactly
    /// one of `image`, `npx`, `uvx` or `command` says what runs: an image as it is (with
    /// `args` as its command, or `command` as its entrypoint), an npm or a PyPI package in an
    /// image built once from the node or python base image, or a command in the python
    /// base image.
    Docker {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        npx: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uvx: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        #[serde(default)]
        args: Vec<String>,
        /// Passed as the container's environment (secrets belong here, never in args).
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        network: NetworkPolicy,
        /// Memory limit in MiB (default [`DockerLimits::DEFAULT_MEMORY_MB`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory_mb: Option<u64>,
        /// CPU limit in thousandths of a CPU (default 1000: one CPU).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        millicpus: Option<u64>,
        /// Most processes and threads in the container (default 256).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pids: Option<u64>,
        /// How to build `image` when this host does not have it: a repository's Dockerfile.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        build: Option<Box<DockerBuild>>,
    },
}

/// Where a `docker` server's image is built from when the host does not have it: a
/// Dockerfile in a git repository (one commit, fetched shallow by the agent) or in a local
/// directory of the agent's host. The image is built once per tag (`image`), the first
/// time the server starts after it was saved: never during analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerBuild {
    /// The repository: an `https://`, `http://`, `git://` or `file://` git URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
    /// The commit (or branch or tag) of `git`; none: its default branch.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The build context's directory inside the repository (none: its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Instead of `git`: an absolute directory on the agent's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
}

fn default_dockerfile() -> String {
    "Dockerfile".into()
}

/// Characters a shell gives meaning to: never in what a build is fetched from.
const SHELL_SYNTAX: &[char] = &[
    ';', '|', '&', '$', '`', '<', '>', '(', ')', '{', '}', '\\', '"', '\'', '*', '?', '[', ']',
    '!', '~', '#',
];

/// A relative path inside a context: `/`-separated segments, none empty, `.` or `..`.
fn validate_relative(field: &str, value: &str) -> Result<(), FieldError> {
    if value.starts_with('/') {
        return Err(FieldError::new(field, "must be a relative path"));
    }
    if value.split('/').any(|s| s == "..") {
        return Err(FieldError::new(field, "must not contain \"..\""));
    }
    if value.split('/').any(|s| s.is_empty() || s == ".") {
        return Err(FieldError::new(
            field,
            "must not have empty or \".\" segments",
        ));
    }
    Ok(())
}

/// One word of at most 2048 characters, no whitespace, control characters or shell syntax,
/// not an option.
fn validate_word(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.starts_with('-') {
        return Err(FieldError::new(field, "must not start with '-'"));
    }
    if value.len() > 2048 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(
            field,
            "must be one word of at most 2048 characters",
        ));
    }
    if let Some(bad) = value.chars().find(|c| SHELL_SYNTAX.contains(c)) {
        return Err(FieldError::new(
            field,
            format!("must not contain shell syntax (found {bad:?})"),
        ));
    }
    Ok(())
}

impl DockerBuild {
    pub fn validate(&self) -> Result<(), FieldError> {
        match (&self.git, &self.dir) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(FieldError::new(
                    "runtime.build",
                    "give one of git (a repository URL) or dir (a local directory)",
                ));
            }
            (Some(git), None) => {
                validate_word("runtime.build.git", git)?;
                let rest = ["https://", "http://", "git://", "file://"]
                    .iter()
                    .find_map(|scheme| git.strip_prefix(scheme))
                    .ok_or_else(|| {
                        FieldError::new(
                            "runtime.build.git",
                            "must be an https://, http://, git:// or file:// URL",
                        )
                    })?;
                if rest.is_empty() {
                    return Err(FieldError::new(
                        "runtime.build.git",
                        "must name a repository",
                    ));
                }
            }
            (None, Some(dir)) => {
                validate_word("runtime.build.dir", dir)?;
                if !dir.starts_with('/') {
                    return Err(FieldError::new(
                        "runtime.build.dir",
                        "must be an absolute path",
                    ));
                }
                if dir.split('/').any(|s| s == "..") {
                    return Err(FieldError::new(
                        "runtime.build.dir",
                        "must not contain \"..\"",
                    ));
                }
            }
        }
        if let Some(reference) = &self.reference {
            if self.git.is_none() {
                return Err(FieldError::new(
                    "runtime.build.ref",
                    "goes with git, not with dir",
                ));
            }
            validate_word("runtime.build.ref", reference)?;
            if reference.contains("..") || reference.contains(':') {
                return Err(FieldError::new(
                    "runtime.build.ref",
                    "must be a commit, branch or tag",
                ));
            }
        }
        if let Some(path) = &self.path {
            if self.git.is_none() {
                return Err(FieldError::new(
                    "runtime.build.path",
                    "goes with git (dir names the directory itself)",
                ));
            }
            validate_word("runtime.build.path", path)?;
            validate_relative("runtime.build.path", path)?;
        }
        validate_word("runtime.build.dockerfile", &self.dockerfile)?;
        validate_relative("runtime.build.dockerfile", &self.dockerfile)?;
        Ok(())
    }

    /// What the build is made from, for messages: `URL@REF:PATH` or the directory.
    pub fn describe(&self) -> String {
        match (&self.git, &self.dir) {
            (Some(git), _) => {
                let mut text = git.clone();
                if let Some(reference) = &self.reference {
                    text.push('@');
                    text.push_str(reference);
                }
                if let Some(path) = &self.path {
                    text.push(':');
                    text.push_str(path);
                }
                text
            }
            (None, Some(dir)) => dir.clone(),
            (None, None) => String::new(),
        }
    }
}

/// Whether a container may reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// No network at all (only loopback): the default.
    #[default]
    None,
    /// Outbound access through Docker's default bridge.
    Egress,
}

impl NetworkPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkPolicy::None => "none",
            NetworkPolicy::Egress => "egress",
        }
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s {
            "" | "none" => Ok(NetworkPolicy::None),
            "egress" => Ok(NetworkPolicy::Egress),
            other => Err(FieldError::new(
                "runtime.network",
                format!("must be \"none\" or \"egress\", got {other:?}"),
            )),
        }
    }
}

/// Resource limits of a `docker` server's container, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DockerLimits {
    pub memory_mb: u64,
    pub millicpus: u64,
    pub pids: u64,
}

impl DockerLimits {
    pub const DEFAULT_MEMORY_MB: u64 = 512;
    pub const DEFAULT_MILLICPUS: u64 = 1000;
    pub const DEFAULT_PIDS: u64 = 256;
}

/// Checks environment variable names and values (shared by the runtimes that take `env`).
fn validate_env(env: &BTreeMap<String, String>) -> Result<(), FieldError> {
    for (key, value) in env {
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(FieldError::new(
                format!("runtime.env.{key}"),
                "environment variable names are letters, digits and '_', not starting with a digit",
            ));
        }
        if value.contains('\0') {
            return Err(FieldError::new(
                format!("runtime.env.{key}"),
                "must not contain NUL bytes",
            ));
        }
    }
    Ok(())
}

/// A package or image reference: one word, printable, not an option.
fn validate_reference(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.starts_with('-') {
        return Err(FieldError::new(field, "must not start with '-'"));
    }
    if value.len() > 512 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(
            field,
            "must be one word of at most 512 printable characters",
        ));
    }
    Ok(())
}

fn validate_limit(field: &str, value: Option<u64>, min: u64, max: u64) -> Result<(), FieldError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(FieldError::new(
            field,
            format!("must be between {min} and {max}, got {v}"),
        )),
        _ => Ok(()),
    }
}

impl RuntimeSpec {
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            RuntimeSpec::Process {
                command,
                args,
                env,
                cwd,
            } => {
                if command.trim().is_empty() {
                    return Err(FieldError::new("runtime.command", "must not be empty"));
                }
                if command.contains('\0') || args.iter().any(|a| a.contains('\0')) {
                    return Err(FieldError::new(
                        "runtime.args",
                        "must not contain NUL bytes",
                    ));
                }
                validate_env(env)?;
                let runner = command.rsplit('/').next().unwrap_or(command);
                if matches!(runner, "uvx" | "uv")
                    && let Some(url) = args
                        .iter()
                        .find(|a| a.starts_with("git+git://") || a.starts_with("git+http://"))
                {
                    // uv refuses these at start with a parse error; say so when saving.
                    let scheme = if url.starts_with("git+git://") {
                        "git"
                    } else {
                        "http"
                    };
                    return Err(FieldError::new(
                        "runtime.args",
                        format!(
                            "uv cannot install from {scheme}:// git URLs (it fetches git over https, ssh or file only): use the repository's https://, ssh:// or file:// URL"
                        ),
                    ));
                }
                if let Some(cwd) = cwd
                    && !cwd.starts_with('/')
                {
                    return Err(FieldError::new("runtime.cwd", "must be an absolute path"));
                }
                Ok(())
            }
            RuntimeSpec::Remote { url, headers } => {
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
                    .ok_or_else(|| {
                        FieldError::new("runtime.url", "must be an http:// or https:// URL")
                    })?;
                if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace)
                {
                    return Err(FieldError::new("runtime.url", "must name a host"));
                }
                for (name, value) in headers {
                    let token = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                    if !token {
                        return Err(FieldError::new(
                            format!("runtime.headers.{name}"),
                            "is not a valid header name",
                        ));
                    }
                    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                        return Err(FieldError::new(
                            format!("runtime.headers.{name}"),
                            "value must not contain CR, LF or NUL",
                        ));
                    }
                }
                Ok(())
            }
            RuntimeSpec::Docker {
                image,
                npx,
                uvx,
                command,
                args,
                env,
                network: _,
                memory_mb,
                millicpus,
                pids,
                build,
            } => {
                let sources = [image.is_some(), npx.is_some(), uvx.is_some()];
                if sources.iter().filter(|s| **s).count() > 1
                    || (command.is_some() && (npx.is_some() || uvx.is_some()))
                {
                    return Err(FieldError::new(
                        "runtime",
                        "give one of image, npx, uvx or command (command may go with image)",
                    ));
                }
                if !sources.contains(&true) && command.is_none() {
                    return Err(FieldError::new(
                        "runtime.image",
                        "a docker server needs an image, an npx or uvx package, or a command",
                    ));
                }
                for (field, value) in [
                    ("runtime.image", image),
                    ("runtime.npx", npx),
                    ("runtime.uvx", uvx),
                ] {
                    if let Some(value) = value {
                        validate_reference(field, value)?;
                    }
                }
                if let Some(command) = command
                    && (command.trim().is_empty() || command.contains('\0'))
                {
                    return Err(FieldError::new(
                        "runtime.command",
                        "must not be empty or contain NUL bytes",
                    ));
                }
                if args.iter().any(|a| a.contains('\0')) {
                    return Err(FieldError::new(
                        "runtime.args",
                        "must not contain NUL bytes",
                    ));
                }
                validate_env(env)?;
                validate_limit("runtime.memory_mb", *memory_mb, 16, 1 << 20)?;
                validate_limit("runtime.millicpus", *millicpus, 10, 1_000_000)?;
                validate_limit("runtime.pids", *pids, 8, 1 << 22)?;
                if let Some(build) = build {
                    if image.is_none() {
                        return Err(FieldError::new(
                            "runtime.build",
                            "needs runtime.image: the tag the build makes",
                        ));
                    }
                    build.validate()?;
                }
                Ok(())
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeSpec::Process { .. } => "process",
            RuntimeSpec::Remote { .. } => "remote",
            RuntimeSpec::Docker { .. } => "docker",
        }
    }

    /// A `docker` spec's limits with the defaults filled in (`None` for other kinds).
    pub fn docker_limits(&self) -> Option<DockerLimits> {
        match self {
            RuntimeSpec::Docker {
                memory_mb,
                millicpus,
                pids,
                ..
            } => Some(DockerLimits {
                memory_mb: memory_mb.unwrap_or(DockerLimits::DEFAULT_MEMORY_MB),
                millicpus: millicpus.unwrap_or(DockerLimits::DEFAULT_MILLICPUS),
                pids: pids.unwrap_or(DockerLimits::DEFAULT_PIDS),
            }),
            _ => None,
        }
    }

    /// The map of the spec's secrets and its field: `env` (process, docker) or `headers`
    /// (remote).
    fn secrets_mut(&mut self) -> (&'static str, &mut BTreeMap<String, String>) {
        match self {
            RuntimeSpec::Process { env, .. } | RuntimeSpec::Docker { env, .. } => ("env", env),
            RuntimeSpec::Remote { headers, .. } => ("headers", headers),
        }
    }

    /// A secret sent back as [`REDACTED`] (read from the API, then written back) means
    /// "unchanged": it takes the value `stored` has under the same name in the same field.
    /// A placeholder with nothing stored behind it is refused, never kept as the secret.
    pub fn keep_redacted(&mut self, stored: Option<&RuntimeSpec>) -> Result<(), FieldError> {
        let mut stored = stored.cloned();
        let stored = stored.as_mut().map(RuntimeSpec::secrets_mut);
        let (field, secrets) = self.secrets_mut();
        for (name, value) in secrets.iter_mut() {
            if value != REDACTED {
                continue;
            }
            let previous = stored
                .as_ref()
                .filter(|(stored_field, _)| *stored_field == field)
                .and_then(|(_, map)| map.get(name));
            match previous {
                Some(previous) => value.clone_from(previous),
                None => {
                    return Err(FieldError::new(
                        format!("runtime.{field}.{name}"),
                        format!(
                            "is the redacted placeholder {REDACTED:?} and no value is stored under this name: send the real value"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A copy safe to show: environment values and header values are replaced by
    /// [`REDACTED`].
    pub fn redacted(&self) -> RuntimeSpec {
        match self.clone() {
            RuntimeSpec::Process {
                command,
                args,
                env,
                cwd,
            } => RuntimeSpec::Process {
                command,
                args,
                env: env.into_keys().map(|k| (k, REDACTED.to_owned())).collect(),
                cwd,
            },
            RuntimeSpec::Remote { url, headers } => RuntimeSpec::Remote {
                url,
                headers: headers
                    .into_keys()
                    .map(|k| (k, REDACTED.to_owned()))
                    .collect(),
            },
            RuntimeSpec::Docker {
                image,
                npx,
                uvx,
                command,
                args,
                env,
                network,
                memory_mb,
                millicpus,
                pids,
                build,
            } => RuntimeSpec::Docker {
                image,
                npx,
                uvx,
                command,
                args,
                env: env.into_keys().map(|k| (k, REDACTED.to_owned())).collect(),
                network,
                memory_mb,
                millicpus,
                pids,
                build,
            },
        }
    }
}

/// Where a saved server came from, so that it can be analyzed again to update it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSource {
    pub kind: SourceKind,
    /// The repository URL or local path analyzed, or the registry's base URL or directory.
    pub url: String,
    /// The branch, tag or commit asked for.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The commit analyzed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The directory inside the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file the proposal was read from (repository), or the registry server name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The registry version saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// RFC 3339 time of the analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzed_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Repository,
    Registry,
}

impl ServerSource {
    pub fn validate(&self) -> Result<(), FieldError> {
        let fields = [
            ("source.url", Some(&self.url)),
            ("source.ref", self.reference.as_ref()),
            ("source.commit", self.commit.as_ref()),
            ("source.path", self.path.as_ref()),
            ("source.entry", self.entry.as_ref()),
            ("source.version", self.version.as_ref()),
            ("source.analyzed_at", self.analyzed_at.as_ref()),
        ];
        for (field, value) in fields {
            if let Some(value) = value
                && (value.len() > 2048 || value.chars().any(char::is_control))
            {
                return Err(FieldError::new(
                    field,
                    "must be at most 2048 characters, without control characters",
                ));
            }
        }
        if self.url.trim().is_empty() {
            return Err(FieldError::new("source.url", "must not be empty"));
        }
        Ok(())
    }
}

/// Longest tool name (MCP 2025-11-25, "Tool names": 1–128 characters).
pub const MAX_TOOL_NAME_LEN: usize = 128;

/// A tool name as MCP allows it: 1–128 of `[A-Za-z0-9_.-]`. `field` names what is checked
/// (`tool`, or `name` for an override).
pub fn validate_tool_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.len() > MAX_TOOL_NAME_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_TOOL_NAME_LEN} characters"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(FieldError::new(
            field,
            format!("may contain only letters, digits, '-', '_' and '.' (found {bad:?})"),
        ));
    }
    Ok(())
}

/// Provider names: 1–64 of `[A-Za-z0-9_-]`, starting with a letter or digit, without `__`
/// (the flat view's separator) so that `provider__tool` always splits one way.
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(FieldError::new("name", "must start with a letter or digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(FieldError::new(
            "name",
            format!("may contain only letters, digits, '-' and '_' (found {bad:?})"),
        ));
    }
    if name.contains("__") {
        return Err(FieldError::new(
            "name",
            "must not contain \"__\" (it separates provider and tool in /mcp/all)",
        ));
    }
    Ok(())
}

pub const MAX_DESCRIPTION_LEN: usize = 4096;

pub fn validate_description(description: &str) -> Result<(), FieldError> {
    if description.len() > MAX_DESCRIPTION_LEN {
        return Err(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Lifecycle of a server on its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Not reported by any agent yet.
    #[default]
    Pending,
    Starting,
    Running,
    Backoff,
    Stopped,
}

impl ServerState {
    pub const ALL: [ServerState; 5] = [
        ServerState::Pending,
        ServerState::Starting,
        ServerState::Running,
        ServerState::Backoff,
        ServerState::Stopped,
    ];

    /// The state's name, as the API's JSON and the metrics' `state` label say it.
    pub fn label(self) -> &'static str {
        match self {
            ServerState::Pending => "pending",
            ServerState::Starting => "starting",
            ServerState::Running => "running",
            ServerState::Backoff => "backoff",
            ServerState::Stopped => "stopped",
        }
    }

    pub fn from_proto(state: i32) -> Self {
        match pb::ServerState::try_from(state).unwrap_or(pb::ServerState::Unspecified) {
            pb::ServerState::Unspecified => ServerState::Pending,
            pb::ServerState::Starting => ServerState::Starting,
            pb::ServerState::Running => ServerState::Running,
            pb::ServerState::Backoff => ServerState::Backoff,
            pb::ServerState::Stopped => ServerState::Stopped,
        }
    }
    pub fn to_proto(self) -> pb::ServerState {
        match self {
            ServerState::Pending => pb::ServerState::Unspecified,
            ServerState::Starting => pb::ServerState::Starting,
            ServerState::Running => pb::ServerState::Running,
            ServerState::Backoff => pb::ServerState::Backoff,
            ServerState::Stopped => pb::ServerState::Stopped,
        }
    }
}

// ---- conversions to and from the wire -------------------------------------------------

impl SessionMode {
    pub fn to_proto(self) -> pb::SessionMode {
        match self {
            SessionMode::Shared => pb::SessionMode::Shared,
            SessionMode::PerClient => pb::SessionMode::PerClient,
        }
    }
    pub fn from_proto(mode: i32) -> Self {
        match pb::SessionMode::try_from(mode) {
            Ok(pb::SessionMode::PerClient) => SessionMode::PerClient,
            _ => SessionMode::Shared,
        }
    }
}

impl From<&RuntimeSpec> for pb::RuntimeSpec {
    fn from(spec: &RuntimeSpec) -> Self {
        let kind = match spec.clone() {
            RuntimeSpec::Process {
                command,
                args,
                env,
                cwd,
            } => pb::runtime_spec::Kind::Process(pb::ProcessSpec {
                command,
                args,
                env: env.into_iter().collect(),
                cwd: cwd.unwrap_or_default(),
            }),
            RuntimeSpec::Remote { url, headers } => {
                pb::runtime_spec::Kind::Remote(pb::RemoteSpec {
                    url,
                    headers: headers.into_iter().collect(),
                })
            }
            RuntimeSpec::Docker {
                image,
                npx,
                uvx,
                command,
                args,
                env,
                network,
                memory_mb,
                millicpus,
                pids,
                build,
            } => pb::runtime_spec::Kind::Docker(pb::DockerSpec {
                image: image.unwrap_or_default(),
                npx: npx.unwrap_or_default(),
                uvx: uvx.unwrap_or_default(),
                command: command.unwrap_or_default(),
                args,
                env: env.into_iter().collect(),
                network: network.as_str().to_owned(),
                memory_mb: memory_mb.unwrap_or_default(),
                millicpus: millicpus.unwrap_or_default(),
                pids: pids.unwrap_or_default(),
                build: build.map(|b| *b).map(|b| pb::DockerBuild {
                    git: b.git.unwrap_or_default(),
                    r#ref: b.reference.unwrap_or_default(),
                    path: b.path.unwrap_or_default(),
                    dir: b.dir.unwrap_or_default(),
                    dockerfile: b.dockerfile,
                }),
            }),
        };
        pb::RuntimeSpec { kind: Some(kind) }
    }
}

impl TryFrom<pb::RuntimeSpec> for RuntimeSpec {
    type Error = FieldError;
    fn try_from(spec: pb::RuntimeSpec) -> Result<Self, FieldError> {
        let spec = match spec.kind {
            Some(pb::runtime_spec::Kind::Process(p)) => RuntimeSpec::Process {
                command: p.command,
                args: p.args,
                env: p.env.into_iter().collect(),
                cwd: (!p.cwd.is_empty()).then_some(p.cwd),
            },
            Some(pb::runtime_spec::Kind::Remote(r)) => RuntimeSpec::Remote {
                url: r.url,
                headers: r.headers.into_iter().collect(),
            },
            Some(pb::runtime_spec::Kind::Docker(d)) => {
                let text = |s: String| (!s.is_empty()).then_some(s);
                let number = |n: u64| (n != 0).then_some(n);
                RuntimeSpec::Docker {
                    image: text(d.image),
                    npx: text(d.npx),
                    uvx: text(d.uvx),
                    command: text(d.command),
                    args: d.args,
                    env: d.env.into_iter().collect(),
                    network: NetworkPolicy::parse(&d.network)?,
                    memory_mb: number(d.memory_mb),
                    millicpus: number(d.millicpus),
                    pids: number(d.pids),
                    build: d.build.map(|b| {
                        Box::new(DockerBuild {
                            git: text(b.git),
                            reference: text(b.r#ref),
                            path: text(b.path),
                            dir: text(b.dir),
                            dockerfile: text(b.dockerfile).unwrap_or_else(default_dockerfile),
                        })
                    }),
                }
            }
            None => return Err(FieldError::new("runtime", "missing")),
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["time", "my-server", "a", "gh_2", "A1"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a__b",
            "x/y",
            "é",
            &"a".repeat(65),
            "'; DROP TABLE servers; --",
        ] {
            assert_eq!(validate_name(bad).unwrap_err().field, "name", "{bad:?}");
        }
    }

    #[test]
    fn runtime_specs() {
        let ok: RuntimeSpec = serde_json::from_str(
            r#"{"kind":"process","command":"uvx","args":["mcp-server-time"],"env":{"TZ":"UTC"}}"#,
        )
        .unwrap();
        ok.validate().unwrap();
        let empty: RuntimeSpec =
            serde_json::from_str(r#"{"kind":"process","command":" "}"#).unwrap();
        assert_eq!(empty.validate().unwrap_err().field, "runtime.command");
        let bad_env: RuntimeSpec =
            serde_json::from_str(r#"{"kind":"process","command":"x","env":{"A-B":"1"}}"#).unwrap();
        assert_eq!(bad_env.validate().unwrap_err().field, "runtime.env.A-B");
        let bad_url: RuntimeSpec =
            serde_json::from_str(r#"{"kind":"remote","url":"ftp://x"}"#).unwrap();
        assert_eq!(bad_url.validate().unwrap_err().field, "runtime.url");
        let bad_header: RuntimeSpec = serde_json::from_str(
            r#"{"kind":"remote","url":"http://x/mcp","headers":{"X":"a\r\nb"}}"#,
        )
        .unwrap();
        assert_eq!(
            bad_header.validate().unwrap_err().field,
            "runtime.headers.X"
        );
        assert!(
            serde_json::from_str::<RuntimeSpec>(r#"{"kind":"process","command":"x","bogus":1}"#)
                .is_err()
        );
    }

    #[test]
    fn docker_specs() {
        let ok: RuntimeSpec = serde_json::from_str(
            r#"{"kind":"docker","uvx":"mcp-server-time","env":{"TZ":"UTC"},"network":"egress","memory_mb":256}"#,
        )
        .unwrap();
        ok.validate().unwrap();
        assert_eq!(
            ok.docker_limits().unwrap(),
            DockerLimits {
                memory_mb: 256,
                millicpus: DockerLimits::DEFAULT_MILLICPUS,
                pids: DockerLimits::DEFAULT_PIDS
            }
        );
        let image: RuntimeSpec =
            serde_json::from_str(r#"{"kind":"docker","image":"mcpr/x:1","args":["--stdio"]}"#)
                .unwrap();
        image.validate().unwrap();
        let field = |json: &str| {
            serde_json::from_str::<RuntimeSpec>(json)
                .unwrap()
                .validate()
                .unwrap_err()
                .field
        };
        assert_eq!(field(r#"{"kind":"docker"}"#), "runtime.image");
        assert_eq!(field(r#"{"kind":"docker","npx":"a","uvx":"b"}"#), "runtime");
        assert_eq!(field(r#"{"kind":"docker","uvx":"a b"}"#), "runtime.uvx");
        assert_eq!(field(r#"{"kind":"docker","npx":"--x"}"#), "runtime.npx");
        assert_eq!(
            field(r#"{"kind":"docker","image":"x","memory_mb":1}"#),
            "runtime.memory_mb"
        );
        assert_eq!(
            field(r#"{"kind":"docker","image":"x","env":{"1A":"x"}}"#),
            "runtime.env.1A"
        );
        assert!(
            serde_json::from_str::<RuntimeSpec>(
                r#"{"kind":"docker","image":"x","network":"host"}"#
            )
            .is_err()
        );
        let spec = RuntimeSpec::Docker {
            image: None,
            npx: Some("@scope/pkg@1.2".into()),
            uvx: None,
            command: None,
            args: vec!["--flag".into()],
            env: [("TOKEN".to_owned(), "secret".to_owned())].into(),
            network: NetworkPolicy::Egress,
            memory_mb: None,
            millicpus: Some(500),
            pids: None,
            build: None,
        };
        let back = RuntimeSpec::try_from(pb::RuntimeSpec::from(&spec)).unwrap();
        assert_eq!(back, spec);
        let shown = serde_json::to_string(&spec.redacted()).unwrap();
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn docker_builds() {
        let field = |json: &str| {
            serde_json::from_str::<RuntimeSpec>(json)
                .unwrap()
                .validate()
                .map_err(|e| e.field)
        };
        let image = r#""kind":"docker","image":"mcpr-build/x:1""#;
        for ok in [
            r#"{"git":"https://example.com/o/r.git","ref":"0123abc","path":"servers/x"}"#,
            r#"{"git":"git://127.0.0.1:9418/r","dockerfile":"docker/Dockerfile.mcp"}"#,
            r#"{"git":"file:///srv/repos/r.git"}"#,
            r#"{"dir":"/home/me/server"}"#,
        ] {
            assert_eq!(
                field(&format!("{{{image},\"build\":{ok}}}")),
                Ok(()),
                "{ok}"
            );
        }
        for (bad, at) in [
            (r#"{"git":"ssh://h/r"}"#, "runtime.build.git"),
            (r#"{"git":"https://h/r;rm -rf /"}"#, "runtime.build.git"),
            (r#"{"git":"https://h/$(id)"}"#, "runtime.build.git"),
            (r#"{"git":"--upload-pack=x"}"#, "runtime.build.git"),
            (r#"{"git":"https://h/r","ref":"-x"}"#, "runtime.build.ref"),
            (r#"{"git":"https://h/r","ref":"a`b`"}"#, "runtime.build.ref"),
            (
                r#"{"git":"https://h/r","path":"../up"}"#,
                "runtime.build.path",
            ),
            (
                r#"{"git":"https://h/r","path":"/abs"}"#,
                "runtime.build.path",
            ),
            (
                r#"{"git":"https://h/r","dockerfile":"../Dockerfile"}"#,
                "runtime.build.dockerfile",
            ),
            (
                r#"{"git":"https://h/r","dockerfile":"/etc/x"}"#,
                "runtime.build.dockerfile",
            ),
            (r#"{"dir":"relative/dir"}"#, "runtime.build.dir"),
            (r#"{"dir":"/a/../b"}"#, "runtime.build.dir"),
            (r#"{"dir":"/a","ref":"main"}"#, "runtime.build.ref"),
            (r#"{}"#, "runtime.build"),
            (r#"{"git":"https://h/r","dir":"/a"}"#, "runtime.build"),
        ] {
            assert_eq!(
                field(&format!("{{{image},\"build\":{bad}}}")),
                Err(at.to_owned()),
                "{bad}"
            );
        }
        assert_eq!(
            field(r#"{"kind":"docker","uvx":"x","build":{"dir":"/a"}}"#),
            Err("runtime.build".to_owned())
        );
        assert!(
            serde_json::from_str::<RuntimeSpec>(&format!(
                "{{{image},\"build\":{{\"dir\":\"/a\",\"shell\":\"x\"}}}}"
            ))
            .is_err(),
            "unknown fields are refused"
        );
        // Stored servers without a build read as before, and write without one.
        let plain: RuntimeSpec = serde_json::from_str(&format!("{{{image}}}")).unwrap();
        assert!(!serde_json::to_string(&plain).unwrap().contains("\"build\""));
        let built: RuntimeSpec = serde_json::from_str(&format!(
            "{{{image},\"build\":{{\"git\":\"git://h/r\",\"ref\":\"abc\",\"path\":\"s\"}}}}"
        ))
        .unwrap();
        let back = RuntimeSpec::try_from(pb::RuntimeSpec::from(&built)).unwrap();
        assert_eq!(back, built);
        let RuntimeSpec::Docker { build: Some(b), .. } = &back else {
            unreachable!()
        };
        assert_eq!(b.dockerfile, "Dockerfile");
        assert_eq!(b.describe(), "git://h/r@abc:s");
    }

    #[test]
    fn redacted_secrets_sent_back_mean_unchanged() {
        let stored = RuntimeSpec::Process {
            command: "c".into(),
            args: vec![],
            env: [("A", "secret-a"), ("B", "secret-b")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            cwd: None,
        };
        let mut edited = stored.redacted();
        if let RuntimeSpec::Process { env, .. } = &mut edited {
            env.insert("B".into(), "new-b".into());
            env.insert("C".into(), "c".into());
        }
        edited.keep_redacted(Some(&stored)).unwrap();
        let RuntimeSpec::Process { env, .. } = &edited else {
            unreachable!()
        };
        assert_eq!(env["A"], "secret-a");
        assert_eq!(env["B"], "new-b");
        assert_eq!(env["C"], "c");
        // A placeholder with nothing behind it: refused, naming the field.
        let mut fresh = stored.redacted();
        let error = fresh.keep_redacted(None).unwrap_err();
        assert_eq!(error.field, "runtime.env.A");
        assert!(error.message.contains("send the real value"), "{error}");
        // Headers are not environment: a remote spec does not take a process's env.
        let mut remote = RuntimeSpec::Remote {
            url: "https://x".into(),
            headers: [("A".to_owned(), REDACTED.to_owned())].into(),
        };
        assert_eq!(
            remote.keep_redacted(Some(&stored)).unwrap_err().field,
            "runtime.headers.A"
        );
    }

    #[test]
    fn proto_round_trip_and_redaction() {
        let spec = RuntimeSpec::Process {
            command: "npx".into(),
            args: vec!["-y".into(), "pkg".into()],
            env: [("TOKEN".to_owned(), "secret".to_owned())].into(),
            cwd: None,
        };
        let back = RuntimeSpec::try_from(pb::RuntimeSpec::from(&spec)).unwrap();
        assert_eq!(back, spec);
        let shown = serde_json::to_string(&spec.redacted()).unwrap();
        assert!(!shown.contains("secret"), "{shown}");
    }
}
