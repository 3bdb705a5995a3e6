//! The call metrics, counted from every [`CallRecord`]: the latency histogram
//! `mcp_server_operation_duration_seconds` by method, provider, tool and outcome (whose
//! counts are also the requests and errors), and the refusals by reason.
//!
//! Label values are bounded: a method outside [`METHODS`] is `other`, a provider is one the
//! snapshot named (or `_sandbox`), a tool one the snapshot lists for it (else empty), and the
//! number of series is capped ([`MAX_SERIES`]) in case a snapshot lists very many tools.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use mcpr_core::metrics::{Exposition, Histogram};

use super::{CallRecord, Outcome, Refusal};

/// The MCP methods that are labels of their own; any other is `other`.
pub const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
];

/// At most this many (method, provider, tool) series; calls beyond them are counted
/// without provider and tool.
pub const MAX_SERIES: usize = 10_000;

const OUTCOMES: [&str; 4] = ["ok", "tool_error", "error", "refused"];

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Ok => 0,
        Outcome::ToolError => 1,
        Outcome::Error(_) => 2,
        Outcome::Refused(_) => 3,
    }
}

/// The label of `method`: itself when it is one of [`METHODS`], `unknown` when the request
/// was refused before it was read, else `other`.
pub fn method_label(method: &str) -> &'static str {
    if method.is_empty() {
        return "unknown";
    }
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

struct Series {
    method: &'static str,
    provider: Box<str>,
    tool: Box<str>,
    by_outcome: [Histogram; 4],
}

#[derive(Default)]
pub struct CallMetrics {
    /// Series by the hash of their labels (collisions share a bucket). Read-locked per
    /// call, write-locked only to add a series; never held across an await.
    series: RwLock<HashMap<u64, Vec<Arc<Series>>>>,
    count: AtomicU64,
    hasher: RandomState,
    refusals: [AtomicU64; Refusal::ALL.len()],
}

