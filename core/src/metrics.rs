//! The pieces of the Prometheus metrics every binary serves on `/metrics`: a lock-free
//! [`Histogram`], the text exposition format ([`Exposition`], version 0.0.4, as `promtool
//! check metrics` reads it), and the process's own memory and CPU from `/proc/self`.
//!
//! Hand-written rather than a registry crate: each component keeps its counters in the
//! shapes its hot path updates cheapest (atomics in the structures it already has) and
//! renders them when scraped; label sets are bounded by construction (names from the
//! snapshot or fixed lists, never from a client's input).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram buckets: 1 ms to 60 s.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// A histogram over [`DURATION_BUCKETS`]: counts per bucket (not cumulative; summed when
/// rendered), the total count and the sum in nanoseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(index) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (streams open, exchanges in flight).
#[derive(Debug, Default)]
pub struct Gauge(std::sync::atomic::AtomicI64);

impl Gauge {
    /// Counts one more until the guard drops.
    pub fn hold(&self) -> GaugeHold<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeHold(self)
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One unit of a [`Gauge`], given back on drop.
#[derive(Debug)]
pub struct GaugeHold<'a>(&'a Gauge);

impl Drop for GaugeHold<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Metrics text being written: families with their `# HELP` and `# TYPE`, then samples.
/// Label values are escaped; names are the caller's constants.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Opens a family: `kind` is `counter` (its `name` ends in `_total`, as the text
    /// format's family and samples both say), `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        debug_assert!(kind != "counter" || name.ends_with("_total"), "{name}");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    /// The samples of one histogram series (its family opened with kind `histogram`).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let mut cumulative = 0u64;
        for (index, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += histogram.buckets[index].load(Ordering::Relaxed);
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&format_value(*bound)));
            let _ = writeln!(self.out, " {cumulative}");
        }
        // Read last, so that +Inf is never below a bucket counted above.
        let count = histogram.count().max(cumulative);
        let _ = write!(self.out, "{name}_bucket");
        write_labels(&mut self.out, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {count}");
        let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(sum));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {count}");
    }

    /// Appends another exposition's text (`mcpr up`: all components on one endpoint).
    pub fn append(&mut self, other: Exposition) {
        self.out.push_str(&other.out);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

/// The unit of `/proc`'s times: USER_HZ, 100 on every Linux ABI the router targets
/// (whatever the kernel's own tick rate).
pub const USER_HZ: f64 = 100.0;

/// Field `n` (counted from 1, as proc(5) does) of a `/proc/PID/stat` line, for `n` ≥ 3: the
/// command name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last closing parenthesis.
pub fn stat_field(stat: &str, n: usize) -> Option<f64> {
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// The user and system CPU time (utime + stime, fields 14 and 15) of a `/proc/PID/stat`
/// line, in seconds.
pub fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    Some((stat_field(stat, 14)? + stat_field(stat, 15)?) / USER_HZ)
}

/// The process's CPU time, memory, threads and open files (Linux `/proc/self`; nothing
/// where it is missing), under the names the Prometheus client libraries use.
pub fn process_metrics(out: &mut Exposition) {
    let page_size = 4096.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // threads 20, starttime 22, vsize 23, rss 24.
        let field = |n: usize| stat_field(&stat, n);
        if let Some(seconds) = stat_cpu_seconds(&stat) {
            out.family(
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
            );
            out.sample("process_cpu_seconds_total", &[], seconds);
        }
        if let Some(vsize) = field(23) {
            out.family(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
            );
            out.sample("process_virtual_memory_bytes", &[], vsize);
        }
        if let Some(rss) = field(24) {
            out.family(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            out.sample("process_resident_memory_bytes", &[], rss * page_size);
        }
        if let Some(threads) = field(20) {
            out.family("process_threads", "gauge", "Number of OS threads.");
            out.sample("process_threads", &[], threads);
        }
        if let (Some(start), Some(boot)) = (field(22), boot_time()) {
            out.family(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
            );
            out.sample("process_start_time_seconds", &[], boot + start / USER_HZ);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        out.sample("process_open_fds", &[], fds.count() as f64);
    }
}

/// The boot time (Unix seconds) from `/proc/stat`.
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The bearer token a scraper must present where `/metrics` is not open
/// (`MCPR_METRICS_TOKEN`): off loopback listeners. Empty is refused as a setting.
pub fn metrics_token_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    match var("MCPR_METRICS_TOKEN") {
        None => Ok(None),
        Some(token) if token.trim().is_empty() => {
            Err("MCPR_METRICS_TOKEN is set but empty: unset it or give it a value".into())
        }
        Some(token) => Ok(Some(token.trim().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(100));
        let mut out = Exposition::new();
        out.family("x_seconds", "histogram", "A test.");
        out.histogram("x_seconds", &[("tool", "a\"b\\c\nd")], &histogram);
        let text = out.finish();
        assert!(
            text.contains(r#"x_seconds_bucket{tool="a\"b\\c\nd",le="0.001"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"x_seconds_bucket{tool="a\"b\\c\nd",le="0.05"} 2"#));
        assert!(text.contains(r#"x_seconds_bucket{tool="a\"b\\c\nd",le="60"} 2"#));
        assert!(text.contains(r#"x_seconds_bucket{tool="a\"b\\c\nd",le="+Inf"} 3"#));
        assert!(text.contains(r#"x_seconds_count{tool="a\"b\\c\nd"} 3"#));
    }

    #[test]
    fn counters_keep_their_suffix() {
        let mut out = Exposition::new();
        out.family("calls_total", "counter", "Calls.");
        out.sample("calls_total", &[("a", "b")], 3.0);
        assert_eq!(
            out.finish(),
            "# HELP calls_total Calls.\n# TYPE calls_total counter\ncalls_total{a=\"b\"} 3\n"
        );
    }

    #[test]
    fn cpu_times_are_read_after_a_command_of_any_name() {
        let line = "4242 (mcpr (up) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(stat_cpu_seconds(line), Some(3.25));
        assert_eq!(stat_cpu_seconds("4242 (mcpr) S 1 2"), None);
        assert_eq!(stat_cpu_seconds("no command"), None);
    }

    #[test]
    fn process_metrics_are_read() {
        let mut out = Exposition::new();
        process_metrics(&mut out);
        let text = out.finish();
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
    }

    #[test]
    fn an_empty_token_is_refused() {
        assert!(metrics_token_from_env(|_| Some(" ".into())).is_err());
        assert_eq!(metrics_token_from_env(|_| None), Ok(None));
        assert_eq!(
            metrics_token_from_env(|_| Some("t".into())),
            Ok(Some("t".into()))
        );
    }
}
