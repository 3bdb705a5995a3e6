//! `go.mod`: a Go module is an MCP server when it requires an MCP library
//! (`github.com/mark3labs/mcp-go`, `github.com/modelcontextprotocol/go-sdk`). It runs with
//! `go run MODULE[/cmd/NAME]@VERSION`, which fetches and builds it at start (the Go
//! toolchain and network are needed then, never during the analysis).

use mcpr_core::model::RuntimeSpec;

use crate::{Context, Evidence, LookedAt, Proposal, dir_of};

const MCP_MODULES: &[&str] = &[
    "github.com/mark3labs/mcp-go",
    "github.com/modelcontextprotocol/go-sdk",
    "github.com/metoro-io/mcp-golang",
];

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    let mut found = Vec::new();
    for (file, text) in cx.files.named(&["go.mod"]) {
        let module = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("module "))
            .map(|m| m.trim().trim_matches('"').to_owned());
        let library = MCP_MODULES.iter().find(|m| text.contains(**m));
        let (Some(module), Some(library)) = (module, library) else {
            looked_at.push(LookedAt {
                file: file.to_owned(),
                finding: "a Go module that requires no MCP library".into(),
            });
            continue;
        };
        let dir = dir_of(file);
        // A main package under cmd/ is the usual place of the binary.
        let prefix = if dir.is_empty() {
            "cmd/".to_owned()
        } else {
            format!("{dir}/cmd/")
        };
        let main = cx.files.paths.iter().find_map(|p| {
            let rest = p.strip_prefix(&prefix)?;
            let (name, file) = rest.split_once('/')?;
            (file == "main.go").then(|| name.to_owned())
        });
        let package = match &main {
            Some(name) => format!("{module}/cmd/{name}"),
            None => module.clone(),
        };
        let version = cx.origin.commit.clone().unwrap_or_else(|| "latest".into());
        let runtime = RuntimeSpec::Process {
            command: "go".into(),
            args: vec!["run".into(), format!("{package}@{version}")],
            env: Default::default(),
            cwd: None,
        };
        let label = main
            .as_deref()
            .unwrap_or_else(|| module.rsplit('/').next().unwrap_or("server"));
        let mut p = Proposal::new(Evidence::Go, file, label, runtime);
        p.reasons.push(format!(
            "Go module {module} requires {library}; runs {package}"
        ));
        p.warnings
            .push("`go run` needs the Go toolchain and network when it starts".into());
        looked_at.push(LookedAt {
            file: file.to_owned(),
            finding: p.reasons.join("; "),
        });
        found.push(p);
    }
    found
}
