//! `mcpr server add NAME --from URL` and `--registry NAME[@VERSION]`: the router proposes
//! how to run the server (`POST /api/v1/analyze`, `GET /api/v1/registry/servers/{name}`),
//! the person reviews it, gives the values it needs (asked on a terminal, secrets without
//! echo, or `--env`), and the server is created like any other, with its `source`.
//! Without a terminal nothing is asked: `--yes` saves what was proposed, else the command
//! refuses and says what is missing.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::client::Admin;
use crate::flags::parse_env;
use crate::output::{clean, str_at};
use crate::prompt;

use super::analyze::describe_proposal;

/// Where the proposal comes from.
pub enum Origin<'a> {
    Repository {
        url: &'a str,
        git_ref: Option<&'a str>,
        path: Option<&'a str>,
        pick: Option<usize>,
    },
    Registry {
        name: &'a str,
    },
}

/// How to review: `yes` saves without questions; `json` keeps stdout for the result.
pub struct Review<'a> {
    pub env: &'a [String],
    pub yes: bool,
    pub json: bool,
    pub prefer: Option<&'a str>,
}

/// The body of `POST /api/v1/servers` for `name` (without `enabled`, `description`,
/// `session_mode`, which the caller adds), after the review.
pub async fn reviewed_server(
    admin: &Admin,
    name: &str,
    origin: Origin<'_>,
    review: &Review<'_>,
) -> anyhow::Result<Value> {
    let interactive = !review.yes && prompt::is_interactive();
    let proposal = match origin {
        Origin::Repository {
            url,
            git_ref,
            path,
            pick,
        } => {
            let mut body = json!({ "url": url });
            if let Some(git_ref) = git_ref {
                body["ref"] = json!(git_ref);
            }
            if let Some(path) = path {
                body["path"] = json!(path);
            }
            if let Some(prefer) = review.prefer {
                body["prefer"] = json!(prefer);
            }
            let analysis = admin.post(&["analyze"], Some(&body), None).await?;
            let proposals = analysis["proposals"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if proposals.is_empty() {
                bail!(
                    "{}",
                    clean(&str_at(&analysis, &["message"]))
                        .trim()
                        .to_owned()
                        .replace('\n', "; ")
                );
            }
            let index = choose(&proposals, pick, interactive, review.json)?;
            proposals[index].clone()
        }
        Origin::Registry { name: entry } => {
            // `NAME@VERSION` rides in the path; the router splits it.
            if entry.is_empty()
                || entry.contains(|c: char| c.is_whitespace() || c.is_control())
                || entry
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
            {
                bail!(
                    "--registry {:?}: expected a registry name like io.github.OWNER/NAME[@VERSION]",
                    clean(entry)
                );
            }
            let mut segments = vec!["registry", "servers"];
            segments.extend(entry.split('/'));
            let found = match review.prefer {
                Some(prefer) => admin.get_query(&segments, &[("prefer", prefer)]).await?,
                None => admin.get(&segments, None).await?,
            };
            found["proposal"].clone()
        }
    };
    show(&describe_proposal(&proposal), review.json);
    let given = given_values(review.env)?;
    let mut values = given.clone();
    let missing = missing(&proposal, &values);
    if !missing.is_empty() {
        if !interactive {
            bail!(
                "{} needs {}: give {}{}",
                clean(&str_at(&proposal, &["name"])),
                missing
                    .iter()
                    .map(|v| variable_label(v))
                    .collect::<Vec<_>>()
                    .join(", "),
                missing
                    .iter()
                    .map(|v| format!("--env {}=…", str_at(v, &["name"])))
                    .collect::<Vec<_>>()
                    .join(" "),
                if review.yes {
                    ""
                } else {
                    " (and --yes to add it without a terminal to review it on)"
                }
            );
        }
        for variable in &missing {
            let name = str_at(variable, &["name"]);
            values.insert(name, ask_value(variable)?);
        }
    }
    if !review.yes {
        if !interactive {
            bail!(
                "not adding {}: stdin is not a terminal to review the proposal on; give --yes to add it as proposed",
                clean(name)
            );
        }
        let untrusted = proposal["untrusted"].as_bool() == Some(true);
        let question = if untrusted {
            format!("Claude proposed this, unchecked by the files: add it as {name:?}? [y/N] ")
        } else {
            format!("Add it as {name:?}? [Y/n] ")
        };
        let answer = prompt::line(&question)?.trim().to_ascii_lowercase();
        let accepted = match answer.as_str() {
            "" => !untrusted,
            "y" | "yes" => true,
            _ => false,
        };
        if !accepted {
            bail!("not added: the proposal was declined");
        }
    }
    let runtime = filled_runtime(&proposal, &values)?;
    let mut body = json!({"name": name, "runtime": runtime});
    if proposal["source"].is_object() {
        body["source"] = proposal["source"].clone();
    }
    let description = str_at(&proposal, &["description"]);
    if !description.is_empty() {
        body["description"] = json!(description);
    }
    Ok(body)
}

/// Human text on stdout, or stderr when stdout is for the JSON result.
fn show(text: &str, json: bool) {
    if json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// The proposal to save: `--pick N` (from 1), the only one, or the person's choice.
fn choose(
    proposals: &[Value],
    pick: Option<usize>,
    interactive: bool,
    json: bool,
) -> anyhow::Result<usize> {
    let count = proposals.len();
    let listing = || {
        proposals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "{} {} ({})",
                    i + 1,
                    str_at(p, &["name"]),
                    str_at(p, &["file"])
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match pick {
        Some(n) if (1..=count).contains(&n) => return Ok(n - 1),
        Some(n) => bail!(
            "--pick {n}: there {} {count} proposal{} ({})",
            if count == 1 { "is" } else { "are" },
            if count == 1 { "" } else { "s" },
            clean(&listing())
        ),
        None if count == 1 => return Ok(0),
        None => {}
    }
    if !interactive {
        bail!(
            "the repository holds {count} servers: choose one with --pick N ({})",
            clean(&listing())
        );
    }
    show(&format!("the repository holds {count} servers:\n"), json);
    for (i, proposal) in proposals.iter().enumerate() {
        show(
            &format!(
                "  {}. {}  (from {})\n",
                i + 1,
                clean(&str_at(proposal, &["name"])),
                clean(&str_at(proposal, &["file"]))
            ),
            json,
        );
    }
    for _ in 0..3 {
        let answer = prompt::line(&format!("Which one? [1-{count}] "))?;
        match answer.trim().parse::<usize>() {
            Ok(n) if (1..=count).contains(&n) => return Ok(n - 1),
            _ => eprintln!("answer a number from 1 to {count}"),
        }
    }
    bail!("no server chosen")
}

/// `--env K=V` pairs (a value for a header variable too).
fn given_values(env: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    env.iter().map(|item| parse_env(item)).collect()
}

/// The required variables without a default that `values` does not give.
fn missing<'a>(proposal: &'a Value, values: &BTreeMap<String, String>) -> Vec<&'a Value> {
    proposal["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["required"].as_bool() == Some(true))
        .filter(|v| v["default"].as_str().is_none())
        .filter(|v| !values.contains_key(&str_at(v, &["name"])))
        .collect()
}

/// `GITHUB_TOKEN (secret)`, as the refusal lists it.
fn variable_label(variable: &Value) -> String {
    let name = clean(&str_at(variable, &["name"]));
    let mut marks = Vec::new();
    if variable["target"] == "header" {
        marks.push("header");
    }
    if variable["secret"].as_bool() == Some(true) {
        marks.push("secret");
    }
    if marks.is_empty() {
        name
    } else {
        format!("{name} ({})", marks.join(", "))
    }
}

/// Asks for a required value until one is given (three tries); a secret without echo.
fn ask_value(variable: &Value) -> anyhow::Result<String> {
    let name = clean(&str_at(variable, &["name"]));
    let description = clean(&str_at(variable, &["description"]));
    let secret = variable["secret"].as_bool() == Some(true);
    let question = format!(
        "{name}{}{}: ",
        if description.is_empty() {
            String::new()
        } else {
            format!(" ({description})")
        },
        if secret { " [secret, not shown]" } else { "" }
    );
    for _ in 0..3 {
        let answer = if secret {
            prompt::secret(&question)?
        } else {
            prompt::line(&question)?
        };
        if !answer.is_empty() {
            return Ok(answer);
        }
        eprintln!("{name} is required");
    }
    bail!("no value given for {name}, which is required")
}

/// A header's template (`Bearer {token}`) with its one placeholder replaced by `value`;
/// without a template the value is the header.
fn templated(template: Option<&str>, value: &str) -> String {
    let Some(template) = template else {
        return value.to_owned();
    };
    match (template.find('{'), template.find('}')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{value}{}", &template[..open], &template[close + 1..])
        }
        _ => value.to_owned(),
    }
}

/// The proposal's runtime with the values set: a variable's value in `env` (a process or
/// container) or `headers` (a remote server, through its template); a given pair that is
/// no variable of the proposal still goes into the environment (or headers) as asked.
fn filled_runtime(proposal: &Value, values: &BTreeMap<String, String>) -> anyhow::Result<Value> {
    let mut runtime = proposal["runtime"].clone();
    let remote = runtime["kind"] == "remote";
    let field = if remote { "headers" } else { "env" };
    let variables: Vec<&Value> = proposal["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let object = runtime
        .as_object_mut()
        .ok_or_else(|| anyhow!("the router proposed no runtime"))?;
    let map = object
        .entry(field)
        .or_insert_with(|| Value::Object(Default::default()));
    for (key, value) in values {
        let variable = variables.iter().find(|v| str_at(v, &["name"]) == *key);
        let value = match variable {
            Some(v) if v["target"] == "header" => templated(v["template"].as_str(), value),
            _ => value.clone(),
        };
        map[key] = json!(value);
    }
    // Defaults the files give, for the variables not given (a registry proposal has them
    // already; other files' defaults are set here).
    for variable in variables {
        let target_matches = (variable["target"] == "header") == remote;
        if let Some(default) = variable["default"].as_str()
            && target_matches
        {
            let name = str_at(variable, &["name"]);
            if map.get(&name).is_none() {
                map[name] = json!(default);
            }
        }
    }
    Ok(runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal() -> Value {
        json!({
            "name": "github", "file": "server.json",
            "runtime": {"kind": "process", "command": "npx", "args": ["-y", "@x/server-github"],
                        "env": {"LOG_LEVEL": "info"}},
            "variables": [
                {"name": "GITHUB_TOKEN", "target": "env", "required": true, "secret": true},
                {"name": "LOG_LEVEL", "target": "env", "required": true, "secret": false, "default": "info"},
                {"name": "TZ", "target": "env", "required": false, "secret": false, "default": "UTC"}]})
    }

    #[test]
    fn missing_counts_required_without_default_or_value() {
        let p = proposal();
        let none = BTreeMap::new();
        let names: Vec<String> = missing(&p, &none)
            .iter()
            .map(|v| str_at(v, &["name"]))
            .collect();
        assert_eq!(names, ["GITHUB_TOKEN"]);
        let given = given_values(&["GITHUB_TOKEN=ghp_1".into()]).unwrap();
        assert!(missing(&p, &given).is_empty());
        assert_eq!(
            variable_label(missing(&p, &none)[0]),
            "GITHUB_TOKEN (secret)"
        );
    }

    #[test]
    fn values_and_defaults_fill_the_runtime() {
        let given = given_values(&["GITHUB_TOKEN=t".into(), "EXTRA=1".into()]).unwrap();
        let runtime = filled_runtime(&proposal(), &given).unwrap();
        assert_eq!(
            runtime["env"],
            json!({"GITHUB_TOKEN": "t", "EXTRA": "1", "LOG_LEVEL": "info", "TZ": "UTC"})
        );
        let remote = json!({
            "runtime": {"kind": "remote", "url": "https://x.example/mcp"},
            "variables": [{"name": "Authorization", "target": "header", "required": true,
                           "secret": true, "template": "Bearer {token}"}]});
        let given = given_values(&["Authorization=abc".into()]).unwrap();
        let runtime = filled_runtime(&remote, &given).unwrap();
        assert_eq!(runtime["headers"]["Authorization"], "Bearer abc");
        assert_eq!(templated(None, "v"), "v");
    }

    #[test]
    fn picking_among_several() {
        let several = vec![
            json!({"name": "a", "file": "src/a/pyproject.toml"}),
            json!({"name": "b", "file": "src/b/pyproject.toml"}),
        ];
        assert_eq!(choose(&several, Some(2), false, false).unwrap(), 1);
        let e = choose(&several, None, false, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--pick N") && e.contains("2 b (src/b/pyproject.toml)"),
            "{e}"
        );
        let e = choose(&several, Some(3), false, false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--pick 3: there are 2 proposals"), "{e}");
        assert_eq!(choose(&several[..1], None, false, false).unwrap(), 0);
    }
}
