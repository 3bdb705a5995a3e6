//! Images of `docker` servers and of the python sandbox. A spec names an image to run as it
//! is, or a package (`npx`, `uvx`) to install once on top of a base image: that image is
//! built from a generated Dockerfile and tagged with a hash of the recipe and the base
//! image's id, so it is built once, reused while the spec and base stay the same, and
//! rebuilt when either changes. The sandbox's `libraries` are built the same way
//! ([`sandbox_libraries`]), and so is an image from a repository's Dockerfile
//! ([`super::repo_build`]).
//!
//! Base images (`MCPR_PYTHON_IMAGE`, `MCPR_NODE_IMAGE`) default to official registry images,
//! pulled on first use with their progress in the server's status. Where no registry is
//! reachable, `scripts/docker-images` makes `mcpr/python:bookworm` and `mcpr/node:bookworm`
//! from Debian packages: a default that cannot be pulled falls back to them (and says so in
//! the log); otherwise the error names the image and both ways out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures::StreamExt;
use mcpr_core::model::RuntimeSpec;
use sha2::{Digest, Sha256};

use super::docker::{DockerRuntime, LABEL_MANAGED, Launch};
use crate::logs::LogSink;
use crate::upstream::process::PROXY_VARS;

/// Bumped when the generated Dockerfiles change, so that old builds are not reused.
const RECIPE_VERSION: &str = "1";

/// The default base images: official ones, pulled where a registry is reachable.
pub const DEFAULT_PYTHON_IMAGE: &str = "python:3.13-slim";
pub const DEFAULT_NODE_IMAGE: &str = "node:22-slim";
/// What `scripts/docker-images` builds without a registry; used when a default cannot be
/// pulled.
pub const LOCAL_PYTHON_IMAGE: &str = "mcpr/python:bookworm";
pub const LOCAL_NODE_IMAGE: &str = "mcpr/node:bookworm";

/// A pull that sends nothing for this long is given up.
const PULL_IDLE: Duration = Duration::from_secs(120);
/// Status updates of a pull, at most this often (each one travels to the control plane);
/// the agent's own log (the sandbox's pulls) gets fewer.
const PULL_REPORT_EVERY: Duration = Duration::from_millis(500);
const PULL_LOG_EVERY: Duration = Duration::from_secs(5);

/// Which base image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// `uvx` and `command` servers, the sandbox.
    Python,
    /// `npx` servers.
    Node,
}

impl Base {
    fn configured(self, runtime: &DockerRuntime) -> &str {
        match self {
            Base::Python => &runtime.settings.python_image,
            Base::Node => &runtime.settings.node_image,
        }
    }
    pub fn variable(self) -> &'static str {
        match self {
            Base::Python => "MCPR_PYTHON_IMAGE",
            Base::Node => "MCPR_NODE_IMAGE",
        }
    }
    fn default_image(self) -> &'static str {
        match self {
            Base::Python => DEFAULT_PYTHON_IMAGE,
            Base::Node => DEFAULT_NODE_IMAGE,
        }
    }
    fn local_image(self) -> &'static str {
        match self {
            Base::Python => LOCAL_PYTHON_IMAGE,
            Base::Node => LOCAL_NODE_IMAGE,
        }
    }
    /// The argument of `scripts/docker-images` that builds [`Base::local_image`].
    fn script_target(self) -> &'static str {
        match self {
            Base::Python => "python",
            Base::Node => "node",
        }
    }
}

/// A base image on this host.
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub name: String,
    pub id: String,
}

/// Where image work is reported: a server's log and status, or (the sandbox, which has
/// neither) the agent's own log.
#[derive(Clone, Copy)]
pub enum Report<'a> {
    Server(&'a LogSink),
    Agent,
}

impl Report<'_> {
    /// The current step of a long start, shown in the server's status.
    pub(super) fn progress(&self, line: String) {
        match self {
            Report::Server(logs) => logs.progress(line),
            Report::Agent => tracing::info!("{line}"),
        }
    }
    pub(super) fn line(&self, stream: &str, line: String) {
        match self {
            Report::Server(logs) => logs.line(stream, line),
            Report::Agent if stream == "agent" => tracing::info!("{line}"),
            Report::Agent => tracing::debug!(stream, "{line}"),
        }
    }
}

