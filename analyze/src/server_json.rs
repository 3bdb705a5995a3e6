//! `server.json`, the MCP Registry's description of a server: `packages[]` (`registryType`
//! npm, pypi or oci, with `runtimeHint`, `transport`, `runtimeArguments`,
//! `packageArguments` and `environmentVariables`) and `remotes[]`. The strongest evidence:
//! its authors wrote it for exactly this. Both the current camelCase schema and the early
//! snake_case one are read.

use std::collections::BTreeMap;

use mcpr_core::model::{NetworkPolicy, RuntimeSpec};
use serde::Deserialize;

use crate::{
    Alternative, Context, Evidence, LookedAt, Proposal, RuntimePreference, Variable,
    VariableTarget, is_env_name, looks_secret,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerDoc {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub remotes: Vec<Remote>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    #[serde(alias = "registry_type", alias = "registry_name")]
    pub registry_type: String,
    #[serde(alias = "name")]
    pub identifier: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default, alias = "runtime_hint")]
    pub runtime_hint: Option<String>,
    #[serde(default)]
    pub transport: Option<Transport>,
    #[serde(default, alias = "runtime_arguments")]
    pub runtime_arguments: Vec<Argument>,
    #[serde(default, alias = "package_arguments")]
    pub package_arguments: Vec<Argument>,
    #[serde(default, alias = "environment_variables")]
    pub environment_variables: Vec<Input>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Transport {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, alias = "value_hint")]
    pub value_hint: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default, alias = "is_required")]
    pub is_required: bool,
}

/// An environment variable or a header.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, alias = "is_required")]
    pub is_required: bool,
    #[serde(default, alias = "is_secret")]
    pub is_secret: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    #[serde(rename = "type", alias = "transport_type")]
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<Input>,
}

/// Accepts a bare `server.json` and the registry API's `{"server": …, "_meta": …}` wrapper.
pub fn parse(text: &str) -> Result<ServerDoc, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let doc = match value.get("server") {
        Some(inner) if inner.is_object() => inner.clone(),
        _ => value,
    };
    serde_json::from_value(doc).map_err(|e| format!("not a server.json document: {e}"))
}

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    let mut found = Vec::new();
    for (file, text) in cx.files.named(&["server.json"]) {
        match parse(text).and_then(|doc| proposal(&doc, file, Evidence::ServerJson, cx.prefer)) {
            Ok(p) => {
                looked_at.push(LookedAt {
                    file: file.to_owned(),
                    finding: format!("MCP Registry server {}", p.reasons[0]),
                });
                found.push(p);
            }
            Err(why) => looked_at.push(LookedAt {
                file: file.to_owned(),
                finding: why,
            }),
        }
    }
    found
}

/// The proposal for one `server.json`: its first runnable package (the others, and the
/// remotes, become alternatives), or its first remote.
pub fn proposal(
    doc: &ServerDoc,
    file: &str,
    evidence: Evidence,
    prefer: RuntimePreference,
) -> Result<Proposal, String> {
    let mut ways: Vec<(RuntimeSpec, Vec<Variable>, String, Option<String>)> = Vec::new();
    let mut skipped = Vec::new();
    for package in &doc.packages {
        match package_runtime(package, prefer, file) {
            Ok((runtime, variables, reason)) => {
                let name = matches!(package.registry_type.as_str(), "npm" | "pypi")
                    .then(|| package.identifier.clone());
                ways.push((runtime, variables, reason, name));
            }
            Err(why) => skipped.push(why),
        }
    }
    for remote in &doc.remotes {
        match remote_runtime(remote, file) {
            Ok((runtime, variables, reason)) => ways.push((runtime, variables, reason, None)),
            Err(why) => skipped.push(why),
        }
    }
    if ways.is_empty() {
        return Err(if skipped.is_empty() {
            format!("server {:?} lists no packages and no remotes", doc.name)
        } else {
            format!(
                "server {:?}: nothing this router runs ({})",
                doc.name,
                skipped.join("; ")
            )
        });
    }
    let mut ways = ways.into_iter();
    let (runtime, variables, reason, package) = ways.next().expect("one way at least");
    let mut p = Proposal::new(evidence, file, &doc.name, runtime);
    p.description = doc
        .description
        .clone()
        .chars()
        .take(mcpr_core::model::MAX_DESCRIPTION_LEN / 4)
        .collect();
    p.package = package;
    p.reasons.push(format!(
        "{} {}: {reason}",
        doc.name,
        doc.version.as_deref().unwrap_or("(no version)")
    ));
    for v in variables {
        p.add_variable(v);
    }
    for (runtime, _, reason, _) in ways {
        p.alternatives.push(Alternative { runtime, reason });
    }
    p.warnings.extend(skipped);
    Ok(p)
}

