//! `mcpr-cluster-bench`: how long a server added through the REST API takes to be callable
//! on every edge gateway of a large cluster (issue 15; figures in docs/BENCHMARKS.md, run by
//! `scripts/bench-cluster`).
//!
//! It starts the real control plane on a fresh database of a Postgres, with a cluster token;
//! simulates `--agents` node agents and `--gateways` edge gateways as real gRPC clients
//! (`agents.rs`, `gateways.rs`); imports `--servers` servers whose agents report `--tools`
//! tools each; then adds `--samples` more one at a time with `POST /api/v1/servers`, and for
//! each measures, from the 201, when an agent was assigned it, when that agent's report of it
//! running was answered, and when the last gateway's snapshot had it callable. It also
//! reports the snapshot's encoded size, its encode and decode times, and the control plane's
//! memory and CPU. Nothing here is timed in a test: `tests/smoke.rs` checks only that a small
//! run sees every server everywhere.

mod agents;
mod control_plane;
mod gateways;
mod progress;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use mcpr_proto as pb;
use mcpr_tls::cluster::{ClusterToken, GrpcChannel, with_token};
use prost::Message;
use tonic::transport::Endpoint;

use control_plane::{ControlPlane, Database};
use progress::Progress;

#[derive(Parser, Debug)]
#[command(about = "Cluster-scale benchmark of the MCP Router control plane")]
struct Args {
    /// The control plane binary (default: `mcpr-control-plane` next to this one).
    #[arg(long)]
    control_plane: Option<PathBuf>,
    /// A Postgres to create the benchmark's database on (`scripts/postgres` prints one).
    #[arg(long, env = "MCPR_TEST_DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 100)]
    agents: usize,
    #[arg(long, default_value_t = 10)]
    gateways: usize,
    /// Servers registered (by import) before the measured ones are added.
    #[arg(long, default_value_t = 1000)]
    servers: usize,
    /// Tools each server's upstream lists.
    #[arg(long, default_value_t = 20)]
    tools: usize,
    /// Servers added one at a time and measured.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Longest wait for one added server to be callable everywhere.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn row(step: &str, mut values: Vec<Duration>) -> String {
    values.sort();
    format!(
        "| {step} | {} | {} | {} | {} | {} |",
        values.len(),
        ms(percentile(&values, 0.50)),
        ms(percentile(&values, 0.95)),
        ms(percentile(&values, 0.99)),
        ms(values.last().copied().unwrap_or_default()),
    )
}

