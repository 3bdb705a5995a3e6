//! Follows the control plane's configuration stream and swaps in each new snapshot. When its
//! control plane goes away (connect error, stream end, unanswered HTTP/2 pings) the gateway
//! moves to the next of `--control-plane URL1,URL2,…` (`mcpr_tls::control_planes`); while
//! none answers it keeps serving from the last snapshot it had.
//! Every swap is announced on a `watch` channel (a count of swaps): lists waiting for a
//! provider to start and the list-change announcer (`list_changes.rs`) wake on it.

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
        let next = Snapshot::from_proto(next?);
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
