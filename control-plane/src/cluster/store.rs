//! The SQL of the cluster (tables of `migrations/0005_cluster.sql`): the placement lease,
//! the shared config version, agents, assignments, status, control planes and gateways.
//! Postgres only (a SQLite store is one process, always the leader); times come from the
//! database's clock so that control planes on hosts with skewed clocks agree on expiry.

use std::collections::{BTreeSet, HashMap};
#[cfg(test)]
use std::time::Duration;

use mcpr_core::model::ServerState;
use mcpr_core::placement::Labels;
use sqlx::Row;

use crate::fleet::{AgentRecord, Outbox, ServerStatusView, SharedState, count_tools};
use crate::store::{Store, StoreError};

/// The database's clock in Unix milliseconds, as an SQL expression.
const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// Why the leader's write of assignments was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "placement refused: the lease is at epoch {current} held by {holder:?}, this write carries epoch {epoch}"
    )]
    Fenced {
        epoch: u64,
        current: u64,
        holder: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlacementError {
    fn from(e: sqlx::Error) -> Self {
        PlacementError::Store(e.into())
    }
}

/// A row of `cluster_control_planes`, `cluster_agents` or `cluster_gateways` with its age.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Member {
    pub id: String,
    /// The control plane's gRPC address, the agent's relay URL, the gateway's control plane.
    pub address: String,
    /// Milliseconds since it was last heard of (the database's clock).
    pub silent_ms: i64,
    /// The gateway's last received snapshot version (0 for the others).
    pub version: u64,
}

/// The lease as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lease {
    pub holder: String,
    pub epoch: u64,
    /// Milliseconds until it expires (negative: expired).
    pub expires_in_ms: i64,
}

impl Store {
    /// Renews the placement lease `holder` has at `epoch`, or takes it over when it expired:
    /// the epoch goes up by one, and past `floor` (the highest epoch known to have been
    /// followed, above the stored one only if the database went back). Returns the epoch
    /// held afterwards, `None` when another control plane holds it.
    pub async fn acquire_lease(
        &self,
        holder: &str,
        epoch: u64,
        ttl_ms: i64,
        floor: u64,
    ) -> Result<Option<u64>, StoreError> {
        if epoch > 0 {
            let renewed = sqlx::query(&format!(
                "UPDATE cluster_lease SET expires_at_ms = {NOW_MS} + $1 \
                 WHERE name = 'placement' AND holder = $2 AND epoch = $3 AND expires_at_ms > {NOW_MS}"
            ))
            .bind(ttl_ms)
            .bind(holder)
            .bind(epoch as i64)
            .execute(self.pool())
            .await?;
            if renewed.rows_affected() == 1 {
                return Ok(Some(epoch));
            }
        }
        let taken = sqlx::query(&format!(
            "UPDATE cluster_lease SET holder = $1, epoch = GREATEST(epoch, $3) + 1, \
             expires_at_ms = {NOW_MS} + $2 \
             WHERE name = 'placement' AND expires_at_ms <= {NOW_MS} RETURNING epoch"
        ))
        .bind(holder)
        .bind(ttl_ms)
        .bind(floor as i64)
        .fetch_optional(self.pool())
        .await?;
        Ok(match taken {
            Some(row) => Some(row.try_get::<i64, _>("epoch")? as u64),
            None => None,
        })
    }

    /// Ends a lease whose epoch is below `epoch`, one an agent followed (the database went
    /// back): its holder's renewal fails, and the next takeover, at once, goes past it.
    /// Returns whether it did.
    pub async fn outdate_lease(&self, epoch: u64) -> Result<bool, StoreError> {
        let outdated = sqlx::query(
            "UPDATE cluster_lease SET epoch = $1, expires_at_ms = 0 \
             WHERE name = 'placement' AND epoch < $1",
        )
        .bind(epoch as i64)
        .execute(self.pool())
        .await?;
        Ok(outdated.rows_affected() == 1)
    }

