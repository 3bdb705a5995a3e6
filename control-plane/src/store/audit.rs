//! The SQL of the audit log, stored in chunks (`0012_audit_chunks.sql`): one row per batch
//! the writer takes, its records as an `AuditBatch` (each text once) beside lists of the
//! values the API filters on. Here: the chunk insert, the filtered and cursor-paged read of `GET /api/v1/audit`, the
//! rows the activity window is rebuilt from, the retention prune, and the move of the rows
//! of the table before chunks (`0006_audit.sql`). What a record holds is said there.
//!
//! Paging is by keyset, newest first, on `(at_ms, id)`: a cursor names the last record a
//! page showed, and the next page is what sorts strictly after it. Records stored meanwhile
//! never shift a page (no OFFSET), so paging through a log that grows never repeats or skips
//! a record that was already there. A read takes the chunks that may hold a match newest
//! first (by their latest record) and stops at the first chunk whose latest record is older
//! than the page's last one: no record of it or of any later chunk could be on the page.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mcpr_proto as pb;
use prost::Message;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError};

/// One audit record, as the API shows it. A chunk stores records as an
/// [`AuditBatch`](pb::AuditBatch) ([`batch_of`], [`audit_record`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditRecord {
    pub id: String,
    pub at_ms: i64,
    pub who_kind: String,
    pub who_id: String,
    pub who_name: String,
    pub who_client: String,
    pub method: String,
    pub view: String,
    pub provider: String,
    pub target: String,
    pub outcome: String,
    pub error_code: i64,
    pub reason: String,
    pub duration_us: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub trace_id: String,
    pub arguments: String,
    pub source: String,
}

/// What `GET /api/v1/audit` selects; every field set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Matches the key id or OAuth subject, the key's name, or the kind (`stdio`, `admin`...).
    pub who: Option<String>,
    pub provider: Option<String>,
    /// The tool, resource URI or prompt name (or admin object).
    pub target: Option<String>,
    pub method: Option<String>,
    pub outcome: Option<String>,
    /// Unix ms, inclusive.
    pub since_ms: Option<i64>,
    /// Unix ms, exclusive.
    pub until_ms: Option<i64>,
}

impl AuditFilter {
    fn matches(&self, r: &AuditRecord) -> bool {
        let is =
            |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        self.who
            .as_deref()
            .is_none_or(|w| w == r.who_id || w == r.who_name || w == r.who_kind)
            && is(&self.provider, &r.provider)
            && is(&self.target, &r.target)
            && is(&self.method, &r.method)
            && is(&self.outcome, &r.outcome)
            && self.since_ms.is_none_or(|since| r.at_ms >= since)
            && self.until_ms.is_none_or(|until| r.at_ms < until)
    }
}

/// Where a page ends: the `(at_ms, id)` of its last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    pub at_ms: i64,
    pub id: String,
}

impl AuditCursor {
    /// The opaque text form the API hands out (`AT_ID`).
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at_ms, self.id)
    }

    pub fn decode(text: &str) -> Option<AuditCursor> {
        let (at, id) = text.split_once('_')?;
        Some(AuditCursor {
            at_ms: at.parse().ok()?,
            id: id.to_owned(),
        })
    }

    /// Whether `r` sorts strictly after the cursor, newest first.
    fn before(&self, r: &AuditRecord) -> bool {
        (r.at_ms, r.id.as_str()) < (self.at_ms, self.id.as_str())
    }
}

/// One row of the activity window's rebuild: a call's time, server, outcome and duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub at_ms: i64,
    pub provider: String,
    pub outcome: String,
    pub duration_us: i64,
}

/// Records one chunk holds at most (the writer's batch is at most as large).
pub const MAX_CHUNK: usize = pb::audit_batch::CHUNK_ROWS;
/// Distinct values a chunk lists per filtered field at most; beyond, it lists [`ANY`].
const MAX_LISTED: usize = 64;
/// A chunk with too many distinct values of a field to list: read for every filter on it.
const ANY: &str = "*";
/// Chunks a read takes from the database at a time.
const CHUNKS_PER_READ: i64 = 8;
/// Rows of the table before chunks moved into one chunk at a time.
const ROWS_PER_MOVE: i64 = 1000;