/// Waits for `done`, or fails naming `what` after `timeout`.
async fn wait(
    progress: &Progress,
    timeout: Duration,
    what: &str,
    done: impl FnMut(&Progress) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, progress.wait_for(done))
        .await
        .with_context(|| format!("{what}: not within {} s", timeout.as_secs()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match &args.control_plane {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .join("mcpr-control-plane"),
    };
    let dir = tempfile::tempdir()?;
    let database = Database::create(&args.database_url).await?;
    let outcome = run(&args, &binary, &database, dir.path()).await;
    if let Err(e) = database.drop_now().await {
        eprintln!("could not drop database {}: {e:#}", database.name);
    }
    outcome
}

async fn run(
    args: &Args,
    binary: &std::path::Path,
    database: &Database,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let load_before = load_average();
    let token_text = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let token = ClusterToken::parse(&token_text, "the benchmark's cluster token")?;
    let cp = ControlPlane::start(binary, &database.url, &token_text, dir).await?;
    let outcome = measure(args, &cp, &token).await;
    if outcome.is_err() {
        eprintln!("the control plane's log:\n{}", cp.log_tail());
    }
    cp.stop().await;
    let report = outcome?;
    println!(
        "load average (1, 5, 15 min): before {load_before}, after {}",
        load_average()
    );
    println!("{report}");
    Ok(())
}

/// One HTTP/2 connection per simulated component, as each would have its own.
fn channel(cp: &ControlPlane, token: &ClusterToken) -> anyhow::Result<GrpcChannel> {
    let channel = Endpoint::from_shared(cp.grpc.clone())?
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    Ok(with_token(channel, Some(token)))
}

async fn measure(args: &Args, cp: &ControlPlane, token: &ClusterToken) -> anyhow::Result<String> {
    let mut out = String::new();
    let line = |out: &mut String, text: String| {
        eprintln!("{text}");
        out.push_str(&text);
        out.push('\n');
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_empty, _) = cp.memory_kib()?;
    let progress = Arc::new(Progress::new(args.gateways));
    for g in 0..args.gateways {
        tokio::spawn(gateways::run(
            g,
            channel(cp, token)?,
            args.tools,
            progress.clone(),
        ));
    }
    for a in 0..args.agents {
        tokio::spawn(agents::run(
            a,
            channel(cp, token)?,
            args.tools,
            progress.clone(),
        ));
    }
    let started = Instant::now();
    wait(
        &progress,
        Duration::from_secs(120),
        "every agent in the gateways' snapshot",
        |p| p.last_snapshot_agents() == args.agents,
    )
    .await?;
    line(
        &mut out,
        format!(
            "{} agents registered, in the snapshot of {} gateways: {}",
            args.agents,
            args.gateways,
            ms(started.elapsed())
        ),
    );

    // Registered in batches, as an admin importing a `mcpServers` file would.
    let http = reqwest::Client::new();
    let started = Instant::now();
    let cpu_start = cp.cpu_seconds()?;
    for batch in (0..args.servers).collect::<Vec<_>>().chunks(100) {
        let servers: serde_json::Map<String, serde_json::Value> = batch
            .iter()
            .map(|i| {
                (
                    format!("bench-{i:04}"),
                    serde_json::json!({"url": format!("http://127.0.0.1:9/mcp/{i}")}),
                )
            })
            .collect();
        let answer = http
            .post(format!("{}/api/v1/import", cp.api))
            .json(&serde_json::json!({ "mcpServers": servers }))
            .send()
            .await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "import refused: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
    }
    wait(
        &progress,
        Duration::from_secs(600),
        "the imported servers callable on every gateway",
        |p| p.callable_everywhere() >= args.servers,
    )
    .await?;
    let preload = started.elapsed();
    let cpu_preload = cp.cpu_seconds()? - cpu_start;
    line(
        &mut out,
        format!(
            "{} servers ({} tools) imported and callable on every gateway: {} (control plane CPU {:.1} s)",
            args.servers,
            args.servers * args.tools,
            ms(preload),
            cpu_preload
        ),
    );
    // Let the last reports and snapshots settle before reading the idle figures.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_loaded, _) = cp.memory_kib()?;
    let cpu_idle_start = cp.cpu_seconds()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_idle = (cp.cpu_seconds()? - cpu_idle_start) / 5.0;
    let snapshot_bytes = progress.last_snapshot_bytes();
    let (encode, decode) = match progress.take_last_snapshot() {
        Some(snapshot) => codec_times(&snapshot),
        None => (Duration::ZERO, Duration::ZERO),
    };

    let mut assigned = Vec::new();
    let mut reported = Vec::new();
    let mut callable = Vec::new();
    let mut timeouts = 0;
    let snapshots_before = progress.snapshots_received();
    let cpu_start = cp.cpu_seconds()?;
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_loaded));
    let sampler = {
        let peak = peak.clone();
        let pid_status = format!("/proc/{}/status", cp.pid);
        tokio::spawn(async move {
            loop {
                if let Ok(status) = std::fs::read_to_string(&pid_status)
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse::<u64>().ok())
                {
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    for i in 0..args.samples {
        let name = format!("bench-add-{i:04}");
        let answer = http
            .post(format!("{}/api/v1/servers", cp.api))
            .json(&serde_json::json!({
                "name": name,
                "runtime": {"kind": "remote", "url": format!("http://127.0.0.1:9/mcp/add/{i}")},
            }))
            .send()
            .await?;
        let created = Instant::now();
        anyhow::ensure!(
            answer.status() == reqwest::StatusCode::CREATED,
            "adding {name} was answered {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
        let timeout = Duration::from_secs(args.timeout_secs);
        let done = wait(&progress, timeout, &name, |p| {
            p.track(&name).callable_everywhere.is_some()
        })
        .await;
        if let Err(e) = done {
            eprintln!("{e:#}");
            timeouts += 1;
            continue;
        }
        let track = progress.track(&name);
        // An agent may hear of the server before the 201 reaches us: counted as 0.
        let since = |at: Option<Instant>| at.map(|t| t.saturating_duration_since(created));
        assigned.extend(since(track.assigned));
        reported.extend(since(track.reported));
        callable.extend(since(track.callable_everywhere));
        // Off the beat of the control plane's 200 ms sync tick.
        tokio::time::sleep(Duration::from_millis((i as u64 * 37) % 100)).await;
    }
    let elapsed = started.elapsed();
    sampler.abort();
    let cpu_samples = cp.cpu_seconds()? - cpu_start;
    let snapshots = progress.snapshots_received() - snapshots_before;
    let (rss_end, hwm) = cp.memory_kib()?;
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed).max(rss_end);

    line(
        &mut out,
        format!(
            "snapshot at {} servers / {} tools / {} agents: {} bytes encoded; encode {}, decode {}",
            args.servers,
            args.servers * args.tools,
            args.agents,
            snapshot_bytes,
            ms(encode),
            ms(decode)
        ),
    );
    line(
        &mut out,
        format!(
            "{} servers added one at a time in {:.1} s ({} timed out after {} s); \
             the gateways received {snapshots} snapshots meanwhile",
            args.samples,
            elapsed.as_secs_f64(),
            timeouts,
            args.timeout_secs
        ),
    );
    line(
        &mut out,
        "| from the API's 201 to | samples | p50 | p95 | p99 | max |".into(),
    );
    line(&mut out, "|---|---:|---:|---:|---:|---:|".into());
    line(&mut out, row("assigned to an agent", assigned));
    line(&mut out, row("reported running with its tools", reported));
    line(
        &mut out,
        row(
            &format!("callable on all {} gateways", args.gateways),
            callable,
        ),
    );
    line(
        &mut out,
        format!(
            "control plane RSS: {} empty, {} idle at {} servers, {} peak while adding (VmHWM {}); \
             CPU: {:.2} s/s idle at {} servers, {:.1} s for the adds ({:.2} s/s)",
            mb(rss_empty),
            mb(rss_loaded),
            args.servers,
            mb(peak),
            mb(hwm),
            cpu_idle,
            args.servers,
            cpu_samples,
            cpu_samples / elapsed.as_secs_f64()
        ),
    );
    if timeouts > 0 {
        anyhow::bail!("{timeouts} added servers never became callable everywhere:\n{out}");
    }
    Ok(out)
}

/// How long one prost encode and one decode of `snapshot` take (the median of 11).
fn codec_times(snapshot: &pb::ConfigSnapshot) -> (Duration, Duration) {
    let mut encode = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        let bytes = snapshot.encode_to_vec();
        encode.push(t.elapsed());
        let t = Instant::now();
        let back = pb::ConfigSnapshot::decode(bytes.as_slice()).expect("own encoding");
        decode.push(t.elapsed());
        drop(back);
    }
    encode.sort();
    decode.sort();
    (encode[5], decode[5])
}
