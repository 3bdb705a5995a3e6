//! `Dockerfile`: an image built from the repository. The proposal is a `docker` server of
//! the image the build makes, tagged with the commit, and its runtime's `build` says where
//! from (the repository at that commit, or the local directory): the node agent builds it
//! once per tag when the saved server first starts. Nothing is built here. `ENV` lines
//! name variables with their defaults. A Dockerfile that `EXPOSE`s a port with no stdio
//! hint is said to serve HTTP, which a container started here does not reach.

use mcpr_core::model::{DockerBuild, NetworkPolicy, RuntimeSpec};

use crate::{
    Context, Evidence, ImageBuild, LookedAt, Proposal, Variable, dir_of, is_env_name, join_path,
};

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    let mut found = Vec::new();
    for (file, text) in cx.files.named(&["Dockerfile"]) {
        let dir = dir_of(file);
        let name = dir
            .rsplit('/')
            .next()
            .filter(|d| !d.is_empty())
            .or_else(|| repo_name(&cx.origin.url))
            .unwrap_or("server");
        let proposed = crate::proposal_name(name);
        let tag = cx
            .origin
            .commit
            .as_deref()
            .map(|c| c.chars().take(12).collect::<String>())
            .unwrap_or_else(|| "latest".into());
        let image = format!("mcpr-build/{proposed}:{tag}");
        let context = match (&cx.origin.local_dir, &cx.origin.git_url) {
            (Some(local), _) => join_path(local, dir),
            (None, Some(git)) => {
                let pin = cx.origin.commit.clone().or(cx.origin.reference.clone());
                let sub = join_path(&cx.origin.path, dir);
                match (pin, sub.is_empty()) {
                    (Some(pin), true) => format!("{git}#{pin}"),
                    (Some(pin), false) => format!("{git}#{pin}:{sub}"),
                    (None, true) => git.clone(),
                    (None, false) => format!("{git}#:{sub}"),
                }
            }
            (None, None) => continue,
        };
        let mut env = std::collections::BTreeMap::new();
        let mut variables = Vec::new();
        let mut exposes = false;
        for line in text.lines() {
            let line = line.trim();
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EXPOSE ") {
                exposes = true;
            }
            if let Some(rest) = upper.strip_prefix("ENV ").map(|_| line[4..].trim()) {
                let (key, value) = rest
                    .split_once('=')
                    .or_else(|| rest.split_once(' '))
                    .unwrap_or((rest, ""));
                let key = key.trim();
                let value = value.trim().trim_matches('"');
                if is_env_name(key)
                    && !key.starts_with("PYTHON")
                    && key != "PATH"
                    && key != "NODE_ENV"
                {
                    let mut v = Variable::env(key, file);
                    if !v.secret && !value.is_empty() {
                        v.default = Some(value.to_owned());
                        env.insert(key.to_owned(), value.to_owned());
                    }
                    variables.push(v);
                }
            }
        }
        // What the agent builds from: the same commit, or the same local directory.
        let build = match (&cx.origin.local_dir, &cx.origin.git_url) {
            (Some(local), _) => DockerBuild {
                git: None,
                reference: None,
                path: None,
                dir: Some(join_path(local, dir)),
                dockerfile: "Dockerfile".into(),
            },
            (None, git) => {
                let sub = join_path(&cx.origin.path, dir);
                DockerBuild {
                    git: git.clone(),
                    reference: cx.origin.commit.clone().or(cx.origin.reference.clone()),
                    path: (!sub.is_empty()).then_some(sub),
                    dir: None,
                    dockerfile: "Dockerfile".into(),
                }
            }
        };
        // A URL the agent does not fetch from (ssh, shell syntax): the image is the admin's
        // to build.
        let build = build.validate().ok().map(|()| build);
        let runtime = RuntimeSpec::Docker {
            image: Some(image.clone()),
            npx: None,
            uvx: None,
            command: None,
            args: Vec::new(),
            env,
            network: NetworkPolicy::Egress,
            memory_mb: None,
            millicpus: None,
            pids: None,
            build: build.clone().map(Box::new),
        };
        let mut p = Proposal::new(Evidence::Dockerfile, file, name, runtime);
        p.reasons.push(format!("an image built from {file}"));
        match &build {
            Some(build) => p.warnings.push(format!(
                "the node agent builds {image} from {file} ({}) when the server first starts: the Dockerfile's steps run in Docker's builder, with network",
                build.describe()
            )),
            None => {
                p.warnings.push(format!(
                    "build the image first: docker build -t {image} {context}"
                ));
                p.runnable = false;
            }
        }
        if exposes {
            p.warnings
                .push("the Dockerfile EXPOSEs a port: the server may speak HTTP, not stdio".into());
            p.confidence -= 0.1;
        }
        p.build = Some(ImageBuild {
            context,
            dockerfile: "Dockerfile".into(),
            image,
        });
        for v in variables {
            p.add_variable(v);
        }
        looked_at.push(LookedAt {
            file: file.to_owned(),
            finding: p.reasons.join("; "),
        });
        found.push(p);
    }
    found
}

