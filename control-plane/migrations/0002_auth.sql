-- Authentication (issue 5). Portable SQL as in 0001: TEXT and BIGINT only.
-- API keys for MCP clients: only the SHA-256 of each key is stored (hex), never the key.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- The first characters of the key, to recognise it in lists (`mcpr_AbCd…`).
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    -- JSON array of scopes: "*", "provider", "provider/tool".
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL DEFAULT 0,
    revoked_at TEXT NOT NULL DEFAULT '',
    last_used_ms BIGINT NOT NULL DEFAULT 0
);

-- Admin sessions: CLI tokens (`mcpr login`) and web UI sessions; hashed like API keys.
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    csrf TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