/// Newest first: `(at_ms, id)` descending.
fn newest_first(a: &AuditRecord, b: &AuditRecord) -> Ordering {
    (b.at_ms, &b.id).cmp(&(a.at_ms, &a.id))
}

/// The distinct texts the rows name in `fields`, each between newlines, or [`ANY`] past
/// [`MAX_LISTED`]. A batch's rows mostly name a handful: a short list of indexes searched in
/// order beats a hash set, and a row mostly names what the one before it named.
fn listed(batch: &pb::AuditBatch, fields: &[fn(&pb::AuditRow) -> u32]) -> String {
    let mut distinct: Vec<u32> = Vec::new();
    let mut previous = u32::MAX;
    for row in &batch.rows {
        for field in fields {
            let index = field(row);
            if index == previous {
                continue;
            }
            previous = index;
            if !distinct.contains(&index) {
                if distinct.len() == MAX_LISTED {
                    return ANY.to_owned();
                }
                distinct.push(index);
            }
        }
    }
    let mut text = String::from("\n");
    for index in distinct {
        text.push_str(batch.text(index));
        text.push('\n');
    }
    text
}

/// The `LIKE` pattern (with `ESCAPE '\'`) of a list holding `value`.
fn listed_pattern(value: &str) -> String {
    let mut pattern = String::with_capacity(value.len() + 4);
    pattern.push_str("%\n");
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("\n%");
    pattern
}

/// A value bound to a read's placeholders, in their order.
enum Bind {
    Text(String),
    Number(i64),
}

fn corrupt(chunk: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("audit chunk {chunk}: {e}"))
}

/// The batch of `records`, each keeping its id.
pub fn batch_of(records: &[AuditRecord]) -> pb::AuditBatch {
    let mut batch = pb::AuditBatchBuilder::new();
    for r in records {
        let mut row = pb::AuditRow {
            at_ms: r.at_ms,
            error_code: r.error_code,
            duration_us: r.duration_us.max(0) as u64,
            request_bytes: r.request_bytes.max(0) as u64,
            response_bytes: r.response_bytes.max(0) as u64,
            trace_id: r.trace_id.clone(),
            arguments: r.arguments.clone(),
            id: r.id.clone(),
            ..Default::default()
        };
        let texts = [
            r.who_kind.as_str(),
            &r.who_id,
            &r.who_name,
            &r.who_client,
            &r.method,
            &r.view,
            &r.provider,
            &r.target,
            &r.outcome,
            &r.reason,
            &r.source,
        ];
        batch.name_texts(&mut row, texts);
        batch.push(row);
    }
    batch.finish()
}

/// The record at `index` of `batch`, stored as chunk `chunk`: its id is its own or, for a
/// row without one, the chunk's id and its place in the chunk (time-ordered and unique,
/// since chunk ids are UUIDv7, and made without a random draw per record).
pub fn audit_record(batch: &pb::AuditBatch, index: usize, chunk: &str) -> AuditRecord {
    let r = &batch.rows[index];
    let e = batch.entry(index);
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    AuditRecord {
        id: if r.id.is_empty() {
            format!("{chunk}{index:04x}")
        } else {
            r.id.clone()
        },
        at_ms: e.at_ms,
        who_kind: e.who_kind,
        who_id: e.who_id,
        who_name: e.who_name,
        who_client: e.who_client,
        method: e.method,
        view: e.view,
        provider: e.provider,
        target: e.target,
        outcome: e.outcome,
        error_code: e.error_code,
        reason: e.reason,
        duration_us: clamp(e.duration_us),
        request_bytes: clamp(e.request_bytes),
        response_bytes: clamp(e.response_bytes),
        trace_id: e.trace_id,
        arguments: e.arguments,
        source: batch.text(r.source).to_owned(),
    }
}

