-- Portable SQL: the same migration runs on SQLite and Postgres (through sqlx's Any driver).
-- Timestamps are RFC 3339 text, booleans are 0/1 integers, JSON is text.
CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    runtime TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    session_mode TEXT NOT NULL DEFAULT 'shared',
    restart_generation BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
