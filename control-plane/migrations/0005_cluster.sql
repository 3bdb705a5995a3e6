-- Several control planes on one Postgres (control-plane/src/cluster/). The SQLite all-in-one
-- creates these tables too and never uses them. Times are milliseconds of the database's clock.

-- The placement lease: one row; `epoch` goes up by one at every change of holder.
CREATE TABLE cluster_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
INSERT INTO cluster_lease (name, holder, epoch, expires_at_ms) VALUES ('placement', '', 0, 0);

-- The version every control plane's ConfigService.Watch serves; bumped by each visible change.
CREATE TABLE cluster_version (
    name TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO cluster_version (name, version) VALUES ('config', 1);

-- Control planes of the cluster, with their addresses (`mcpr cluster status`).
CREATE TABLE cluster_control_planes (
    id TEXT PRIMARY KEY,
    grpc_addr TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);

-- Live agents, whichever control plane they talk to.
CREATE TABLE cluster_agents (
    id TEXT PRIMARY KEY,
    relay_url TEXT NOT NULL,
    control_plane TEXT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);

-- Which agent runs which server, written by the leader under its epoch.
CREATE TABLE cluster_assignments (
    server_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    epoch BIGINT NOT NULL
);

-- What agents last reported of their servers.
CREATE TABLE cluster_status (
    server_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    state BIGINT NOT NULL,
    last_error TEXT NOT NULL,
    restart_count BIGINT NOT NULL,
    tools_json TEXT NOT NULL,
    server_info_json TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    restart_generation BIGINT NOT NULL,
    progress TEXT NOT NULL
);

-- Gateways watching the config, with the version they last received.
CREATE TABLE cluster_gateways (
    id TEXT PRIMARY KEY,
    control_plane TEXT NOT NULL,
    version BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
