//! Placement constraints: the labels a node agent reports when it registers (`--label
//! zone=a,docker=true`, `MCPR_AGENT_LABELS`) and the selector a server may carry
//! (`"placement": {"selector": {"zone": "a"}}`). A server runs only on an agent whose labels
//! include every pair of its selector (exact match, all of them). One default on top: a
//! `docker` server whose selector does not name `docker` avoids agents labelled
//! `docker=false`, so a host without a Docker Engine can say so once and never be handed a
//! container. Validated here, once, for the REST API, the CLI, the agent's flags and its
//! registration.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::FieldError;

/// Labels of an agent, or the pairs a selector asks for, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// Most labels an agent or a selector may have.
pub const MAX_LABELS: usize = 32;
/// Longest label key or value.
pub const MAX_LABEL_LEN: usize = 63;
/// The label a host without Docker sets to `false` (`--label docker=false`).
pub const DOCKER_LABEL: &str = "docker";

/// Where a server may run (`ServerRecord.placement`, `placement` in the API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Labels an agent must have, every one of them; empty: any agent.
    #[serde(default)]
    pub selector: Labels,
}

impl Placement {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_labels(&self.selector, "placement.selector")
    }

    pub fn is_empty(&self) -> bool {
        self.selector.is_empty()
    }

    /// What an agent must satisfy to run a server with this placement; `docker`: the
    /// server runs in a container.
    pub fn requirement(&self, docker: bool) -> Requirement<'_> {
        Requirement {
            selector: &self.selector,
            avoid_docker_false: docker && !self.selector.contains_key(DOCKER_LABEL),
        }
    }
}

/// A placement's rule for one server, applied to agents' labels.
#[derive(Debug, Clone, Copy)]
pub struct Requirement<'a> {
    selector: &'a Labels,
    /// A docker server not selecting on `docker` skips agents labelled `docker=false`.
    avoid_docker_false: bool,
}

impl Requirement<'_> {
    /// Any agent will do.
    pub const ANY: Requirement<'static> = Requirement {
        selector: &Labels::new(),
        avoid_docker_false: false,
    };

    pub fn admits(&self, labels: &Labels) -> bool {
        let selected = self
            .selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value));
        let docker_refused =
            self.avoid_docker_false && labels.get(DOCKER_LABEL).is_some_and(|v| v == "false");
        selected && !docker_refused
    }

    /// Whether this asks anything of an agent at all.
    pub fn is_any(&self) -> bool {
        self.selector.is_empty() && !self.avoid_docker_false
    }

    /// Why a server with this requirement runs nowhere: `no agent matches zone=a`.
    pub fn unmatched(&self) -> String {
        format!("no agent matches {self}")
    }
}

/// `zone=a,docker=true`, and `docker!=false` for the docker default.
impl fmt::Display for Requirement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .selector
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        if self.avoid_docker_false {
            parts.push(format!("{DOCKER_LABEL}!=false"));
        }
        if parts.is_empty() {
            return f.write_str("any agent");
        }
        f.write_str(&parts.join(","))
    }
}

