//! `pyproject.toml`: a Python package is an MCP server when it depends on `mcp` or
//! `fastmcp` (or is named like one). It runs the console script it declares
//! (`[project.scripts]`, or Poetry's `[tool.poetry.scripts]`) from the analyzed commit with
//! `uvx --from git+URL@COMMIT#subdirectory=DIR SCRIPT`, or from a local directory with
//! `uvx --from DIR SCRIPT`; `uvx NAME` (the PyPI release) is offered as an alternative.

use mcpr_core::model::RuntimeSpec;

use crate::{Alternative, Context, Evidence, LookedAt, Proposal, RuntimePreference};

const MCP_LIBRARIES: &[&str] = &["mcp", "fastmcp", "mcp-server", "modelcontextprotocol"];

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    crate::propose_from_each(cx, &["pyproject.toml"], looked_at, |file, text| {
        proposal(cx, file, text)
    })
}

/// `mcp[cli]>=1.2` → `mcp`.
fn requirement_name(requirement: &str) -> String {
    requirement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn proposal(cx: &Context, file: &str, text: &str) -> Result<Proposal, String> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "not valid TOML: {}",
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    let project = doc.get("project").and_then(|p| p.as_table());
    let poetry = doc
        .get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(|p| p.as_table());
    let name = project
        .and_then(|p| p.get("name"))
        .or_else(|| poetry.and_then(|p| p.get("name")))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_owned();
    let description = project
        .and_then(|p| p.get("description"))
        .or_else(|| poetry.and_then(|p| p.get("description")))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_owned();
    let mut dependencies: Vec<String> = project
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(requirement_name)
                .collect()
        })
        .unwrap_or_default();
    if let Some(deps) = poetry
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_table())
    {
        dependencies.extend(deps.keys().map(|k| requirement_name(k)));
    }
    let library = MCP_LIBRARIES
        .iter()
        .find(|l| dependencies.iter().any(|d| d == **l));
    if library.is_none() && !name.to_ascii_lowercase().contains("mcp") {
        return Err(format!(
            "Python package {name:?} is not an MCP server (no mcp or fastmcp dependency)"
        ));
    }
    let scripts: Vec<String> = project
        .and_then(|p| p.get("scripts"))
        .or_else(|| poetry.and_then(|p| p.get("scripts")))
        .and_then(|s| s.as_table())
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    let script = scripts
        .iter()
        .find(|s| **s == name)
        .or_else(|| scripts.iter().find(|s| s.contains("mcp")))
        .or_else(|| scripts.first())
        .cloned()
        .ok_or_else(|| {
            format!("Python package {name:?} declares no console script ([project.scripts]) to run")
        })?;
    let dir = crate::dir_of(file);
    let source = cx
        .origin
        .python_source(dir)
        .ok_or_else(|| "the repository has no URL or directory to install from".to_owned())?;
    let runtime = RuntimeSpec::Process {
        command: "uvx".into(),
        args: vec!["--from".into(), source.clone(), script.clone()],
        env: Default::default(),
        cwd: None,
    };
    let mut p = Proposal::new(
        Evidence::Pyproject,
        file,
        if name.is_empty() { &script } else { &name },
        runtime,
    );
    p.description = description;
    p.package = (!name.is_empty()).then(|| name.clone());
    if let Some(library) = library {
        p.reasons.push(format!("depends on {library}"));
    }
    p.reasons.push(format!(
        "console script {script} of {name}, installed from {source}"
    ));
    // uv clones `git+https://`, `git+ssh://` and `git+file://` only: a known forge's
    // `git://` URL was rewritten to https; any other cannot run as proposed.
    if let Some(git) = &cx.origin.git_url
        && cx.origin.local_dir.is_none()
        && let Err(why) = crate::uv_git_url(git)
    {
        p.warnings.push(why);
        p.runnable = false;
        p.confidence -= 0.2;
    }
    if cx.prefer == RuntimePreference::Docker {
        // The docker runtime builds `uvx` images of PyPI names (the entry point named like
        // the package); code at a git commit runs as a process.
        p.warnings
            .push("code from a repository runs as a process (uvx), not in a container".into());
    }
    if scripts.len() > 1 {
        p.warnings
            .push(format!("other scripts: {}", scripts.join(", ")));
    }
    if !name.is_empty() {
        p.alternatives.push(Alternative {
            runtime: RuntimeSpec::Process {
                command: "uvx".into(),
                args: vec!["--from".into(), name.clone(), script],
                env: Default::default(),
                cwd: None,
            },
            reason: format!("the PyPI release of {name}, if it is published"),
        });
    }
    Ok(p)
}
