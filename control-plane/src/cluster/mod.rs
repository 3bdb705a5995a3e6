//! Several control planes on one Postgres. Any of them serves the REST API, the UI and the
//! config watch; exactly one at a time, the holder of the placement lease (`cluster_lease`:
//! holder, epoch, expiry), expires silent agents and places servers. The leader writes the
//! placement under its epoch, and the store refuses the write of a leader whose epoch is
//! no longer the lease's (`store.rs`, `write_placement`), so a deposed leader cannot undo
//! its successor's decisions.
//!
//! Followers learn of changes by polling: every [`SYNC_INTERVAL`] (and at once after a change
//! of their own) each control plane writes what its agents told it (heartbeats, status), reads
//! the shared config version, and when it moved reloads the servers, keys, agents, placement
//! and status, so every control plane's `ConfigService.Watch` serves the same snapshot
//! version. Polling rather than LISTEN/NOTIFY: it needs nothing beyond the SQL the store
//! already speaks, survives a Postgres restart without re-subscribing, and the tick (a
//! version read) costs less than the heartbeats it carries.
//!
//! The SQLite all-in-one never starts this: it is one process, always the leader.

pub mod status;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::fleet::{AGENT_TIMEOUT, Candidate, Fleet, Wanted};
use crate::keys::KeyRing;
use crate::registry::Registry;
use crate::store::Store;
use store::PlacementError;

/// How often a control plane syncs with the cluster.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// How long the placement lease lasts without renewal: a killed leader's successor leads
/// within this (plus one tick).
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How long a leader that took the lease over waits before it expires agents: two agent
/// timeouts, longer than an agent holds its servers after an outage of every control plane.
pub const LEADER_GRACE: Duration = Duration::from_secs(2 * AGENT_TIMEOUT.as_secs());

/// This control plane's membership of the cluster.
pub struct Cluster {
    pub id: String,
    grpc_addr: String,
    store: Store,
    registry: Arc<Registry>,
    keys: Arc<KeyRing>,
    /// The epoch of the lease this control plane holds (0: a follower).
    epoch: std::sync::atomic::AtomicU64,
    /// When this control plane took the lease it holds.
    leading_since: std::sync::Mutex<Option<Instant>>,
    /// The highest epoch agents followed that this control plane has checked the lease
    /// against ([`Cluster::lead`]).
    epoch_checked: std::sync::atomic::AtomicU64,
}

