//! Building an [`AuditBatch`](crate::AuditBatch): each text kept once and named by index.
//!
//! A gateway's queue, its retry, the control plane's writer and its store all hold audit
//! records in this form, so a record's texts are copied once, into the first batch that
//! names them, and a batch joins another by remapping indexes.

use std::collections::HashMap;

use crate::{AuditBatch, AuditEntry, AuditRow};

/// Records one stored chunk of the audit log holds at most: the control plane's writer takes
/// batches up to this many, and a busy gateway ships this many at a time, so that its report
/// is one chunk, the per-chunk work (a transaction, the lists, an id) spread over the most.
pub const CHUNK_ROWS: usize = 1000;

/// Texts a builder searches in order before it keeps an index of them: a batch mostly names
/// a handful, and comparing a few short texts beats hashing every one.
const SEARCHED: usize = 32;

#[derive(Debug)]
pub struct AuditBatchBuilder {
    batch: AuditBatch,
    /// Every text's index, once there are more than [`SEARCHED`].
    index: HashMap<String, u32>,
}

impl Default for AuditBatchBuilder {
    fn default() -> Self {
        AuditBatchBuilder {
            batch: AuditBatch {
                texts: vec![String::new()],
                rows: Vec::new(),
            },
            index: HashMap::new(),
        }
    }
}

impl AuditBatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Goes on from `batch`, whose first text is taken to be the empty one.
    pub fn from_batch(mut batch: AuditBatch) -> Self {
        if batch.texts.is_empty() {
            batch.texts.push(String::new());
        }
        let mut builder = AuditBatchBuilder {
            batch,
            index: HashMap::new(),
        };
        if builder.batch.texts.len() > SEARCHED {
            builder.build_index();
        }
        builder
    }

    fn build_index(&mut self) {
        self.index = (self.batch.texts.iter().enumerate())
            .map(|(i, text)| (text.clone(), i as u32))
            .collect();
    }

    /// The index of `text`, added if it is new.
    pub fn text(&mut self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        let texts = &mut self.batch.texts;
        if self.index.is_empty() {
            if let Some(i) = texts.iter().position(|t| t == text) {
                return i as u32;
            }
            texts.push(text.to_owned());
            if texts.len() > SEARCHED {
                self.build_index();
            }
            return (self.batch.texts.len() - 1) as u32;
        }
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = texts.len() as u32;
        texts.push(text.to_owned());
        self.index.insert(text.to_owned(), i);
        i
    }

    /// Names `texts` in `row`, in [`AuditRow::text_fields_mut`]'s order, each looked up first
    /// where the previous row had its own: a queue's rows mostly repeat their caller,
    /// method, server and tool, and one comparison then spares a search.
    pub fn name_texts(&mut self, row: &mut AuditRow, texts: [&str; 11]) {
        let previous = self.batch.rows.last().map(AuditRow::text_fields);
        for (i, (field, text)) in row.text_fields_mut().into_iter().zip(texts).enumerate() {
            let hint = previous.map_or(0, |p| p[i]);
            *field = match same(self.batch.text(hint), text) {
                true => hint,
                false => self.text(text),
            };
        }
    }

    /// A builder whose batch has room for `rows` rows: a queue that fills to a known size
    /// grows its rows once, not by copying them at every doubling.
    pub fn with_capacity(rows: usize) -> Self {
        let mut builder = Self::default();
        builder.batch.rows.reserve_exact(rows);
        builder
    }

    pub fn push(&mut self, row: AuditRow) {
        self.batch.rows.push(row);
    }

    pub fn rows(&self) -> usize {
        self.batch.rows.len()
    }

    /// Keeps the first `rows` rows (their texts stay: a later [`absorb`](Self::absorb) or
    /// store leaves out those no row names).
    pub fn truncate(&mut self, rows: usize) {
        self.batch.rows.truncate(rows);
    }

    /// Appends the rows of `other`, copying only the texts they name (an index out of
    /// `other`'s texts becomes the empty text).
    pub fn absorb(&mut self, other: AuditBatch) {
        let mut mapped: Vec<Option<u32>> = vec![None; other.texts.len()];
        if let Some(first) = mapped.first_mut() {
            *first = Some(0);
        }
        self.batch.rows.reserve(other.rows.len());
        for mut row in other.rows {
            for field in row.text_fields_mut() {
                *field = match mapped.get_mut(*field as usize) {
                    Some(Some(known)) => *known,
                    Some(slot) => *slot.insert(self.text(&other.texts[*field as usize])),
                    None => 0,
                };
            }
            self.batch.rows.push(row);
        }
    }

    /// The batch so far, leaving this builder empty.
    pub fn take(&mut self) -> AuditBatch {
        std::mem::take(self).batch
    }

    pub fn finish(self) -> AuditBatch {
        self.batch
    }
}

/// `a == b`, the lengths compared before the bytes: of a row's eleven texts most are empty
/// or differ in length from the one they are compared with, and a call to `memcmp` costs
/// more than the comparison it spares.
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a.as_bytes() == b.as_bytes())
}

impl AuditRow {
    /// The indexes of [`text_fields_mut`](Self::text_fields_mut), in its order.
    pub fn text_fields(&self) -> [u32; 11] {
        [
            self.who_kind,
            self.who_id,
            self.who_name,
            self.who_client,
            self.method,
            self.view,
            self.provider,
            self.target,
            self.outcome,
            self.reason,
            self.source,
        ]
    }

