-- OAuth clients and consents an admin can see and revoke (issue 13). Portable SQL as in
-- 0001: TEXT and BIGINT only.
-- One row per approval on the consent page. Its id is the refresh-token family of the
-- tokens the approval's code leads to and the `consent_id` claim of their access tokens,
-- so that revoking it reaches both.
CREATE TABLE oauth_consents (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    -- As the client named itself when consent was given (metadata-document clients have no
    -- row in oauth_clients).
    client_name TEXT NOT NULL,
    subject TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL DEFAULT 0,
    revoked_at_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oauth_consents_client ON oauth_consents (client_id);

-- The consent a code was approved under ('' for codes of before this migration).
ALTER TABLE oauth_codes ADD COLUMN consent_id TEXT NOT NULL DEFAULT '';
-- When the client last got tokens, and when an admin revoked it (0: never).
ALTER TABLE oauth_clients ADD COLUMN last_used_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN revoked_at_ms BIGINT NOT NULL DEFAULT 0;