/// The arguments of a package: named ones as `--name value`, positional ones as their
/// value; a required argument without a value shows its hint as `<hint>` and a warning.
fn arguments(args: &[Argument], warnings: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        let value = arg.value.clone().or_else(|| arg.default.clone());
        let named = arg.kind.as_deref() == Some("named");
        if named && let Some(name) = &arg.name {
            match value {
                Some(v) if !v.is_empty() => {
                    out.push(name.clone());
                    out.push(v);
                }
                Some(_) => out.push(name.clone()),
                None if arg.is_required => {
                    out.push(name.clone());
                    out.push(hint(arg));
                    warnings.push(format!("argument {name} needs a value: edit the args"));
                }
                None => out.push(name.clone()),
            }
            continue;
        }
        match value {
            Some(v) => out.push(v),
            None if arg.is_required => {
                let h = hint(arg);
                warnings.push(format!("argument {h} needs a value: edit the args"));
                out.push(h);
            }
            None => {}
        }
    }
    out
}

fn hint(arg: &Argument) -> String {
    format!(
        "<{}>",
        arg.value_hint
            .as_deref()
            .or(arg.name.as_deref())
            .unwrap_or("value")
            .trim_start_matches('-')
    )
}

fn env_variables(inputs: &[Input], file: &str) -> Vec<Variable> {
    inputs
        .iter()
        .filter(|i| is_env_name(&i.name))
        .map(|i| Variable {
            name: i.name.clone(),
            target: VariableTarget::Env,
            description: i.description.clone(),
            required: i.is_required,
            secret: i.is_secret || looks_secret(&i.name),
            default: (!i.is_secret).then(|| i.default.clone()).flatten(),
            template: None,
            found_in: vec![file.to_owned()],
        })
        .collect()
}

fn defaults(variables: &[Variable]) -> BTreeMap<String, String> {
    variables
        .iter()
        .filter_map(|v| v.default.clone().map(|d| (v.name.clone(), d)))
        .collect()
}

