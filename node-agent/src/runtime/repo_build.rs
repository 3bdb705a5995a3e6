//! Images built from a repository's Dockerfile (a `docker` server with a `build`, as the
//! analysis proposes for a repository that has only a Dockerfile). When the server's image
//! is not on this host, the agent fetches the source (the repository at its commit, with
//! [`mcpr_core::git::shallow_fetch`]: no hooks, LFS, submodules or credentials, within a
//! time and a size limit; or a local directory), packs the build context (without `.git`
//! and what `.dockerignore` excludes; symlinks kept as links, never followed) and builds
//! it through the Engine API, tagged with the server's image name. Builds go through
//! [`images::build_image`]: one at a time, once per tag, Dockerfile steps as the server's
//! progress, the build's lines in its log, the host's proxy settings as build arguments.
//!
//! The repository's Dockerfile runs as it is written, in Docker's builder (with the
//! builder's network), only once an admin saved the server: never during analysis. The
//! running server gets the usual locked-down container.

use std::path::{Path, PathBuf};

use mcpr_core::git::{GitLimits, shallow_fetch};
use mcpr_core::model::DockerBuild;

use super::docker::DockerRuntime;
use super::images::{self, BuildContext, BuildFailure, Report};

/// The most bytes a build context may hold (the same as the repository a fetch may bring).
const MAX_CONTEXT_BYTES: u64 = 200 * 1024 * 1024;

/// Builds `image` from `build` unless this host has it.
pub async fn ensure_built(
    runtime: &DockerRuntime,
    image: &str,
    build: &DockerBuild,
    report: Report<'_>,
) -> Result<(), String> {
    let what = format!("{} of {}", build.dockerfile, build.describe());
    images::build_image(runtime, image, &what, report, || async {
        // The checkout lives until the context is packed.
        let (_checkout, context_dir) = source(runtime, build, report).await?;
        let dockerfile = build.dockerfile.clone();
        let packing = context_dir.clone();
        let tar = tokio::task::spawn_blocking(move || {
            pack_context(&packing, &dockerfile, MAX_CONTEXT_BYTES)
        })
        .await
        .map_err(|e| BuildFailure::Engine(format!("packing the build context failed: {e}")))?
        .map_err(|e| {
            BuildFailure::Recipe(format!(
                "cannot build image {image} from {}: {e}",
                build.describe()
            ))
        })?;
        Ok(BuildContext {
            tar,
            dockerfile: build.dockerfile.clone(),
        })
    })
    .await
    .map_err(BuildFailure::into_message)
}

/// The directory the build context is packed from, and the temporary checkout holding it
/// (a git source).
async fn source(
    runtime: &DockerRuntime,
    build: &DockerBuild,
    report: Report<'_>,
) -> Result<(Option<tempfile::TempDir>, PathBuf), BuildFailure> {
    if let Some(dir) = &build.dir {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(BuildFailure::Recipe(format!(
                "the build directory {} is not a directory on this host",
                dir.display()
            )));
        }
        return Ok((None, dir));
    }
    let Some(git) = &build.git else {
        return Err(BuildFailure::Recipe(
            "the build names neither a repository nor a directory".into(),
        ));
    };
    report.progress(format!("fetching {} for the image build", build.describe()));
    let checkout = tempfile::Builder::new()
        .prefix(&checkout_prefix(&runtime.settings.owner))
        .tempdir()
        .map_err(|e| BuildFailure::Engine(format!("cannot make a temporary directory: {e}")))?;
    let commit = shallow_fetch(
        git,
        build.reference.as_deref(),
        checkout.path(),
        GitLimits::default(),
        None,
    )
    .await
    .map_err(|e| BuildFailure::Recipe(e.to_string()))?;
    report.line(
        "build",
        format!("fetched {} at commit {commit}", build.describe()),
    );
    let dir = match &build.path {
        Some(path) => checkout.path().join(path),
        None => checkout.path().to_owned(),
    };
    if !dir.is_dir() {
        return Err(BuildFailure::Recipe(format!(
            "{} has no directory {:?}",
            build.describe(),
            build.path.as_deref().unwrap_or_default()
        )));
    }
    Ok((Some(checkout), dir))
}

/// The name prefix of this agent's checkouts in the temporary directory: its owner label
/// (as the containers'), so that an agent that died mid-build finds what it left.
fn checkout_prefix(owner: &str) -> String {
    let owner: String = owner
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(64)
        .collect();
    format!("mcpr-build-{owner}.")
}

