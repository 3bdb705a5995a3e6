-- The `who` filter of GET /api/v1/audit matches the key id, the key's name or the kind of
-- caller (`who_id = ? OR who_name = ? OR who_kind = ?`): an index on who_id alone serves
-- no such query, on SQLite or Postgres, and every insert paid for it (issue 14).
DROP INDEX audit_log_who;
