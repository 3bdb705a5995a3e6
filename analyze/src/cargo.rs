//! `Cargo.toml`: a Rust crate is an MCP server when it depends on `rmcp` (or another MCP
//! crate). Its binary runs once installed (`cargo install --git URL --rev COMMIT BIN`), so
//! the proposal names the binary and says how to install it.

use mcpr_core::model::RuntimeSpec;

use crate::{Context, Evidence, LookedAt, Proposal, dir_of};

const MCP_CRATES: &[&str] = &["rmcp", "mcp-sdk", "mcp-server", "rust-mcp-sdk", "mcp-core"];

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    crate::propose_from_each(cx, &["Cargo.toml"], looked_at, |file, text| {
        proposal(cx, file, text)
    })
}

fn proposal(cx: &Context, file: &str, text: &str) -> Result<Proposal, String> {
    let doc: toml::Table = text.parse().map_err(|_| "not valid TOML".to_owned())?;
    let Some(package) = doc.get("package").and_then(|p| p.as_table()) else {
        return Err("a workspace manifest, not a crate".into());
    };
    let name = package
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_owned();
    let deps = doc.get("dependencies").and_then(|d| d.as_table());
    let library = MCP_CRATES
        .iter()
        .find(|c| deps.is_some_and(|d| d.contains_key(**c)));
    let Some(library) = library else {
        return Err(format!("crate {name:?} does not depend on an MCP crate"));
    };
    let bin = doc
        .get("bin")
        .and_then(|b| b.as_array())
        .and_then(|b| b.first())
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or(&name)
        .to_owned();
    let install = match (&cx.origin.local_dir, &cx.origin.git_url) {
        (Some(local), _) => format!(
            "cargo install --path {}",
            crate::join_path(local, dir_of(file))
        ),
        (None, Some(git)) => match &cx.origin.commit {
            Some(c) => format!("cargo install --git {git} --rev {c} {name}"),
            None => format!("cargo install --git {git} {name}"),
        },
        (None, None) => format!("cargo install {name}"),
    };
    let runtime = RuntimeSpec::Process {
        command: bin.clone(),
        args: Vec::new(),
        env: Default::default(),
        cwd: None,
    };
    let mut p = Proposal::new(Evidence::Cargo, file, &name, runtime);
    p.reasons.push(format!(
        "Rust crate {name} depends on {library}; binary {bin}"
    ));
    p.warnings.push(format!("install it first: {install}"));
    p.runnable = false;
    Ok(p)
}
