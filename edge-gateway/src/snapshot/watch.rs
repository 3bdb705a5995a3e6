//! Follows the control plane's configuration stream and swaps in each new snapshot. While
//! the control plane is away the gateway keeps serving from the last snapshot it had.
//! Every swap is announced on a `watch` channel (a count of swaps): lists waiting for a
//! provider to start and the list-change announcer (`list_changes.rs`) wake on it.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use mcpr_proto as pb;
use mcpr_tls::cluster::ClusterToken;

use crate::snapshot::Snapshot;

pub async fn follow(
    control_plane: String,
    gateway_id: String,
    token: Option<ClusterToken>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    swapped: tokio::sync::watch::Sender<u64>,
) {
    let mut retry = Duration::from_millis(100);
    loop {
        match stream_once(
            &control_plane,
            &gateway_id,
            token.as_ref(),
            &snapshot,
            &swapped,
        )
        .await
        {
            Ok(()) => {
                tracing::warn!(url = %control_plane, "config stream ended; serving the last snapshot")
            }
            Err(e) => {
                tracing::warn!(url = %control_plane, error = %e, "control plane unreachable; serving the last snapshot")
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(Duration::from_secs(2));
    }
}

async fn stream_once(
    control_plane: &str,
    gateway_id: &str,
    token: Option<&ClusterToken>,
    snapshot: &ArcSwap<Snapshot>,
    swapped: &tokio::sync::watch::Sender<u64>,
) -> anyhow::Result<()> {
    let channel = mcpr_tls::grpc_endpoint(control_plane)?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .connect()
        .await?;
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
    }
    Ok(())
}
