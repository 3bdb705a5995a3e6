//! The Activity page's numbers: per server, calls per second, error rate and p50/p99 latency
//! over the last hour, in 10-second buckets, kept in memory from the audit records the
//! control plane stores (and rebuilt from the table at start).
//!
//! Latency quantiles come from a log-scale histogram per bucket (each bin 25% wider than the
//! one before, from 10 µs): a quantile is the geometric middle of its bin, so it is within
//! about 12% of the true value, at a fixed 320 bytes per bucket whatever the call rate.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

pub const BUCKET_MS: i64 = 10_000;
pub const WINDOW_MS: i64 = 3_600_000;
const BINS: usize = 80;
const FIRST_BIN_US: f64 = 10.0;
const GROWTH: f64 = 1.25;

#[derive(Clone)]
struct Bucket {
    start_ms: i64,
    calls: u64,
    errors: u64,
    refused: u64,
    bins: [u32; BINS],
}

impl Bucket {
    fn new(start_ms: i64) -> Bucket {
        Bucket {
            start_ms,
            calls: 0,
            errors: 0,
            refused: 0,
            bins: [0; BINS],
        }
    }
}

fn bin_of(duration_us: i64) -> usize {
    let us = (duration_us as f64).max(FIRST_BIN_US);
    ((us / FIRST_BIN_US).ln() / GROWTH.ln())
        .floor()
        .clamp(0.0, (BINS - 1) as f64) as usize
}

/// The geometric middle of bin `i`, in milliseconds.
fn bin_middle_ms(i: usize) -> f64 {
    FIRST_BIN_US * GROWTH.powf(i as f64 + 0.5) / 1000.0
}

fn quantile(bins: &[u32; BINS], q: f64) -> Option<f64> {
    let total: u64 = bins.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    // The smallest bin at or under which at least q of the calls fall.
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (i, &n) in bins.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return Some(bin_middle_ms(i));
        }
    }
    None
}

/// One bucket of one server, as `GET /api/v1/activity` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub at_ms: i64,
    pub calls: u64,
    pub errors: u64,
    pub refused: u64,
    pub calls_per_second: f64,
    /// (errors + refused) / calls.
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerActivity {
    pub provider: String,
    /// The whole hour at once.
    pub total: Point,
    /// The buckets that saw calls, oldest first.
    pub points: Vec<Point>,
}

fn point(
    at_ms: i64,
    span_ms: i64,
    calls: u64,
    errors: u64,
    refused: u64,
    bins: &[u32; BINS],
) -> Point {
    Point {
        at_ms,
        calls,
        errors,
        refused,
        calls_per_second: calls as f64 * 1000.0 / span_ms as f64,
        error_rate: if calls == 0 {
            0.0
        } else {
            (errors + refused) as f64 / calls as f64
        },
        p50_ms: quantile(bins, 0.50),
        p99_ms: quantile(bins, 0.99),
    }
}

/// The rolling window: per server, its buckets of the last hour, oldest first.
#[derive(Default)]
pub struct Activity {
    servers: HashMap<String, VecDeque<Bucket>>,
}

impl Activity {
    /// Counts one call that finished at `at_ms`; one older than the window is ignored.
    pub fn add(
        &mut self,
        at_ms: i64,
        provider: &str,
        outcome: &str,
        duration_us: i64,
        now_ms: i64,
    ) {
        if provider.is_empty() || at_ms < now_ms - WINDOW_MS {
            return;
        }
        let buckets = self.buckets_of(provider);
        Self::count(buckets, at_ms, outcome, duration_us);
        Self::expire(buckets, now_ms);
    }

    /// Counts the rows of `batch` that are calls (`is_call`), as [`add`](Self::add) would one
    /// by one, looking a server up once for each run of rows that name it: a batch's rows
    /// mostly name one server after another in runs.
    pub fn add_rows(
        &mut self,
        batch: &mcpr_proto::AuditBatch,
        is_call: impl Fn(&mcpr_proto::AuditRow) -> bool,
        now_ms: i64,
    ) {
        for run in batch.rows.chunk_by(|a, b| a.provider == b.provider) {
            let provider = batch.text(run[0].provider);
            let mut calls = (run.iter())
                .filter(|r| r.at_ms >= now_ms - WINDOW_MS && is_call(r))
                .peekable();
            if provider.is_empty() || calls.peek().is_none() {
                continue;
            }
            let buckets = self.buckets_of(provider);
            for r in calls {
                let duration = i64::try_from(r.duration_us).unwrap_or(i64::MAX);
                Self::count(buckets, r.at_ms, batch.text(r.outcome), duration);
            }
            Self::expire(buckets, now_ms);
        }
    }

    fn buckets_of(&mut self, provider: &str) -> &mut VecDeque<Bucket> {
        // A look-up first: the name is copied only for a server seen for the first time.
        if !self.servers.contains_key(provider) {
            self.servers.insert(provider.to_owned(), VecDeque::new());
        }
        self.servers.get_mut(provider).expect("just inserted")
    }

    fn count(buckets: &mut VecDeque<Bucket>, at_ms: i64, outcome: &str, duration_us: i64) {
        let start = at_ms - at_ms.rem_euclid(BUCKET_MS);
        // Records arrive nearly in order: the bucket is the last one or close to it.
        let position = buckets.iter().rposition(|b| b.start_ms <= start);
        let index = match position {
            Some(i) if buckets[i].start_ms == start => i,
            Some(i) => {
                buckets.insert(i + 1, Bucket::new(start));
                i + 1
            }
            None => {
                buckets.push_front(Bucket::new(start));
                0
            }
        };
        let bucket = &mut buckets[index];
        bucket.calls += 1;
        match outcome {
            "ok" => {}
            "refused" => bucket.refused += 1,
            _ => bucket.errors += 1,
        }
        let bin = &mut bucket.bins[bin_of(duration_us)];
        *bin = bin.saturating_add(1);
    }