impl CallMetrics {
    pub fn count(&self, record: &CallRecord<'_>) {
        let method = method_label(record.method);
        let provider = record.provider.unwrap_or_default();
        let tool = match record.tool_known {
            true => record.target.unwrap_or_default(),
            false => "",
        };
        let series = self.series_of(method, provider, tool);
        series.by_outcome[outcome_index(record.outcome)].observe(record.duration);
        if let Outcome::Refused(refusal) = record.outcome {
            self.refusals[refusal as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn series_of(&self, method: &'static str, provider: &str, tool: &str) -> Arc<Series> {
        let hash = self.hasher.hash_one((method, provider, tool));
        let matches =
            |s: &&Arc<Series>| s.method == method && &*s.provider == provider && &*s.tool == tool;
        if let Some(found) = self
            .series
            .read()
            .expect("metrics lock")
            .get(&hash)
            .and_then(|bucket| bucket.iter().find(matches))
        {
            return found.clone();
        }
        let mut all = self.series.write().expect("metrics lock");
        let bucket = all.entry(hash).or_default();
        if let Some(found) = bucket.iter().find(matches) {
            return found.clone();
        }
        let unlabelled = provider.is_empty() && tool.is_empty();
        if !unlabelled && self.count.load(Ordering::Relaxed) >= MAX_SERIES as u64 {
            drop(all);
            return self.series_of(method, "", "");
        }
        let series = Arc::new(Series {
            method,
            provider: provider.into(),
            tool: tool.into(),
            by_outcome: Default::default(),
        });
        bucket.push(series.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        series
    }

    /// How many calls ended with `refusal`.
    pub fn refusals(&self, refusal: Refusal) -> u64 {
        self.refusals[refusal as usize].load(Ordering::Relaxed)
    }

    pub fn render(&self, out: &mut Exposition) {
        let mut series: Vec<Arc<Series>> = self
            .series
            .read()
            .expect("metrics lock")
            .values()
            .flatten()
            .cloned()
            .collect();
        series.sort_by(|a, b| {
            (a.method, &a.provider, &a.tool).cmp(&(b.method, &b.provider, &b.tool))
        });
        out.family(
            "mcp_server_operation_duration_seconds",
            "histogram",
            "Duration of MCP requests handled by the gateway, by method, provider, tool and outcome.",
        );
        // Requests and errors by method, provider and outcome: the histograms' counts,
        // summed over tools.
        let mut requests: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
        for s in &series {
            for (index, outcome) in OUTCOMES.iter().enumerate() {
                let histogram = &s.by_outcome[index];
                let count = histogram.count();
                if count == 0 {
                    continue;
                }
                let labels = [
                    ("method", s.method),
                    ("provider", &*s.provider),
                    ("tool", &*s.tool),
                    ("outcome", *outcome),
                ];
                out.histogram("mcp_server_operation_duration_seconds", &labels, histogram);
                *requests
                    .entry((s.method, &*s.provider, *outcome))
                    .or_default() += count;
            }
        }
        let by_outcome = |out: &mut Exposition, name: &str, help: &str, errors_only: bool| {
            out.family(name, "counter", help);
            for ((method, provider, outcome), count) in &requests {
                if errors_only && *outcome == "ok" {
                    continue;
                }
                let labels = [
                    ("method", *method),
                    ("provider", *provider),
                    ("outcome", *outcome),
                ];
                out.sample(name, &labels, *count as f64);
            }
        };
        by_outcome(
            out,
            "mcpr_gateway_requests_total",
            "MCP requests finished by the gateway, by method, provider and outcome.",
            false,
        );
        by_outcome(
            out,
            "mcpr_gateway_errors_total",
            "MCP requests that did not succeed (tool error, JSON-RPC error, refused), by method, provider and outcome.",
            true,
        );
        out.family(
            "mcpr_gateway_auth_refusals_total",
            "counter",
            "Requests refused by authentication or authorization, by reason.",
        );
        for refusal in Refusal::ALL {
            out.sample(
                "mcpr_gateway_auth_refusals_total",
                &[("reason", refusal.reason())],
                self.refusals(refusal) as f64,
            );
        }
        out.family(
            "mcpr_gateway_rate_limit_rejections_total",
            "counter",
            "Requests rejected by a rate limit, by limit (key: per credential, address: per client address).",
        );
        for (limit, refusal) in [
            ("key", Refusal::RateLimitKey),
            ("address", Refusal::RateLimitAddress),
        ] {
            out.sample(
                "mcpr_gateway_rate_limit_rejections_total",
                &[("limit", limit)],
                self.refusals(refusal) as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Who;
    use std::time::Duration;

    fn record<'a>(
        who: &'a Who,
        method: &'a str,
        tool: Option<&'a str>,
        known: bool,
        outcome: Outcome,
    ) -> CallRecord<'a> {
        CallRecord {
            method,
            target: tool,
            tool_known: known,
            provider: Some("time"),
            view: "flat",
            caller: who,
            session: None,
            protocol_version: None,
            outcome,
            duration: Duration::from_millis(3),
            request_bytes: 10,
            response_bytes: 20,
            arguments: None,
        }
    }

    #[test]
    fn unknown_names_make_no_series() {
        let metrics = CallMetrics::default();
        let who = Who::Anonymous;
        metrics.count(&record(&who, "tools/call", Some("now"), true, Outcome::Ok));
        metrics.count(&record(
            &who,
            "tools/call",
            Some("now"),
            true,
            Outcome::ToolError,
        ));
        metrics.count(&record(
            &who,
            "tools/call",
            Some("made-up-1"),
            false,
            Outcome::Error(-32602),
        ));
        metrics.count(&record(
            &who,
            "tools/call",
            Some("made-up-2"),
            false,
            Outcome::Error(-32602),
        ));
        metrics.count(&record(
            &who,
            "made/up",
            None,
            false,
            Outcome::Refused(Refusal::Scope),
        ));
        let mut out = Exposition::new();
        metrics.render(&mut out);
        let text = out.finish();
        assert!(!text.contains("made-up"), "{text}");
        assert!(!text.contains("made/up"), "{text}");
        assert!(text.contains(r#"mcp_server_operation_duration_seconds_count{method="tools/call",provider="time",tool="now",outcome="ok"} 1"#), "{text}");
        assert!(text.contains(r#"mcp_server_operation_duration_seconds_count{method="tools/call",provider="time",tool="",outcome="error"} 2"#), "{text}");
        assert!(text.contains(r#"mcpr_gateway_requests_total{method="tools/call",provider="time",outcome="tool_error"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"mcpr_gateway_errors_total{method="other",provider="time",outcome="refused"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"mcpr_gateway_auth_refusals_total{reason="scope"} 1"#),
            "{text}"
        );
        assert!(!text.contains(
            r#"mcpr_gateway_errors_total{method="tools/call",provider="time",outcome="ok"}"#
        ));
    }
}
