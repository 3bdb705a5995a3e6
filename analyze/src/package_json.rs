//! `package.json`: a Node package is an MCP server when it says so (`mcpName`, the MCP
//! Registry's ownership field), depends on `@modelcontextprotocol/sdk` (or another MCP
//! library), or is named like one. A published package runs with `npx -y NAME@VERSION`; an
//! unpublished one at the repository's root runs from git (`npx -y git+URL#COMMIT`, which
//! builds it with its `prepare` script at start, never during the analysis).

use mcpr_core::model::{NetworkPolicy, RuntimeSpec};
use serde::Deserialize;

use crate::{Context, Evidence, LookedAt, Proposal, RuntimePreference};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    bin: Option<serde_json::Value>,
    #[serde(default)]
    mcp_name: Option<String>,
    #[serde(default)]
    dependencies: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    dev_dependencies: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    workspaces: Option<serde_json::Value>,
}

/// Libraries that make a package an MCP server.
const MCP_LIBRARIES: &[&str] = &[
    "@modelcontextprotocol/sdk",
    "fastmcp",
    "mcp-framework",
    "@mastra/mcp",
];

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    crate::propose_from_each(cx, &["package.json"], looked_at, |file, text| {
        proposal(cx, file, text)
    })
}

fn proposal(cx: &Context, file: &str, text: &str) -> Result<Proposal, String> {
    let doc: PackageJson =
        serde_json::from_str(text).map_err(|e| format!("not a package.json: {e}"))?;
    let name = doc.name.clone().unwrap_or_default();
    let library = MCP_LIBRARIES
        .iter()
        .find(|l| doc.dependencies.contains_key(**l) || doc.dev_dependencies.contains_key(**l));
    let named_mcp = name.to_ascii_lowercase().contains("mcp");
    if doc.mcp_name.is_none() && library.is_none() && !named_mcp {
        return Err(if doc.workspaces.is_some() {
            "a workspace root, not itself an MCP server".to_owned()
        } else {
            "not an MCP server (no mcpName, no MCP SDK dependency)".to_owned()
        });
    }
    let has_bin = match &doc.bin {
        Some(serde_json::Value::String(_)) => true,
        Some(serde_json::Value::Object(m)) => !m.is_empty(),
        _ => false,
    };
    if !has_bin && doc.workspaces.is_some() {
        return Err("a workspace root without a bin: its packages are read one by one".into());
    }
    let dir = crate::dir_of(file);
    let mut reasons = Vec::new();
    if let Some(mcp_name) = &doc.mcp_name {
        reasons.push(format!("mcpName {mcp_name}"));
    }
    if let Some(library) = library {
        reasons.push(format!("depends on {library}"));
    }
    let published = !doc.private && !name.is_empty();
    let (spec, runnable, warning) = if published {
        let spec = match &doc.version {
            Some(v) if !v.is_empty() => format!("{name}@{v}"),
            _ => name.clone(),
        };
        reasons.push(format!(
            "npm package {spec} (the published release of this code)"
        ));
        (spec, true, None)
    } else if let Some(source) = cx.origin.npm_source(dir) {
        reasons.push(format!(
            "unpublished package run from the repository ({source})"
        ));
        (
            source,
            has_bin,
            (!has_bin).then(|| "package.json has no bin to run".to_owned()),
        )
    } else {
        return Err(format!(
            "private package {name:?} in a subdirectory: npm cannot run it from git (publish it or build an image)"
        ));
    };
    let runtime = match cx.prefer {
        RuntimePreference::Docker => RuntimeSpec::Docker {
            image: None,
            npx: Some(spec.clone()),
            uvx: None,
            command: None,
            args: Vec::new(),
            env: Default::default(),
            network: NetworkPolicy::Egress,
            memory_mb: None,
            millicpus: None,
            pids: None,
            build: None,
        },
        RuntimePreference::Process => RuntimeSpec::Process {
            command: "npx".into(),
            args: vec!["-y".into(), spec],
            env: Default::default(),
            cwd: None,
        },
    };
    let label = doc.mcp_name.as_deref().unwrap_or(&name);
    let label = if label.is_empty() {
        dir.rsplit('/').next().unwrap_or("server")
    } else {
        label
    };
    let mut p = Proposal::new(Evidence::PackageJson, file, label, runtime);
    p.description = doc.description.unwrap_or_default();
    p.package = (!name.is_empty()).then_some(name);
    p.reasons = reasons;
    p.runnable = runnable;
    if doc.mcp_name.is_some() {
        p.confidence += 0.1;
    }
    p.warnings.extend(warning);
    Ok(p)
}
