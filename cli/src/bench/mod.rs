//! `mcpr bench`: tool calls per second and latency percentiles through the router and
//! directly against the same upstream, at several concurrency levels. A measurement tool,
//! not a test: its figures go into docs/BENCHMARKS.md.
//! `mcpr bench-sandbox` is `sandbox.rs`.

pub mod sandbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use mcpr_core::mcp_headers::{
    HEADER_METHOD, HEADER_NAME, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION,
    MODERN_VERSION,
};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// MCP endpoint through the router (e.g. http://127.0.0.1:8000/mcp/p/echo).
    #[arg(long)]
    pub url: String,
    /// The same upstream's own MCP endpoint, called directly for comparison.
    #[arg(long)]
    pub direct: Option<String>,
    /// Tool to call.
    #[arg(long, default_value = "echo")]
    pub tool: String,
    /// Tool arguments (JSON object).
    #[arg(long, default_value = r#"{"text":"hello"}"#)]
    pub args: String,
    /// Concurrent callers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub concurrency: Vec<usize>,
    /// Seconds of measurement per level (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Extra request header for every call, "Name: value" or "Name=value" (repeatable), e.g.
    /// --header "Authorization: Bearer mcpr_…" to measure the cost of authentication.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Total calls per second to offer across all callers (open loop); 0 = as fast as
    /// they go. Latency "added at 1,000 calls/s" is measured with --rate 1000.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Instead of calling tools: open this many sessions at --url, keep them idle for
    /// --seconds, and report; the caller measures the router's memory meanwhile.
    #[arg(long)]
    pub idle_sessions: Option<usize>,
    /// Call as a modern (2026-07-28) client: stateless requests with the protocol version,
    /// client info and capabilities in `_meta` and the `Mcp-Method`/`Mcp-Name` headers; no
    /// initialize, no session.
    #[arg(long)]
    pub modern: bool,
    /// Process ids of the router (repeatable): their CPU time (all threads, user and system)
    /// over each router level's measured seconds is reported per call. Steadier than calls/s
    /// on a machine whose cores the client and the upstream share (Linux: /proc).
    #[arg(long = "cpu-of")]
    pub cpu_of: Vec<u32>,
}

pub struct LevelResult {
    pub target: &'static str,
    pub concurrency: usize,
    pub calls: usize,
    pub errors: u64,
    pub per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// CPU microseconds the `--cpu-of` processes spent per measured call.
    pub cpu_us_per_call: Option<f64>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let arguments: Value = serde_json::from_str(&args.args).context("--args is not valid JSON")?;
    if !arguments.is_object() {
        bail!("--args must be a JSON object");
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for item in &args.headers {
        let (name, value) = crate::flags::parse_header(item)?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .with_context(|| format!("--header {name:?}: not a header name"))?,
            reqwest::header::HeaderValue::from_str(&value)
                .with_context(|| format!("--header {name:?}: not a header value"))?,
        );
    }
    let client = mcpr_tls::http_client()?
        .default_headers(headers)
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()?;
    if !args.cpu_of.is_empty() {
        // A wrong pid fails now, not after the first level's seconds.
        Cpu::read(&args.cpu_of).context("--cpu-of")?;
    }
    if let Some(count) = args.idle_sessions {
        return idle_sessions(&client, &args.url, count, args.seconds).await;
    }
    let mut results = Vec::new();
    for &concurrency in &args.concurrency {
        if let Some(direct) = &args.direct {
            results.push(level(&client, "direct", direct, &args, &arguments, concurrency).await?);
        }
        results.push(level(&client, "router", &args.url, &args, &arguments, concurrency).await?);
    }
    println!(
        "| path | callers | calls | calls/s | p50 ms | p99 ms | errors | added p50 ms | added p99 ms | router CPU µs/call |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        let direct = results
            .iter()
            .find(|d| d.target == "direct" && d.concurrency == r.concurrency);
        let (added50, added99) = match (r.target, direct) {
            ("router", Some(d)) => (
                format!("{:.3}", (r.p50_us as f64 - d.p50_us as f64) / 1000.0),
                format!("{:.3}", (r.p99_us as f64 - d.p99_us as f64) / 1000.0),
            ),
            _ => ("".into(), "".into()),
        };
        let cpu = r
            .cpu_us_per_call
            .map_or_else(String::new, |us| format!("{us:.1}"));
        println!(
            "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {cpu} |",
            r.target,
            r.concurrency,
            r.calls,
            r.per_second,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            r.errors,
            added50,
            added99
        );
    }
    Ok(())
}

