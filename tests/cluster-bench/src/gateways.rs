//! Simulated edge gateways: real `ConfigService.Watch` clients. Each snapshot is decoded
//! (by tonic, with prost, as in `edge-gateway/src/snapshot/watch.rs`) and checked for which
//! providers a gateway could route a call to.
//!
//! "Callable" is what `edge-gateway` needs to relay a `tools/call` (`views/mod.rs`, `route`;
//! `snapshot/mod.rs`, `Snapshot::from_proto`): the provider is in the snapshot and enabled,
//! placed on an agent (`agent_id` set) whose `AgentEndpoint` with a relay URL is in the same
//! snapshot, reported `running` (not `pending`/`starting`, which the gateway's lists wait
//! for), and its `tools_json` parses to the tools the upstream listed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpr_proto as pb;
use mcpr_proto::config_service_client::ConfigServiceClient;
use mcpr_tls::cluster::GrpcChannel;
use prost::Message;
use serde_json::value::RawValue;

use crate::progress::Progress;

/// Snapshots go up to tens of megabytes at this scale; the gateway accepts as much.
const MAX_SNAPSHOT_BYTES: usize = 256 * 1024 * 1024;

/// Whether a gateway with `snapshot` could route a call to provider `p`, whose upstream
/// listed `tools` tools.
pub fn callable(p: &pb::ProviderConfig, agents: &HashMap<&str, &str>, tools: usize) -> bool {
    let Some(status) = &p.status else {
        return false;
    };
    p.enabled
        && !p.agent_id.is_empty()
        && agents
            .get(p.agent_id.as_str())
            .is_some_and(|url| !url.is_empty())
        && status.state == pb::ServerState::Running as i32
        && serde_json::from_str::<Vec<Box<RawValue>>>(&status.tools_json)
            .is_ok_and(|listed| listed.len() == tools)
}

/// One gateway, watching again whenever the stream fails, until the process ends.
pub async fn run(index: usize, channel: GrpcChannel, tools: usize, progress: Arc<Progress>) {
    loop {
        if let Err(e) = watch(index, channel.clone(), tools, &progress).await {
            eprintln!("bench-gateway-{index}: {e:#}; watching again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn watch(
    index: usize,
    channel: GrpcChannel,
    tools: usize,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut client =
        ConfigServiceClient::new(channel).max_decoding_message_size(MAX_SNAPSHOT_BYTES);
    let mut stream = client
        .watch(pb::WatchRequest {
            gateway_id: format!("bench-gateway-{index}"),
            known_version: 0,
        })
        .await?
        .into_inner();
    while let Some(snapshot) = stream.message().await? {
        let at = Instant::now();
        let bytes = snapshot.encoded_len();
        let agents: HashMap<&str, &str> = snapshot
            .agents
            .iter()
            .map(|a| (a.id.as_str(), a.relay_url.as_str()))
            .collect();
        // Once callable, a server stays counted: only the others are looked at again.
        let names: Vec<String> = snapshot
            .providers
            .iter()
            .filter(|p| !progress.is_callable_on(index, &p.name) && callable(p, &agents, tools))
            .map(|p| p.name.clone())
            .collect();
        let agent_count = agents.len();
        drop(agents);
        let keep = (index == 0).then_some(snapshot);
        progress.snapshot(index, at, bytes, agent_count, names, keep);
    }
    anyhow::bail!("the watch stream ended")
}
