//! Ranked search over every listed tool's name and description (`search_tools`), so that a
//! model finds the right tool among hundreds without listing them all.
//!
//! Scoring: the query and each tool are split into lowercase terms (on punctuation,
//! `snake_case` and `camelCase` boundaries, with a plural `s` dropped). A query term scores
//! highest when it is a whole term of the tool name, less as part of the name, then as a
//! description term, then as a provider-name term; rarer terms weigh more (IDF).

use std::collections::HashMap;
use std::sync::Arc;

use crate::snapshot::Provider;

#[derive(Debug, Default)]
pub struct SearchIndex {
    entries: Vec<Entry>,
    /// term -> number of tools whose name or description has it
    document_frequency: HashMap<String, usize>,
}

#[derive(Debug)]
struct Entry {
    provider: Arc<Provider>,
    tool_index: usize,
    name_lower: String,
    name_terms: Vec<String>,
    description_terms: Vec<String>,
    provider_terms: Vec<String>,
}

#[derive(Debug)]
pub struct Hit<'a> {
    pub provider: &'a Arc<Provider>,
    pub tool_index: usize,
    pub score: f64,
}

impl SearchIndex {
    pub fn build(providers: &[Arc<Provider>]) -> SearchIndex {
        let mut entries = Vec::new();
        let mut document_frequency: HashMap<String, usize> = HashMap::new();
        for provider in providers {
            let provider_terms = terms(&provider.name);
            for (tool_index, tool) in provider.tools.iter().enumerate() {
                let name_terms = terms(&tool.name);
                let description_terms = terms(&tool.description);
                let mut seen: Vec<&String> = name_terms.iter().chain(&description_terms).collect();
                seen.sort();
                seen.dedup();
                for term in seen {
                    *document_frequency.entry(term.clone()).or_default() += 1;
                }
                entries.push(Entry {
                    provider: provider.clone(),
                    tool_index,
                    name_lower: tool.name.to_lowercase(),
                    name_terms,
                    description_terms,
                    provider_terms: provider_terms.clone(),
                });
            }
        }
        SearchIndex {
            entries,
            document_frequency,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The best `limit` tools for `query`, best first; tools matching nothing are left out.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit<'_>> {
        let query_lower = query.trim().to_lowercase();
        let query_terms = terms(query);
        if query_terms.is_empty() {
            return Vec::new();
        }
        let total = self.entries.len().max(1) as f64;
        let mut hits: Vec<Hit<'_>> = self
            .entries
            .iter()
            .filter_map(|entry| {
                let mut score = 0.0;
                if entry.name_lower == query_lower {
                    score += 20.0;
                }
                for term in &query_terms {
                    let df = *self.document_frequency.get(term).unwrap_or(&0) as f64;
                    let idf = (1.0 + total / (1.0 + df)).ln();
                    let mut term_score: f64 = 0.0;
                    if entry.name_terms.contains(term) {
                        term_score = term_score.max(6.0);
                    } else if entry.name_lower.contains(term.as_str()) {
                        term_score = term_score.max(3.0);
                    }
                    let in_description = entry
                        .description_terms
                        .iter()
                        .filter(|t| *t == term)
                        .count();
                    if in_description > 0 {
                        term_score += 2.0 + (in_description as f64 - 1.0).min(2.0) * 0.5;
                    } else if term.len() >= 4
                        && entry
                            .description_terms
                            .iter()
                            .any(|t| t.starts_with(term.as_str()))
                    {
                        term_score += 1.0;
                    }
                    if entry.provider_terms.contains(term) {
                        term_score += 1.5;
                    }
                    score += term_score * idf;
                }
                (score > 0.0).then_some(Hit {
                    provider: &entry.provider,
                    tool_index: entry.tool_index,
                    score,
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.provider.name.cmp(&b.provider.name))
                .then_with(|| a.tool_index.cmp(&b.tool_index))
        });
        hits.truncate(limit);
        hits
    }
}

/// Lowercase terms of `text`, split on non-alphanumerics and camelCase, plural `s` dropped.
fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && previous_lower && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            current.extend(c.to_lowercase());
        } else {
            previous_lower = false;
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    for term in &mut out {
        if term.len() > 3 && term.ends_with('s') && !term.ends_with("ss") {
            term.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Tool;

    fn provider(name: &str, tools: &[(&str, &str)]) -> Arc<Provider> {
        Arc::new(Provider {
            id: name.into(),
            name: name.into(),
            description: String::new(),
            enabled: true,
            agent_id: String::new(),
            state: Default::default(),
            last_error: String::new(),
            tools: tools
                .iter()
                .map(|(n, d)| Tool {
                    name: (*n).into(),
                    upstream_name: (*n).into(),
                    description: (*d).into(),
                    raw: serde_json::value::RawValue::from_string(format!("{{\"name\":\"{n}\"}}"))
                        .unwrap(),
                    header_params: Vec::new(),
                })
                .collect(),
            server_info: None,
            tool_overrides: Default::default(),
        })
    }

    #[test]
    fn splits_terms() {
        assert_eq!(terms("getCurrentTime"), ["get", "current", "time"]);
        assert_eq!(terms("search_issues, Files"), ["search", "issue", "file"]);
    }

    #[test]
    fn ranks_name_over_description_and_skips_non_matches() {
        let providers = vec![
            provider(
                "github",
                &[
                    ("search_issues", "Search issues in a repository"),
                    ("create_issue", "Open a new issue"),
                ],
            ),
            provider(
                "time",
                &[
                    ("get_current_time", "Current time in a time zone"),
                    ("convert_time", "Convert between time zones"),
                ],
            ),
            provider("files", &[("read_file", "Read a file; can search nothing")]),
        ];
        let index = SearchIndex::build(&providers);
        let hits = index.search("current time", 10);
        let names: Vec<&str> = hits
            .iter()
            .map(|h| h.provider.tools[h.tool_index].name.as_str())
            .collect();
        assert_eq!(names[0], "get_current_time");
        assert!(names.contains(&"convert_time"));
        assert!(!names.contains(&"read_file"));
        let hits = index.search("search", 10);
        assert_eq!(
            hits[0].provider.tools[hits[0].tool_index].name,
            "search_issues"
        );
        assert!(index.search("   ", 10).is_empty());
        assert!(index.search("zzz", 10).is_empty());
    }
}