    /// The fields that name a text, by index into the batch's `texts`.
    pub fn text_fields_mut(&mut self) -> [&mut u32; 11] {
        [
            &mut self.who_kind,
            &mut self.who_id,
            &mut self.who_name,
            &mut self.who_client,
            &mut self.method,
            &mut self.view,
            &mut self.provider,
            &mut self.target,
            &mut self.outcome,
            &mut self.reason,
            &mut self.source,
        ]
    }
}

impl AuditBatch {
    /// The text at `index` (the empty text past the end).
    pub fn text(&self, index: u32) -> &str {
        self.texts.get(index as usize).map_or("", String::as_str)
    }

    /// The rows as entries, each text written out (a gateway of before batches sent these).
    pub fn entries(&self) -> Vec<AuditEntry> {
        (0..self.rows.len()).map(|i| self.entry(i)).collect()
    }

    /// Row `index` as an entry, each text written out.
    pub fn entry(&self, index: usize) -> AuditEntry {
        let r = &self.rows[index];
        let text = |i: u32| self.text(i).to_owned();
        AuditEntry {
            at_ms: r.at_ms,
            who_kind: text(r.who_kind),
            who_id: text(r.who_id),
            who_name: text(r.who_name),
            who_client: text(r.who_client),
            method: text(r.method),
            view: text(r.view),
            provider: text(r.provider),
            target: text(r.target),
            outcome: text(r.outcome),
            error_code: r.error_code,
            reason: text(r.reason),
            duration_us: r.duration_us,
            request_bytes: r.request_bytes,
            response_bytes: r.response_bytes,
            trace_id: r.trace_id.clone(),
            arguments: r.arguments.clone(),
        }
    }
}

impl AuditBatchBuilder {
    /// The row of `entry`, its texts added; the row, for the fields an entry has not.
    pub fn push_entry(&mut self, entry: AuditEntry) -> &mut AuditRow {
        let mut row = AuditRow {
            at_ms: entry.at_ms,
            error_code: entry.error_code,
            duration_us: entry.duration_us,
            request_bytes: entry.request_bytes,
            response_bytes: entry.response_bytes,
            ..Default::default()
        };
        let texts = [
            entry.who_kind.as_str(),
            &entry.who_id,
            &entry.who_name,
            &entry.who_client,
            &entry.method,
            &entry.view,
            &entry.provider,
            &entry.target,
            &entry.outcome,
            &entry.reason,
            "",
        ];
        self.name_texts(&mut row, texts);
        row.trace_id = entry.trace_id;
        row.arguments = entry.arguments;
        self.push(row);
        self.batch.rows.last_mut().expect("just pushed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(who: &str, tool: &str) -> AuditEntry {
        AuditEntry {
            at_ms: 7,
            who_kind: "api_key".into(),
            who_id: who.into(),
            method: "tools/call".into(),
            provider: "time".into(),
            target: tool.into(),
            outcome: "ok".into(),
            ..Default::default()
        }
    }

    /// Whether the previous row had the same text or not, a field names its own text.
    #[test]
    fn named_texts_are_the_texts_given() {
        let texts = |kind, who, method, tool| {
            [
                kind, who, "", "", method, "flat", "time", tool, "ok", "", "",
            ]
        };
        let rows = [
            texts("api_key", "k1", "tools/call", "now"),
            texts("api_key", "k1", "tools/call", "now"),
            texts("api_key", "k2", "tools/call", "k1"),
            texts("oauth", "k1", "prompts/get", ""),
        ];
        let mut builder = AuditBatchBuilder::new();
        for texts in rows {
            let mut row = AuditRow::default();
            builder.name_texts(&mut row, texts);
            builder.push(row);
        }
        let batch = builder.finish();
        assert_eq!(batch.texts.iter().filter(|t| *t == "k1").count(), 1);
        for (row, texts) in batch.rows.iter().zip(rows) {
            let named: Vec<&str> = row.text_fields().iter().map(|&i| batch.text(i)).collect();
            assert_eq!(named, texts);
        }
    }

    #[test]
    fn texts_are_kept_once_and_batches_join_by_index() {
        let mut a = AuditBatchBuilder::new();
        a.push_entry(entry("k1", "now"));
        a.push_entry(entry("k1", "now"));
        a.push_entry(entry("k2", "later"));
        let mut b = AuditBatchBuilder::new();
        b.push_entry(entry("k2", "soon"));
        let mut b = b.finish();
        // A text no row names is not copied; an index past the texts becomes "".
        b.texts.push("unnamed".into());
        b.rows.push(AuditRow {
            target: 999,
            ..b.rows[0].clone()
        });
        a.absorb(b);
        let batch = a.finish();
        let texts: Vec<&str> = batch.texts.iter().map(String::as_str).collect();
        assert_eq!(
            texts,
            [
                "",
                "api_key",
                "k1",
                "tools/call",
                "time",
                "now",
                "ok",
                "k2",
                "later",
                "soon"
            ]
        );
        let tools: Vec<String> = batch.entries().into_iter().map(|e| e.target).collect();
        assert_eq!(tools, ["now", "now", "later", "soon", ""]);
    }

    #[test]
    fn past_a_few_texts_an_index_finds_them() {
        let mut builder = AuditBatchBuilder::new();
        let first: Vec<u32> = (0..100).map(|i| builder.text(&format!("t{i}"))).collect();
        let again: Vec<u32> = (0..100).map(|i| builder.text(&format!("t{i}"))).collect();
        assert_eq!(first, again);
        assert_eq!(first, (1..=100).collect::<Vec<u32>>());
        let mut resumed = AuditBatchBuilder::from_batch(builder.finish());
        assert_eq!(resumed.text("t42"), 43);
        assert_eq!(resumed.text("new"), 101);
    }
}
