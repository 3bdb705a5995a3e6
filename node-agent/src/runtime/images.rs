//! Images of `docker` servers. A spec names an image to run as it is, or a package (`npx`,
//! `uvx`) to install once on top of a base image: that image is built from a generated
//! Dockerfile and tagged with a hash of the recipe and the base image's id, so it is built
//! once, reused while the spec and base stay the same, and rebuilt when either changes.
//!
//! Nothing here needs a registry: base images are the ones configured
//! (`MCPR_PYTHON_IMAGE`, `MCPR_NODE_IMAGE`; `scripts/docker-images` makes them from Debian
//! packages). A missing image is reported with its name and how to get it. Only a package
//! install step reaches the network (its package index), at build time.

use std::collections::HashMap;

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures::StreamExt;
use mcpr_core::model::RuntimeSpec;
use sha2::{Digest, Sha256};

use super::docker::{DockerRuntime, LABEL_MANAGED, Launch};
use crate::logs::LogSink;

/// Bumped when the generated Dockerfiles change, so that old builds are not reused.
const RECIPE_VERSION: &str = "1";

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
        ..
    } = spec
    else {
        return Err("not a docker spec".into());
    };
    let cmd = (!args.is_empty()).then(|| args.clone());
    if let Some(package) = uvx {
        let base = &runtime.settings.python_image;
        let dockerfile = uvx_dockerfile(base, package);
        let image = build(runtime, "uvx", package, base, &dockerfile, logs).await?;
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
        let base = &runtime.settings.node_image;
        let dockerfile = npx_dockerfile(base, package);
        let image = build(runtime, "npx", package, base, &dockerfile, logs).await?;
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
            ensure_present(runtime, image, "the server's image", true, logs).await?;
            Ok(Launch {
                image: image.clone(),
                entrypoint,
                cmd,
            })
        }
        None => {
            let base = &runtime.settings.python_image;
            ensure_base(runtime, base, "MCPR_PYTHON_IMAGE", logs).await?;
            Ok(Launch {
                image: base.clone(),
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

/// A word for a shell `RUN` line: single-quoted, so the package spec is taken literally.
fn json_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The tag of a built image: readable kind and package, and a hash of what went into it.
pub fn build_tag(kind: &str, package: &str, base_id: &str, dockerfile: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(RECIPE_VERSION.as_bytes());
    hash.update(base_id.as_bytes());
    hash.update(dockerfile.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
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

async fn build(
    runtime: &DockerRuntime,
    kind: &str,
    package: &str,
    base: &str,
    dockerfile: &str,
    logs: &LogSink,
) -> Result<String, String> {
    let base_id = ensure_base(runtime, base, base_variable(kind), logs).await?;
    let ca_bundle = host_ca_bundle();
    let dockerfile = dockerfile.replace(
        "{TRUST}",
        if ca_bundle.is_some() {
            TRUST_HOST_CAS
        } else {
            ""
        },
    );
    let mut recipe = dockerfile.clone();
    if let Some(bundle) = &ca_bundle {
        recipe.push_str(&String::from_utf8_lossy(bundle));
    }
    let tag = build_tag(kind, package, &base_id, &recipe);
    let docker = runtime.client().await?;
    let _one_at_a_time = runtime.builds.lock().await;
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    logs.progress(format!(
        "building image {tag} for {kind} {package} (once; later starts reuse it)"
    ));
    let context = build_context(&dockerfile, ca_bundle.as_deref())
        .map_err(|e| format!("cannot pack the build context: {e}"))?;
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.clone()),
        rm: true,
        forcerm: true,
        labels: Some(HashMap::from([(
            LABEL_MANAGED.to_owned(),
            "true".to_owned(),
        )])),
        ..Default::default()
    };
    let mut progress = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut tail: Vec<String> = Vec::new();
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| format!("building image {tag} failed: {e}"))?;
        if let Some(error) = info.error.or(info.error_detail.and_then(|d| d.message)) {
            return Err(format!(
                "building image {tag} failed: {error} (last output: {})",
                tail.join(" | ")
            ));
        }
        if let Some(text) = info.stream {
            for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                // Dockerfile steps ("Step 2/5 : RUN …") are the build's progress.
                if line.starts_with("Step ") {
                    logs.progress(format!("building image {tag}: {line}"));
                }
                logs.line("build", line.to_owned());
                tail.push(line.to_owned());
                if tail.len() > 3 {
                    tail.remove(0);
                }
            }
        }
    }
    docker
        .inspect_image(&tag)
        .await
        .map_err(|e| format!("building image {tag} produced no image: {e}"))?;
    logs.progress(format!("image {tag} built; starting"));
    Ok(tag)
}

fn base_variable(kind: &str) -> &'static str {
    match kind {
        "npx" => "MCPR_NODE_IMAGE",
        _ => "MCPR_PYTHON_IMAGE",
    }
}

/// A base image must be on this host; returns its id.
async fn ensure_base(
    runtime: &DockerRuntime,
    image: &str,
    variable: &str,
    logs: &LogSink,
) -> Result<String, String> {
    let what = format!("the base image ({variable})");
    ensure_present(runtime, image, &what, false, logs).await
}

/// Returns the image's id; pulls it when `pull` and it is missing. The error names the
/// image and how to get it.
pub async fn ensure_present(
    runtime: &DockerRuntime,
    image: &str,
    what: &str,
    pull: bool,
    logs: &LogSink,
) -> Result<String, String> {
    let docker = runtime.client().await?;
    if let Ok(found) = docker.inspect_image(image).await {
        return Ok(found.id.unwrap_or_default());
    }
    let how = if image.starts_with("mcpr/") {
        "build it with scripts/docker-images (no registry needed)"
    } else {
        "load it with `docker load` or build it on this host"
    };
    if !pull {
        return Err(format!("image {image}, {what}, is not on this host: {how}"));
    }
    logs.line(
        "agent",
        format!("image {image} is not on this host: pulling it"),
    );
    let mut pulling = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..Default::default()
        }),
        None,
        None,
    );
    let pulled = tokio::time::timeout(std::time::Duration::from_secs(300), async {
        while let Some(item) = pulling.next().await {
            item.map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })
    .await
    .unwrap_or_else(|_| Err("no progress within 300 s".into()));
    match pulled {
        Ok(()) => docker
            .inspect_image(image)
            .await
            .map(|found| found.id.unwrap_or_default())
            .map_err(|e| format!("image {image} pulled but not found: {e}")),
        Err(e) => Err(format!(
            "image {image}, {what}, is not on this host and cannot be pulled ({e}): {how}"
        )),
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
}
