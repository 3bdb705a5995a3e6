//! The audit log: who did what, when, and how it went (issue 14).
//!
//! Gateways record one entry per finished client request (tool call, resource read, prompt
//! get, sandbox run; refusals too) into a bounded queue of their own and ship them here in
//! batches (`ConfigService.ReportAudit`); the control plane records the admin changes it
//! makes itself ([`admin::record_admin_changes`]). Both go through [`Audit::submit`]: a
//! bounded queue again, emptied by one writer task that inserts in batches, then feeds the
//! Activity window ([`activity`]) and the live feed ([`Audit::subscribe`]). Nothing here is on
//! an MCP request's path; what does not fit a queue is dropped and counted ([`AuditStats`]).
//!
//! Settings, read once at start (docs/OBSERVABILITY.md): `MCPR_AUDIT=off` stops recording,
//! `MCPR_AUDIT_ARGUMENTS=hash|full` keeps the call arguments (sent to gateways in the
//! snapshot), `MCPR_AUDIT_RETENTION_DAYS` (default 30) is how long rows are kept; the prune
//! runs at start and hourly.

pub mod activity;
pub mod admin;
pub mod api;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpr_proto as pb;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::keys::now_ms;
use crate::store::{AuditRecord, Store};

/// Records waiting for the writer, at most: beyond, new ones are dropped and counted.
pub const MAX_QUEUED: usize = 50_000;
/// Records one insert transaction takes at most.
const MAX_BATCH: usize = 1000;
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Whose record an admin change or a control-plane record is (`source`).
pub const CONTROL_PLANE_SOURCE: &str = "control-plane";

/// Whether call arguments are kept (`MCPR_AUDIT_ARGUMENTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arguments {
    Off,
    /// `sha256:` and the hex SHA-256 of the canonical JSON (keys sorted, no spaces).
    Hash,
    Full,
}

impl Arguments {
    pub fn as_str(self) -> &'static str {
        match self {
            Arguments::Off => "",
            Arguments::Hash => "hash",
            Arguments::Full => "full",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub enabled: bool,
    pub arguments: Arguments,
    pub retention_days: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            arguments: Arguments::Off,
            retention_days: 30,
        }
    }
}

impl AuditSettings {
    /// Reads `MCPR_AUDIT`, `MCPR_AUDIT_ARGUMENTS` and `MCPR_AUDIT_RETENTION_DAYS` through `get`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<AuditSettings> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_ascii_lowercase())
                .filter(|v| !v.is_empty())
        };
        let enabled = match value("MCPR_AUDIT").as_deref() {
            None | Some("on" | "1" | "true") => true,
            Some("off" | "0" | "false") => false,
            Some(other) => anyhow::bail!("MCPR_AUDIT must be on or off, got {other:?}"),
        };
        let arguments = match value("MCPR_AUDIT_ARGUMENTS").as_deref() {
            None | Some("off" | "none") => Arguments::Off,
            Some("hash") => Arguments::Hash,
            Some("full") => Arguments::Full,
            Some(other) => {
                anyhow::bail!("MCPR_AUDIT_ARGUMENTS must be hash, full or off, got {other:?}")
            }
        };
        let retention_days = match value("MCPR_AUDIT_RETENTION_DAYS") {
            None => 30,
            Some(text) => text.parse::<u32>().ok().filter(|d| *d > 0).ok_or_else(|| {
                anyhow::anyhow!(
                    "MCPR_AUDIT_RETENTION_DAYS must be a whole number of days above 0, got {text:?}"
                )
            })?,
        };
        Ok(AuditSettings {
            enabled,
            arguments,
            retention_days,
        })
    }
}