/// The bytes of `batch.encode_to_vec()`, no row's length worked out ahead: prost works out
/// the whole batch's length first, so every row's twice, and each row's once more as it
/// writes it; here a row is written once, into a scratch buffer whose length it then has.
fn encoded(batch: &pb::AuditBatch) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let texts: usize = batch.texts.iter().map(|t| t.len() + 2).sum();
    let mut bytes = Vec::with_capacity(texts + batch.rows.len() * 48);
    for text in &batch.texts {
        prost::encoding::string::encode(1, text, &mut bytes);
    }
    let mut row_bytes = Vec::with_capacity(128);
    for row in &batch.rows {
        row_bytes.clear();
        row.encode_raw(&mut row_bytes);
        encode_key(2, WireType::LengthDelimited, &mut bytes);
        encode_varint(row_bytes.len() as u64, &mut bytes);
        bytes.extend_from_slice(&row_bytes);
    }
    bytes
}

/// The records of a chunk's `records` (base64 of its [`AuditBatch`](pb::AuditBatch)).
fn decode_records(chunk: &str, text: &str) -> Result<Vec<AuditRecord>, StoreError> {
    let bytes = BASE64.decode(text).map_err(|e| corrupt(chunk, e))?;
    let batch = pb::AuditBatch::decode(bytes.as_slice()).map_err(|e| corrupt(chunk, e))?;
    Ok((0..batch.rows.len())
        .map(|i| audit_record(&batch, i, chunk))
        .collect())
}

