//! The SQL of the audit log (`0006_audit.sql`): batched inserts, the filtered and cursor-paged
//! read of `GET /api/v1/audit`, the rows the activity window is rebuilt from, and the
//! retention prune. What a row holds is said in the migration.
//!
//! Paging is by keyset, newest first, on `(at_ms, id)`: a cursor names the last row a page
//! showed, and the next page is what sorts strictly after it. Rows inserted meanwhile never
//! shift a page (no OFFSET), so paging through a log that grows never repeats or skips a row
//! that was already there.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Store, StoreError};

/// One audit record, as stored and as the API shows it.
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
}

/// One row of the activity window's rebuild: a call's time, server, outcome and duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub at_ms: i64,
    pub provider: String,
    pub outcome: String,
    pub duration_us: i64,
}

const AUDIT_COLUMNS: &str = "id, at_ms, who_kind, who_id, who_name, who_client, method, view, provider, target, \
     outcome, error_code, reason, duration_us, request_bytes, response_bytes, trace_id, arguments, source";
const AUDIT_COLUMN_COUNT: usize = 19;
/// Rows per INSERT statement on Postgres: one round trip per 50 rows, and 19 × 50
/// placeholders stay far below its limit. SQLite takes one row per statement: it runs in
/// the process (no round trip to save), sqlx keeps the one-row statement prepared, and a
/// statement of 950 placeholders cost about 200,000 instructions per row there, parsed
/// again for every batch and bound through a look-up of each placeholder's name that scans
/// them all (docs/BENCHMARKS.md, issue 14).
const ROWS_PER_INSERT: usize = 50;

/// `INSERT INTO audit_log (…) VALUES ($1, …), (…)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..AUDIT_COLUMN_COUNT {
            if column > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${}", row * AUDIT_COLUMN_COUNT + column + 1);
        }
        sql.push(')');
    }
    sql
}

impl Store {
    /// Inserts a batch in one transaction; a row whose id is already stored fails the
    /// whole batch.
    pub async fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        static ONE_ROW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));
        if records.is_empty() {
            return Ok(());
        }
        let rows_per_insert = match self.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => ROWS_PER_INSERT,
        };
        let mut tx = self.pool.begin().await?;
        for chunk in records.chunks(rows_per_insert) {
            let many;
            let sql = if chunk.len() == 1 {
                ONE_ROW.as_str()
            } else {
                many = insert_sql(chunk.len());
                many.as_str()
            };
            let mut query = sqlx::query(sql);
            for r in chunk {
                query = query
                    .bind(&r.id)
                    .bind(r.at_ms)
                    .bind(&r.who_kind)
                    .bind(&r.who_id)
                    .bind(&r.who_name)
                    .bind(&r.who_client)
                    .bind(&r.method)
                    .bind(&r.view)
                    .bind(&r.provider)
                    .bind(&r.target)
                    .bind(&r.outcome)
                    .bind(r.error_code)
                    .bind(&r.reason)
                    .bind(r.duration_us)
                    .bind(r.request_bytes)
                    .bind(r.response_bytes)
                    .bind(&r.trace_id)
                    .bind(&r.arguments)
                    .bind(&r.source);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` records matching `filter`, newest first, after `cursor`; and the cursor
    /// of the next page when there is one.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<AuditCursor>), StoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        // Placeholders are numbered in bind order: texts first, then numbers.
        let text_clause = |template: &str, value: &str, texts: &mut Vec<String>| {
            texts.push(value.to_owned());
            template.replace('?', &format!("${}", texts.len()))
        };
        if let Some(who) = &filter.who {
            clauses.push(text_clause(
                "(who_id = ? OR who_name = ? OR who_kind = ?)",
                who,
                &mut texts,
            ));
        }
        if let Some(provider) = &filter.provider {
            clauses.push(text_clause("provider = ?", provider, &mut texts));
        }
        if let Some(target) = &filter.target {
            clauses.push(text_clause("target = ?", target, &mut texts));
        }
        if let Some(method) = &filter.method {
            clauses.push(text_clause("method = ?", method, &mut texts));
        }
        if let Some(outcome) = &filter.outcome {
            clauses.push(text_clause("outcome = ?", outcome, &mut texts));
        }
        if let Some(cursor) = cursor {
            texts.push(cursor.id.clone());
            let id_at = texts.len();
            numbers.push(cursor.at_ms);
            let n = texts.len() + numbers.len();
            clauses.push(format!(
                "(at_ms < ${n} OR (at_ms = ${n} AND id < ${id_at}))"
            ));
        }
        if let Some(since) = filter.since_ms {
            numbers.push(since);
            clauses.push(format!("at_ms >= ${}", texts.len() + numbers.len()));
        }
        if let Some(until) = filter.until_ms {
            numbers.push(until);
            clauses.push(format!("at_ms < ${}", texts.len() + numbers.len()));
        }
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log");
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        // One more than asked: whether a next page exists, without a COUNT.
        sql.push_str(&format!(
            " ORDER BY at_ms DESC, id DESC LIMIT {}",
            limit + 1
        ));
        let mut query = sqlx::query(&sql);
        for text in &texts {
            query = query.bind(text);
        }
        for number in &numbers {
            query = query.bind(*number);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut records = rows
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|last| AuditCursor {
                at_ms: last.at_ms,
                id: last.id.clone(),
            })
        } else {
            None
        };
        Ok((records, next))
    }

    /// The calls to servers since `since_ms`, oldest first: what the activity window is
    /// rebuilt from at start. Admin changes are left out, not the tool calls an admin made
    /// with an admin MCP token (`who_client` `mcp_token`, `keys/mcp_token.rs`).
    pub async fn audit_activity_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, provider, outcome, duration_us FROM audit_log \
             WHERE at_ms >= $1 AND provider <> '' \
             AND (who_kind <> 'admin' OR who_client = 'mcp_token') ORDER BY at_ms",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ActivityRow {
                    at_ms: row.try_get("at_ms")?,
                    provider: row.try_get("provider")?,
                    outcome: row.try_get("outcome")?,
                    duration_us: row.try_get("duration_us")?,
                })
            })
            .collect()
    }

    /// Deletes the records older than `before_ms`; returns how many.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
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