/// `GET /api/v1/audit/stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditStats {
    pub enabled: bool,
    pub arguments: Arguments,
    pub retention_days: u32,
    /// Records stored since this control plane started.
    pub written: u64,
    /// Waiting for the writer now.
    pub queued: usize,
    /// Dropped in all: `dropped_by_gateways + dropped_by_control_plane`.
    pub dropped: u64,
    /// Reported by gateways whose queue was full.
    pub dropped_by_gateways: u64,
    /// This control plane's queue was full, an entry was malformed, or an insert failed.
    pub dropped_by_control_plane: u64,
    /// Rows the retention prune deleted since start.
    pub pruned: u64,
}

pub struct Audit {
    store: Store,
    settings: AuditSettings,
    queue: mpsc::UnboundedSender<Vec<AuditRecord>>,
    /// Records in `queue` (the bound is on records, not batches), at most `max_queued`.
    queued: AtomicUsize,
    max_queued: usize,
    written: AtomicU64,
    dropped_by_gateways: AtomicU64,
    dropped_by_control_plane: AtomicU64,
    pruned: AtomicU64,
    activity: Mutex<activity::Activity>,
    feed: broadcast::Sender<Arc<AuditRecord>>,
}

impl Audit {
    /// Rebuilds the activity window from the table, prunes, and starts the writer and the
    /// hourly prune.
    pub async fn start(store: Store, settings: AuditSettings) -> anyhow::Result<Arc<Audit>> {
        Self::start_bounded(store, settings, MAX_QUEUED).await
    }

