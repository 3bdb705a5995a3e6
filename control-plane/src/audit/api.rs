//! `GET /api/v1/audit` (filters, cursor paging, `format=csv|jsonl` export),
//! `GET /api/v1/audit/stats` and `GET /api/v1/activity` (docs/API.md).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{Audit, activity};
use crate::api::ApiError;
use crate::keys::now_ms;
use crate::store::{AuditCursor, AuditFilter, AuditRecord};

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;
/// An export pages through the store this many rows at a time.
const EXPORT_PAGE: usize = 1000;

pub fn router(audit: Arc<Audit>) -> Router {
    Router::new()
        .route("/api/v1/audit", get(list))
        .route("/api/v1/audit/stats", get(stats))
        .route("/api/v1/activity", get(activity_report))
        .with_state(audit)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    who: Option<String>,
    provider: Option<String>,
    /// The tool, resource URI or prompt name.
    tool: Option<String>,
    target: Option<String>,
    method: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    format: Option<String>,
}

fn bad(field: &str, message: String) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        Some(field.to_owned()),
        message,
    )
}

/// A time as the API takes it: Unix milliseconds, RFC 3339, or an age (`90s`, `15m`, `2h`,
/// `7d`) meaning that long before now.
pub fn parse_time(field: &str, text: &str, now_ms: i64) -> Result<i64, ApiError> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = text[..text.len() - 1].parse::<i64>()
        && n >= 0
    {
        let unit_ms = match unit {
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            _ => 86_400_000,
        };
        return Ok(now_ms - n.saturating_mul(unit_ms));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            bad(
                field,
                format!(
                    "{field} must be Unix milliseconds, an RFC 3339 time or an age like 15m, 2h, 7d; got {text:?}"
                ),
            )
        })
}

fn filter_of(q: &AuditQuery) -> Result<AuditFilter, ApiError> {
    let now = now_ms();
    let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    if q.tool.is_some() && q.target.is_some() && q.tool != q.target {
        return Err(bad(
            "tool",
            "tool and target name the same thing: give one".into(),
        ));
    }
    let outcome = non_empty(&q.outcome);
    if let Some(o) = &outcome
        && !["ok", "error", "refused"].contains(&o.as_str())
    {
        return Err(bad(
            "outcome",
            format!("outcome must be ok, error or refused; got {o:?}"),
        ));
    }
    Ok(AuditFilter {
        who: non_empty(&q.who),
        provider: non_empty(&q.provider),
        target: non_empty(&q.tool).or_else(|| non_empty(&q.target)),
        method: non_empty(&q.method),
        outcome,
        since_ms: non_empty(&q.since)
            .map(|t| parse_time("since", &t, now))
            .transpose()?,
        until_ms: non_empty(&q.until)
            .map(|t| parse_time("until", &t, now))
            .transpose()?,
    })
}

fn store_failure(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "reading the audit log failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        None,
        format!("reading the audit log failed: {e}"),
    )
}

async fn list(
    State(audit): State<Arc<Audit>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", None, e.body_text()))?;
    let filter = filter_of(&q)?;
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(text) => Some(AuditCursor::decode(text).ok_or_else(|| {
            bad(
                "cursor",
                "cursor is not one this API handed out (next_cursor)".into(),
            )
        })?),
        None => None,
    };
    let format = q.format.as_deref().unwrap_or("json");
    match format {
        "json" => {
            let limit = q.limit.unwrap_or(DEFAULT_PAGE);
            if limit == 0 || limit > MAX_PAGE {
                return Err(bad(
                    "limit",
                    format!("limit must be 1 to {MAX_PAGE}; got {limit}"),
                ));
            }
            let (records, next) = audit
                .store()
                .list_audit(&filter, cursor.as_ref(), limit)
                .await
                .map_err(store_failure)?;
            Ok(Json(json!({
                "records": records,
                "next_cursor": next.map(|c| c.encode()),
            }))
            .into_response())
        }
        "csv" | "jsonl" => Ok(export(audit, filter, cursor, format == "csv")),
        other => Err(bad(
            "format",
            format!("format must be json, csv or jsonl; got {other:?}"),
        )),
    }
}

