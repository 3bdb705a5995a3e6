//! The control plane under test: the real binary, on a fresh database of the given Postgres,
//! with a cluster token, and its memory and CPU read from `/proc`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

/// A fresh database on the Postgres at `base` (a URL ending in `/DBNAME`), dropped by
/// [`Database::drop_now`].
pub struct Database {
    admin: String,
    pub name: String,
    pub url: String,
}

impl Database {
    pub async fn create(base: &str) -> anyhow::Result<Database> {
        sqlx::any::install_default_drivers();
        let name = format!("mcpr_bench_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::AnyPool::connect(base)
            .await
            .with_context(|| format!("connecting to the Postgres of --database-url {base}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .with_context(|| format!("creating database {name}"))?;
        pool.close().await;
        let (prefix, _) = base
            .rsplit_once('/')
            .context("--database-url must end in /DBNAME")?;
        Ok(Database {
            admin: base.to_owned(),
            url: format!("{prefix}/{name}"),
            name,
        })
    }

    pub async fn drop_now(&self) -> anyhow::Result<()> {
        let pool = sqlx::AnyPool::connect(&self.admin).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&pool)
        .await?;
        pool.close().await;
        Ok(())
    }
}

pub struct ControlPlane {
    child: tokio::process::Child,
    pub pid: u32,
    pub api: String,
    pub grpc: String,
    pub log: std::path::PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl ControlPlane {
    /// Starts `binary` and waits until its API answers.
    pub async fn start(
        binary: &Path,
        database_url: &str,
        token: &str,
        dir: &Path,
    ) -> anyhow::Result<ControlPlane> {
        let http = free_port()?;
        let grpc = free_port()?;
        let log = dir.join("control-plane.log");
        let out = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(binary)
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--grpc-listen")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("DATABASE_URL", database_url)
            .env("MCPR_CLUSTER_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the control plane exited at once")?;
        let cp = ControlPlane {
            child,
            pid,
            api: format!("http://127.0.0.1:{http}"),
            grpc: format!("http://127.0.0.1:{grpc}"),
            log,
        };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{}/api/v1/health", cp.api)).send().await
                && r.status().is_success()
            {
                return Ok(cp);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "the control plane did not answer on {} within 60 s; its log:\n{}",
            cp.api,
            cp.log_tail()
        )
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The command name (field 2) may hold spaces: count from the parenthesis closing it.
        let after = &stat[stat.rfind(')').context("unreadable /proc stat")? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // USER_HZ, 100 on every Linux this runs on (`getconf CLK_TCK`).
        Ok(ticks as f64 / 100.0)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