/// The image, entrypoint and command a `docker` spec runs; builds the image when needed.
pub async fn resolve(
    runtime: &DockerRuntime,
    spec: &RuntimeSpec,
    logs: &LogSink,
) -> Result<Launch, String> {
    let RuntimeSpec::Docker {
        image,
        npx,
        uvx,
        command,
        args,
        build,
        ..
    } = spec
    else {
        return Err("not a docker spec".into());
    };
    let report = Report::Server(logs);
    let cmd = (!args.is_empty()).then(|| args.clone());
    if let Some(package) = uvx {
        let base = ensure_base(runtime, Base::Python, report).await?;
        let dockerfile = uvx_dockerfile(&base.name, package);
        let image = build_package(runtime, "uvx", package, &base, &dockerfile, report).await?;
        return Ok(Launch {
            image,
            entrypoint: Some(vec![format!(
                "/opt/mcp/bin/{}",
                python_entry_point(package)
            )]),
            cmd,
        });
    }
    if let Some(package) = npx {
        let base = ensure_base(runtime, Base::Node, report).await?;
        let dockerfile = npx_dockerfile(&base.name, package);
        let image = build_package(runtime, "npx", package, &base, &dockerfile, report).await?;
        return Ok(Launch {
            image,
            entrypoint: Some(vec![
                "npx".into(),
                "--prefix".into(),
                "/opt/mcp".into(),
                "--no-install".into(),
                package.clone(),
            ]),
            cmd,
        });
    }
    let entrypoint = command.as_ref().map(|c| vec![c.clone()]);
    match image {
        Some(image) => {
            match build {
                Some(build) => {
                    super::repo_build::ensure_built(runtime, image, build, report).await?
                }
                None => {
                    ensure_present(runtime, image, report).await?;
                }
            }
            Ok(Launch {
                image: image.clone(),
                entrypoint,
                cmd,
            })
        }
        None => {
            let base = ensure_base(runtime, Base::Python, report).await?;
            Ok(Launch {
                image: base.name,
                entrypoint,
                cmd: cmd.or_else(|| Some(vec![])),
            })
        }
    }
}

/// `uvx PKG` runs the package's entry point of the same name (without version or extras).
fn python_entry_point(package: &str) -> &str {
    let end = package
        .find(|c: char| "[=<>!~;@ ".contains(c))
        .unwrap_or(package.len());
    &package[..end]
}

/// Lines that make the build (and the server) trust what the host trusts: its CA bundle,
/// copied into the build context when there is one (TLS-inspecting proxies, private
/// package indexes).
const TRUST_HOST_CAS: &str = "COPY host-ca.crt /etc/mcpr/host-ca.crt\n\
ENV SSL_CERT_FILE=/etc/mcpr/host-ca.crt PIP_CERT=/etc/mcpr/host-ca.crt REQUESTS_CA_BUNDLE=/etc/mcpr/host-ca.crt NODE_EXTRA_CA_CERTS=/etc/mcpr/host-ca.crt\n";

/// The host's CA bundle (`SSL_CERT_FILE` or Debian's), if any.
fn host_ca_bundle() -> Option<Vec<u8>> {
    let path = std::env::var("SSL_CERT_FILE")
        .unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into());
    std::fs::read(path).ok().filter(|b| !b.is_empty())
}

/// The host's proxy settings, for the build's package index (Docker predefines these as
/// build arguments, so the Dockerfile needs no `ARG`).
fn proxy_build_args() -> HashMap<String, String> {
    PROXY_VARS
        .iter()
        .copied()
        .filter_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (name.to_owned(), v))
        })
        .collect()
}

fn uvx_dockerfile(base: &str, package: &str) -> String {
    format!(
        "FROM {base}\n\
         {{TRUST}}\
         RUN python3 -m venv /opt/mcp && /opt/mcp/bin/pip install --no-cache-dir --disable-pip-version-check {package}\n\
         LABEL {LABEL_MANAGED}=true\n",
        package = json_quote(package)
    )
}

fn npx_dockerfile(base: &str, package: &str) -> String {
    format!(
        "FROM {base}\n\
         {{TRUST}}\
         RUN mkdir -p /opt/mcp && npm install --prefix /opt/mcp --omit=dev --no-audit --no-fund {package}\n\
         LABEL {LABEL_MANAGED}=true\n",
        package = json_quote(package)
    )
}