/// Labels as `key=value,key=value` (the CLI's `--selector`, the agent's `--label`), each
/// item of `items` holding one or more pairs; `field` names the flag in errors.
pub fn parse_labels<'a>(
    items: impl IntoIterator<Item = &'a str>,
    field: &str,
) -> Result<Labels, FieldError> {
    let mut labels = Labels::new();
    for pair in items
        .into_iter()
        .flat_map(|item| item.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(FieldError::new(
                field,
                format!("expected KEY=VALUE, got {pair:?}"),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(previous) = labels.insert(key.to_owned(), value.to_owned())
            && previous != value
        {
            return Err(FieldError::new(
                field,
                format!("label {key:?} given twice ({previous:?} and {value:?})"),
            ));
        }
    }
    validate_labels(&labels, field)?;
    Ok(labels)
}

/// Keys: a letter or digit, then letters, digits, `.`, `_`, `-`, `/`; values: letters,
/// digits, `.`, `_`, `-`; both 1 to 63 characters (as Kubernetes labels, which they often
/// copy). Nothing else, so a label never needs quoting in a table, a flag or a URL.
pub fn validate_labels(labels: &Labels, field: &str) -> Result<(), FieldError> {
    if labels.len() > MAX_LABELS {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_LABELS} labels, got {}", labels.len()),
        ));
    }
    for (key, value) in labels {
        let key_ok = key.len() <= MAX_LABEL_LEN
            && key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(FieldError::new(
                field,
                format!(
                    "label key {key:?} must be 1 to {MAX_LABEL_LEN} letters, digits, '.', '_', '-' or '/', starting with a letter or digit"
                ),
            ));
        }
        let value_ok = !value.is_empty()
            && value.len() <= MAX_LABEL_LEN
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !value_ok {
            return Err(FieldError::new(
                format!("{field}.{key}"),
                format!(
                    "label value {value:?} must be 1 to {MAX_LABEL_LEN} letters, digits, '.', '_' or '-'"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> Labels {
        parse_labels([text], "--label").unwrap()
    }

    #[test]
    fn a_selector_needs_every_pair_and_docker_servers_avoid_docker_false() {
        let zone_a = Placement {
            selector: labels("zone=a"),
        };
        let any = Placement::default();
        let a = labels("zone=a,docker=true");
        let b = labels("zone=b");
        let no_docker = labels("zone=a,docker=false");
        assert!(zone_a.requirement(false).admits(&a));
        assert!(!zone_a.requirement(false).admits(&b));
        assert!(!zone_a.requirement(false).admits(&Labels::new()));
        assert!(any.requirement(false).admits(&Labels::new()));
        assert!(any.requirement(false).is_any());
        // The docker default, and a selector that overrides it.
        assert!(zone_a.requirement(false).admits(&no_docker));
        assert!(!zone_a.requirement(true).admits(&no_docker));
        assert!(
            any.requirement(true).admits(&b),
            "unlabelled hosts run containers"
        );
        let forced = Placement {
            selector: labels("docker=false"),
        };
        assert!(forced.requirement(true).admits(&no_docker));
        assert_eq!(
            zone_a.requirement(false).unmatched(),
            "no agent matches zone=a"
        );
        assert_eq!(
            zone_a.requirement(true).unmatched(),
            "no agent matches zone=a,docker!=false"
        );
    }

    #[test]
    fn labels_parse_from_flags_and_bad_ones_are_named() {
        assert_eq!(
            parse_labels(["docker=true,zone=a", "gpu=1"], "--label").unwrap(),
            Labels::from([
                ("docker".into(), "true".into()),
                ("gpu".into(), "1".into()),
                ("zone".into(), "a".into())
            ])
        );
        assert!(parse_labels([""], "--label").unwrap().is_empty());
        let err = |text: &str| parse_labels([text], "--selector").unwrap_err().to_string();
        assert_eq!(err("zone"), "--selector: expected KEY=VALUE, got \"zone\"");
        assert!(
            err("zone=a,zone=b").contains("given twice"),
            "{}",
            err("zone=a,zone=b")
        );
        assert!(err("-x=a").contains("label key \"-x\""), "{}", err("-x=a"));
        assert!(err("zone=a b").starts_with("--selector.zone: label value \"a b\""));
        assert!(err("zone=").contains("label value \"\""));
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("k{i}=v")).collect();
        assert!(
            parse_labels(many.iter().map(String::as_str), "--label")
                .unwrap_err()
                .to_string()
                .contains("at most 32 labels")
        );
        let placement: Placement =
            serde_json::from_str(r#"{"selector": {"zone": "a\n"}}"#).unwrap();
        assert_eq!(
            placement.validate().unwrap_err().field,
            "placement.selector.zone"
        );
        assert!(serde_json::from_str::<Placement>(r#"{"zone": "a"}"#).is_err());
    }
}
