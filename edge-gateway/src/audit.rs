//! The gateway's half of the audit log (docs/OBSERVABILITY.md, "Audit"): the per-call seam's
//! audit sink ([`AuditQueue`], `observe/mod.rs`) copies what the log keeps of a finished
//! tool call, resource read, prompt get or sandbox run (and of any refused request) onto a
//! bounded queue, and [`ship`] sends the queue to the control plane in batches
//! (`ConfigService.ReportAudit`), every [`SHIP_INTERVAL`] or as soon as [`SHIP_BATCH`] wait.
//!
//! On the request path this is one snapshot load, a few small copies and one uncontended
//! lock; it never waits. A full queue drops the record and counts it; the count rides the
//! next report. What to record (on or off, arguments or not) comes from the control plane in
//! the snapshot, so one setting holds for every gateway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use mcpr_proto as pb;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::Gateway;
use crate::access::Who;
use crate::observe::{CallRecord, CallSink, Outcome};
use crate::snapshot::{AuditArguments, Snapshot};

/// Records waiting to be shipped, at most; beyond, new ones are dropped and counted.
pub const MAX_QUEUED: usize = 10_000;
pub const SHIP_INTERVAL: Duration = Duration::from_millis(500);
/// This many waiting wake the shipper before its interval: one stored chunk's worth.
pub const SHIP_BATCH: usize = pb::audit_batch::CHUNK_ROWS;
/// Arguments kept in full are cut here (the control plane cuts there too).
const MAX_ARGUMENTS_BYTES: usize = 64 * 1024;

/// The methods the log keeps (any refused request is kept too): what a caller did, not how
/// its client looked around (lists, initialize, ping).
const AUDITED: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

pub struct AuditQueue {
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The records waiting, each text once (`mcpr_proto::audit_batch`).
    queue: Mutex<pb::AuditBatchBuilder>,
    max_queued: usize,
    /// Dropped since the last report (the control plane counts them too).
    dropped: AtomicU64,
    /// Lost for good since start, for this gateway's metrics.
    lost: AtomicU64,
    wake: Notify,
    /// Set where the control plane runs in this process (`mcpr up`): reports are handed to
    /// it instead of encoded, framed and decoded again over loopback gRPC.
    local: OnceLock<LocalAudit>,
}

/// Takes a gateway's audit report in the same process: the control plane's `ReportAudit`
/// without the wire (it checks the report as it would one from the network).
pub type LocalAudit = Arc<dyn Fn(pb::AuditReport) + Send + Sync>;

impl AuditQueue {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> AuditQueue {
        AuditQueue::bounded(snapshot, MAX_QUEUED)
    }

    fn bounded(snapshot: Arc<ArcSwap<Snapshot>>, max_queued: usize) -> AuditQueue {
        AuditQueue {
            snapshot,
            queue: Mutex::new(pb::AuditBatchBuilder::new()),
            max_queued,
            dropped: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            wake: Notify::new(),
            local: OnceLock::new(),
        }
    }

    /// Records dropped since the last report.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records lost for good since start: the queue was full, or stayed full while the
    /// control planes could not be reached.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Hands reports to `local` from now on (once: a later call changes nothing).
    pub fn report_locally(&self, local: LocalAudit) {
        let _ = self.local.set(local);
    }

    /// Records waiting to be shipped.
    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap().rows()
    }

    /// Takes what waits: the records and the count of those dropped.
    fn take(&self) -> (pb::AuditBatch, u64) {
        let mut queue = self.queue.lock().unwrap();
        // Room for as many as came since the last take (up to a shipment), so that a busy
        // queue does not grow its rows by copying them, nor an idle one hold room.
        let room = queue.rows().min(SHIP_BATCH);
        let batch = std::mem::replace(&mut *queue, pb::AuditBatchBuilder::with_capacity(room));
        drop(queue);
        let batch = batch.finish();
        (batch, self.dropped.swap(0, Ordering::Relaxed))
    }

    /// Puts back what could not be sent, before what came meanwhile, as far as it fits.
    fn put_back(&self, batch: pb::AuditBatch, dropped: u64) {
        let mut queue = self.queue.lock().unwrap();
        let room = self.max_queued.saturating_sub(queue.rows());
        let lost = batch.rows.len().saturating_sub(room);
        let mut again = pb::AuditBatchBuilder::from_batch(batch);
        again.truncate(room);
        again.absorb(queue.take());
        *queue = again;
        self.dropped
            .fetch_add(dropped + lost as u64, Ordering::Relaxed);
        self.lost.fetch_add(lost as u64, Ordering::Relaxed);
    }
}

