//! The README: the `mcpServers` (Claude Desktop) or `servers` (VS Code `mcp.json`) JSON
//! blocks its authors show users, the `export NAME=…` lines of its shell blocks, and, here
//! too, `.env.example` files. Values shown in a README are examples: a placeholder
//! (`<YOUR_TOKEN>`, `/path/to/…`) is never proposed as a value; its variable is required.

use std::collections::BTreeMap;

use mcpr_core::model::{NetworkPolicy, RuntimeSpec};

use crate::{
    Context, Evidence, LookedAt, Proposal, Variable, VariableTarget, is_env_name,
    looks_placeholder, looks_secret,
};

const READMES: &[&str] = &[
    "README.md",
    "readme.md",
    "Readme.md",
    "README.markdown",
    "README",
];

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    let mut found = Vec::new();
    for (file, text) in cx.files.named(READMES) {
        let blocks = code_blocks(text);
        let mut here = Vec::new();
        for block in &blocks {
            for (name, entry) in mcp_entries(block) {
                if let Some(p) = entry_proposal(file, &name, &entry)
                    && !here.iter().any(|h: &Proposal| h.runtime == p.runtime)
                {
                    here.push(p);
                }
            }
        }
        let exported = exported_variables(&blocks, file);
        for p in &mut here {
            for v in &exported {
                p.add_variable(v.clone());
            }
        }
        looked_at.push(LookedAt {
            file: file.to_owned(),
            finding: if here.is_empty() {
                format!("no mcpServers block ({} code blocks read)", blocks.len())
            } else {
                format!(
                    "mcpServers block: {}",
                    here.iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        });
        found.extend(here);
    }
    found
}

/// Fenced code blocks (```` ``` ```` or `~~~`), without their fences.
pub fn code_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None => {
                if let Some(fence) = ["```", "~~~"].iter().find(|f| trimmed.starts_with(**f)) {
                    current = Some(((*fence).to_owned(), String::new()));
                }
            }
            Some((fence, body)) => {
                if trimmed.starts_with(fence.as_str()) {
                    blocks.push(std::mem::take(body));
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    blocks
}

/// JSON as READMEs write it: `//` comments and trailing commas removed, and a bare
/// `"mcpServers": {…}` fragment wrapped in braces.
fn lenient_json(block: &str) -> Option<serde_json::Value> {
    let mut cleaned = String::new();
    for line in block.lines() {
        let mut in_string = false;
        let mut prev = '\0';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && prev != '\\' {
                in_string = !in_string;
            }
            if !in_string && c == '/' && prev == '/' {
                cut = i - 1;
                break;
            }
            prev = c;
        }
        cleaned.push_str(&line[..cut]);
        cleaned.push('\n');
    }
    let mut no_trailing = String::new();
    let chars: Vec<char> = cleaned.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        no_trailing.push(*c);
    }
    let trimmed = no_trailing.trim();
    serde_json::from_str(trimmed)
        .ok()
        .or_else(|| serde_json::from_str(&format!("{{{trimmed}}}")).ok())
}

