-- OAuth 2.1 authorization server (issue 5). Portable SQL as in 0001: TEXT and BIGINT only.
-- Registered clients: dynamic registration (RFC 7591). Clients identified by a metadata
-- document URL are not stored; their document is fetched when they authorize.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    client_name TEXT NOT NULL,
    -- JSON array of exact redirect URIs.
    redirect_uris TEXT NOT NULL,
    -- Space-separated scopes the client may ask for; empty: any.
    scope TEXT NOT NULL DEFAULT '',
    -- SHA-256 (hex) of the client secret; empty for public clients.
    secret_hash TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);

-- Authorization codes: single use (deleted when redeemed), a minute to live; hashed.
CREATE TABLE oauth_codes (
    hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    subject TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);

-- Refresh tokens, hashed. Each use rotates the token within its family; presenting a used
-- one again revokes the whole family.
CREATE TABLE oauth_refresh_tokens (
    hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    subject TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT NOT NULL DEFAULT 0,
    revoked_at_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oauth_refresh_tokens_family ON oauth_refresh_tokens (family_id);

-- Token signing keys (ES256): the private key sealed with the master key (secrets.rs).
CREATE TABLE oauth_signing_keys (
    kid TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
