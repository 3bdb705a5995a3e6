-- Admin MCP tokens (issue 13, "Try a tool"): short-lived credentials an admin session mints
-- so that the web UI can call MCP through the gateway as that admin. Hashed like API keys
-- (SHA-256 hex, never the token); not API keys: they are never listed with them and never
-- make a router require keys. Rows go when their session logs out or when they expire.
CREATE TABLE admin_mcp_tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    -- The admin session that minted it (`admin_tokens.id`; '' without ADMIN_PASSCODE) and
    -- its kind (`ui`, `cli`, `open`): what the audit log names as the caller.
    session_id TEXT NOT NULL,
    session_kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