/// The sandbox's libraries go where the base image's python finds them even in isolated
/// mode (`python3 -I`, which ignores `PYTHONPATH`): its own purelib directory. Wheels only,
/// so that no package's build script runs; no cache, so the layer holds only the packages.
fn libraries_dockerfile(base: &str, requirements: &[String]) -> String {
    let words: Vec<String> = requirements.iter().map(|r| json_quote(r)).collect();
    format!(
        "FROM {base}\n\
         {{TRUST}}\
         RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --no-input --only-binary=:all: \
         --target \"$(python3 -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))')\" {words}\n\
         LABEL {LABEL_MANAGED}=true {LABEL_LIBRARIES}=\"{labels}\"\n",
        words = words.join(" "),
        labels = requirements.join(" "),
    )
}

/// On a sandbox image: the libraries it was built with.
pub const LABEL_LIBRARIES: &str = "mcp-router.sandbox-libraries";

/// A word for a shell `RUN` line: single-quoted, so the package spec is taken literally.
fn json_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn short_hash(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(RECIPE_VERSION.as_bytes());
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The tag of a built image: readable kind and package, and a hash of what went into it.
pub fn build_tag(kind: &str, package: &str, base_id: &str, dockerfile: &str) -> String {
    let hex = short_hash(&[base_id, dockerfile]);
    let slug: String = package
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(64)
        .collect();
    format!("mcpr/{kind}-{slug}:{hex}")
}

/// The tag of the sandbox image with `requirements` (sorted, canonical): a hash of the set
/// and of the base image it was built on.
pub fn libraries_tag(requirements: &[String], base_id: &str) -> String {
    let set = requirements.join("\n");
    format!("mcpr-sandbox-libs:{}", short_hash(&[base_id, &set]))
}

/// The sandbox image with `requirements` installed (sorted, canonical names, validated by
/// the caller): built once per set on the python base image, then reused. The build is the
/// only step with network; it runs on its own task, so a caller that gives up waiting does
/// not cancel it, and concurrent callers with the same set wait for one build.
pub async fn sandbox_libraries(
    runtime: &std::sync::Arc<DockerRuntime>,
    requirements: &[String],
) -> Result<String, LibrariesError> {
    let base = ensure_base(runtime, Base::Python, Report::Agent)
        .await
        .map_err(LibrariesError::Unavailable)?;
    let tag = libraries_tag(requirements, &base.id);
    let docker = runtime
        .client()
        .await
        .map_err(LibrariesError::Unavailable)?;
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let dockerfile = libraries_dockerfile(&base.name, requirements);
    let runtime = runtime.clone();
    let building = tag.clone();
    let what = format!("python_sandbox libraries {}", requirements.join(" "));
    tokio::spawn(async move {
        build_generated(&runtime, &building, &dockerfile, &what, Report::Agent).await
    })
    .await
    .map_err(|e| LibrariesError::Unavailable(format!("image build task failed: {e}")))?
    .map_err(|failure| match failure {
        BuildFailure::Engine(text) => LibrariesError::Unavailable(text),
        BuildFailure::Recipe(text) => LibrariesError::Install(text),
    })?;
    Ok(tag)
}

/// Why the sandbox has no image with the libraries asked for.
#[derive(Debug)]
pub enum LibrariesError {
    /// No Docker, no base image: this agent has no sandbox.
    Unavailable(String),
    /// pip could not install them (no such package, no wheel, no index): the caller's to fix.
    Install(String),
}

/// Builds the image of a `uvx`/`npx` server once; its tag.
async fn build_package(
    runtime: &DockerRuntime,
    kind: &str,
    package: &str,
    base: &BaseImage,
    dockerfile: &str,
    report: Report<'_>,
) -> Result<String, String> {
    let mut recipe = dockerfile.to_owned();
    // A changed CA bundle rebuilds: servers keep trusting it at run time.
    if let Some(bundle) = host_ca_bundle() {
        recipe.push_str(&String::from_utf8_lossy(&bundle));
    }
    let tag = build_tag(kind, package, &base.id, &recipe);
    let what = format!("{kind} {package}");
    build_generated(runtime, &tag, dockerfile, &what, report)
        .await
        .map_err(BuildFailure::into_message)?;
    Ok(tag)
}

/// Why a build failed.
#[derive(Debug)]
pub(super) enum BuildFailure {
    /// The engine: unreachable, broken context.
    Engine(String),
    /// A step of the Dockerfile failed (the package install): what it printed as errors.
    Recipe(String),
}

impl BuildFailure {
    pub(super) fn into_message(self) -> String {
        match self {
            BuildFailure::Engine(text) | BuildFailure::Recipe(text) => text,
        }
    }
}

/// What a build sends the engine: a tar archive of the context, and the Dockerfile's path
/// in it.
pub(super) struct BuildContext {
    pub tar: Vec<u8>,
    pub dockerfile: String,
}

/// Builds `tag` from a generated `dockerfile` (its `{TRUST}` line filled in) unless it
/// exists.
async fn build_generated(
    runtime: &DockerRuntime,
    tag: &str,
    dockerfile: &str,
    what: &str,
    report: Report<'_>,
) -> Result<(), BuildFailure> {
    build_image(runtime, tag, what, report, || async {
        let ca_bundle = host_ca_bundle();
        let dockerfile = dockerfile.replace(
            "{TRUST}",
            if ca_bundle.is_some() {
                TRUST_HOST_CAS
            } else {
                ""
            },
        );
        let tar = build_context(&dockerfile, ca_bundle.as_deref())
            .map_err(|e| BuildFailure::Engine(format!("cannot pack the build context: {e}")))?;
        Ok(BuildContext {
            tar,
            dockerfile: "Dockerfile".into(),
        })
    })
    .await
}

/// Builds `tag` from the context `prepare` makes, unless the image exists. One build at a
/// time per agent; the tag is checked again once it is this build's turn (and only then is
/// the context prepared), so two starts with the same tag build once. Dockerfile steps are
/// the progress, every line of output goes to the log, and a failure says the step and its
/// last lines.
pub(super) async fn build_image<F, Fut>(
    runtime: &DockerRuntime,
    tag: &str,
    what: &str,
    report: Report<'_>,
    prepare: F,
) -> Result<(), BuildFailure>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<BuildContext, BuildFailure>>,
{
    let docker = runtime.client().await.map_err(BuildFailure::Engine)?;
    if docker.inspect_image(tag).await.is_ok() {
        return Ok(());
    }
    let _one_at_a_time = match runtime.builds.try_lock() {
        Ok(guard) => guard,
        Err(_) => {
            report.progress(format!(
                "waiting for another image build to finish before image {tag}"
            ));
            runtime.builds.lock().await
        }
    };
    // Another start may have built it while this one waited.
    if docker.inspect_image(tag).await.is_ok() {
        return Ok(());
    }
    report.progress(format!(
        "building image {tag} for {what} (once; later uses reuse it)"
    ));
    let context = prepare().await?;
    let build_args = proxy_build_args();
    let options = BuildImageOptions {
        dockerfile: context.dockerfile,
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        buildargs: (!build_args.is_empty()).then_some(build_args),
        labels: Some(HashMap::from([(
            LABEL_MANAGED.to_owned(),
            "true".to_owned(),
        )])),
        ..Default::default()
    };
    let mut progress =
        docker.build_image(options, None, Some(bollard::body_full(context.tar.into())));
    let mut tail: Vec<String> = Vec::new();
    // The Dockerfile step running ("Step 4/6 : RUN …"), named when it fails.
    let mut step = String::new();
    // What the install step printed as errors (pip's `ERROR:`, npm's `npm error`): the
    // part of a failed build's output that says what is wrong.
    let mut errors: Vec<String> = Vec::new();
    while let Some(item) = progress.next().await {
        let info = match item {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(BuildFailure::Recipe(build_failed(
                    tag, &step, &error, &errors, &tail,
                )));
            }
            Err(e) => {
                return Err(BuildFailure::Engine(format!(
                    "building image {tag} failed: {e}"
                )));
            }
        };
        if let Some(error) = info.error.or(info.error_detail.and_then(|d| d.message)) {
            return Err(BuildFailure::Recipe(build_failed(
                tag, &step, &error, &errors, &tail,
            )));
        }
        if let Some(text) = info.stream {
            for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                // Dockerfile steps ("Step 2/5 : RUN …") are the build's progress.
                if line.starts_with("Step ") {
                    report.progress(format!("building image {tag}: {line}"));
                    line.clone_into(&mut step);
                }
                if is_error_line(line) && errors.len() < 8 {
                    errors.push(line.to_owned());
                }
                report.line("build", line.to_owned());
                // The builder's own bookkeeping says nothing about what failed.
                let bookkeeping = line.trim_start().starts_with("--->")
                    || line.starts_with("Removing intermediate container");
                if bookkeeping {
                    continue;
                }
                tail.push(line.to_owned());
                if tail.len() > 3 {
                    tail.remove(0);
                }
            }
        }
    }
    docker.inspect_image(tag).await.map_err(|e| {
        BuildFailure::Engine(format!("building image {tag} produced no image: {e}"))
    })?;
    report.progress(format!("image {tag} built"));
    Ok(())
}