impl Store {
    /// Stores `records` (up to [`MAX_CHUNK`] per chunk), each keeping its id, in one
    /// transaction.
    pub async fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in records.chunks(MAX_CHUNK) {
            insert_chunk(&mut tx, &batch_of(chunk)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores `batch` (at most [`MAX_CHUNK`] rows) as one chunk; returns the chunk's id,
    /// which the ids of its rows without one of their own derive from ([`audit_record`]).
    pub async fn insert_audit_batch(&self, batch: &pb::AuditBatch) -> Result<String, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_chunk(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Up to `limit` records matching `filter`, newest first, after `cursor`; and the cursor
    /// of the next page when there is one.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<AuditCursor>), StoreError> {
        // One more than asked: whether a next page exists, without a count.
        let want = limit + 1;
        let mut found: Vec<AuditRecord> = Vec::new();
        let mut read_past: Option<(i64, String)> = None;
        'chunks: loop {
            let chunks = self
                .audit_chunks(filter, cursor, read_past.as_ref())
                .await?;
            let last_read = chunks.len() < CHUNKS_PER_READ as usize;
            for (id, last_ms, records) in chunks {
                if found.len() == want && last_ms < found[want - 1].at_ms {
                    break 'chunks;
                }
                let records = decode_records(&id, &records)?;
                found.extend(
                    records.into_iter().filter(|r| {
                        filter.matches(r) && cursor.is_none_or(|cursor| cursor.before(r))
                    }),
                );
                found.sort_unstable_by(newest_first);
                found.truncate(want);
                read_past = Some((last_ms, id));
            }
            if last_read {
                break;
            }
        }
        let next = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|last| AuditCursor {
                at_ms: last.at_ms,
                id: last.id.clone(),
            })
        } else {
            None
        };
        Ok((found, next))
    }

    /// The next [`CHUNKS_PER_READ`] chunks that may hold a record of `filter` after `cursor`,
    /// newest first, after the chunk `read_past` (its `last_ms` and id): `(id, last_ms,
    /// records)`.
    async fn audit_chunks(
        &self,
        filter: &AuditFilter,
        cursor: Option<&AuditCursor>,
        read_past: Option<&(i64, String)>,
    ) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let mut clause = |template: &str, values: Vec<Bind>| {
            let mut text = template.to_owned();
            for value in values {
                binds.push(value);
                text = text.replacen('?', &format!("${}", binds.len()), 1);
            }
            clauses.push(text);
        };
        for (column, wanted) in [
            ("whos", &filter.who),
            ("providers", &filter.provider),
            ("targets", &filter.target),
            ("methods", &filter.method),
            ("outcomes", &filter.outcome),
        ] {
            if let Some(value) = wanted {
                clause(
                    &format!("({column} = '{ANY}' OR {column} LIKE ? ESCAPE '\\')"),
                    vec![Bind::Text(listed_pattern(value))],
                );
            }
        }
        if let Some(cursor) = cursor {
            clause("first_ms <= ?", vec![Bind::Number(cursor.at_ms)]);
        }
        if let Some(since) = filter.since_ms {
            clause("last_ms >= ?", vec![Bind::Number(since)]);
        }
        if let Some(until) = filter.until_ms {
            clause("first_ms < ?", vec![Bind::Number(until)]);
        }
        if let Some((last_ms, id)) = read_past {
            clause(
                "(last_ms < ? OR (last_ms = ? AND id < ?))",
                vec![
                    Bind::Number(*last_ms),
                    Bind::Number(*last_ms),
                    Bind::Text(id.clone()),
                ],
            );
        }
        let mut sql = "SELECT id, last_ms, records FROM audit_chunk".to_owned();
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY last_ms DESC, id DESC LIMIT {CHUNKS_PER_READ}"
        ));
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Number(number) => query.bind(number),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }

    /// The calls to servers since `since_ms`, oldest first: what the activity window is
    /// rebuilt from at start. Admin changes are left out, not the tool calls an admin made
    /// with an admin MCP token (`who_client` `mcp_token`, `keys/mcp_token.rs`).
    pub async fn audit_activity_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        let chunks = sqlx::query("SELECT id, records FROM audit_chunk WHERE last_ms >= $1")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        let mut rows = Vec::new();
        for chunk in &chunks {
            let id: String = chunk.try_get(0)?;
            let records: String = chunk.try_get(1)?;
            rows.extend(
                decode_records(&id, &records)?
                    .into_iter()
                    .filter(|r| {
                        r.at_ms >= since_ms
                            && !r.provider.is_empty()
                            && (r.who_kind != "admin" || r.who_client == "mcp_token")
                    })
                    .map(|r| ActivityRow {
                        at_ms: r.at_ms,
                        provider: r.provider,
                        outcome: r.outcome,
                        duration_us: r.duration_us,
                    }),
            );
        }
        rows.sort_by_key(|row| row.at_ms);
        Ok(rows)
    }

    /// Deletes the records older than `before_ms`; returns how many. A chunk with records on
    /// both sides of the cut is written again with the younger ones.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let whole: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(record_count), 0) AS BIGINT) FROM audit_chunk \
             WHERE last_ms < $1",
        )
        .bind(before_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        sqlx::query("DELETE FROM audit_chunk WHERE last_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        let straddling = sqlx::query(
            "SELECT id, records FROM audit_chunk WHERE first_ms < $1 AND last_ms >= $1",
        )
        .bind(before_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut pruned = u64::try_from(whole).unwrap_or(0);
        for chunk in &straddling {
            let id: String = chunk.try_get(0)?;
            let text: String = chunk.try_get(1)?;
            let mut records = decode_records(&id, &text)?;
            let before = records.len();
            records.retain(|r| r.at_ms >= before_ms);
            pruned += (before - records.len()) as u64;
            sqlx::query("DELETE FROM audit_chunk WHERE id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            insert_chunk(&mut tx, &batch_of(&records)).await?;
        }
        tx.commit().await?;
        Ok(pruned)
    }

    /// Moves the rows of the table before chunks (`0006_audit.sql`) into chunks, a
    /// transaction per [`ROWS_PER_MOVE`]; at start, after the migrations. Rows a second
    /// control plane moves at the same time are deleted by one of them only (the other's
    /// `DELETE` finds them gone), so none is moved twice.
    pub(super) async fn move_audit_rows_into_chunks(&self) -> Result<u64, StoreError> {
        let mut moved = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(&format!(
                "DELETE FROM audit_log WHERE id IN \
                 (SELECT id FROM audit_log ORDER BY at_ms, id LIMIT {ROWS_PER_MOVE}) \
                 RETURNING {OLD_COLUMNS}"
            ))
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                return Ok(moved);
            }
            let records = rows.iter().map(old_row).collect::<Result<Vec<_>, _>>()?;
            for chunk in records.chunks(MAX_CHUNK) {
                insert_chunk(&mut tx, &batch_of(chunk)).await?;
            }
            tx.commit().await?;
            moved += records.len() as u64;
        }
    }
}

