//! The audit log: who did what, when, and how it went (issue 14).
//!
//! Gateways record one entry per finished client request (tool call, resource read, prompt
//! get, sandbox run; refusals too) into a bounded queue of their own and ship them here in
//! batches (`ConfigService.ReportAudit`); the control plane records the admin changes it
//! makes itself ([`admin::record_admin_changes`]). Both are queued as `AuditBatch`es (each
//! text once, rows naming texts by index: `mcpr_proto::audit_batch`) in a bounded queue
//! again, emptied by one writer task that stores each batch as a chunk, then feeds the
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

use crate::keys::mcp_token::AUDIT_CLIENT;
use crate::keys::now_ms;
use crate::store::{AuditRecord, MAX_CHUNK, Store, audit_record, batch_of};

/// Records waiting for the writer, at most: beyond, new ones are dropped and counted.
pub const MAX_QUEUED: usize = 50_000;
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
    queue: mpsc::UnboundedSender<pb::AuditBatch>,
    /// Records in `queue` (the bound is on records, not batches), at most `max_queued`.
    queued: AtomicUsize,
    max_queued: usize,
    written: AtomicU64,
    dropped_by_gateways: AtomicU64,
    dropped_by_control_plane: AtomicU64,
    pruned: AtomicU64,
    activity: Mutex<activity::Activity>,
    feed: broadcast::Sender<Arc<Stored>>,
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
            feed: broadcast::channel(256).0,
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
            batches: true,
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
        self.submit_batch(batch_of(&records))
    }

    fn submit_batch(&self, batch: pb::AuditBatch) -> bool {
        let n = batch.rows.len();
        if n == 0 || !self.settings.enabled {
            return n == 0;
        }
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.max_queued || self.queue.send(batch).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.dropped_by_control_plane
                .fetch_add(n as u64, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A gateway's report: checked and bounded row by row (it is input), then queued.
    pub fn ingest(&self, report: pb::AuditReport) {
        self.dropped_by_gateways
            .fetch_add(report.dropped, Ordering::Relaxed);
        let (batch, malformed) = checked(report, now_ms());
        self.dropped_by_control_plane
            .fetch_add(malformed, Ordering::Relaxed);
        self.submit_batch(batch);
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

    /// Every batch once stored, for the live feed (`events.rs`). A receiver that lags
    /// loses records (the API has them all).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Stored>> {
        self.feed.subscribe()
    }

    pub fn activity(&self) -> Vec<activity::ServerActivity> {
        self.activity.lock().unwrap().report(now_ms())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// A batch as the writer stored it, in chunk `chunk`.
pub struct Stored {
    chunk: String,
    batch: pb::AuditBatch,
}

impl Stored {
    /// Its records, as the API shows them.
    pub fn records(&self) -> impl Iterator<Item = AuditRecord> + '_ {
        (0..self.batch.rows.len()).map(|i| audit_record(&self.batch, i, &self.chunk))
    }
}

/// The writer: takes what is queued (up to [`MAX_CHUNK`] records), stores it as one chunk,
/// then counts it into the activity window and the feed.
async fn write_batches(
    audit: std::sync::Weak<Audit>,
    mut batches: mpsc::UnboundedReceiver<pb::AuditBatch>,
) {
    let mut next: Option<pb::AuditBatch> = None;
    loop {
        let first = match next.take() {
            Some(batch) => batch,
            None => match batches.recv().await {
                Some(batch) => batch,
                None => return,
            },
        };
        let Some(audit) = audit.upgrade() else { return };
        let mut first = first;
        if first.rows.len() > MAX_CHUNK {
            let rest = first.rows.split_off(MAX_CHUNK);
            next = Some(pb::AuditBatch {
                texts: first.texts.clone(),
                rows: rest,
            });
        }
        // Absorbing copies only the texts the rows name: a chunk holds no text it does not
        // use. A batch alone is stored as it came: a gateway's batch names no other texts,
        // but for the rare few that a retry's cut or a bound's check left behind.
        let mut batch = first;
        let mut builder: Option<pb::AuditBatchBuilder> = None;
        while next.is_none() {
            let rows = builder.as_ref().map_or(batch.rows.len(), |b| b.rows());
            let more = match batches.try_recv() {
                Ok(more) if rows + more.rows.len() <= MAX_CHUNK => more,
                Ok(more) => {
                    next = Some(more);
                    break;
                }
                Err(_) => break,
            };
            let builder = builder.get_or_insert_with(|| {
                let mut builder = pb::AuditBatchBuilder::new();
                builder.absorb(std::mem::take(&mut batch));
                builder
            });
            builder.absorb(more);
        }
        if let Some(builder) = builder {
            batch = builder.finish();
        }
        let n = batch.rows.len();
        audit.queued.fetch_sub(n, Ordering::AcqRel);
        let chunk = match audit.store.insert_audit_batch(&batch).await {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::warn!(error = %e, records = n, "storing audit records failed; dropped");
                audit
                    .dropped_by_control_plane
                    .fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
        };
        audit.written.fetch_add(n as u64, Ordering::Relaxed);
        let now = now_ms();
        // Admin changes are no calls; the tools an admin tried (an admin MCP token's calls,
        // through a gateway) are.
        let is_call = |r: &pb::AuditRow| {
            batch.text(r.who_kind) != "admin" || batch.text(r.who_client) == AUDIT_CLIENT
        };
        audit
            .activity
            .lock()
            .unwrap()
            .add_rows(&batch, is_call, now);
        // Records are written out only for a feed that shows them (`Stored::records`).
        if audit.feed.receiver_count() > 0 {
            let _ = audit.feed.send(Arc::new(Stored { chunk, batch }));
        }
    }
}

/// The id of a record the control plane makes itself (an admin change): unique across
/// control planes and in time order (UUIDv7: the time in milliseconds, then random bits
/// from a thread's CSPRNG, `uuid`'s `fast-rng`). A gateway's records take their chunk's id
/// and their place in it instead (`store::audit_record`).
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

/// A gateway's report as a batch of checked rows (of its `batch` and of the `entries` of a
/// gateway of before batches), and how many rows were malformed and left out. Each row is
/// checked by its texts' indexes; a text past a field's bound is cut into a new text.
fn checked(report: pb::AuditReport, now: i64) -> (pb::AuditBatch, u64) {
    let source = bounded(report.gateway_id, 128);
    let mut batch = report.batch.unwrap_or_default();
    let mut malformed = 0;
    if batch.texts.first().is_some_and(|t| !t.is_empty()) {
        tracing::warn!(gateway = %source, rows = batch.rows.len(), "audit report dropped: its first text is not the empty one");
        malformed += batch.rows.len() as u64;
        batch = pb::AuditBatch::default();
    }
    let mut builder = pb::AuditBatchBuilder::from_batch(batch);
    for entry in report.entries {
        builder.push_entry(entry);
    }
    let source_text = builder.text(&source);
    let mut batch = builder.finish();
    let pb::AuditBatch { texts, rows } = &mut batch;
    let mut facts: Vec<Facts> = texts.iter().map(|t| Facts::of(t)).collect();
    rows.retain_mut(
        |row| match check_row(texts, &mut facts, row, source_text, now) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(gateway = %source, why, "malformed audit entry dropped");
                malformed += 1;
                false
            }
        },
    );
    (batch, malformed)
}