fn is_error_line(line: &str) -> bool {
    line.starts_with("ERROR:") || line.starts_with("npm ERR!") || line.starts_with("npm error")
}

/// A failed build's message: the tool's own error lines when it printed some, else the
/// step that failed, the engine's error and the last lines of output.
fn build_failed(
    tag: &str,
    step: &str,
    engine_error: &str,
    errors: &[String],
    tail: &[String],
) -> String {
    if errors.is_empty() {
        let at = if step.is_empty() {
            String::new()
        } else {
            format!(" at {step}")
        };
        format!(
            "building image {tag} failed{at}: {engine_error} (last output: {})",
            tail.join(" | ")
        )
    } else {
        format!("building image {tag} failed: {}", errors.join(" "))
    }
}

/// A base image on this host, pulled on first use; a default that cannot be pulled falls
/// back to the one `scripts/docker-images` builds, if it is here. The error names the image
/// and both ways out.
pub async fn ensure_base(
    runtime: &DockerRuntime,
    base: Base,
    report: Report<'_>,
) -> Result<BaseImage, String> {
    let configured = base.configured(runtime);
    let docker = runtime.client().await?;
    let fallen_back = runtime
        .base_fallbacks
        .lock()
        .unwrap()
        .get(configured)
        .cloned();
    if let Some(name) = fallen_back
        && let Some(found) = inspect_id(docker, &name).await
    {
        return Ok(BaseImage { name, id: found });
    }
    if let Some(id) = inspect_id(docker, configured).await {
        return Ok(BaseImage {
            name: configured.to_owned(),
            id,
        });
    }
    let _one_at_a_time = runtime.pulls.lock().await;
    // Another start may have pulled it while this one waited.
    if let Some(id) = inspect_id(docker, configured).await {
        return Ok(BaseImage {
            name: configured.to_owned(),
            id,
        });
    }
    let pull_error = match pull(docker, configured, report).await {
        Ok(id) => {
            return Ok(BaseImage {
                name: configured.to_owned(),
                id,
            });
        }
        Err(e) => e,
    };
    let local = base.local_image();
    if configured == base.default_image()
        && let Some(id) = inspect_id(docker, local).await
    {
        report.line(
            "agent",
            format!(
                "image {configured} cannot be pulled ({pull_error}): using {local}, built by scripts/docker-images, instead"
            ),
        );
        runtime
            .base_fallbacks
            .lock()
            .unwrap()
            .insert(configured.to_owned(), local.to_owned());
        return Ok(BaseImage {
            name: local.to_owned(),
            id,
        });
    }
    Err(missing_base(base, configured, &pull_error))
}