fn package_runtime(
    package: &Package,
    prefer: RuntimePreference,
    file: &str,
) -> Result<(RuntimeSpec, Vec<Variable>, String), String> {
    let transport = package
        .transport
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or("stdio");
    if transport != "stdio" {
        return Err(format!(
            "package {} serves {transport} itself (only stdio packages are started here; use a remote)",
            package.identifier
        ));
    }
    let mut warnings = Vec::new();
    let runtime_args = arguments(&package.runtime_arguments, &mut warnings);
    let package_args = arguments(&package.package_arguments, &mut warnings);
    let variables = env_variables(&package.environment_variables, file);
    let env = defaults(&variables);
    let id = &package.identifier;
    let versioned = |sep: &str| match &package.version {
        Some(v) if !v.is_empty() && v != "latest" => format!("{id}{sep}{v}"),
        _ => id.clone(),
    };
    let docker = prefer == RuntimePreference::Docker;
    let (runtime, reason) = match package.registry_type.as_str() {
        "npm" if docker => (
            container_package(Some(versioned("@")), None, package_args, env),
            format!("npm package {} in a container", versioned("@")),
        ),
        "npm" => {
            let command = package.runtime_hint.clone().unwrap_or_else(|| "npx".into());
            // `npx` asks before installing unless told not to.
            let runtime_args = if runtime_args.is_empty() && command == "npx" {
                vec!["-y".to_owned()]
            } else {
                runtime_args
            };
            (
                process_package(command, runtime_args, versioned("@"), package_args, env),
                format!("npm package {}", versioned("@")),
            )
        }
        "pypi" if docker => (
            container_package(None, Some(versioned("==")), package_args, env),
            format!("PyPI package {} in a container", versioned("==")),
        ),
        "pypi" => {
            let command = package.runtime_hint.clone().unwrap_or_else(|| "uvx".into());
            (
                process_package(command, runtime_args, versioned("@"), package_args, env),
                format!("PyPI package {}", versioned("==")),
            )
        }
        "oci" | "docker" => {
            let last = id.rsplit('/').next().unwrap_or(id);
            let image = match &package.version {
                Some(v) if !last.contains(':') && !last.contains('@') && !v.is_empty() => {
                    format!("{id}:{v}")
                }
                _ => id.clone(),
            };
            (
                RuntimeSpec::Docker {
                    image: Some(image.clone()),
                    npx: None,
                    uvx: None,
                    command: None,
                    args: package_args,
                    env,
                    network: NetworkPolicy::Egress,
                    memory_mb: None,
                    millicpus: None,
                    pids: None,
                    build: None,
                },
                format!("OCI image {image} (needs the docker runtime)"),
            )
        }
        other => {
            return Err(format!(
                "package {id}: registry type {other:?} is not run here (npm, pypi and oci are)"
            ));
        }
    };
    runtime
        .validate()
        .map_err(|e| format!("package {id}: {e}"))?;
    let reason = if warnings.is_empty() {
        reason
    } else {
        format!("{reason}; {}", warnings.join("; "))
    };
    Ok((runtime, variables, reason))
}

/// A package run by its runner on the host: `COMMAND RUNTIME_ARGS… PACKAGE PACKAGE_ARGS…`.
fn process_package(
    command: String,
    runtime_args: Vec<String>,
    package: String,
    package_args: Vec<String>,
    env: BTreeMap<String, String>,
) -> RuntimeSpec {
    let mut args = runtime_args;
    args.push(package);
    args.extend(package_args);
    RuntimeSpec::Process {
        command,
        args,
        env,
        cwd: None,
    }
}

/// A package installed into an image and run in a container (`npx` or `uvx`).
fn container_package(
    npx: Option<String>,
    uvx: Option<String>,
    args: Vec<String>,
    env: BTreeMap<String, String>,
) -> RuntimeSpec {
    RuntimeSpec::Docker {
        image: None,
        npx,
        uvx,
        command: None,
        args,
        env,
        network: NetworkPolicy::Egress,
        memory_mb: None,
        millicpus: None,
        pids: None,
        build: None,
    }
}