/// Removes the checkouts a crash of this agent left behind (`owner` as in
/// [`checkout_prefix`]): at start, with its containers. How many.
pub fn reap_checkouts(owner: &str) -> usize {
    let prefix = checkout_prefix(owner);
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

/// A tar archive of `dir`: every file and directory except `.git` and what `.dockerignore`
/// excludes (the Dockerfile and `.dockerignore` are always sent, as the docker CLI does);
/// symlinks are archived as links. Past `limit` bytes of file content it stops.
fn pack_context(dir: &Path, dockerfile: &str, limit: u64) -> Result<Vec<u8>, String> {
    let dockerfile_path = dir.join(dockerfile);
    match std::fs::symlink_metadata(&dockerfile_path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(format!("{dockerfile} is not a regular file")),
        Err(_) => return Err(format!("there is no {dockerfile} in the build context")),
    }
    let ignore = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|text| DockerIgnore::parse(&text))
        .unwrap_or_default();
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    let mut total = 0u64;
    let mut stack = vec![(dir.to_owned(), String::new())];
    while let Some((here, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&here)
            .map_err(|e| format!("{}: {e}", here.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let always = path == dockerfile || path == ".dockerignore";
            if name == ".git" || (!always && ignore.excludes(&path)) {
                // A directory with exceptions below it is still walked.
                if !(kind.is_dir() && name != ".git" && ignore.has_exceptions()) {
                    continue;
                }
                stack.push((entry.path(), path));
                continue;
            }
            if kind.is_dir() {
                archive
                    .append_dir(&path, entry.path())
                    .map_err(|e| format!("{path}: {e}"))?;
                stack.push((entry.path(), path));
            } else if kind.is_file() || kind.is_symlink() {
                if kind.is_file() {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    if total > limit {
                        return Err(format!("the build context is over {limit} bytes"));
                    }
                }
                archive
                    .append_path_with_name(entry.path(), &path)
                    .map_err(|e| format!("{path}: {e}"))?;
            }
        }
    }
    archive.into_inner().map_err(|e| e.to_string())
}

/// The rules of a `.dockerignore`: each a pattern (`*`, `?`, `**` for any directories),
/// excluding what it matches and everything below it, or re-including with `!`; the last
/// rule that matches a path decides.
#[derive(Debug, Default)]
struct DockerIgnore {
    rules: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (include, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let segments: Vec<String> = pattern
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_owned)
                    .collect();
                (!segments.is_empty()).then_some((include, segments))
            })
            .collect();
        DockerIgnore { rules }
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(include, _)| *include)
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context.
    fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (include, pattern) in &self.rules {
            // A pattern matches the path or one of its parent directories.
            let matched = (1..=segments.len()).any(|n| matches_segments(pattern, &segments[..n]));
            if matched {
                excluded = !include;
            }
        }
        excluded
    }
}

fn matches_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                matches_glob(first.as_bytes(), segment.as_bytes())
                    && matches_segments(rest, path_rest)
            }
            None => false,
        },
    }
}

/// `*` (any run of characters) and `?` (one character) within one path segment.
fn matches_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| matches_glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && matches_glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && matches_glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkouts_left_by_a_crash_are_reaped_per_owner() {
        let mine = tempfile::Builder::new()
            .prefix(&checkout_prefix("e2e-reap/1"))
            .tempdir()
            .unwrap()
            .keep();
        let other = tempfile::Builder::new()
            .prefix(&checkout_prefix("e2e-reap/10"))
            .tempdir()
            .unwrap();
        assert_eq!(reap_checkouts("e2e-reap/1"), 1);
        assert!(!mine.exists() && other.path().exists());
    }

    #[test]
    fn dockerignore_rules() {
        let ignore = DockerIgnore::parse(
            "# comment\n*.log\nnode_modules\n/secrets/\n**/*.tmp\ndocs\n!docs/keep.md\n",
        );
        for excluded in [
            "a.log",
            "node_modules",
            "node_modules/x/y.js",
            "secrets/key",
            "deep/down/x.tmp",
            "docs/other.md",
        ] {
            assert!(ignore.excludes(excluded), "{excluded}");
        }
        for kept in ["src/a.log", "src/main.rs", "docs/keep.md", "Dockerfile"] {
            assert!(!ignore.excludes(kept), "{kept}");
        }
        assert!(ignore.has_exceptions());
        assert!(matches_glob(b"a?c*", b"abcdef"));
        assert!(!matches_glob(b"a?c", b"ac"));
    }

    #[test]
    fn the_context_leaves_out_git_and_ignored_files_and_keeps_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.secret\nDockerfile\n").unwrap();
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/app.py"), "print(1)").unwrap();
        std::fs::write(root.join("token.secret"), "s3cret").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd-link")).unwrap();
        let tar = pack_context(root, "Dockerfile", 1 << 20).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut names: Vec<(String, bool)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type().is_symlink(),
                )
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                (".dockerignore".to_owned(), false),
                ("Dockerfile".to_owned(), false),
                ("passwd-link".to_owned(), true),
                ("src".to_owned(), false),
                ("src/app.py".to_owned(), false),
            ]
        );
        assert!(
            pack_context(root, "Dockerfile", 4)
                .unwrap_err()
                .contains("over 4 bytes")
        );
        assert!(
            pack_context(root, "missing/Dockerfile", 1 << 20)
                .unwrap_err()
                .contains("there is no missing/Dockerfile")
        );
    }
}