/// `https://github.com/o/weather-mcp(.git)` → `weather-mcp`.
pub(crate) fn repo_name(url: &str) -> Option<&str> {
    let trimmed = url.trim_end_matches('/');
    let last = trimmed.rsplit(['/', ':']).next()?;
    let last = last.strip_suffix(".git").unwrap_or(last);
    (!last.is_empty()).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Origin, RepoFiles, RuntimePreference, analyze_files};

    fn proposal_for(origin: Origin) -> Proposal {
        let mut files = RepoFiles::default();
        files.files.insert(
            "server/Dockerfile".into(),
            "FROM python:3.12-slim\nENTRYPOINT [\"python\", \"-m\", \"x\"]\n".into(),
        );
        files.paths = vec!["server".into(), "server/Dockerfile".into()];
        analyze_files(&files, &origin, RuntimePreference::Process)
            .proposals
            .remove(0)
    }

    #[test]
    fn the_runtime_says_what_the_agent_builds_from() {
        let git = proposal_for(Origin {
            url: "https://example.com/o/weather-mcp".into(),
            git_url: Some("https://example.com/o/weather-mcp.git".into()),
            commit: Some("0123456789abcdef0123".into()),
            path: "mono".into(),
            ..Default::default()
        });
        let RuntimeSpec::Docker { image, build, .. } = &git.runtime else {
            panic!("{git:?}")
        };
        assert_eq!(image.as_deref(), Some("mcpr-build/server:0123456789ab"));
        let build = build.as_deref().unwrap();
        assert_eq!(
            build,
            &DockerBuild {
                git: Some("https://example.com/o/weather-mcp.git".into()),
                reference: Some("0123456789abcdef0123".into()),
                path: Some("mono/server".into()),
                dir: None,
                dockerfile: "Dockerfile".into(),
            }
        );
        assert!(git.runnable, "{git:?}");
        git.runtime.validate().unwrap();

        let local = proposal_for(Origin {
            url: "/srv/weather".into(),
            local_dir: Some("/srv/weather".into()),
            ..Default::default()
        });
        let RuntimeSpec::Docker { build, .. } = &local.runtime else {
            panic!("{local:?}")
        };
        assert_eq!(
            build.as_ref().unwrap().dir.as_deref(),
            Some("/srv/weather/server")
        );

        // ssh: the agent does not fetch it; the build is the admin's, as before.
        let ssh = proposal_for(Origin {
            url: "ssh://git@example.com/o/r.git".into(),
            git_url: Some("ssh://git@example.com/o/r.git".into()),
            commit: Some("abc".into()),
            ..Default::default()
        });
        let RuntimeSpec::Docker { build, .. } = &ssh.runtime else {
            panic!("{ssh:?}")
        };
        assert!(build.is_none() && !ssh.runnable, "{ssh:?}");
        assert!(ssh.warnings.iter().any(|w| w.contains("docker build -t")));
    }
}