/// The error of a base image that is neither here nor pullable: the image and the two ways
/// out.
fn missing_base(base: Base, image: &str, pull_error: &str) -> String {
    let (variable, local, target) = (base.variable(), base.local_image(), base.script_target());
    let script = if image == local || image == base.default_image() {
        format!("run scripts/docker-images {target} (builds {local} without a registry)")
    } else {
        format!(
            "run scripts/docker-images {target} (builds {local} without a registry) and set {variable}={local}"
        )
    };
    format!(
        "image {image} ({variable}) is not on this host and cannot be pulled ({pull_error}); either {script}, or set {variable} to an image this host has"
    )
}

async fn inspect_id(docker: &Docker, image: &str) -> Option<String> {
    docker
        .inspect_image(image)
        .await
        .ok()
        .map(|found| found.id.unwrap_or_default())
}

/// A server's own image (`image` in its spec): pulled when missing; the error names it.
pub async fn ensure_present(
    runtime: &DockerRuntime,
    image: &str,
    report: Report<'_>,
) -> Result<String, String> {
    let docker = runtime.client().await?;
    if let Some(id) = inspect_id(docker, image).await {
        return Ok(id);
    }
    let how = if image.starts_with("mcpr/") {
        "build it with scripts/docker-images (no registry needed)"
    } else {
        "load it with `docker load` or build it on this host"
    };
    let _one_at_a_time = runtime.pulls.lock().await;
    pull(docker, image, report).await.map_err(|e| {
        format!(
            "image {image}, the server's image, is not on this host and cannot be pulled ({e}): {how}"
        )
    })
}