impl Cluster {
    /// Joins the cluster: reads its state once (so the first watch serves the cluster's
    /// version), then syncs in the background.
    pub async fn join(
        store: Store,
        registry: Arc<Registry>,
        keys: Arc<KeyRing>,
        grpc_addr: String,
    ) -> anyhow::Result<Arc<Cluster>> {
        registry.fleet.set_shared();
        let cluster = Arc::new(Cluster {
            id: format!("cp-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            grpc_addr,
            store,
            registry,
            keys,
            epoch: Default::default(),
            leading_since: Default::default(),
            epoch_checked: Default::default(),
        });
        // What this process wrote while starting (`MCP_API_KEY`, OAuth keys) reaches the others.
        cluster.store.bump_config_version().await?;
        cluster.reload().await?;
        tracing::info!(control_plane = %cluster.id, "joined the cluster (shared Postgres)");
        let syncing = cluster.clone();
        tokio::spawn(async move { syncing.run().await });
        Ok(cluster)
    }

    /// The epoch of the lease this control plane holds, if it leads.
    pub fn leader_epoch(&self) -> Option<u64> {
        match self.epoch.load(Ordering::Acquire) {
            0 => None,
            epoch => Some(epoch),
        }
    }

    fn fleet(&self) -> &Fleet {
        &self.registry.fleet
    }

    async fn run(self: Arc<Self>) {
        let mut lease_until = Instant::now();
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.sync(&mut lease_until).await {
                Ok(()) => {
                    if let Some(since) = failing_since.take() {
                        tracing::info!(control_plane = %self.id, after_ms = since.elapsed().as_millis() as u64, "cluster store reachable again");
                    }
                }
                Err(e) => {
                    if failing_since.is_none() {
                        tracing::warn!(control_plane = %self.id, error = %e, "cluster sync failed; serving the last state");
                        failing_since = Some(Instant::now());
                    }
                    // Without renewals the lease runs out: stop placing before it does.
                    if self.leader_epoch().is_some() && Instant::now() >= lease_until {
                        self.step_down("the lease could not be renewed");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(SYNC_INTERVAL) => {}
                _ = self.fleet().outbox_ready() => {}
            }
        }
    }

    fn step_down(&self, why: &str) {
        let epoch = self.epoch.swap(0, Ordering::AcqRel);
        if epoch != 0 {
            tracing::warn!(control_plane = %self.id, epoch, why, "no longer the leader");
        }
    }

    async fn sync(&self, lease_until: &mut Instant) -> anyhow::Result<()> {
        let outbox = self.fleet().take_outbox();
        if let Err(e) = self.store.flush_outbox(&self.id, &outbox).await {
            // Kept for the next tick: heartbeats and reports are not lost to a blip.
            self.fleet().restore_outbox(outbox);
            return Err(e.into());
        }
        let gateways: Vec<(String, u64)> = self
            .fleet()
            .gateways()
            .into_iter()
            .map(|(id, g)| (id, g.version))
            .collect();
        self.store
            .announce_control_plane(&self.id, &self.grpc_addr, &gateways)
            .await?;
        self.lead(lease_until).await?;
        let stored = self.store.config_version().await?;
        let seen = self.fleet().highest_seen();
        if stored < seen {
            // The counter only grows, and gateways ignore a snapshot older than theirs
            // (edge-gateway `snapshot/watch.rs`): it went back only if the database did (a
            // restore from a backup), and must be raised past what was served.
            tracing::warn!(
                control_plane = %self.id,
                stored,
                seen,
                "the cluster's config version went back (a restored database?); raising it past the versions already served"
            );
            self.store.raise_config_version(seen + 1).await?;
            self.reload().await?;
        } else if stored != self.fleet().version() {
            self.reload().await?;
        }
        Ok(())
    }

    /// Renews or takes the lease; the leader then expires silent agents and places servers.
    async fn lead(&self, lease_until: &mut Instant) -> anyhow::Result<()> {
        let held = self.leader_epoch().unwrap_or(0);
        // Above every epoch followed, should the database have gone back (restored).
        let floor = held.max(self.fleet().highest_epoch_seen());
        // A lease held (by any control plane, this one too) since before agents that had
        // followed a later epoch registered would keep an epoch they ignore: it is ended,
        // for a takeover past theirs. Checked once per epoch heard.
        if floor > held.max(self.epoch_checked.load(Ordering::Acquire)) {
            if self.store.outdate_lease(floor).await? {
                tracing::warn!(
                    control_plane = %self.id,
                    followed = floor,
                    "agents followed a later placement epoch than the lease's (a restored database?); taking it over past theirs"
                );
            }
            self.epoch_checked.fetch_max(floor, Ordering::AcqRel);
        }
        let asked = Instant::now();
        let ttl_ms = LEASE_TTL.as_millis() as i64;
        match self
            .store
            .acquire_lease(&self.id, held, ttl_ms, floor)
            .await?
        {
            Some(epoch) => {
                // Counted from before the request: the database's expiry is later still.
                *lease_until = asked + LEASE_TTL;
                if epoch != held {
                    self.epoch.store(epoch, Ordering::Release);
                    *self.leading_since.lock().unwrap() = Some(Instant::now());
                    tracing::info!(control_plane = %self.id, epoch, "leading placement");
                }
            }
            None => {
                self.step_down("another control plane holds the lease");
                return Ok(());
            }
        }
        let epoch = self.leader_epoch().unwrap_or(0);
        // A leader that took over (epoch 2 and up) expires no agent during its first
        // LEADER_GRACE: after an outage of every control plane (or of Postgres) the agents'
        // last heartbeats in the store are old though they kept running their servers
        // (node-agent `control.rs` keeps them while every control plane refuses
        // connections, and one agent timeout more once one answers otherwise), and they need
        // that long to reach a control plane again. An agent that did die then is expired
        // that much later.
        let settled = epoch <= 1
            || self
                .leading_since
                .lock()
                .unwrap()
                .is_some_and(|since| since.elapsed() >= LEADER_GRACE);
        if settled {
            for agent in self
                .store
                .expire_cluster_agents(AGENT_TIMEOUT.as_millis() as i64)
                .await?
            {
                tracing::warn!(%agent, "agent missed its heartbeats; rescheduling its servers");
            }
        }
        let state = self.store.placement_state().await?;
        let records = self.store.list_servers().await?;
        let mut placement = state.placement.clone();
        let live: Vec<Candidate<'_>> = state
            .agents
            .iter()
            .map(|(id, a)| Candidate::new(id, &a.labels, &a.running))
            .collect();
        crate::fleet::plan(&mut placement, &live, &Wanted::enabled(&records));
        match self
            .store
            .write_placement(&self.id, epoch, &placement)
            .await
        {
            Ok(_) => Ok(()),
            Err(PlacementError::Fenced { .. }) => {
                self.step_down("the store refused the placement (fenced)");
                Ok(())
            }
            Err(PlacementError::Store(e)) => Err(e.into()),
        }
    }

    /// Installs the cluster's current state in this control plane.
    async fn reload(&self) -> anyhow::Result<()> {
        let state = self.store.shared_state().await?;
        self.registry.reload().await?;
        self.keys.reload().await?;
        self.fleet().install(state);
        Ok(())
    }

    /// Gives the lease up at shutdown.
    pub async fn leave(&self) {
        if let Some(epoch) = self.leader_epoch() {
            self.step_down("shutting down");
            let _ = self.store.release_lease(&self.id, epoch).await;
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