/// Opens `count` sessions and holds them idle for `seconds`.
async fn idle_sessions(
    client: &reqwest::Client,
    url: &str,
    count: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let opened = futures::stream::iter(0..count)
        .map(|_| open_session(client, url))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let failed = opened.iter().filter(|r| r.is_err()).count();
    println!(
        "opened {} sessions in {:.1} s ({failed} failed); holding them idle for {seconds} s",
        count - failed,
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok(())
}

async fn level(
    client: &reqwest::Client,
    target: &'static str,
    url: &str,
    args: &BenchArgs,
    arguments: &Value,
    concurrency: usize,
) -> anyhow::Result<LevelResult> {
    let mut sessions = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        sessions.push(match args.modern {
            true => Session::modern(),
            false => open_session(client, url)
                .await
                .with_context(|| format!("opening a session at {url}"))?,
        });
    }
    let errors = Arc::new(AtomicU64::new(0));
    let warmup_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warmup_until + Duration::from_secs(args.seconds);
    let mut body = json!({"name": args.tool, "arguments": arguments});
    if args.modern {
        body["_meta"] = json!({
            META_PROTOCOL_VERSION: MODERN_VERSION,
            META_CLIENT_INFO: {"name": "mcpr-bench", "version": "1"},
            META_CLIENT_CAPABILITIES: {},
        });
    }
    let body = Arc::new(body);
    // The CPU the router spends over the measured seconds only (not the warm-up).
    let pids = match target {
        "router" => args.cpu_of.clone(),
        _ => Vec::new(),
    };
    let cpu = tokio::spawn(async move {
        if pids.is_empty() {
            return Ok(None);
        }
        tokio::time::sleep_until(warmup_until.into()).await;
        let before = Cpu::read(&pids)?;
        tokio::time::sleep_until(stop_at.into()).await;
        anyhow::Ok(Some(Cpu::read(&pids)?.since(&before)))
    });
    let workers = sessions.into_iter().map(|session| {
        let client = client.clone();
        let url = url.to_owned();
        let errors = errors.clone();
        let body = body.clone();
        let pace =
            (args.rate > 0).then(|| Duration::from_secs_f64(concurrency as f64 / args.rate as f64));
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut id = 1u64;
            let mut next_at = Instant::now();
            loop {
                if let Some(pace) = pace {
                    // Open loop: calls leave on schedule, whatever the previous one took.
                    tokio::time::sleep_until(next_at.into()).await;
                    next_at += pace;
                }
                let start = Instant::now();
                if start >= stop_at {
                    break;
                }
                id += 1;
                let ok = call(&client, &url, &session, id, &body).await;
                let elapsed = start.elapsed();
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                } else if start >= warmup_until {
                    latencies.push(elapsed.as_micros() as u64);
                }
            }
            latencies
        })
    });
    let mut all: Vec<u64> = Vec::new();
    for worker in futures::future::join_all(workers).await {
        all.extend(worker?);
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let cpu = cpu.await??;
    let result = LevelResult {
        target,
        concurrency,
        calls: all.len(),
        errors: errors.load(Ordering::Relaxed),
        per_second: all.len() as f64 / args.seconds as f64,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        cpu_us_per_call: cpu
            .as_ref()
            .map(|cpu| cpu.process_us / all.len().max(1) as f64),
    };
    if let (Some(cpu), Some(per_call)) = (&cpu, result.cpu_us_per_call) {
        eprintln!(
            "{target:>6} callers={concurrency:<4} router CPU {per_call:.1} µs/call; machine: busy {:.0}%, stolen {:.1}% (by the hypervisor)",
            cpu.busy_share * 100.0,
            cpu.steal_share * 100.0,
        );
    }
    eprintln!(
        "{target:>6} callers={concurrency:<4} calls/s={:<8.0} p50={:.3}ms p99={:.3}ms errors={}",
        result.per_second,
        result.p50_us as f64 / 1000.0,
        result.p99_us as f64 / 1000.0,
        result.errors
    );
    Ok(result)
}

/// CPU time read from /proc: the processes' (user and system, all threads) and the machine's.
struct Cpu {
    process_seconds: f64,
    /// The machine's jiffies: all of them, the busy ones, the stolen ones.
    total: u64,
    busy: u64,
    steal: u64,
}

