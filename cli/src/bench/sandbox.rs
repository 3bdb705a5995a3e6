//! `mcpr bench-sandbox`: the Docker figures of docs/BENCHMARKS.md, measured through a
//! running router: `python_sandbox` `print(1)` round trips (warm pool, or cold when the
//! router runs with `MCPR_SANDBOX_POOL=0`), and the time from "server added" to "first tool
//! call answered" for a containerized server whose image is present. A measurement tool,
//! not a test.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct BenchSandboxArgs {
    /// The router's base URL (API and /mcp).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub router: String,
    /// Sandbox calls to time (one at a time).
    #[arg(long, default_value_t = 50)]
    pub calls: usize,
    /// Pause between calls in milliseconds, as between a model's calls (the pool refills).
    #[arg(long, default_value_t = 300)]
    pub pause_ms: u64,
    /// Also time "server added" → "first call answered" for a docker server of this image.
    #[arg(long)]
    pub server_image: Option<String>,
    /// Arguments of that server's container (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// The tool to call on it, and its arguments (JSON).
    #[arg(long, default_value = "echo")]
    pub server_tool: String,
    #[arg(long, default_value = r#"{"text":"hello"}"#)]
    pub server_tool_args: String,
    /// How many times to add, call and delete that server.
    #[arg(long, default_value_t = 5)]
    pub server_rounds: usize,
}

pub async fn run(args: BenchSandboxArgs) -> anyhow::Result<()> {
    let base = args.router.trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    let mut mcp = Session::open(&client, &format!("{base}/mcp")).await?;

    if args.calls > 0 {
        // One call first: it starts the pool filling (and is not counted).
        mcp.sandbox("print(1)").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut round_trips = Vec::with_capacity(args.calls);
        let mut in_container = Vec::with_capacity(args.calls);
        for _ in 0..args.calls {
            let started = Instant::now();
            let outcome = mcp.sandbox("print(1)").await?;
            round_trips.push(started.elapsed());
            in_container.push(Duration::from_millis(
                outcome["duration_ms"].as_u64().unwrap_or_default(),
            ));
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
        println!(
            "python_sandbox print(1), {} calls, {} ms apart: round trip {}; run in container {}",
            args.calls,
            args.pause_ms,
            summary(&mut round_trips),
            summary(&mut in_container)
        );
    }

    if let Some(image) = &args.server_image {
        let tool_args: Value =
            serde_json::from_str(&args.server_tool_args).context("--server-tool-args")?;
        let mut times = Vec::new();
        for round in 0..args.server_rounds {
            let name = format!("bench-docker-{}-{round}", std::process::id());
            let body = json!({"name": name, "runtime": {"kind": "docker", "image": image, "args": args.server_args}});
            let started = Instant::now();
            let added = client
                .post(format!("{base}/api/v1/servers"))
                .json(&body)
                .send()
                .await?;
            if !added.status().is_success() {
                bail!("adding {name}: {}", added.text().await.unwrap_or_default());
            }
            loop {
                let result = mcp
                    .call(
                        "call_tool",
                        json!({"provider": name, "tool": args.server_tool, "arguments": tool_args}),
                    )
                    .await?;
                if result["isError"] != true {
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    bail!("{name} did not answer within 60 s: {result}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            times.push(started.elapsed());
            client
                .delete(format!("{base}/api/v1/servers/{name}"))
                .header("content-type", "application/json")
                .send()
                .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!(
            "docker server {image}: added → first call answered, {} rounds: {}",
            args.server_rounds,
            summary(&mut times)
        );
    }
    Ok(())
}

fn summary(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "p50 {}, p99 {}, min {}, max {}",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    )
}

/// A minimal MCP client session (JSON or SSE answers).
struct Session<'a> {
    client: &'a reqwest::Client,
    url: String,
    id: Option<String>,
    next: u64,
}

impl<'a> Session<'a> {
    async fn open(client: &'a reqwest::Client, url: &str) -> anyhow::Result<Session<'a>> {
        let mut session = Session {
            client,
            url: url.to_owned(),
            id: None,
            next: 1,
        };
        session
            .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "mcpr-bench-sandbox", "version": env!("CARGO_PKG_VERSION")}}}))
            .await?;
        session
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(session)
    }

    async fn sandbox(&mut self, code: &str) -> anyhow::Result<Value> {
        let result = self.call("python_sandbox", json!({"code": code})).await?;
        if result["isError"] == true {
            bail!("python_sandbox failed: {}", result["content"][0]["text"]);
        }
        Ok(result["structuredContent"].clone())
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        self.next += 1;
        let answer = self
            .post(json!({"jsonrpc": "2.0", "id": self.next, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}))
            .await?;
        match answer.get("result") {
            Some(result) => Ok(result.clone()),
            None => bail!("{tool}: {}", answer["error"]),
        }
    }

    async fn post(&mut self, message: Value) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(message.to_string());
        if let Some(id) = &self.id {
            request = request.header("mcp-session-id", id);
        }
        let response = request.send().await.context("POST to the router")?;
        if let Some(id) = response.headers().get("mcp-session-id") {
            self.id = Some(id.to_str()?.to_owned());
        }
        let text = response.text().await?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        // JSON, or SSE whose last data line is the answer.
        let body = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .next_back()
            .unwrap_or(&text);
        serde_json::from_str(body.trim()).with_context(|| format!("unreadable answer: {text}"))
    }
}