impl CallSink for AuditQueue {
    fn record(&self, record: &CallRecord<'_>) {
        let refused = matches!(record.outcome, Outcome::Refused(_));
        if !refused && !AUDITED.contains(&record.method) {
            return;
        }
        let snapshot = self.snapshot.load();
        let policy = &snapshot.audit;
        if !policy.enabled {
            return;
        }
        let (who_kind, who_id, who_name, who_client) = match record.caller {
            Who::Stdio => ("stdio", "", "", ""),
            Who::Anonymous => ("anonymous", "", "", ""),
            Who::ApiKey(key) => ("api_key", key.id.as_str(), key.name.as_str(), ""),
            // The admin session that minted the token, and its kind (`keys/mcp_token.rs` of the
            // control plane); `who_client` marks it as an admin MCP token's call.
            Who::Admin(admin) => ("admin", admin.id.as_str(), admin.name.as_str(), "mcp_token"),
            Who::OAuth(token) => (
                "oauth",
                token.subject.as_str(),
                "",
                token.client_id.as_str(),
            ),
        };
        let (outcome, error_code, reason) = match record.outcome {
            Outcome::Ok => ("ok", 0, ""),
            Outcome::ToolError => ("error", 0, "tool_error"),
            Outcome::Error(code) => ("error", code, ""),
            Outcome::Refused(why) => ("refused", 0, why.reason()),
        };
        let arguments = match (policy.arguments, record.arguments) {
            (AuditArguments::Off, _) | (_, None) => String::new(),
            (AuditArguments::Hash, Some(json)) => argument_hash(json),
            (AuditArguments::Full, Some(json)) => cut(json, MAX_ARGUMENTS_BYTES),
        };
        drop(snapshot);
        let duration_us = record.duration.as_micros() as u64;
        let mut queue = self.queue.lock().unwrap();
        if queue.rows() >= self.max_queued {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut row = pb::AuditRow {
            at_ms: now_ms(),
            error_code,
            duration_us,
            request_bytes: record.request_bytes as u64,
            response_bytes: record.response_bytes as u64,
            arguments,
            ..Default::default()
        };
        // In `AuditRow::text_fields_mut`'s order; the source is the control plane's to set.
        let texts = [
            who_kind,
            who_id,
            who_name,
            who_client,
            record.method,
            record.view,
            record.provider.unwrap_or_default(),
            record.target.unwrap_or_default(),
            outcome,
            reason,
            "",
        ];
        queue.name_texts(&mut row, texts);
        queue.push(row);
        let wake = queue.rows() == SHIP_BATCH;
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The canonical form of a JSON value: object keys sorted (recursively), no whitespace.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `sha256:` and the hex SHA-256 of the arguments' canonical JSON (`MCPR_AUDIT_ARGUMENTS=hash`):
/// equal arguments hash alike whatever their key order or spacing.
pub fn argument_hash(json: &str) -> String {
    let mut text = String::new();
    match serde_json::from_str::<Value>(json) {
        Ok(value) => canonical(&value, &mut text),
        Err(_) => text.push_str(json),
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The report of `batch`: as it is to a control plane that takes batches, its rows as
/// entries to one of before them.
fn report_of(
    gateway_id: &str,
    batch: pb::AuditBatch,
    dropped: u64,
    batches: bool,
) -> pb::AuditReport {
    let (entries, batch) = if batches {
        (Vec::new(), Some(batch))
    } else {
        (batch.entries(), None)
    };
    pb::AuditReport {
        gateway_id: gateway_id.to_owned(),
        entries,
        dropped,
        batch,
    }
}

/// Ships the gateway's queue to the control plane until the gateway is gone; a report that
/// fails is put back (as far as the bound allows) and tried again.
pub async fn ship(
    gateway: Weak<Gateway>,
    queue: Arc<AuditQueue>,
    control_planes: mcpr_tls::control_planes::ControlPlanes,
) {
    let mut failover = mcpr_tls::control_planes::Failover::new(&control_planes);
    let gateway_id = match gateway.upgrade() {
        Some(gw) => gw.config.gateway_id.clone(),
        None => return,
    };
    let mut client: Option<
        pb::config_service_client::ConfigServiceClient<mcpr_tls::cluster::GrpcChannel>,
    > = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SHIP_INTERVAL) => {}
            _ = queue.wake.notified() => {}
        }
        let Some(gw) = gateway.upgrade() else { return };
        let (batch, dropped) = queue.take();
        if batch.rows.is_empty() && dropped == 0 {
            continue;
        }
        if let Some(local) = queue.local.get() {
            // Of the same build: it takes batches.
            local(report_of(&gateway_id, batch, dropped, true));
            continue;
        }
        if client.is_none() {
            client = crate::access::config_client(&gw, &control_planes, &failover).await;
        }
        drop(gw);
        // Kept for a retry (the report is sent by value): a batch's rows name their texts,
        // so the copy is of the rows and a few texts.
        let kept = batch.clone();
        let batches = queue.snapshot.load().audit.batches;
        let report = report_of(&gateway_id, batch, dropped, batches);
        let failed = match client.as_mut() {
            Some(c) => c.report_audit(report).await.err().map(|s| s.to_string()),
            None => Some("cannot reach the control plane".to_owned()),
        };
        if let Some(why) = failed {
            let batch = kept;
            tracing::debug!(
                why,
                records = batch.rows.len(),
                "audit report failed; will retry"
            );
            client = None;
            // The next round tries the next control plane; the records wait in the queue.
            failover.next(false);
            queue.put_back(batch, dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::KeyGrant;
    use crate::observe::Refusal;

    fn call<'a>(
        who: &'a Who,
        method: &'a str,
        outcome: Outcome,
        arguments: Option<&'a str>,
    ) -> CallRecord<'a> {
        CallRecord {
            method,
            target: Some("get_time"),
            tool_known: true,
            provider: Some("time"),
            view: "flat",
            caller: who,
            session: None,
            protocol_version: None,
            outcome,
            duration: Duration::from_micros(1500),
            request_bytes: 10,
            response_bytes: 20,
            arguments,
        }
    }

    fn snapshot_with(enabled: bool, arguments: &str) -> Arc<ArcSwap<Snapshot>> {
        Arc::new(ArcSwap::from_pointee(Snapshot::from_proto(
            pb::ConfigSnapshot {
                audit: Some(pb::AuditPolicy {
                    enabled,
                    arguments: arguments.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )))
    }

    #[test]
    fn records_what_the_log_keeps() {
        let queue = AuditQueue::new(snapshot_with(true, ""));
        let key = Who::ApiKey(Arc::new(KeyGrant {
            id: "key_1".into(),
            name: "ci".into(),
            hash: [0; 32],
            access: crate::access::everything(),
            expires_at_ms: 0,
            revoked: false,
        }));
        queue.record(&call(&key, "tools/call", Outcome::Ok, Some("{\"a\":1}")));
        queue.record(&call(&key, "tools/list", Outcome::Ok, None));
        queue.record(&call(
            &Who::Stdio,
            "prompts/get",
            Outcome::Error(-32602),
            None,
        ));
        queue.record(&call(
            &Who::Anonymous,
            "",
            Outcome::Refused(Refusal::RateLimitAddress),
            None,
        ));
        let (batch, dropped) = queue.take();
        let entries = batch.entries();
        assert_eq!(dropped, 0);
        let summary: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.who_kind.as_str(),
                    e.method.as_str(),
                    e.outcome.as_str(),
                    e.error_code,
                    e.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("api_key", "tools/call", "ok", 0, ""),
                ("stdio", "prompts/get", "error", -32602, ""),
                ("anonymous", "", "refused", 0, "rate_limit_address"),
            ]
        );
        let first = &entries[0];
        assert_eq!(
            (first.who_id.as_str(), first.who_name.as_str()),
            ("key_1", "ci")
        );
        assert_eq!(
            (
                first.provider.as_str(),
                first.target.as_str(),
                first.view.as_str()
            ),
            ("time", "get_time", "flat")
        );
        assert_eq!(
            (first.duration_us, first.request_bytes, first.response_bytes),
            (1500, 10, 20)
        );
        // Arguments are not kept unless asked for.
        assert_eq!(first.arguments, "");

        let off = AuditQueue::new(snapshot_with(false, ""));
        off.record(&call(&Who::Stdio, "tools/call", Outcome::Ok, None));
        assert!(off.take().0.rows.is_empty());
    }

    #[test]
    fn arguments_hashed_canonically_or_kept() {
        let hashed = AuditQueue::new(snapshot_with(true, "hash"));
        hashed.record(&call(
            &Who::Stdio,
            "tools/call",
            Outcome::Ok,
            Some("{\"b\": [1, {\"y\":2,\"x\":1}], \"a\": \"é\"}"),
        ));
        hashed.record(&call(
            &Who::Stdio,
            "tools/call",
            Outcome::Ok,
            Some("{\"a\":\"é\",\"b\":[1,{\"x\":1,\"y\":2}]}"),
        ));
        let entries = hashed.take().0.entries();
        assert_eq!(entries[0].arguments, entries[1].arguments);
        // sha256 of the canonical text, computed independently.
        let expected = Sha256::digest("{\"a\":\"é\",\"b\":[1,{\"x\":1,\"y\":2}]}".as_bytes());
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(entries[0].arguments, format!("sha256:{hex}"));
        let full = AuditQueue::new(snapshot_with(true, "full"));
        full.record(&call(
            &Who::Stdio,
            "tools/call",
            Outcome::Ok,
            Some("{\"q\": 1}"),
        ));
        assert_eq!(full.take().0.entries()[0].arguments, "{\"q\": 1}");
    }

    #[test]
    fn a_control_plane_of_before_batches_is_sent_entries() {
        let queue = AuditQueue::new(snapshot_with(true, ""));
        queue.record(&call(&Who::Stdio, "tools/call", Outcome::Ok, None));
        let (batch, _) = queue.take();
        let entries = batch.entries();
        let new = report_of("gw", batch.clone(), 2, true);
        assert_eq!(
            (new.batch.as_ref(), new.entries.len(), new.dropped),
            (Some(&batch), 0, 2)
        );
        let old = report_of("gw", batch, 2, false);
        assert_eq!((old.batch, old.entries), (None, entries));
        // What a snapshot without the flag (a control plane of before batches) says.
        assert!(!snapshot_with(true, "").load().audit.batches);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let queue = AuditQueue::bounded(snapshot_with(true, ""), 3);
        for _ in 0..5 {
            queue.record(&call(&Who::Stdio, "tools/call", Outcome::Ok, None));
        }
        assert_eq!(queue.dropped(), 2);
        let (batch, dropped) = queue.take();
        assert_eq!((batch.rows.len(), dropped, queue.dropped()), (3, 2, 0));
        // A failed report comes back first; what does not fit beside newer ones is counted.
        queue.record(&call(&Who::Stdio, "resources/read", Outcome::Ok, None));
        queue.put_back(batch, dropped);
        let (again, dropped) = queue.take();
        let again = again.entries();
        assert_eq!(again.len(), 3);
        assert_eq!(
            again.iter().map(|e| e.method.as_str()).collect::<Vec<_>>(),
            ["tools/call", "tools/call", "resources/read"]
        );
        assert_eq!(dropped, 2 + 1);
        // Lost for good: the two the full queue refused, and the one that did not fit back.
        assert_eq!((queue.lost(), queue.queued()), (3, 0));
    }
}