    fn expire(buckets: &mut VecDeque<Bucket>, now_ms: i64) {
        while buckets
            .front()
            .is_some_and(|b| b.start_ms + BUCKET_MS <= now_ms - WINDOW_MS)
        {
            buckets.pop_front();
        }
    }

    /// Every server with calls in the last hour, by name.
    pub fn report(&mut self, now_ms: i64) -> Vec<ServerActivity> {
        self.servers.retain(|_, buckets| {
            Self::expire(buckets, now_ms);
            !buckets.is_empty()
        });
        let mut servers: Vec<ServerActivity> = self
            .servers
            .iter()
            .map(|(provider, buckets)| {
                let mut all = Bucket::new(now_ms - WINDOW_MS);
                let points = buckets
                    .iter()
                    .map(|b| {
                        all.calls += b.calls;
                        all.errors += b.errors;
                        all.refused += b.refused;
                        for (sum, n) in all.bins.iter_mut().zip(b.bins.iter()) {
                            *sum = sum.saturating_add(*n);
                        }
                        point(b.start_ms, BUCKET_MS, b.calls, b.errors, b.refused, &b.bins)
                    })
                    .collect();
                ServerActivity {
                    provider: provider.clone(),
                    total: point(
                        all.start_ms,
                        WINDOW_MS,
                        all.calls,
                        all.errors,
                        all.refused,
                        &all.bins,
                    ),
                    points,
                }
            })
            .collect();
        servers.sort_by(|a, b| a.provider.cmp(&b.provider));
        servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_rates_and_quantiles() {
        let now = 10 * WINDOW_MS;
        let mut a = Activity::default();
        // 100 calls in one bucket: 98 ok at 1 ms, one error at 100 ms, one refused.
        for i in 0..98 {
            a.add(now - 5_000 + i, "time", "ok", 1_000, now);
        }
        a.add(now - 4_000, "time", "error", 100_000, now);
        a.add(now - 4_000, "time", "refused", 10, now);
        // An older bucket, added after (out of order), and one outside the window.
        a.add(now - 600_000, "time", "ok", 2_000, now);
        a.add(now - WINDOW_MS - 1, "time", "ok", 2_000, now);
        a.add(now, "", "ok", 1, now);
        let report = a.report(now);
        assert_eq!(report.len(), 1);
        let time = &report[0];
        assert_eq!(time.points.len(), 2);
        assert!(time.points[0].at_ms < time.points[1].at_ms);
        let last = &time.points[1];
        assert_eq!((last.calls, last.errors, last.refused), (100, 1, 1));
        assert!((last.calls_per_second - 10.0).abs() < 1e-9);
        assert!((last.error_rate - 0.02).abs() < 1e-9);
        let p50 = last.p50_ms.unwrap();
        assert!((0.88..=1.13).contains(&p50), "{p50}");
        // The 99th of 100 sorted durations is still 1 ms; the 100th is the 100 ms error.
        let p99 = last.p99_ms.unwrap();
        assert!((0.88..=1.13).contains(&p99), "{p99}");
        assert_eq!(time.total.calls, 101);
        // An hour later everything has left the window.
        assert!(a.report(now + WINDOW_MS + BUCKET_MS).is_empty());
    }

    #[test]
    fn rows_of_a_batch_count_as_calls_added_one_by_one() {
        let now = 10 * WINDOW_MS;
        // Runs of servers, one row outside the window, one without a server, one no call.
        let calls = [
            (now - 9_000, "time", "ok", 1_000, true),
            (now - 8_000, "time", "error", 50_000, true),
            (now - 70_000, "git", "ok", 3_000, true),
            (now - WINDOW_MS - 1, "git", "ok", 3_000, true),
            (now - 7_000, "time", "refused", 10, true),
            (now - 6_000, "", "ok", 10, true),
            (now - 5_000, "time", "ok", 10, false),
            (now - 5_000, "fetch", "ok", 10, false),
        ];
        let mut builder = mcpr_proto::AuditBatchBuilder::new();
        let mut one_by_one = Activity::default();
        for (at_ms, provider, outcome, duration_us, call) in calls {
            let kind = if call { "api_key" } else { "admin" };
            builder.push_entry(mcpr_proto::AuditEntry {
                at_ms,
                who_kind: kind.into(),
                provider: provider.into(),
                outcome: outcome.into(),
                duration_us: duration_us as u64,
                ..Default::default()
            });
            if call {
                one_by_one.add(at_ms, provider, outcome, duration_us, now);
            }
        }
        let batch = builder.finish();
        let mut batched = Activity::default();
        batched.add_rows(&batch, |r| batch.text(r.who_kind) != "admin", now);
        let json = |a: &mut Activity| serde_json::to_value(a.report(now)).unwrap();
        let expected = json(&mut one_by_one);
        assert_eq!(json(&mut batched), expected);
        // What was counted: time and git, not the server only admins named.
        let servers: Vec<&str> = (expected.as_array().unwrap().iter())
            .map(|s| s["provider"].as_str().unwrap())
            .collect();
        assert_eq!(servers, ["git", "time"]);
    }

    #[test]
    fn quantiles_stay_within_a_bin() {
        for us in [10, 55, 999, 12_345, 1_000_000, 60_000_000] {
            let mut bins = [0u32; BINS];
            bins[bin_of(us)] = 1;
            let q = quantile(&bins, 0.5).unwrap() * 1000.0;
            let ratio = q / us as f64;
            assert!((0.88..=1.13).contains(&ratio), "{us} µs -> {q}");
        }
    }
}
