-- Per-tool settings (issue 13): a tool disabled, or shown to clients under another name or
-- description. Keyed by the server's id and the tool's name as its upstream lists it; a row
-- exists only while some setting differs from the upstream's. Deleted with the server
-- (`Store::delete_server`).
CREATE TABLE tool_overrides (
    server_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (server_id, tool)
);
