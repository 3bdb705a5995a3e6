//! Follows the control plane's configuration stream and swaps in each new snapshot. When its
//! control plane goes away (connect error, stream end, unanswered HTTP/2 pings) the gateway
//! moves to the next of `--control-plane URL1,URL2,…` (`mcpr_tls::control_planes`); while
//! none answers it keeps serving from the last snapshot it had.
//! Every swap is announced on a `watch` channel (a count of swaps): lists waiting for a
//! provider to start and the list-change announcer (`list_changes.rs`) wake on it.
//!
//! In a cluster the versions are one counter in Postgres that only grows (a control plane
//! raises it past any version it or a gateway has seen, should the database go back:
//! `control-plane/src/cluster`). A control plane that has not caught up with Postgres yet
//! (it syncs every 200 ms, or cannot reach it) serves an older snapshot: moving to it, the
//! gateway keeps what it has, or it would forget servers and their placement that the
//! cluster still has, until that control plane catches up.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use mcpr_proto as pb;
use mcpr_tls::cluster::ClusterToken;
use mcpr_tls::control_planes::{ControlPlanes, Failover};

use crate::snapshot::Snapshot;

pub async fn follow(
    control_planes: ControlPlanes,
    gateway_id: String,
    token: Option<ClusterToken>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    swapped: tokio::sync::watch::Sender<u64>,
) {
    let mut failover = Failover::new(&control_planes);
    loop {
        let index = failover.current();
        let url = &control_planes.urls()[index];
        let mut received = 0u64;
        let outcome = stream_once(
            &control_planes,
            index,
            &gateway_id,
            token.as_ref(),
            &snapshot,
            &swapped,
            &mut received,
        )
        .await;
        match outcome {
            Ok(()) => {
                tracing::warn!(url = %url, "config stream ended; serving the last snapshot")
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "control plane unreachable; serving the last snapshot")
            }
        }
        let pause = failover.next(received > 0);
        if control_planes.len() > 1 {
            let next = &control_planes.urls()[failover.current()];
            tracing::info!(from = %url, to = %next, "moving to another control plane");
        }
        tokio::time::sleep(pause).await;
    }
}

/// Follows one control plane's stream until it ends or fails; `received` counts its snapshots.
async fn stream_once(
    control_planes: &ControlPlanes,
    index: usize,
    gateway_id: &str,
    token: Option<&ClusterToken>,
    snapshot: &ArcSwap<Snapshot>,
    swapped: &tokio::sync::watch::Sender<u64>,
    received: &mut u64,
) -> anyhow::Result<()> {
    let channel = control_planes.endpoint(index)?.connect().await?;
    let channel = mcpr_tls::cluster::with_token(channel, token);
    let mut client = pb::config_service_client::ConfigServiceClient::new(channel)
        .max_decoding_message_size(256 * 1024 * 1024);
    let mut stream = client
        .watch(pb::WatchRequest {
            gateway_id: gateway_id.to_owned(),
            known_version: snapshot.load().version,
        })
        .await?
        .into_inner();
    while let Some(next) = stream.next().await {
        let next = next?;
        let current = snapshot.load();
        if is_older(&current, &next) {
            tracing::info!(
                version = next.version,
                serving = current.version,
                "ignoring a snapshot older than the one served (a control plane catching up)"
            );
            continue;
        }
        drop(current);
        let next = Snapshot::from_proto(next);
        tracing::debug!(
            version = next.version,
            providers = next.providers.len(),
            "config snapshot"
        );
        snapshot.store(Arc::new(next));
        swapped.send_modify(|swaps| *swaps += 1);
        *received += 1;
    }
    Ok(())
}

/// Whether `next` is a cluster snapshot older than the `current` one. A lone control plane's
/// versions start again with its process, so its snapshots are taken as they come.
fn is_older(current: &Snapshot, next: &pb::ConfigSnapshot) -> bool {
    current.shared_version && next.shared_version && next.version < current.version
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(version: u64, shared_version: bool) -> pb::ConfigSnapshot {
        pb::ConfigSnapshot {
            version,
            shared_version,
            ..Default::default()
        }
    }

    #[test]
    fn a_cluster_snapshot_older_than_the_served_one_is_ignored() {
        let serving = Snapshot::from_proto(offered(7, true));
        assert!(is_older(&serving, &offered(6, true)));
        assert!(
            !is_older(&serving, &offered(7, true)),
            "the same version again"
        );
        assert!(!is_older(&serving, &offered(8, true)));
        // A lone control plane restarted: its versions count from 1 again.
        let lone = Snapshot::from_proto(offered(7, false));
        assert!(!is_older(&lone, &offered(1, false)));
        // From a lone control plane to a cluster or back (a migration): taken.
        assert!(!is_older(&lone, &offered(1, true)));
        assert!(!is_older(&serving, &offered(1, false)));
        // The empty snapshot a gateway starts with takes anything.
        assert!(!is_older(&Snapshot::empty(), &offered(1, true)));
    }
}
