-- Placement constraints (issue 15): a server's selector, as the JSON of
-- `mcpr_core::placement::Placement` ('' for none: any agent), and the labels agents report
-- at registration, as a JSON object ('' for none). `running`: the server ids an agent's last
-- status report listed, so that a server moved off an agent starts elsewhere only once the
-- old agent no longer runs it.
ALTER TABLE servers ADD COLUMN placement TEXT NOT NULL DEFAULT '';
ALTER TABLE cluster_agents ADD COLUMN labels TEXT NOT NULL DEFAULT '';
ALTER TABLE cluster_agents ADD COLUMN running TEXT NOT NULL DEFAULT '';
