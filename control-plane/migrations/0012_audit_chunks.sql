-- The audit log in chunks (issue 14): one row per batch the control plane's writer takes
-- (up to 1000 records), instead of one row per record. A row per call with its indexes cost
-- SQLite about 20,000 instructions per record (its B-trees and the statement), on the same
-- cores as the call itself (about 140,000); a chunk costs its encoding, once per record.
-- What a record holds is said in 0006_audit.sql; `records` holds them as the protobuf
-- `AuditBatch` of proto/mcpr.proto (each text once, rows naming texts by index), in base64.
-- A row without an id of its own has the chunk's id and its place in the chunk (four hex
-- digits) as its id. `GET /api/v1/audit` (and its CSV and JSON-lines export) reads them.
--
-- The lists below let a filtered read skip the chunks that cannot hold a match: each is the
-- chunk's distinct values of a filtered field, every one between newlines ("\na\nb\n"), or
-- '*' when there were too many to list (then the chunk is read for every filter). A list may
-- match more than the field (a value holding a newline): the reader checks each record.
CREATE TABLE audit_chunk (
    -- UUIDv7 (time-ordered), made by the control plane that stored the chunk.
    id TEXT PRIMARY KEY,
    -- The earliest and the latest `at_ms` of its records.
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    record_count BIGINT NOT NULL,
    -- `who_id`, `who_name` and `who_kind` of its records (the API's `who` filter).
    whos TEXT NOT NULL,
    providers TEXT NOT NULL,
    targets TEXT NOT NULL,
    methods TEXT NOT NULL,
    outcomes TEXT NOT NULL,
    records TEXT NOT NULL
);

-- Reading newest first (keyset on last_ms, id), time ranges and the retention prune.
CREATE INDEX audit_chunk_last ON audit_chunk (last_ms, id);
CREATE INDEX audit_chunk_first ON audit_chunk (first_ms);

-- The rows of audit_log are moved into chunks by the control plane at start
-- (`store/audit.rs`, `move_rows_into_chunks`): the move needs JSON that SQL written for both
-- databases cannot make. audit_log is left empty; a later migration can drop it once every
-- store has started once on this one.