/// Repository and tag (or digest) of an image reference, as the pull API wants them: a
/// reference without either means `latest` (an empty tag would pull every tag).
fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repository, digest)) = image.split_once('@') {
        return (repository, digest);
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

/// Pulls `image`, its download progress in status; its id. The error is the engine's
/// message, short.
async fn pull(docker: &Docker, image: &str, report: Report<'_>) -> Result<String, String> {
    let (repository, tag) = split_reference(image);
    report.progress(format!("pulling image {image} (first use)"));
    let mut pulling = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(repository.to_owned()),
            tag: Some(tag.to_owned()),
            ..Default::default()
        }),
        None,
        None,
    );
    let mut layers = PullProgress::default();
    let mut reported = Instant::now();
    let every = match report {
        Report::Server(_) => PULL_REPORT_EVERY,
        Report::Agent => PULL_LOG_EVERY,
    };
    loop {
        let item = match tokio::time::timeout(PULL_IDLE, pulling.next()).await {
            Err(_) => return Err(format!("no progress within {} s", PULL_IDLE.as_secs())),
            Ok(None) => break,
            Ok(Some(item)) => item,
        };
        let info = item.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => message,
            bollard::errors::Error::DockerStreamError { error } => error,
            e => e.to_string(),
        })?;
        if let Some(error) = info
            .error
            .clone()
            .or_else(|| info.error_detail.as_ref().and_then(|d| d.message.clone()))
        {
            return Err(error);
        }
        layers.update(&info);
        if reported.elapsed() >= every
            && let Some(summary) = layers.summary()
        {
            reported = Instant::now();
            report.progress(format!("pulling image {image}: {summary}"));
        }
    }
    let id = inspect_id(docker, image)
        .await
        .ok_or_else(|| format!("pulled, but {image} is not on this host"))?;
    report.progress(format!("image {image} pulled"));
    Ok(id)
}

/// Bytes downloaded of each layer, from the pull's stream.
#[derive(Default)]
struct PullProgress {
    /// layer id -> (downloaded, size)
    layers: HashMap<String, (i64, i64)>,
}

impl PullProgress {
    fn update(&mut self, info: &bollard::models::CreateImageInfo) {
        let (Some(layer), Some(status)) = (&info.id, &info.status) else {
            return;
        };
        let detail = info.progress_detail.as_ref();
        let entry = self.layers.entry(layer.clone()).or_default();
        match status.as_str() {
            "Downloading" => {
                if let Some(detail) = detail {
                    entry.0 = detail.current.unwrap_or(entry.0);
                    entry.1 = detail.total.unwrap_or(entry.1);
                }
            }
            // Done downloading (or already here): all of it counts.
            "Download complete" | "Pull complete" | "Already exists" | "Extracting" => {
                entry.0 = entry.1;
            }
            _ => {}
        }
    }

    /// `37% of 41.2 MB`, once sizes are known.
    fn summary(&self) -> Option<String> {
        let (done, total) = self
            .layers
            .values()
            .fold((0i64, 0i64), |(d, t), (ld, lt)| (d + ld, t + lt));
        (total > 0).then(|| {
            format!(
                "{}% of {:.1} MB",
                (done * 100 / total).clamp(0, 100),
                total as f64 / 1e6
            )
        })
    }
}