/// `(name, entry)` of every server in a block: `mcpServers`, `servers` or `mcp.servers`.
fn mcp_entries(block: &str) -> Vec<(String, serde_json::Value)> {
    if !block.contains("mcpServers") && !block.contains("\"servers\"") {
        return Vec::new();
    }
    let Some(doc) = lenient_json(block) else {
        return Vec::new();
    };
    let map = doc
        .get("mcpServers")
        .or_else(|| doc.get("servers"))
        .or_else(|| doc.get("mcp").and_then(|m| m.get("servers")))
        .and_then(|m| m.as_object());
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn entry_proposal(file: &str, name: &str, entry: &serde_json::Value) -> Option<Proposal> {
    let strings = |key: &str| -> Vec<String> {
        entry
            .get(key)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let map = |key: &str| -> Vec<(String, String)> {
        entry
            .get(key)
            .and_then(|m| m.as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut variables = Vec::new();
    let mut env = BTreeMap::new();
    for (key, value) in map("env") {
        if !is_env_name(&key) {
            continue;
        }
        let mut v = Variable::env(&key, file);
        if looks_placeholder(&value) || value.is_empty() || v.secret {
            v.required = true;
        } else {
            v.default = Some(value.clone());
            env.insert(key.clone(), value);
        }
        variables.push(v);
    }
    let (runtime, package, reason) = if let Some(url) = entry.get("url").and_then(|u| u.as_str()) {
        let mut headers = BTreeMap::new();
        for (key, value) in map("headers") {
            let secret = looks_secret(&key) || looks_placeholder(&value);
            if !secret {
                headers.insert(key.clone(), value.clone());
            }
            variables.push(Variable {
                name: key.clone(),
                target: VariableTarget::Header,
                description: String::new(),
                required: secret,
                secret,
                default: None,
                template: Some(value).filter(|v| v.contains('<') || v.contains('{')),
                found_in: vec![file.to_owned()],
            });
        }
        (
            RuntimeSpec::Remote {
                url: url.to_owned(),
                headers,
            },
            None,
            format!("remote server {url}"),
        )
    } else {
        let command = entry.get("command")?.as_str()?.to_owned();
        let args = strings("args");
        if command == "docker" {
            let (runtime, docker_vars) = docker_run(&args, env.clone(), file)?;
            variables.extend(docker_vars);
            let image = match &runtime {
                RuntimeSpec::Docker { image, .. } => image.clone().unwrap_or_default(),
                _ => String::new(),
            };
            (runtime, None, format!("docker image {image}"))
        } else {
            let package = match command.as_str() {
                "npx" | "uvx" | "bunx" | "pipx" => args
                    .iter()
                    .find(|a| !a.starts_with('-'))
                    .map(|a| strip_version(a)),
                _ => None,
            };
            let reason = format!("`{command} {}`", args.join(" "));
            (
                RuntimeSpec::Process {
                    command,
                    args,
                    env,
                    cwd: None,
                },
                package,
                reason,
            )
        }
    };
    if runtime.validate().is_err() {
        return None;
    }
    let mut p = Proposal::new(Evidence::Readme, file, name, runtime);
    p.package = package;
    p.reasons
        .push(format!("the README's mcpServers block runs {reason}"));
    let placeholders: Vec<String> = match &p.runtime {
        RuntimeSpec::Process { args, .. } | RuntimeSpec::Docker { args, .. } => args
            .iter()
            .filter(|a| looks_placeholder(a))
            .cloned()
            .collect(),
        RuntimeSpec::Remote { .. } => Vec::new(),
    };
    if !placeholders.is_empty() {
        p.warnings.push(format!(
            "the README's arguments hold examples to replace: {}",
            placeholders.join(", ")
        ));
    }
    if let RuntimeSpec::Process { command, args, .. } = &p.runtime
        && !matches!(command.as_str(), "npx" | "uvx" | "bunx" | "pipx")
    {
        p.runnable = false;
        p.warnings.push(format!(
            "`{command} {}` runs from a local checkout or install",
            args.join(" ")
        ));
    }
    for v in variables {
        p.add_variable(v);
    }
    Some(p)
}

/// `@scope/pkg@1.2` → `@scope/pkg`; `pkg==1.0` → `pkg`.
fn strip_version(arg: &str) -> String {
    let (scope, rest) = match arg.strip_prefix('@') {
        Some(rest) => ("@", rest),
        None => ("", arg),
    };
    let rest = rest.split("==").next().unwrap_or(rest);
    let rest = rest.split('@').next().unwrap_or(rest);
    format!("{scope}{rest}")
}

/// `docker run -i --rm -e TOKEN mcp/github ARGS…` as a docker runtime.
fn docker_run(
    args: &[String],
    mut env: BTreeMap<String, String>,
    file: &str,
) -> Option<(RuntimeSpec, Vec<Variable>)> {
    let mut rest = args.iter();
    if rest.next().map(String::as_str) != Some("run") {
        return None;
    }
    let mut variables = Vec::new();
    let mut image = None;
    let mut trailing = Vec::new();
    while let Some(arg) = rest.next() {
        if image.is_some() {
            trailing.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "-e" | "--env" => {
                let item = rest.next()?;
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                if is_env_name(key) {
                    let mut v = Variable::env(key, file);
                    if value.is_empty() || looks_placeholder(value) {
                        v.required = true;
                    } else {
                        env.insert(key.to_owned(), value.to_owned());
                    }
                    variables.push(v);
                }
            }
            "-v" | "--volume" | "--mount" | "-p" | "--name" | "--network" | "-w" => {
                rest.next();
            }
            a if a.starts_with('-') => {}
            a => image = Some(a.to_owned()),
        }
    }
    let runtime = RuntimeSpec::Docker {
        image: Some(image?),
        npx: None,
        uvx: None,
        command: None,
        args: trailing,
        env,
        network: NetworkPolicy::Egress,
        memory_mb: None,
        millicpus: None,
        pids: None,
        build: None,
    };
    Some((runtime, variables))
}

/// `export NAME=…` and `NAME=… command` lines of shell blocks.
fn exported_variables(blocks: &[String], file: &str) -> Vec<Variable> {
    let mut out: Vec<Variable> = Vec::new();
    for block in blocks {
        for line in block.lines() {
            let line = line.trim().trim_start_matches("$ ");
            let Some(assignment) = line.strip_prefix("export ") else {
                continue;
            };
            let Some((key, _)) = assignment.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if is_env_name(key)
                && key.chars().all(|c| !c.is_ascii_lowercase())
                && !out.iter().any(|v| v.name == key)
            {
                let mut v = Variable::env(key, file);
                v.required = v.secret;
                out.push(v);
            }
        }
    }
    out
}

/// `.env.example` (and `.env.sample`, `.env.template`): `NAME=value # comment` lines.
pub(crate) fn env_example_variables(
    cx: &Context,
    looked_at: &mut Vec<LookedAt>,
) -> Vec<(String, Variable)> {
    let mut out = Vec::new();
    for (file, text) in cx
        .files
        .named(&[".env.example", ".env.sample", ".env.template"])
    {
        let mut names = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if !is_env_name(key) {
                continue;
            }
            let value = value.split(" #").next().unwrap_or_default().trim();
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            let mut v = Variable::env(key, file);
            if v.secret || value.is_empty() || looks_placeholder(value) {
                v.required = v.secret;
            } else {
                v.default = Some(value.to_owned());
            }
            names.push(key.to_owned());
            out.push((file.to_owned(), v));
        }
        looked_at.push(LookedAt {
            file: file.to_owned(),
            finding: format!("variables {}", names.join(", ")),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_with_comments_and_trailing_commas() {
        let readme = r#"
# GitHub MCP Server

```json
{
  "mcpServers": {
    "github": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"], // the published package
      "env": {
        "GITHUB_PERSONAL_ACCESS_TOKEN": "<YOUR_TOKEN>",
      }
    }
  }
}
```

```json
"mcpServers": {
  "github-docker": {"command": "docker", "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "mcp/github"]}
}
```
"#;
        let blocks = code_blocks(readme);
        assert_eq!(blocks.len(), 2);
        let entries = mcp_entries(&blocks[0]);
        let p = entry_proposal("README.md", &entries[0].0, &entries[0].1).unwrap();
        assert_eq!(p.name, "github");
        assert_eq!(
            p.package.as_deref(),
            Some("@modelcontextprotocol/server-github")
        );
        let RuntimeSpec::Process { env, .. } = &p.runtime else {
            panic!()
        };
        assert!(env.is_empty(), "a placeholder is never a value");
        assert!(p.variables[0].required && p.variables[0].secret);
        let entries = mcp_entries(&blocks[1]);
        let p = entry_proposal("README.md", &entries[0].0, &entries[0].1).unwrap();
        assert!(
            matches!(&p.runtime, RuntimeSpec::Docker { image: Some(i), .. } if i == "mcp/github")
        );
        assert_eq!(p.variables[0].name, "GITHUB_PERSONAL_ACCESS_TOKEN");
    }
}