/// What a span of time cost between two [`Cpu`] readings.
struct CpuSpent {
    process_us: f64,
    busy_share: f64,
    steal_share: f64,
}

impl Cpu {
    fn read(pids: &[u32]) -> anyhow::Result<Cpu> {
        let mut process_seconds = 0.0;
        for pid in pids {
            let path = format!("/proc/{pid}/stat");
            let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            process_seconds += mcpr_core::metrics::stat_cpu_seconds(&stat).with_context(|| {
                format!("{path}: no user and system times where Linux puts them")
            })?;
        }
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let line = stat.lines().next().unwrap_or_default();
        let jiffies: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let at = |i: usize| jiffies.get(i).copied().unwrap_or(0);
        let total = (0..8).map(at).sum();
        Ok(Cpu {
            process_seconds,
            total,
            busy: total - at(3) - at(4),
            steal: at(7),
        })
    }

    fn since(&self, before: &Cpu) -> CpuSpent {
        let total = (self.total - before.total).max(1) as f64;
        CpuSpent {
            process_us: (self.process_seconds - before.process_seconds) * 1e6,
            busy_share: (self.busy - before.busy) as f64 / total,
            steal_share: (self.steal - before.steal) as f64 / total,
        }
    }
}

struct Session {
    id: Option<String>,
    version: String,
    /// A modern client names the tool in `Mcp-Name` (and the method in `Mcp-Method`).
    modern: bool,
}

impl Session {
    fn modern() -> Session {
        Session {
            id: None,
            version: MODERN_VERSION.to_owned(),
            modern: true,
        }
    }
}

async fn open_session(client: &reqwest::Client, url: &str) -> anyhow::Result<Session> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "mcpr-bench", "version": "1"}}});
    let response = post(client, url, None, None, &init).await?;
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = read_message(response).await?;
    let version = answer["result"]["protocolVersion"]
        .as_str()
        .unwrap_or("2025-06-18")
        .to_owned();
    let session = Session {
        id,
        version,
        modern: false,
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(
        client,
        url,
        session.id.as_deref(),
        Some(&session.version),
        &initialized,
    )
    .await?;
    Ok(session)
}

async fn call(
    client: &reqwest::Client,
    url: &str,
    session: &Session,
    id: u64,
    params: &Value,
) -> bool {
    let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let mut builder = request_builder(
        client,
        url,
        session.id.as_deref(),
        Some(&session.version),
        &request,
    );
    if session.modern {
        builder = builder
            .header(HEADER_METHOD, "tools/call")
            .header(HEADER_NAME, params["name"].as_str().unwrap_or_default());
    }
    match send(builder).await {
        Ok(response) => match read_message(response).await {
            Ok(answer) => answer
                .get("result")
                .is_some_and(|r| r.get("isError") != Some(&Value::Bool(true))),
            Err(_) => false,
        },
        Err(_) => false,
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    version: Option<&str>,
    body: &Value,
) -> anyhow::Result<reqwest::Response> {
    send(request_builder(client, url, session, version, body)).await
}

fn request_builder(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    version: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = session {
        request = request.header("mcp-session-id", s);
    }
    if let Some(v) = version {
        request = request.header("mcp-protocol-version", v);
    }
    request
}

async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
    let response = request.send().await?;
    if !response.status().is_success() {
        bail!("HTTP {}", response.status());
    }
    Ok(response)
}

/// The first JSON-RPC message of a JSON or SSE answer.
async fn read_message(response: reqwest::Response) -> anyhow::Result<Value> {
    let sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !sse {
        return Ok(response.json().await?);
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        for line in buffer.lines() {
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                && v.get("id").is_some()
            {
                return Ok(v);
            }
        }
    }
    bail!("SSE stream ended without a response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_is_seen_spending_cpu_and_a_missing_one_is_named() {
        let me = [std::process::id()];
        let before = Cpu::read(&me).expect("this process's times");
        // Busy until the kernel's accounting moves (a tick is 10 ms), or give up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut spent = 0.0;
        while spent == 0.0 && Instant::now() < deadline {
            let mut x = 0u64;
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            spent = Cpu::read(&me)
                .expect("this process's times")
                .since(&before)
                .process_us;
        }
        assert!(
            spent >= 10_000.0,
            "no CPU time seen in 10 s of busy work: {spent}"
        );
        let missing = Cpu::read(&[u32::MAX]).err().expect("no such process");
        assert!(
            format!("{missing:#}").contains("/proc/4294967295/stat"),
            "{missing:#}"
        );
    }
}