fn remote_runtime(
    remote: &Remote,
    file: &str,
) -> Result<(RuntimeSpec, Vec<Variable>, String), String> {
    let mut variables = Vec::new();
    let mut headers = BTreeMap::new();
    for header in &remote.headers {
        if let Some(value) = header.value.clone().or_else(|| header.default.clone())
            && !header.is_secret
            && !value.contains('{')
        {
            headers.insert(header.name.clone(), value);
        }
        variables.push(Variable {
            name: header.name.clone(),
            target: VariableTarget::Header,
            description: header.description.clone(),
            required: header.is_required,
            secret: header.is_secret || looks_secret(&header.name),
            default: None,
            template: header.value.clone().filter(|v| v.contains('{')),
            found_in: vec![file.to_owned()],
        });
    }
    let runtime = RuntimeSpec::Remote {
        url: remote.url.clone(),
        headers,
    };
    runtime
        .validate()
        .map_err(|e| format!("remote {}: {e}", remote.url))?;
    let mut reason = format!("remote {} server at {}", remote.kind, remote.url);
    if remote.kind == "sse" {
        reason.push_str(" (the legacy SSE transport: this router speaks streamable HTTP)");
    }
    Ok((runtime, variables, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILESYSTEM: &str = r#"{
      "$schema": "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json",
      "name": "io.github.modelcontextprotocol/filesystem",
      "description": "Secure file operations",
      "version": "0.6.2",
      "packages": [{
        "registryType": "npm", "identifier": "@modelcontextprotocol/server-filesystem",
        "version": "0.6.2", "transport": {"type": "stdio"},
        "packageArguments": [{"type": "positional", "valueHint": "allowed_directory", "isRequired": true}],
        "environmentVariables": [{"name": "LOG_LEVEL", "default": "info"},
                                 {"name": "API_TOKEN", "isRequired": true, "isSecret": true}]
      }, {"registryType": "oci", "identifier": "docker.io/mcp/filesystem", "version": "0.6.2"}],
      "remotes": [{"type": "streamable-http", "url": "https://fs.example.com/mcp",
                   "headers": [{"name": "Authorization", "value": "Bearer {token}", "isSecret": true, "isRequired": true}]}]
    }"#;

    #[test]
    fn packages_and_remotes() {
        let doc = parse(FILESYSTEM).unwrap();
        let p = proposal(
            &doc,
            "server.json",
            Evidence::ServerJson,
            RuntimePreference::Process,
        )
        .unwrap();
        assert_eq!(p.name, "filesystem");
        let RuntimeSpec::Process {
            command, args, env, ..
        } = &p.runtime
        else {
            panic!("{:?}", p.runtime)
        };
        assert_eq!(command, "npx");
        assert_eq!(
            args,
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@0.6.2",
                "<allowed_directory>"
            ]
        );
        assert_eq!(env.get("LOG_LEVEL").map(String::as_str), Some("info"));
        assert!(!env.contains_key("API_TOKEN"));
        let token = p.variables.iter().find(|v| v.name == "API_TOKEN").unwrap();
        assert!(token.required && token.secret);
        assert_eq!(p.alternatives.len(), 2);
        assert!(matches!(
            &p.alternatives[0].runtime,
            RuntimeSpec::Docker { image: Some(i), .. } if i == "docker.io/mcp/filesystem:0.6.2"
        ));
        assert!(
            matches!(&p.alternatives[1].runtime, RuntimeSpec::Remote { headers, .. } if headers.is_empty())
        );
        let docker = proposal(
            &doc,
            "server.json",
            Evidence::Registry,
            RuntimePreference::Docker,
        )
        .unwrap();
        assert!(matches!(
            &docker.runtime,
            RuntimeSpec::Docker { npx: Some(n), .. } if n == "@modelcontextprotocol/server-filesystem@0.6.2"
        ));
    }

    #[test]
    fn wrapped_and_snake_case() {
        let old = r#"{"server": {"name": "io.github.x/time", "packages": [
            {"registry_name": "pypi", "name": "mcp-server-time", "version": "0.6.2",
             "environment_variables": [{"name": "TZ", "is_required": false}]}]}, "_meta": {}}"#;
        let doc = parse(old).unwrap();
        let p = proposal(&doc, "x", Evidence::Registry, RuntimePreference::Process).unwrap();
        assert_eq!(
            p.runtime,
            RuntimeSpec::Process {
                command: "uvx".into(),
                args: vec!["mcp-server-time@0.6.2".into()],
                env: BTreeMap::new(),
                cwd: None
            }
        );
        let nothing =
            parse(r#"{"name": "x/y", "packages": [{"registryType": "nuget", "identifier": "X"}]}"#)
                .unwrap();
        let error = proposal(
            &nothing,
            "x",
            Evidence::Registry,
            RuntimePreference::Process,
        )
        .unwrap_err();
        assert!(error.contains("nuget"), "{error}");
    }
}