    /// Gives the lease up (a clean shutdown), so that another control plane leads at once.
    pub async fn release_lease(&self, holder: &str, epoch: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cluster_lease SET expires_at_ms = 0 \
             WHERE name = 'placement' AND holder = $1 AND epoch = $2",
        )
        .bind(holder)
        .bind(epoch as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn lease(&self) -> Result<Lease, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT holder, epoch, expires_at_ms - {NOW_MS} AS expires_in_ms \
             FROM cluster_lease WHERE name = 'placement'"
        ))
        .fetch_one(self.pool())
        .await?;
        Ok(Lease {
            holder: row.try_get("holder")?,
            epoch: row.try_get::<i64, _>("epoch")? as u64,
            expires_in_ms: row.try_get("expires_in_ms")?,
        })
    }

    /// Writes the placement of the leader at `epoch`: refused, with nothing written, unless
    /// `holder` still holds the lease at that epoch. The lease row is locked for the
    /// transaction, so a takeover waits for it to commit and a deposed leader's late write
    /// fails. Returns whether anything changed (the config version was bumped then).
    pub async fn write_placement(
        &self,
        holder: &str,
        epoch: u64,
        placement: &HashMap<String, String>,
    ) -> Result<bool, PlacementError> {
        let mut tx = self.pool().begin().await?;
        let lease = sqlx::query(&format!(
            "SELECT holder, epoch, expires_at_ms > {NOW_MS} AS valid \
             FROM cluster_lease WHERE name = 'placement' FOR UPDATE"
        ))
        .fetch_one(&mut *tx)
        .await?;
        let current_holder: String = lease.try_get("holder")?;
        let current = lease.try_get::<i64, _>("epoch")? as u64;
        let valid: bool = lease.try_get("valid")?;
        if current_holder != holder || current != epoch || !valid {
            return Err(PlacementError::Fenced {
                epoch,
                current,
                holder: current_holder,
            });
        }
        let rows = sqlx::query("SELECT server_id, agent_id FROM cluster_assignments")
            .fetch_all(&mut *tx)
            .await?;
        let mut stored = HashMap::new();
        for row in rows {
            stored.insert(
                row.try_get::<String, _>("server_id")?,
                row.try_get::<String, _>("agent_id")?,
            );
        }
        let mut changed = false;
        for server in stored.keys().filter(|s| !placement.contains_key(*s)) {
            sqlx::query("DELETE FROM cluster_assignments WHERE server_id = $1")
                .bind(server)
                .execute(&mut *tx)
                .await?;
            changed = true;
        }
        for (server, agent) in placement {
            if stored.get(server) == Some(agent) {
                continue;
            }
            sqlx::query(
                "INSERT INTO cluster_assignments (server_id, agent_id, epoch) VALUES ($1, $2, $3) \
                 ON CONFLICT (server_id) DO UPDATE SET agent_id = excluded.agent_id, epoch = excluded.epoch",
            )
            .bind(server)
            .bind(agent)
            .bind(epoch as i64)
            .execute(&mut *tx)
            .await?;
            changed = true;
        }
        // Status reported by an agent that no longer runs the server is stale.
        let stale = sqlx::query(
            "DELETE FROM cluster_status WHERE NOT EXISTS (SELECT 1 FROM cluster_assignments a \
             WHERE a.server_id = cluster_status.server_id AND a.agent_id = cluster_status.agent_id)",
        )
        .execute(&mut *tx)
        .await?;
        changed |= stale.rows_affected() > 0;
        if changed {
            bump_version(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Forgets agents silent for longer than `timeout_ms`; returns their ids.
    pub async fn expire_cluster_agents(&self, timeout_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!(
            "DELETE FROM cluster_agents WHERE last_seen_ms < {NOW_MS} - $1 RETURNING id"
        ))
        .bind(timeout_ms)
        .fetch_all(self.pool())
        .await?;
        let mut gone = Vec::new();
        for row in rows {
            gone.push(row.try_get("id")?);
        }
        if !gone.is_empty() {
            self.bump_config_version().await?;
        }
        Ok(gone)
    }

    pub async fn bump_config_version(&self) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes what agents told control plane `me`: they are alive (heard now), and the status
    /// of the servers they hold (a report for a server assigned elsewhere is dropped). Bumps
    /// the config version when the outbox says something visible changed.
    pub async fn flush_outbox(&self, me: &str, outbox: &Outbox) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (agent, note) in &outbox.agents {
            sqlx::query(&format!(
                "INSERT INTO cluster_agents (id, relay_url, control_plane, last_seen_ms) \
                 VALUES ($1, $2, $3, {NOW_MS}) ON CONFLICT (id) DO UPDATE SET \
                 relay_url = excluded.relay_url, control_plane = excluded.control_plane, \
                 last_seen_ms = excluded.last_seen_ms"
            ))
            .bind(agent)
            .bind(&note.relay_url)
            .bind(me)
            .execute(&mut *tx)
            .await?;
            // Only what the note says: a heartbeat leaves labels and running servers alone.
            let said = [
                ("labels", note.labels.as_ref().map(serde_json::to_string)),
                ("running", note.running.as_ref().map(serde_json::to_string)),
            ];
            for (column, json) in said {
                let Some(json) = json else { continue };
                let json = json.expect("labels and server ids serialize");
                sqlx::query(&format!(
                    "UPDATE cluster_agents SET {column} = $1 WHERE id = $2"
                ))
                .bind(json)
                .bind(agent)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (server, s) in &outbox.status {
            sqlx::query(
                "INSERT INTO cluster_status (server_id, agent_id, state, last_error, restart_count, \
                 tools_json, server_info_json, updated_at_ms, restart_generation, progress) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM \
                 cluster_assignments WHERE server_id = $1 AND agent_id = $2) \
                 ON CONFLICT (server_id) DO UPDATE SET agent_id = excluded.agent_id, \
                 state = excluded.state, last_error = excluded.last_error, \
                 restart_count = excluded.restart_count, tools_json = excluded.tools_json, \
                 server_info_json = excluded.server_info_json, updated_at_ms = excluded.updated_at_ms, \
                 restart_generation = excluded.restart_generation, progress = excluded.progress",
            )
            .bind(server)
            .bind(&s.agent_id)
            .bind(s.state.to_proto() as i64)
            .bind(&s.last_error)
            .bind(s.restart_count as i64)
            .bind(&s.tools_json)
            .bind(&s.server_info_json)
            .bind(s.updated_at_ms)
            .bind(s.restart_generation as i64)
            .bind(&s.progress)
            .execute(&mut *tx)
            .await?;
        }
        if outbox.changed {
            bump_version(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Control plane `me` is alive; `gateways` are the watches it serves (id, version sent).
    pub async fn announce_control_plane(
        &self,
        me: &str,
        grpc_addr: &str,
        gateways: &[(String, u64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO cluster_control_planes (id, grpc_addr, started_at_ms, last_seen_ms) \
             VALUES ($1, $2, {NOW_MS}, {NOW_MS}) ON CONFLICT (id) DO UPDATE SET \
             grpc_addr = excluded.grpc_addr, last_seen_ms = excluded.last_seen_ms"
        ))
        .bind(me)
        .bind(grpc_addr)
        .execute(&mut *tx)
        .await?;
        for (gateway, version) in gateways {
            sqlx::query(&format!(
                "INSERT INTO cluster_gateways (id, control_plane, version, last_seen_ms) \
                 VALUES ($1, $2, $3, {NOW_MS}) ON CONFLICT (id) DO UPDATE SET \
                 control_plane = excluded.control_plane, version = excluded.version, \
                 last_seen_ms = excluded.last_seen_ms"
            ))
            .bind(gateway)
            .bind(me)
            .bind(*version as i64)
            .execute(&mut *tx)
            .await?;
        }
        // Members silent for a minute are gone for good.
        for table in ["cluster_control_planes", "cluster_gateways"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE last_seen_ms < {NOW_MS} - 60000"
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The shared config version alone (read every tick).
    /// Raises the config version to `version` unless it is there already.
    pub async fn raise_config_version(&self, version: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cluster_version SET version = $1 WHERE name = 'config' AND version < $1",
        )
        .bind(version as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn config_version(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT version FROM cluster_version WHERE name = 'config'")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<i64, _>("version")? as u64)
    }

    /// The cluster's agents, placement and status, read in one transaction so they agree
    /// with the version read with them.
    pub async fn shared_state(&self) -> Result<SharedState, StoreError> {
        self.read_shared_state(true).await
    }

    /// What placement needs: the agents and the placement, not the servers' status (at
    /// 1,000 servers that is megabytes of tool lists, issue 15).
    pub async fn placement_state(&self) -> Result<SharedState, StoreError> {
        self.read_shared_state(false).await
    }

    async fn read_shared_state(&self, with_status: bool) -> Result<SharedState, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let version = sqlx::query("SELECT version FROM cluster_version WHERE name = 'config'")
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>("version")? as u64;
        let mut state = SharedState {
            version,
            ..Default::default()
        };
        for row in sqlx::query("SELECT id, relay_url, labels, running FROM cluster_agents")
            .fetch_all(&mut *tx)
            .await?
        {
            let id: String = row.try_get("id")?;
            let json_column = |column: &str| -> Result<String, StoreError> {
                let text: String = row.try_get(column)?;
                Ok(if text.is_empty() { "null".into() } else { text })
            };
            let corrupt = |e: serde_json::Error| {
                StoreError::Corrupt(format!("agent {id:?} in the cluster: {e}"))
            };
            let labels: Option<Labels> =
                serde_json::from_str(&json_column("labels")?).map_err(corrupt)?;
            let running: Option<BTreeSet<String>> =
                serde_json::from_str(&json_column("running")?).map_err(corrupt)?;
            let record = AgentRecord {
                relay_url: row.try_get("relay_url")?,
                labels: labels.unwrap_or_default(),
                running: running.unwrap_or_default(),
            };
            state.agents.insert(id, record);
        }
        // The lease's epoch rather than the rows': rows of the newest epoch may be deleted
        // (their server removed), the lease's epoch only goes up.
        state.epoch = sqlx::query("SELECT epoch FROM cluster_lease WHERE name = 'placement'")
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>("epoch")? as u64;
        for row in sqlx::query("SELECT server_id, agent_id FROM cluster_assignments")
            .fetch_all(&mut *tx)
            .await?
        {
            state
                .placement
                .insert(row.try_get("server_id")?, row.try_get("agent_id")?);
        }
        let status = match with_status {
            true => {
                sqlx::query(
                    "SELECT server_id, agent_id, state, last_error, restart_count, tools_json, \
                     server_info_json, updated_at_ms, restart_generation, progress \
                     FROM cluster_status",
                )
                .fetch_all(&mut *tx)
                .await?
            }
            false => Vec::new(),
        };
        for row in status {
            let tools_json: String = row.try_get("tools_json")?;
            let tool_count = count_tools(&tools_json);
            state.status.insert(
                row.try_get("server_id")?,
                ServerStatusView {
                    state: ServerState::from_proto(row.try_get::<i64, _>("state")? as i32),
                    agent_id: row.try_get("agent_id")?,
                    last_error: row.try_get("last_error")?,
                    restart_count: row.try_get::<i64, _>("restart_count")? as u32,
                    tool_count,
                    updated_at_ms: row.try_get("updated_at_ms")?,
                    progress: row.try_get("progress")?,
                    tools_json,
                    server_info_json: row.try_get("server_info_json")?,
                    restart_generation: row.try_get::<i64, _>("restart_generation")? as u64,
                },
            );
        }
        tx.commit().await?;
        Ok(state)
    }

    /// Rows of `cluster_control_planes`, `cluster_agents` or `cluster_gateways`.
    pub async fn cluster_members(&self, table: MemberTable) -> Result<Vec<Member>, StoreError> {
        let (address, version) = match table {
            MemberTable::ControlPlanes => ("grpc_addr", "0"),
            MemberTable::Agents => ("relay_url", "0"),
            MemberTable::Gateways => ("control_plane", "version"),
        };
        let sql = format!(
            "SELECT id, {address} AS address, {NOW_MS} - last_seen_ms AS silent_ms, \
             CAST({version} AS BIGINT) AS version FROM {} ORDER BY id",
            table.name()
        );
        let mut members = Vec::new();
        for row in sqlx::query(&sql).fetch_all(self.pool()).await? {
            members.push(Member {
                id: row.try_get("id")?,
                address: row.try_get("address")?,
                silent_ms: row.try_get("silent_ms")?,
                version: row.try_get::<i64, _>("version")? as u64,
            });
        }
        Ok(members)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum MemberTable {
    ControlPlanes,
    Agents,
    Gateways,
}

impl MemberTable {
    fn name(self) -> &'static str {
        match self {
            MemberTable::ControlPlanes => "cluster_control_planes",
            MemberTable::Agents => "cluster_agents",
            MemberTable::Gateways => "cluster_gateways",
        }
    }
}

async fn bump_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cluster_version SET version = version + 1 WHERE name = 'config'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::AgentNote;
    use crate::store::tests::fresh_postgres;

    /// Raising the version never lowers it.
    #[tokio::test]
    async fn the_config_version_is_raised_never_lowered() {
        let Some(url) = fresh_postgres().await else {
            return;
        };
        let store = Store::connect(&url).await.unwrap();
        let start = store.config_version().await.unwrap();
        store.raise_config_version(start + 10).await.unwrap();
        assert_eq!(store.config_version().await.unwrap(), start + 10);
        store.raise_config_version(start + 3).await.unwrap();
        assert_eq!(store.config_version().await.unwrap(), start + 10);
        store.bump_config_version().await.unwrap();
        assert_eq!(store.config_version().await.unwrap(), start + 11);
    }

    /// The lease moves only when it expired, with a new epoch; the deposed holder's write of
    /// assignments is refused and leaves the successor's placement as it was.
    #[tokio::test]
    async fn lease_epochs_fence_a_deposed_leader() {
        let Some(url) = fresh_postgres().await else {
            return;
        };
        let store = Store::connect(&url).await.unwrap();
        let first = store.acquire_lease("a", 0, 300, 0).await.unwrap();
        assert_eq!(first, Some(1));
        assert_eq!(
            store.acquire_lease("b", 0, 300, 0).await.unwrap(),
            None,
            "held"
        );
        assert_eq!(
            store.acquire_lease("a", 1, 300, 0).await.unwrap(),
            Some(1),
            "renewed"
        );
        let mut placement = HashMap::from([("s1".to_owned(), "agent-a".to_owned())]);
        assert!(store.write_placement("a", 1, &placement).await.unwrap());
        assert!(
            !store.write_placement("a", 1, &placement).await.unwrap(),
            "no change"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            store.acquire_lease("b", 0, 5000, 0).await.unwrap(),
            Some(2),
            "taken over"
        );
        assert_eq!(
            store.acquire_lease("a", 1, 300, 0).await.unwrap(),
            None,
            "a is deposed"
        );
        placement.insert("s1".into(), "agent-b".into());
        assert!(store.write_placement("b", 2, &placement).await.unwrap());
        let late = HashMap::from([("s1".to_owned(), "agent-a".to_owned())]);
        match store.write_placement("a", 1, &late).await {
            Err(PlacementError::Fenced {
                epoch,
                current,
                holder,
            }) => {
                assert_eq!((epoch, current, holder.as_str()), (1, 2, "b"));
            }
            other => panic!("a deposed leader's write went through: {other:?}"),
        }
        let state = store.shared_state().await.unwrap();
        assert_eq!(state.placement["s1"], "agent-b");
        assert_eq!(state.epoch, 2);
        // Status of a server from an agent it is not assigned to is dropped.
        let mut outbox = Outbox::default();
        let status = |agent: &str| ServerStatusView {
            agent_id: agent.into(),
            state: ServerState::Running,
            ..Default::default()
        };
        outbox.status.insert("s1".into(), status("agent-a"));
        store.flush_outbox("cp", &outbox).await.unwrap();
        assert!(store.shared_state().await.unwrap().status.is_empty());
        outbox.status.insert("s1".into(), status("agent-b"));
        let labels = Labels::from([("zone".to_owned(), "b".to_owned())]);
        outbox.agents.insert(
            "agent-b".into(),
            AgentNote {
                relay_url: "http://b".into(),
                labels: Some(labels.clone()),
                running: Some(BTreeSet::from(["s1".to_owned()])),
            },
        );
        outbox.changed = true;
        let before = store.config_version().await.unwrap();
        store.flush_outbox("cp", &outbox).await.unwrap();
        let state = store.shared_state().await.unwrap();
        assert_eq!(state.status["s1"].agent_id, "agent-b");
        let agent = AgentRecord {
            relay_url: "http://b".into(),
            labels,
            running: BTreeSet::from(["s1".to_owned()]),
        };
        assert_eq!(state.agents["agent-b"], agent);
        assert_eq!(state.version, before + 1);
        // A heartbeat alone keeps the labels and running servers written before.
        let mut heartbeat = Outbox::default();
        heartbeat.agents.insert(
            "agent-b".into(),
            AgentNote {
                relay_url: "http://b".into(),
                ..Default::default()
            },
        );
        store.flush_outbox("cp", &heartbeat).await.unwrap();
        assert_eq!(store.shared_state().await.unwrap().agents["agent-b"], agent);
        store.release_lease("b", 2).await.unwrap();
        assert_eq!(
            store.acquire_lease("a", 0, 300, 0).await.unwrap(),
            Some(3),
            "released"
        );
        // Taken over past the highest epoch followed (a database that went back), and a
        // floor below the stored epoch changes nothing.
        store.release_lease("a", 3).await.unwrap();
        assert_eq!(store.acquire_lease("b", 0, 300, 9).await.unwrap(), Some(10));
        store.release_lease("b", 10).await.unwrap();
        assert_eq!(store.acquire_lease("a", 0, 300, 2).await.unwrap(), Some(11));
        // Held at 11 while an agent followed 14: the holder cannot renew, and whoever takes
        // it next goes past 14; an epoch at or below the lease's changes nothing.
        assert!(!store.outdate_lease(11).await.unwrap());
        assert_eq!(
            store.acquire_lease("a", 11, 300, 0).await.unwrap(),
            Some(11)
        );
        assert!(store.outdate_lease(14).await.unwrap());
        assert_eq!(
            store.acquire_lease("a", 11, 300, 0).await.unwrap(),
            Some(15)
        );
    }
}