pub const CSV_HEADER: &str = "id,at,at_ms,who_kind,who_id,who_name,who_client,method,view,provider,target,outcome,error_code,reason,duration_us,request_bytes,response_bytes,trace_id,arguments,source";

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn csv_line(r: &AuditRecord) -> String {
    let texts = [
        r.id.clone(),
        rfc3339(r.at_ms),
        r.at_ms.to_string(),
        r.who_kind.clone(),
        r.who_id.clone(),
        r.who_name.clone(),
        r.who_client.clone(),
        r.method.clone(),
        r.view.clone(),
        r.provider.clone(),
        r.target.clone(),
        r.outcome.clone(),
        r.error_code.to_string(),
        r.reason.clone(),
        r.duration_us.to_string(),
        r.request_bytes.to_string(),
        r.response_bytes.to_string(),
        r.trace_id.clone(),
        r.arguments.clone(),
        r.source.clone(),
    ];
    let mut line = texts
        .iter()
        .enumerate()
        // Numbers are ours; only text fields can carry a formula.
        .map(|(i, t)| {
            if matches!(i, 2 | 12 | 14 | 15 | 16) {
                t.clone()
            } else {
                csv_field(t)
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Every matching record, newest first, streamed page by page (never all in memory).
fn export(
    audit: Arc<Audit>,
    filter: AuditFilter,
    cursor: Option<AuditCursor>,
    csv: bool,
) -> Response {
    struct Paging {
        audit: Arc<Audit>,
        filter: AuditFilter,
        cursor: Option<AuditCursor>,
        header: bool,
        done: bool,
    }
    let start = Paging {
        audit,
        filter,
        cursor,
        header: csv,
        done: false,
    };
    let pages = futures::stream::unfold(start, move |mut p| async move {
        if p.done {
            return None;
        }
        let mut chunk = String::new();
        if p.header {
            chunk.push_str(CSV_HEADER);
            chunk.push_str("\r\n");
            p.header = false;
        }
        match p
            .audit
            .store()
            .list_audit(&p.filter, p.cursor.as_ref(), EXPORT_PAGE)
            .await
        {
            Ok((records, next)) => {
                for r in &records {
                    if csv {
                        chunk.push_str(&csv_line(r));
                    } else {
                        chunk.push_str(&serde_json::to_string(r).expect("a record serializes"));
                        chunk.push('\n');
                    }
                }
                p.done = next.is_none();
                p.cursor = next;
                Some((Ok::<_, std::io::Error>(chunk), p))
            }
            Err(e) => {
                tracing::error!(error = %e, "audit export failed midway");
                // The body ends with an error: the client sees a cut transfer, not a short
                // file that looks whole.
                Some((
                    Err(std::io::Error::other(e.to_string())),
                    Paging { done: true, ..p },
                ))
            }
        }
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    let file = if csv { "audit.csv" } else { "audit.jsonl" };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response()
}

async fn stats(State(audit): State<Arc<Audit>>) -> Response {
    Json(audit.stats()).into_response()
}

async fn activity_report(State(audit): State<Arc<Audit>>) -> Response {
    Json(json!({
        "bucket_seconds": activity::BUCKET_MS / 1000,
        "window_seconds": activity::WINDOW_MS / 1000,
        "now_ms": now_ms(),
        "servers": audit.activity(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_three_forms() {
        let now = 10_000_000_000;
        assert_eq!(parse_time("since", "1234", now).unwrap(), 1234);
        assert_eq!(parse_time("since", "2h", now).unwrap(), now - 7_200_000);
        assert_eq!(
            parse_time("since", "7d", now).unwrap(),
            now - 7 * 86_400_000
        );
        assert_eq!(
            parse_time("until", "2026-01-01T00:00:00Z", now).unwrap(),
            1_767_225_600_000
        );
        let e = parse_time("until", "yesterday", now).unwrap_err();
        assert!(format!("{e:?}").contains("until"));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        let line = csv_line(&AuditRecord {
            id: "r1".into(),
            at_ms: 0,
            error_code: -32602,
            reason: "bad, very".into(),
            ..Default::default()
        });
        assert!(line.starts_with("r1,1970-01-01T00:00:00Z,0,"), "{line}");
        assert!(line.contains(",-32602,\"bad, very\","), "{line}");
        assert_eq!(
            line.matches(',').count(),
            CSV_HEADER.matches(',').count() + 1
        );
    }
}