/// One chunk of `batch`'s rows (at most [`MAX_CHUNK`]; none: nothing is stored); its id.
async fn insert_chunk(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    batch: &pb::AuditBatch,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let (Some(first), Some(last)) = (
        batch.rows.iter().map(|r| r.at_ms).min(),
        batch.rows.iter().map(|r| r.at_ms).max(),
    ) else {
        return Ok(id);
    };
    sqlx::query(
        "INSERT INTO audit_chunk (id, first_ms, last_ms, record_count, whos, providers, \
         targets, methods, outcomes, records) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(first)
    .bind(last)
    .bind(batch.rows.len() as i64)
    .bind(listed(
        batch,
        &[|r| r.who_id, |r| r.who_name, |r| r.who_kind],
    ))
    .bind(listed(batch, &[|r| r.provider]))
    .bind(listed(batch, &[|r| r.target]))
    .bind(listed(batch, &[|r| r.method]))
    .bind(listed(batch, &[|r| r.outcome]))
    .bind(BASE64.encode(encoded(batch)))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

const OLD_COLUMNS: &str = "id, at_ms, who_kind, who_id, who_name, who_client, method, view, provider, target, \
     outcome, error_code, reason, duration_us, request_bytes, response_bytes, trace_id, arguments, source";

/// A row of the table before chunks.
fn old_row(row: &sqlx::any::AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at_ms: row.try_get("at_ms")?,
        who_kind: row.try_get("who_kind")?,
        who_id: row.try_get("who_id")?,
        who_name: row.try_get("who_name")?,
        who_client: row.try_get("who_client")?,
        method: row.try_get("method")?,
        view: row.try_get("view")?,
        provider: row.try_get("provider")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        error_code: row.try_get("error_code")?,
        reason: row.try_get("reason")?,
        duration_us: row.try_get("duration_us")?,
        request_bytes: row.try_get("request_bytes")?,
        response_bytes: row.try_get("response_bytes")?,
        trace_id: row.try_get("trace_id")?,
        arguments: row.try_get("arguments")?,
        source: row.try_get("source")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn audit(id: &str, at_ms: i64, who: &str, provider: &str, outcome: &str) -> AuditRecord {
        AuditRecord {
            id: id.to_owned(),
            at_ms,
            who_kind: "api_key".into(),
            who_id: who.to_owned(),
            who_name: format!("{who}-name"),
            method: "tools/call".into(),
            view: "hierarchical".into(),
            provider: provider.to_owned(),
            target: "get_time".into(),
            outcome: outcome.to_owned(),
            duration_us: 1500,
            request_bytes: 120,
            response_bytes: 300,
            source: "gw-1".into(),
            ..AuditRecord::default()
        }
    }

    /// Paging, filters and the prune, against the backend `store` runs on.
    pub async fn audit_suite(store: &Store) {
        // 120 rows (more than two inserts' worth), ids sorting with time; ten at the same ms
        // so the id breaks the tie.
        let mut all: Vec<AuditRecord> = (0..120)
            .map(|i| {
                let at = 1_000_000 + (i / 10) * 1000;
                let who = if i % 3 == 0 { "key_a" } else { "key_b" };
                let provider = if i % 2 == 0 {
                    "time"
                } else {
                    "x'); DROP TABLE audit_log; --"
                };
                let outcome = if i % 5 == 0 { "error" } else { "ok" };
                audit(&format!("r{i:04}"), at, who, provider, outcome)
            })
            .collect();
        store.insert_audit(&all).await.unwrap();
        all.sort_by(|a, b| (b.at_ms, &b.id).cmp(&(a.at_ms, &a.id)));

        // Pages of 25 through everything, with rows inserted between pages: the pages still
        // hold exactly the rows that were there, in order, once each.
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut late = 0;
        loop {
            let (page, next) = store
                .list_audit(&AuditFilter::default(), cursor.as_ref(), 25)
                .await
                .unwrap();
            assert!(page.len() <= 25);
            seen.extend(page);
            late += 1;
            store
                .insert_audit(&[audit(&format!("z{late}"), 9_000_000, "key_c", "time", "ok")])
                .await
                .unwrap();
            match next {
                Some(n) => cursor = Some(AuditCursor::decode(&n.encode()).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, all);

        // Filters, alone and together.
        let filter = AuditFilter {
            who: Some("key_a".into()),
            ..Default::default()
        };
        let (a, _) = store.list_audit(&filter, None, 1000).await.unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.iter().all(|r| r.who_id == "key_a"));
        let by_name = AuditFilter {
            who: Some("key_a-name".into()),
            ..Default::default()
        };
        assert_eq!(store.list_audit(&by_name, None, 1000).await.unwrap().0, a);
        let filter = AuditFilter {
            provider: Some("x'); DROP TABLE audit_log; --".into()),
            outcome: Some("error".into()),
            since_ms: Some(1_002_000),
            until_ms: Some(1_010_000),
            ..Default::default()
        };
        let (rows, _) = store.list_audit(&filter, None, 1000).await.unwrap();
        let expected: Vec<_> = all
            .iter()
            .filter(|r| {
                r.provider.starts_with("x'")
                    && r.outcome == "error"
                    && (1_002_000..1_010_000).contains(&r.at_ms)
            })
            .cloned()
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(rows, expected);
        // A filter and a cursor together.
        let filter = AuditFilter {
            target: Some("get_time".into()),
            method: Some("tools/call".into()),
            who: Some("key_b".into()),
            ..Default::default()
        };
        let (first, next) = store.list_audit(&filter, None, 7).await.unwrap();
        let (second, _) = store.list_audit(&filter, next.as_ref(), 7).await.unwrap();
        let (both, _) = store.list_audit(&filter, None, 14).await.unwrap();
        assert_eq!([first, second].concat(), both);

        let activity = store.audit_activity_since(1_011_000).await.unwrap();
        assert_eq!(activity.len(), 10 + late);
        assert!(activity.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));

        // Retention: everything before the cut goes, nothing after it.
        assert_eq!(store.prune_audit(1_006_000).await.unwrap(), 60);
        let (left, _) = store
            .list_audit(&AuditFilter::default(), None, 1000)
            .await
            .unwrap();
        assert_eq!(left.len(), 60 + late);
        assert!(left.iter().all(|r| r.at_ms >= 1_006_000));
        assert_eq!(store.prune_audit(1_006_000).await.unwrap(), 0);

        chunk_lists(store).await;
        rows_of_the_table_before_chunks_are_moved(store).await;
    }

    /// A filter skips chunks by their lists of values, and never one that holds a match:
    /// values with LIKE's wildcards, its escape, a newline, other case; a chunk with more
    /// distinct values than it lists.
    async fn chunk_lists(store: &Store) {
        let at = 50_000_000;
        let odd = ["50%_off", "a\\b", "two\nlines", "Case", "case"];
        let records: Vec<AuditRecord> = odd
            .iter()
            .enumerate()
            .map(|(i, target)| AuditRecord {
                target: (*target).to_owned(),
                ..audit(&format!("o{i}"), at + i as i64, "key_o", "odd", "ok")
            })
            .collect();
        store.insert_audit(&records).await.unwrap();
        let many: Vec<AuditRecord> = (0..2 * MAX_LISTED)
            .map(|i| AuditRecord {
                target: format!("t{i}"),
                ..audit(&format!("m{i:03}"), at + 100, "key_m", "many", "ok")
            })
            .collect();
        store.insert_audit(&many).await.unwrap();
        let by_target = |target: &str| {
            let filter = AuditFilter {
                target: Some(target.to_owned()),
                since_ms: Some(at),
                ..Default::default()
            };
            async move {
                let (rows, _) = store.list_audit(&filter, None, 1000).await.unwrap();
                rows.into_iter().map(|r| r.id).collect::<Vec<_>>()
            }
        };
        for (i, target) in odd.iter().enumerate() {
            assert_eq!(by_target(target).await, [format!("o{i}")], "{target:?}");
        }
        // Near misses of the wildcards and the newline match nothing.
        for near in ["50", "50x_off", "50%xoff", "a\\", "two", "lines", "CASE"] {
            assert!(by_target(near).await.is_empty(), "{near:?}");
        }
        assert_eq!(by_target("t77").await, ["m077"]);
        assert!(by_target("t999").await.is_empty());
    }

    /// Rows of `audit_log` (the table before chunks) are moved at start, once, in order.
    async fn rows_of_the_table_before_chunks_are_moved(store: &Store) {
        let at = 60_000_000;
        for i in 0..3 {
            sqlx::query(
                "INSERT INTO audit_log (id, at_ms, who_kind, who_id, method, provider, target, \
                 outcome, duration_us) VALUES ($1, $2, 'api_key', 'key_old', 'tools/call', 'old', \
                 'get_time', 'ok', 7)",
            )
            .bind(format!("old{i}"))
            .bind(at + i)
            .execute(store.pool())
            .await
            .unwrap();
        }
        assert_eq!(store.move_audit_rows_into_chunks().await.unwrap(), 3);
        assert_eq!(store.move_audit_rows_into_chunks().await.unwrap(), 0);
        let filter = AuditFilter {
            provider: Some("old".into()),
            ..Default::default()
        };
        let (rows, _) = store.list_audit(&filter, None, 10).await.unwrap();
        let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["old2", "old1", "old0"]);
        assert_eq!(
            (
                rows[0].who_id.as_str(),
                rows[0].target.as_str(),
                rows[0].duration_us
            ),
            ("key_old", "get_time", 7)
        );
    }

    #[test]
    fn a_chunk_is_the_batch_as_prost_encodes_it() {
        let mut records: Vec<AuditRecord> = (0..40)
            .map(|i| audit(&format!("r{i}"), 1_000 + i, "key_a", "time", "ok"))
            .collect();
        records[7].arguments = "{\"a\": 1}".into();
        records[9].duration_us = 0;
        let batch = batch_of(&records);
        assert_eq!(encoded(&batch), batch.encode_to_vec());
        assert_eq!(
            decode_records("c", &BASE64.encode(encoded(&batch))).unwrap(),
            records
        );
    }

    #[test]
    fn lists_escape_like_and_give_up_past_their_bound() {
        let of = |targets: &[&str]| {
            let records: Vec<AuditRecord> = (targets.iter())
                .map(|t| AuditRecord {
                    target: (*t).to_owned(),
                    ..Default::default()
                })
                .collect();
            listed(&batch_of(&records), &[|r| r.target])
        };
        assert_eq!(of(&["a", "b", "a"]), "\na\nb\n");
        assert_eq!(of(&[]), "\n");
        let names: Vec<String> = (0..=MAX_LISTED).map(|i| i.to_string()).collect();
        assert_eq!(
            of(&names.iter().map(String::as_str).collect::<Vec<_>>()),
            ANY
        );
        assert_eq!(listed_pattern("5%_\\x"), "%\n5\\%\\_\\\\x\n%");
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = AuditCursor {
            at_ms: 42,
            id: "a_b".into(),
        };
        assert_eq!(AuditCursor::decode(&c.encode()), Some(c));
        assert_eq!(AuditCursor::decode("nope"), None);
        assert_eq!(AuditCursor::decode("x_1"), None);
    }
}
