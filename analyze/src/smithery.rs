//! `smithery.yaml`: Smithery's deployment file. Its `startCommand.configSchema` names what
//! the server needs (required properties, descriptions); its `commandFunction` is
//! JavaScript, which is never run: the command, the arguments and the environment mapping
//! are read from its literals. A `type: http` start command, or a command that needs the
//! repository's build (`node dist/index.js`), is not runnable as it is; a weaker file in the
//! same directory (package.json, a Dockerfile) then supplies the runtime.

use std::collections::BTreeMap;

use mcpr_core::model::RuntimeSpec;
use serde::Deserialize;

use crate::{Context, Evidence, LookedAt, Proposal, Variable, dir_of, is_env_name, looks_secret};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Smithery {
    #[serde(default)]
    start_command: Option<StartCommand>,
    #[serde(default)]
    runtime: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartCommand {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    config_schema: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    command_function: Option<String>,
}

pub(crate) fn analyze(cx: &Context, looked_at: &mut Vec<LookedAt>) -> Vec<Proposal> {
    crate::propose_from_each(cx, &["smithery.yaml", "smithery.yml"], looked_at, proposal)
}

fn proposal(file: &str, text: &str) -> Result<Proposal, String> {
    let doc: Smithery =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not a smithery.yaml: {e}"))?;
    let start = doc
        .start_command
        .ok_or_else(|| "no startCommand".to_owned())?;
    let kind = start.kind.clone().unwrap_or_else(|| "stdio".into());
    let schema = start.config_schema.as_ref();
    let required: Vec<String> = schema
        .and_then(|s| s.get("required"))
        .and_then(|r| r.as_sequence())
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let properties: BTreeMap<String, String> = schema
        .and_then(|s| s.get("properties"))
        .and_then(|p| p.as_mapping())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let description = v
                        .get("description")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default();
                    Some((k.as_str()?.to_owned(), description.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let function = start.command_function.unwrap_or_default();
    let command = string_after(&function, "command");
    let args = array_after(&function, "args");
    let env = env_mapping(&function);
    // Named after its directory in a monorepo; at a repository's root, after the package
    // its command runs (`npx -y @scope/server-x` → `x`), as the package.json beside it is.
    let name = dir_of(file)
        .rsplit('/')
        .next()
        .filter(|d| !d.is_empty())
        .or_else(|| {
            args.iter()
                .map(String::as_str)
                .find(|a| !a.starts_with('-'))
        })
        .unwrap_or("server")
        .to_owned();
    let runtime = RuntimeSpec::Process {
        command: command.clone().unwrap_or_else(|| "node".into()),
        args: args.clone(),
        env: BTreeMap::new(),
        cwd: None,
    };
    let mut p = Proposal::new(Evidence::Smithery, file, &name, runtime);
    p.reasons.push(format!("smithery start command ({kind})"));
    let launcher = matches!(command.as_deref(), Some("npx" | "uvx" | "docker"));
    if kind != "stdio" {
        p.runnable = false;
        p.warnings.push(format!(
            "smithery runs it as {kind}: it needs its own deployment"
        ));
    } else if command.is_none() {
        p.runnable = false;
        p.warnings.push(
            "the commandFunction names no literal command (runtime: {}): build it first"
                .replace("{}", doc.runtime.as_deref().unwrap_or("unknown")),
        );
    } else if !launcher {
        p.runnable = false;
        p.warnings.push(format!(
            "`{} {}` runs from a built checkout of the repository",
            command.as_deref().unwrap_or_default(),
            args.join(" ")
        ));
    }
    // The environment mapping names the variables; the schema says which are required.
    for (var, property) in &env {
        let mut v = Variable::env(var, file);
        v.required = property.as_ref().is_some_and(|p| required.contains(p));
        v.secret |= property.as_deref().is_some_and(looks_secret);
        v.description = property
            .as_ref()
            .and_then(|p| properties.get(p))
            .cloned()
            .unwrap_or_default();
        p.add_variable(v);
    }
    // Schema properties spelled as variables but missing from the mapping.
    for (property, description) in &properties {
        let upper = property.to_ascii_uppercase();
        if is_env_name(property) && *property == upper && !env.iter().any(|(k, _)| k == property) {
            let mut v = Variable::env(property, file);
            v.required = required.contains(property);
            v.description = description.clone();
            p.add_variable(v);
        }
    }
    Ok(p)
}

/// The quoted string after `key:` (`command: 'node'`).
fn string_after(text: &str, key: &str) -> Option<String> {
    let at = find_key(text, key)?;
    let rest = text[at..].trim_start();
    quoted(rest).map(|(s, _)| s)
}

/// The quoted strings of the array after `key:` (`args: ['dist/index.js', "--x"]`).
fn array_after(text: &str, key: &str) -> Vec<String> {
    let Some(at) = find_key(text, key) else {
        return Vec::new();
    };
    let rest = text[at..].trim_start();
    let Some(mut rest) = rest.strip_prefix('[') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.starts_with(']') || rest.is_empty() {
            break;
        }
        match quoted(rest) {
            Some((s, after)) => {
                out.push(s);
                rest = after;
            }
            // A non-literal element (`config.x`): kept as a visible placeholder.
            None => {
                let end = rest.find([',', ']']).unwrap_or(rest.len());
                out.push(format!("<{}>", rest[..end].trim()));
                rest = &rest[end..];
            }
        }
    }
    out
}

/// `env: { NAME: config.property, OTHER: 'literal' }` → (NAME, Some(property)).
fn env_mapping(text: &str) -> Vec<(String, Option<String>)> {
    let Some(at) = find_key(text, "env") else {
        return Vec::new();
    };
    let rest = text[at..].trim_start();
    let Some(body) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let body = &body[..body.find('}').unwrap_or(body.len())];
    body.split(',')
        .filter_map(|entry| {
            let (key, value) = entry.split_once(':')?;
            let key = key.trim().trim_matches(|c| c == '\'' || c == '"');
            if !is_env_name(key) {
                return None;
            }
            let property = value.trim().strip_prefix("config.").map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            });
            Some((key.to_owned(), property))
        })
        .collect()
}

fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let start = from + i;
        let end = start + key.len();
        let before_ok = start == 0
            || !text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after = text[end..].trim_start();
        let after = after
            .strip_prefix(['\'', '"'])
            .map(str::trim_start)
            .unwrap_or(after);
        if before_ok && after.starts_with(':') {
            return Some(text.len() - after.len() + 1);
        }
        from = end;
    }
    None
}

fn quoted(text: &str) -> Option<(String, &str)> {
    let quote = text
        .chars()
        .next()
        .filter(|c| matches!(c, '\'' | '"' | '`'))?;
    let body = &text[1..];
    let end = body.find(quote)?;
    Some((body[..end].to_owned(), &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_command_function_without_running_it() {
        let text = r#"
startCommand:
  type: stdio
  configSchema:
    type: object
    required: ["githubPersonalAccessToken"]
    properties:
      githubPersonalAccessToken:
        type: string
        description: Your GitHub personal access token
  commandFunction: |-
    (config) => ({ command: 'node', args: ['dist/index.js', config.extra], env: { GITHUB_PERSONAL_ACCESS_TOKEN: config.githubPersonalAccessToken } })
"#;
        let p = proposal("smithery.yaml", text).unwrap();
        assert!(!p.runnable);
        let RuntimeSpec::Process { command, args, .. } = &p.runtime else {
            panic!()
        };
        assert_eq!(command, "node");
        assert_eq!(args, &["dist/index.js", "<config.extra>"]);
        let v = &p.variables[0];
        assert_eq!(v.name, "GITHUB_PERSONAL_ACCESS_TOKEN");
        assert!(v.required && v.secret);
        assert_eq!(v.description, "Your GitHub personal access token");
    }
}