/// A tar archive holding the Dockerfile (and the host's CA bundle).
fn build_context(dockerfile: &str, ca_bundle: Option<&[u8]>) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut files = vec![("Dockerfile", dockerfile.as_bytes())];
    if let Some(bundle) = ca_bundle {
        files.push(("host-ca.crt", bundle));
    }
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, name, content)?;
    }
    archive.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_and_tags() {
        assert_eq!(python_entry_point("mcp-server-time"), "mcp-server-time");
        assert_eq!(
            python_entry_point("mcp-server-time==0.6.2"),
            "mcp-server-time"
        );
        assert_eq!(python_entry_point("pkg[extra]>=1"), "pkg");
        let a = build_tag("uvx", "mcp-server-time", "sha256:1", "FROM x");
        assert!(a.starts_with("mcpr/uvx-mcp-server-time:"), "{a}");
        assert_ne!(a, build_tag("uvx", "mcp-server-time", "sha256:2", "FROM x"));
        assert_ne!(a, build_tag("uvx", "mcp-server-time", "sha256:1", "FROM y"));
        assert_eq!(a, build_tag("uvx", "mcp-server-time", "sha256:1", "FROM x"));
        assert!(build_tag("npx", "@scope/pkg@1", "i", "d").starts_with("mcpr/npx-scope-pkg-1:"));
        assert_eq!(json_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn a_failed_build_names_its_step_or_the_tools_errors() {
        let tail = ["Step 2/4 : RUN make".to_owned(), "cc: error".to_owned()];
        assert_eq!(
            build_failed(
                "mcpr-build/x:1",
                "Step 2/4 : RUN make",
                "The command '/bin/sh -c make' returned a non-zero code: 2",
                &[],
                &tail
            ),
            "building image mcpr-build/x:1 failed at Step 2/4 : RUN make: The command '/bin/sh -c make' returned a non-zero code: 2 (last output: Step 2/4 : RUN make | cc: error)"
        );
        let errors = ["ERROR: No matching distribution found for nosuchpkg".to_owned()];
        assert_eq!(
            build_failed("t", "Step 3/4 : RUN pip install", "code 1", &errors, &tail),
            "building image t failed: ERROR: No matching distribution found for nosuchpkg"
        );
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("python:3.13-slim"), ("python", "3.13-slim"));
        assert_eq!(split_reference("python"), ("python", "latest"));
        assert_eq!(
            split_reference("localhost:5000/team/img"),
            ("localhost:5000/team/img", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/img:1"),
            ("localhost:5000/img", "1")
        );
        assert_eq!(split_reference("img@sha256:abc"), ("img", "sha256:abc"));
    }

    #[test]
    fn pull_progress_sums_layers() {
        let info =
            |id: &str, status: &str, current: i64, total: i64| bollard::models::CreateImageInfo {
                id: Some(id.into()),
                status: Some(status.into()),
                progress_detail: Some(bollard::models::ProgressDetail {
                    current: Some(current),
                    total: Some(total),
                }),
                ..Default::default()
            };
        let mut progress = PullProgress::default();
        assert_eq!(progress.summary(), None);
        progress.update(&info("a", "Downloading", 10_000_000, 30_000_000));
        progress.update(&info("b", "Downloading", 0, 10_000_000));
        assert_eq!(progress.summary().as_deref(), Some("25% of 40.0 MB"));
        progress.update(&info("b", "Download complete", 0, 0));
        assert_eq!(progress.summary().as_deref(), Some("50% of 40.0 MB"));
    }

    #[test]
    fn a_missing_base_names_the_image_and_both_ways_out() {
        let error = missing_base(Base::Python, "python:3.13-slim", "no such host");
        for part in [
            "image python:3.13-slim (MCPR_PYTHON_IMAGE)",
            "no such host",
            "scripts/docker-images python",
            "set MCPR_PYTHON_IMAGE to an image this host has",
        ] {
            assert!(error.contains(part), "{part:?} in {error}");
        }
        let custom = missing_base(Base::Node, "corp/node:1", "denied");
        assert!(
            custom.contains("scripts/docker-images node")
                && custom.contains("MCPR_NODE_IMAGE=mcpr/node:bookworm"),
            "{custom}"
        );
    }

    #[test]
    fn a_library_set_has_one_tag_per_set_and_base() {
        let set = vec!["six".to_owned(), "tqdm==4.66.0".to_owned()];
        let tag = libraries_tag(&set, "sha256:base");
        assert!(tag.starts_with("mcpr-sandbox-libs:"), "{tag}");
        assert_eq!(tag, libraries_tag(&set, "sha256:base"));
        assert_ne!(tag, libraries_tag(&set, "sha256:other"));
        assert_ne!(tag, libraries_tag(&set[..1], "sha256:base"));
        let dockerfile = libraries_dockerfile("python:3.13-slim", &set);
        assert!(
            dockerfile.starts_with("FROM python:3.13-slim\n"),
            "{dockerfile}"
        );
        assert!(
            dockerfile.contains("--only-binary=:all:")
                && dockerfile.contains("'six' 'tqdm==4.66.0'"),
            "{dockerfile}"
        );
    }
}
