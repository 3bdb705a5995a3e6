-- The audit log (issue 14): one row per finished client request a gateway served (tool call,
-- resource read, prompt get, sandbox run, refusals included) and per admin change the control
-- plane made. Portable SQL as in 0001: TEXT and BIGINT only, the same on SQLite and Postgres.
CREATE TABLE audit_log (
    -- Made by the control plane that stored the row: unique, and the tie-break of the
    -- (at_ms, id) order the API pages by.
    id TEXT PRIMARY KEY,
    -- When the request finished, Unix milliseconds.
    at_ms BIGINT NOT NULL,
    -- Who: 'api_key', 'oauth', 'anonymous', 'stdio' or 'admin'.
    who_kind TEXT NOT NULL,
    -- The key id, OAuth subject or admin session id ('' when there is none).
    who_id TEXT NOT NULL DEFAULT '',
    -- The key's name, or the admin session's kind ('cli', 'ui', 'open').
    who_name TEXT NOT NULL DEFAULT '',
    -- The OAuth client id.
    who_client TEXT NOT NULL DEFAULT '',
    -- The JSON-RPC method (tools/call, resources/read, prompts/get, ...) or the admin
    -- action (server.create, key.revoke, ...).
    method TEXT NOT NULL,
    -- The view the client used ('' for admin changes).
    view TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT '',
    -- The tool, resource URI or prompt name, or the object of an admin change.
    target TEXT NOT NULL DEFAULT '',
    -- 'ok', 'error' or 'refused'.
    outcome TEXT NOT NULL,
    -- The JSON-RPC error code (or the HTTP status of an admin change); 0 when ok.
    error_code BIGINT NOT NULL DEFAULT 0,
    -- Why it failed or was refused (the error message, 'scope', 'rate_limit', ...).
    reason TEXT NOT NULL DEFAULT '',
    duration_us BIGINT NOT NULL DEFAULT 0,
    request_bytes BIGINT NOT NULL DEFAULT 0,
    response_bytes BIGINT NOT NULL DEFAULT 0,
    -- The OpenTelemetry trace id (32 hex) when the call was traced.
    trace_id TEXT NOT NULL DEFAULT '',
    -- The call's arguments: '' (MCPR_AUDIT_ARGUMENTS unset), 'sha256:HEX' or the JSON.
    arguments TEXT NOT NULL DEFAULT '',
    -- Which gateway reported it ('control-plane' for admin changes).
    source TEXT NOT NULL DEFAULT ''
);

-- Paging (newest first) and the retention prune.
CREATE INDEX audit_log_at ON audit_log (at_ms, id);
-- The API's filters, each followed by the time so a filtered page is an index range.
CREATE INDEX audit_log_who ON audit_log (who_id, at_ms);
CREATE INDEX audit_log_provider ON audit_log (provider, at_ms);
CREATE INDEX audit_log_target ON audit_log (target, at_ms);
CREATE INDEX audit_log_outcome ON audit_log (outcome, at_ms);