    async fn start_bounded(
        store: Store,
        settings: AuditSettings,
        max_queued: usize,
    ) -> anyhow::Result<Arc<Audit>> {
        let (queue, batches) = mpsc::unbounded_channel();
        let audit = Arc::new(Audit {
            store,
            settings,
            queue,
            queued: AtomicUsize::new(0),
            max_queued,
            written: AtomicU64::new(0),
            dropped_by_gateways: AtomicU64::new(0),
            dropped_by_control_plane: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
            activity: Mutex::new(activity::Activity::default()),
            feed: broadcast::channel(1024).0,
        });
        audit.prune().await;
        let now = now_ms();
        let rows = audit
            .store
            .audit_activity_since(now - activity::WINDOW_MS)
            .await?;
        {
            let mut window = audit.activity.lock().unwrap();
            for row in &rows {
                window.add(row.at_ms, &row.provider, &row.outcome, row.duration_us, now);
            }
        }
        tokio::spawn(write_batches(Arc::downgrade(&audit), batches));
        let pruner = Arc::downgrade(&audit);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(audit) = pruner.upgrade() else {
                    return;
                };
                audit.prune().await;
            }
        });
        Ok(audit)
    }

    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// What gateways are told to record (in every snapshot).
    pub fn policy(&self) -> pb::AuditPolicy {
        pb::AuditPolicy {
            enabled: self.settings.enabled,
            arguments: self.settings.arguments.as_str().to_owned(),
        }
    }

    /// Deletes what is older than the retention.
    pub async fn prune(&self) -> u64 {
        let cut = now_ms() - i64::from(self.settings.retention_days) * 86_400_000;
        match self.store.prune_audit(cut).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(rows = n, "pruned audit records past retention");
                }
                self.pruned.fetch_add(n, Ordering::Relaxed);
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning the audit log failed");
                0
            }
        }
    }

    /// Queues records for the writer; false (and counted as dropped) when the queue is full
    /// or auditing is off.
    pub fn submit(&self, records: Vec<AuditRecord>) -> bool {
        let n = records.len();
        if n == 0 || !self.settings.enabled {
            return n == 0;
        }
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.max_queued || self.queue.send(records).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.dropped_by_control_plane
                .fetch_add(n as u64, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A gateway's batch: checked and bounded field by field (it is input), then queued.
    pub fn ingest(&self, report: pb::AuditReport) {
        self.dropped_by_gateways
            .fetch_add(report.dropped, Ordering::Relaxed);
        let now = now_ms();
        let source = bounded(report.gateway_id, 128);
        let mut records = Vec::with_capacity(report.entries.len());
        for entry in report.entries {
            match record_of(entry, &source, now) {
                Ok(r) => records.push(r),
                Err(why) => {
                    tracing::warn!(gateway = %source, why, "malformed audit entry dropped");
                    self.dropped_by_control_plane
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.submit(records);
    }

    pub fn stats(&self) -> AuditStats {
        let by_gateways = self.dropped_by_gateways.load(Ordering::Relaxed);
        let by_control_plane = self.dropped_by_control_plane.load(Ordering::Relaxed);
        AuditStats {
            enabled: self.settings.enabled,
            arguments: self.settings.arguments,
            retention_days: self.settings.retention_days,
            written: self.written.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            dropped: by_gateways + by_control_plane,
            dropped_by_gateways: by_gateways,
            dropped_by_control_plane: by_control_plane,
            pruned: self.pruned.load(Ordering::Relaxed),
        }
    }

    /// Every record once stored, for the live feed (`events.rs`). A receiver that lags
    /// loses records (the API has them all).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditRecord>> {
        self.feed.subscribe()
    }

    pub fn activity(&self) -> Vec<activity::ServerActivity> {
        self.activity.lock().unwrap().report(now_ms())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The writer: takes what is queued (up to [`MAX_BATCH`] records), inserts it in one
/// transaction, then counts it into the activity window and the feed.
async fn write_batches(
    audit: std::sync::Weak<Audit>,
    mut batches: mpsc::UnboundedReceiver<Vec<AuditRecord>>,
) {
    while let Some(first) = batches.recv().await {
        let Some(audit) = audit.upgrade() else { return };
        let mut records = first;
        while records.len() < MAX_BATCH {
            match batches.try_recv() {
                Ok(more) => records.extend(more),
                Err(_) => break,
            }
        }
        let n = records.len();
        audit.queued.fetch_sub(n, Ordering::AcqRel);
        if let Err(e) = audit.store.insert_audit(&records).await {
            tracing::warn!(error = %e, records = n, "storing audit records failed; dropped");
            audit
                .dropped_by_control_plane
                .fetch_add(n as u64, Ordering::Relaxed);
            continue;
        }
        audit.written.fetch_add(n as u64, Ordering::Relaxed);
        let now = now_ms();
        {
            let mut window = audit.activity.lock().unwrap();
            for r in &records {
                // Admin changes are no calls; the tools an admin tried (an admin MCP token's
                // calls, through a gateway) are.
                if r.who_kind != "admin" || r.who_client == crate::keys::mcp_token::AUDIT_CLIENT {
                    window.add(r.at_ms, &r.provider, &r.outcome, r.duration_us, now);
                }
            }
        }
        if audit.feed.receiver_count() > 0 {
            for r in records {
                let _ = audit.feed.send(Arc::new(r));
            }
        }
    }
}

/// A new record id: unique across control planes, so rows from several never collide, and
/// in time order (UUIDv7: the time in milliseconds, then random bits), so each insert
/// lands at the end of the primary key's index instead of anywhere in it: with random ids
/// that index cost more than the table and its other indexes together (docs/BENCHMARKS.md,
/// issue 14).
/// (`fast-rng`: the random bits come from a thread's CSPRNG, not a system call per id.)
pub fn new_id() -> String {
    let mut text = uuid::Uuid::encode_buffer();
    uuid::Uuid::now_v7()
        .simple()
        .encode_lower(&mut text)
        .to_owned()
}

/// `text` cut to at most `max` bytes, on a character boundary (in place: a gateway's
/// fields are moved into the record, not copied).
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

const WHO_KINDS: [&str; 5] = ["api_key", "oauth", "anonymous", "stdio", "admin"];
const OUTCOMES: [&str; 3] = ["ok", "error", "refused"];
/// Arguments kept in full are cut here: the log is not a payload store.
pub const MAX_ARGUMENTS_BYTES: usize = 64 * 1024;

fn record_of(e: pb::AuditEntry, source: &str, now: i64) -> Result<AuditRecord, &'static str> {
    if !OUTCOMES.contains(&e.outcome.as_str()) {
        return Err("unknown outcome");
    }
    // A gateway names an admin only as the caller of an admin MCP token (`keys/mcp_token.rs`),
    // marked so: it cannot pass a record off as an admin change made through the API.
    let admin_by_token =
        e.who_kind == "admin" && e.who_client == crate::keys::mcp_token::AUDIT_CLIENT;
    if !WHO_KINDS.contains(&e.who_kind.as_str()) || (e.who_kind == "admin" && !admin_by_token) {
        return Err("unknown kind of caller");
    }
    // A request refused by the gateway's authentication step was refused before its body
    // (and so its method) was read.
    if e.method.is_empty() && e.outcome != "refused" {
        return Err("no method");
    }
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(AuditRecord {
        id: new_id(),
        // A gateway's clock may be off; a time far from ours is replaced by ours.
        at_ms: if (e.at_ms - now).abs() > 86_400_000 {
            now
        } else {
            e.at_ms
        },
        who_kind: e.who_kind,
        who_id: bounded(e.who_id, 256),
        who_name: bounded(e.who_name, 256),
        who_client: bounded(e.who_client, 256),
        method: bounded(e.method, 128),
        view: bounded(e.view, 64),
        provider: bounded(e.provider, 256),
        target: bounded(e.target, 1024),
        outcome: e.outcome,
        error_code: e.error_code,
        reason: bounded(e.reason, 1024),
        duration_us: clamp(e.duration_us),
        request_bytes: clamp(e.request_bytes),
        response_bytes: clamp(e.response_bytes),
        trace_id: bounded(e.trace_id, 64),
        arguments: bounded(e.arguments, MAX_ARGUMENTS_BYTES),
        source: source.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::env;

    #[test]
    fn settings_from_the_environment() {
        assert_eq!(
            AuditSettings::from_env(env(&[])).unwrap(),
            AuditSettings::default()
        );
        let s = AuditSettings::from_env(env(&[
            ("MCPR_AUDIT_ARGUMENTS", "hash"),
            ("MCPR_AUDIT_RETENTION_DAYS", "7"),
        ]))
        .unwrap();
        assert_eq!(
            (s.arguments, s.retention_days, s.enabled),
            (Arguments::Hash, 7, true)
        );
        for bad in [
            ("MCPR_AUDIT_ARGUMENTS", "some"),
            ("MCPR_AUDIT_RETENTION_DAYS", "0"),
            ("MCPR_AUDIT_RETENTION_DAYS", "a week"),
            ("MCPR_AUDIT", "maybe"),
        ] {
            let e = AuditSettings::from_env(env(&[bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad.0), "{e}");
        }
    }

    fn entry(outcome: &str) -> pb::AuditEntry {
        pb::AuditEntry {
            at_ms: now_ms(),
            who_kind: "api_key".into(),
            who_id: "key_1".into(),
            method: "tools/call".into(),
            provider: "time".into(),
            target: "get_time".into(),
            outcome: outcome.into(),
            duration_us: 1200,
            ..Default::default()
        }
    }

    #[test]
    fn a_gateway_names_an_admin_only_for_an_admin_mcp_token() {
        let admin = |client: &str| pb::AuditEntry {
            who_kind: "admin".into(),
            who_id: "session-1".into(),
            who_name: "ui".into(),
            who_client: client.into(),
            ..entry("ok")
        };
        let kept = record_of(admin("mcp_token"), "gw-1", now_ms()).unwrap();
        assert_eq!(
            (
                kept.who_kind.as_str(),
                kept.who_id.as_str(),
                kept.who_client.as_str()
            ),
            ("admin", "session-1", "mcp_token")
        );
        assert_eq!(
            record_of(admin(""), "gw-1", now_ms()).unwrap_err(),
            "unknown kind of caller"
        );
    }

    async fn wait_written(audit: &Audit, n: u64) {
        for _ in 0..3000 {
            if audit.stats().written >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("only {:?} written", audit.stats());
    }

    #[tokio::test]
    async fn gateway_batches_are_checked_stored_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let audit = Audit::start(store, AuditSettings::default()).await.unwrap();
        let mut feed = audit.subscribe();
        let mut long = entry("error");
        long.reason = "é".repeat(2000);
        long.at_ms = 1;
        audit.ingest(pb::AuditReport {
            gateway_id: "gw-1".into(),
            entries: vec![entry("ok"), long, entry("sideways"), {
                let mut admin = entry("ok");
                admin.who_kind = "admin".into();
                admin
            }],
            dropped: 5,
        });
        wait_written(&audit, 2).await;
        let stats = audit.stats();
        assert_eq!(
            (
                stats.written,
                stats.dropped_by_gateways,
                stats.dropped_by_control_plane,
                stats.dropped
            ),
            (2, 5, 2, 7)
        );
        let (rows, _) = audit
            .store()
            .list_audit(&Default::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let error = rows.iter().find(|r| r.outcome == "error").unwrap();
        assert_eq!(error.reason.len(), 1024);
        // Its time was a day off ours: replaced.
        assert!(error.at_ms > now_ms() - 60_000);
        assert!(rows.iter().all(|r| r.source == "gw-1"));
        assert_eq!(feed.recv().await.unwrap().provider, "time");
        let activity = audit.activity();
        assert_eq!(activity[0].total.calls, 2);
        assert_eq!(activity[0].total.errors, 1);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let bound = 100;
        let audit = Audit::start_bounded(store, AuditSettings::default(), bound)
            .await
            .unwrap();
        // Fill the queue to the brim before the writer runs (this test's runtime is single
        // threaded: the writer cannot take anything until we yield).
        let record = |i: usize| AuditRecord {
            id: format!("r{i}"),
            at_ms: now_ms(),
            who_kind: "stdio".into(),
            method: "tools/call".into(),
            outcome: "ok".into(),
            ..Default::default()
        };
        assert!(audit.submit((0..bound - 1).map(record).collect()));
        assert!(!audit.submit(vec![record(bound), record(bound + 1)]));
        assert!(audit.submit(vec![record(bound + 2)]));
        assert!(!audit.submit(vec![record(bound + 3)]));
        let stats = audit.stats();
        assert_eq!((stats.queued, stats.dropped_by_control_plane), (bound, 3));
        wait_written(&audit, bound as u64).await;
        assert_eq!(audit.stats().queued, 0);
        assert!(audit.submit(vec![record(bound + 4)]));
    }

    #[tokio::test]
    async fn retention_prunes_old_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let day = 86_400_000;
        let now = now_ms();
        let rows: Vec<AuditRecord> = [now - 31 * day, now - 29 * day, now - 3 * day, now]
            .iter()
            .enumerate()
            .map(|(i, &at)| AuditRecord {
                id: format!("r{i}"),
                at_ms: at,
                who_kind: "stdio".into(),
                method: "tools/call".into(),
                outcome: "ok".into(),
                ..Default::default()
            })
            .collect();
        store.insert_audit(&rows).await.unwrap();
        // The prune at start keeps 30 days by default.
        let audit = Audit::start(store.clone(), AuditSettings::default())
            .await
            .unwrap();
        assert_eq!(audit.stats().pruned, 1);
        let seven = Audit::start(
            store.clone(),
            AuditSettings {
                retention_days: 7,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(seven.stats().pruned, 1);
        assert_eq!(seven.prune().await, 0);
        let (left, _) = store
            .list_audit(&Default::default(), None, 10)
            .await
            .unwrap();
        let ids: Vec<_> = left.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r3", "r2"]);
    }
}
