-- Where a server came from (issue 16): a repository analyzed or an MCP Registry entry, as
-- the JSON of `mcpr_core::model::ServerSource`; '' for servers typed in by hand.
ALTER TABLE servers ADD COLUMN source TEXT NOT NULL DEFAULT '';
