//! `mcpr server analyze`: asks the router to read a repository (never run it) and prints
//! what it proposes to run, with the evidence, the variables it needs and the warnings.

use serde_json::{Value, json};

use crate::client::Admin;
use crate::output::{clean, print_json, str_at};

use super::show::runtime_summary;

pub async fn analyze(
    admin: &Admin,
    url: &str,
    git_ref: Option<&str>,
    path: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let mut body = json!({ "url": url });
    if let Some(git_ref) = git_ref {
        body["ref"] = json!(git_ref);
    }
    if let Some(path) = path {
        body["path"] = json!(path);
    }
    let analysis = admin.post(&["analyze"], Some(&body), None).await?;
    if json {
        return print_json(&analysis);
    }
    print!("{}", describe(&analysis));
    Ok(())
}

/// The analysis as a person reads it: one block per proposal, or why there is none.
fn describe(analysis: &Value) -> String {
    let proposals = analysis["proposals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = String::new();
    if proposals.is_empty() {
        let message = str_at(analysis, &["message"]);
        out.push_str(&format!("{}\n", clean(&message)));
        for looked in analysis["looked_at"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {}: {}\n",
                clean(&str_at(looked, &["file"])),
                clean(&str_at(looked, &["finding"]))
            ));
        }
        return out;
    }
    for proposal in &proposals {
        out.push_str(&describe_proposal(proposal));
    }
    out
}

/// One proposal: its name, evidence and confidence, what it runs, the variables it needs
/// (required and secret marked), the reasons and the warnings.
pub fn describe_proposal(proposal: &Value) -> String {
    let mut out = String::new();
    let confidence = proposal["confidence"].as_f64().unwrap_or(0.0);
    out.push_str(&format!(
        "{}  (from {}, confidence {:.0}%{})\n",
        clean(&str_at(proposal, &["name"])),
        clean(&str_at(proposal, &["file"])),
        confidence * 100.0,
        if proposal["untrusted"].as_bool() == Some(true) {
            ", untrusted: proposed by Claude"
        } else {
            ""
        },
    ));
    out.push_str(&format!(
        "  runs: {} ({})\n",
        clean(&runtime_summary(proposal)),
        clean(&str_at(proposal, &["runtime", "kind"]))
    ));
    for variable in proposal["variables"].as_array().into_iter().flatten() {
        let mut marks = Vec::new();
        if variable["required"].as_bool() == Some(true) {
            marks.push("required");
        }
        if variable["secret"].as_bool() == Some(true) {
            marks.push("secret");
        }
        out.push_str(&format!(
            "  needs {} {}{}\n",
            clean(&str_at(variable, &["target"])),
            clean(&str_at(variable, &["name"])),
            if marks.is_empty() {
                String::new()
            } else {
                format!(" ({})", marks.join(", "))
            }
        ));
    }
    for reason in proposal["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  because {}\n",
            clean(reason.as_str().unwrap_or(""))
        ));
    }
    for warning in proposal["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  warning: {}\n",
            clean(warning.as_str().unwrap_or(""))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_and_their_absence_read_plainly() {
        let analysis = json!({"proposals": [{
            "name": "time", "file": "pyproject.toml", "confidence": 0.75, "untrusted": false,
            "runtime": {"kind": "process", "command": "uvx", "args": ["--from", "git+file:///r@abc", "mcp-server-time"]},
            "variables": [{"name": "TZ", "target": "env", "required": false, "secret": false},
                          {"name": "API_KEY", "target": "env", "required": true, "secret": true}],
            "reasons": ["[project.scripts] names mcp-server-time"], "warnings": []}]});
        let text = describe(&analysis);
        assert!(
            text.starts_with("time  (from pyproject.toml, confidence 75%)\n"),
            "{text}"
        );
        assert!(
            text.contains("  runs: uvx --from git+file:///r@abc mcp-server-time (process)\n"),
            "{text}"
        );
        assert!(
            text.contains("  needs env TZ\n  needs env API_KEY (required, secret)\n"),
            "{text}"
        );
        let none = json!({"proposals": [], "message": "found no way to run this",
                          "looked_at": [{"file": "server.json", "finding": "not found"}]});
        assert_eq!(
            describe(&none),
            "found no way to run this\n  server.json: not found\n"
        );
    }
}