/// What [`check_row`] asks of a text, found once for each text of a report rather than once
/// for each row that names it: a report's rows name a handful of texts over and over.
#[derive(Clone, Copy)]
struct Facts {
    len: usize,
    outcome: bool,
    refused: bool,
    kind: bool,
    admin: bool,
    audit_client: bool,
}

impl Facts {
    fn of(text: &str) -> Facts {
        Facts {
            len: text.len(),
            outcome: OUTCOMES.contains(&text),
            refused: text == "refused",
            kind: WHO_KINDS.contains(&text),
            admin: text == "admin",
            audit_client: text == AUDIT_CLIENT,
        }
    }
}

fn check_row(
    texts: &mut Vec<String>,
    facts: &mut Vec<Facts>,
    row: &mut pb::AuditRow,
    source: u32,
    now: i64,
) -> Result<(), &'static str> {
    // A gateway names neither the source nor an id: the control plane does.
    row.source = 0;
    row.id.clear();
    if row.text_fields().iter().any(|&i| i as usize >= facts.len()) {
        return Err("a text index past the report's texts");
    }
    let fact = |i: u32| facts[i as usize];
    let (kind, outcome) = (fact(row.who_kind), fact(row.outcome));
    if !outcome.outcome {
        return Err("unknown outcome");
    }
    // A gateway names an admin only as the caller of an admin MCP token (`keys/mcp_token.rs`),
    // marked so: it cannot pass a record off as an admin change made through the API.
    if !kind.kind || (kind.admin && !fact(row.who_client).audit_client) {
        return Err("unknown kind of caller");
    }
    // A request refused by the gateway's authentication step was refused before its body
    // (and so its method) was read.
    if fact(row.method).len == 0 && !outcome.refused {
        return Err("no method");
    }
    for (field, max) in [
        (&mut row.who_id, 256),
        (&mut row.who_name, 256),
        (&mut row.who_client, 256),
        (&mut row.method, 128),
        (&mut row.view, 64),
        (&mut row.provider, 256),
        (&mut row.target, 1024),
        (&mut row.reason, 1024),
    ] {
        if facts[*field as usize].len > max {
            let cut = bounded(texts[*field as usize].clone(), max);
            facts.push(Facts::of(&cut));
            texts.push(cut);
            *field = (texts.len() - 1) as u32;
        }
    }
    if row.trace_id.len() > 64 {
        row.trace_id = bounded(std::mem::take(&mut row.trace_id), 64);
    }
    if row.arguments.len() > MAX_ARGUMENTS_BYTES {
        row.arguments = bounded(std::mem::take(&mut row.arguments), MAX_ARGUMENTS_BYTES);
    }
    // A gateway's clock may be off; a time far from ours is replaced by ours.
    if (row.at_ms - now).abs() > 86_400_000 {
        row.at_ms = now;
    }
    row.source = source;
    Ok(())
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

    /// The records `checked` keeps of `entries` (as a gateway of before batches sends them)
    /// and of the same entries as a batch, which must agree; and how many it left out.
    fn checked_both(entries: Vec<pb::AuditEntry>) -> (Vec<AuditRecord>, u64) {
        let report = |entries: Vec<pb::AuditEntry>, batch| pb::AuditReport {
            gateway_id: "gw-1".into(),
            entries,
            dropped: 0,
            batch,
        };
        let mut builder = pb::AuditBatchBuilder::new();
        for entry in entries.clone() {
            builder.push_entry(entry);
        }
        let (old, old_malformed) = checked(report(entries, None), now_ms());
        let (new, new_malformed) = checked(report(Vec::new(), Some(builder.finish())), now_ms());
        let records = |batch: &pb::AuditBatch| -> Vec<AuditRecord> {
            (0..batch.rows.len())
                .map(|i| audit_record(batch, i, "c"))
                .collect()
        };
        assert_eq!(records(&old), records(&new));
        assert_eq!(old_malformed, new_malformed);
        (records(&new), new_malformed)
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
        let (kept, malformed) = checked_both(vec![admin("mcp_token"), admin("")]);
        assert_eq!(malformed, 1);
        assert_eq!(
            (
                kept[0].who_kind.as_str(),
                kept[0].who_id.as_str(),
                kept[0].who_client.as_str(),
                kept[0].source.as_str()
            ),
            ("admin", "session-1", "mcp_token", "gw-1")
        );
    }

    #[test]
    fn rows_are_checked_by_their_texts_and_cut_to_their_bounds() {
        let mut long = entry("error");
        long.target = "t".repeat(5000);
        long.view = "v".repeat(100);
        let (kept, malformed) = checked_both(vec![long, entry("sideways"), {
            let mut no_method = entry("ok");
            no_method.method.clear();
            no_method
        }]);
        assert_eq!(malformed, 2);
        assert_eq!((kept[0].target.len(), kept[0].view.len()), (1024, 64));
        // Indexes past the texts, and a first text that is not the empty one.
        let row = |target| pb::AuditRow {
            at_ms: now_ms(),
            who_kind: 1,
            method: 2,
            outcome: 3,
            target,
            ..Default::default()
        };
        let texts: Vec<String> = ["", "stdio", "tools/call", "ok"].map(String::from).into();
        let report = |texts: Vec<String>| pb::AuditReport {
            batch: Some(pb::AuditBatch {
                texts,
                rows: vec![row(0), row(4), row(3)],
            }),
            ..Default::default()
        };
        let (batch, malformed) = checked(report(texts.clone()), now_ms());
        assert_eq!((batch.rows.len(), malformed), (2, 1));
        let mut shifted = texts;
        shifted[0] = "x".into();
        assert_eq!(checked(report(shifted), now_ms()).1, 3);
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
        let mut batch = pb::AuditBatchBuilder::new();
        for e in [entry("ok"), long, entry("sideways"), {
            let mut admin = entry("ok");
            admin.who_kind = "admin".into();
            admin
        }] {
            batch.push_entry(e);
        }
        audit.ingest(pb::AuditReport {
            gateway_id: "gw-1".into(),
            entries: Vec::new(),
            dropped: 5,
            batch: Some(batch.finish()),
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
        let stored = feed.recv().await.unwrap();
        assert_eq!(stored.records().next().unwrap().provider, "time");
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
