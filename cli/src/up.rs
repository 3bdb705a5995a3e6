//! `mcpr up` and `mcpr stdio`: the whole router in one process. The control plane, a node
//! agent and an edge gateway start through the same `start` functions and talk through the
//! same gRPC services (on loopback ports) as the distributed binaries do. Other processes
//! on the machine can reach those ports, so every call between the three carries a cluster
//! token made at random for this process: it lives in its memory only (never in a file, an
//! argument or a log line), and the gRPC servers refuse any call without it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

pub struct UpOptions {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub mcp_path: String,
    pub agent: mcpr_node_agent::Settings,
    pub allowed_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
}

pub struct Router {
    pub gateway: Arc<mcpr_edge_gateway::Gateway>,
    pub agent: Arc<mcpr_node_agent::Agent>,
    pub http: axum::Router,
}

/// Starts the three components; returns the gateway and the HTTP router (API, UI, MCP).
pub async fn start(options: &UpOptions) -> anyhow::Result<Router> {
    if !options.mcp_path.starts_with('/') {
        anyhow::bail!("MCP_PATH must start with '/', got {:?}", options.mcp_path);
    }
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let mut security = mcpr_control_plane::Security::from_env(|k| std::env::var(k).ok())?;
    security.check_listen(&options.host, "the REST API, the web UI and MCP")?;
    security
        .oauth
        .set_public_address(&options.host, options.port);
    let cluster_token = mcpr_tls::cluster::ClusterToken::random();
    let cp_config = mcpr_control_plane::Config {
        data_dir: options.data_dir.clone(),
        database_url: options.database_url.clone(),
        security,
        cluster_token: Some(cluster_token.clone()),
    };
    let control_plane =
        // The in-process links (config watch, agent registration) stay on loopback in plain
        // gRPC, guarded by the token: TLS of `mcpr up` is on its one public port.
        mcpr_control_plane::ControlPlane::start(
            &cp_config,
            TcpListener::bind(loopback).await?,
            None,
        )
        .await?;
    let control_plane_url = format!("http://{}", control_plane.grpc_addr);
    let agent_config = mcpr_node_agent::Config {
        agent_id: "local".into(),
        control_plane_url: control_plane_url.clone(),
        advertise_url: None,
        settings: options.agent.clone(),
        tls: None,
        cluster_token: Some(cluster_token.clone()),
    };
    // One port, one policy: the API, the UI, OAuth and MCP answer the same Hosts and Origins.
    let host_policy = Arc::new(mcpr_tls::host_policy::HostPolicy::for_listener(
        &options.host,
        &options.allowed_hosts,
        &options.allowed_origins,
    ));
    let relay_listener = TcpListener::bind(loopback).await?;
    let relay_url = format!("http://{}", relay_listener.local_addr()?);
    let agent = mcpr_node_agent::start(agent_config, relay_listener).await?;
    let local: Arc<dyn mcpr_core::relay::LocalAgent> = agent.clone();
    let gateway = mcpr_edge_gateway::Gateway::start_with_local_agent(
        mcpr_edge_gateway::Config {
            gateway_id: "local".into(),
            control_plane_url,
            mcp_path: options.mcp_path.clone(),
            cluster_token: Some(cluster_token),
            host_policy: host_policy.clone(),
            ..Default::default()
        },
        Some((relay_url, local)),
    );
    if !gateway.wait_for_snapshot(Duration::from_secs(10)).await {
        anyhow::bail!(
            "the gateway got no configuration from the in-process control plane within 10 s"
        );
    }
    let http = control_plane
        .http_router(&host_policy)
        .merge(gateway.router());
    Ok(Router {
        gateway,
        agent,
        http,
    })
}

pub async fn bind(options: &UpOptions) -> anyhow::Result<TcpListener> {
    let addr = format!("{}:{}", options.host, options.port);
    TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (use --port to pick another port)"))
}

pub fn banner(scheme: &str, addr: SocketAddr, mcp_path: &str) {
    eprintln!("MCP Router is up");
    eprintln!("  MCP (hierarchical): {scheme}://{addr}{mcp_path}");
    eprintln!("  MCP (flat):         {scheme}://{addr}/mcp/all");
    eprintln!("  MCP (one provider): {scheme}://{addr}/mcp/p/NAME");
    eprintln!("  web UI:             {scheme}://{addr}/");
    eprintln!("  REST API:           {scheme}://{addr}/api/v1");
}
