//! The MCP Router control plane: the only writer of state. It owns the store, serves the
//! admin REST API and web UI over HTTP, and serves gateways (config snapshots) and agents
//! (assignments, status) over gRPC. `run` is the single start-up path of the binary, of
//! `mcpr up` and of the tests.

pub mod api;
pub mod fleet;
pub mod grpc;
pub mod registry;
pub mod store;
pub mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mcpr_proto as pb;
use tokio::net::TcpListener;

use crate::fleet::Fleet;
use crate::registry::Registry;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the embedded SQLite database lives (`MCPR_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// `postgres://…` to use Postgres instead of SQLite (`DATABASE_URL`).
    pub database_url: Option<String>,
}

/// A started control plane: its registry and the address of its gRPC services.
pub struct ControlPlane {
    pub registry: Arc<Registry>,
    pub grpc_addr: SocketAddr,
}

impl ControlPlane {
    /// Opens the store and serves the gRPC services on `grpc_listener`.
    pub async fn start(
        config: &Config,
        grpc_listener: TcpListener,
    ) -> anyhow::Result<ControlPlane> {
        let store = match &config.database_url {
            Some(url) if !url.is_empty() => Store::connect(url)
                .await
                .with_context(|| format!("opening database {}", store::redact_url(url)))?,
            _ => Store::open_sqlite(&config.data_dir)
                .await
                .with_context(|| {
                    format!("opening SQLite database in {}", config.data_dir.display())
                })?,
        };
        tracing::info!(backend = ?store.backend(), "store ready");
        let registry = Arc::new(Registry::new(store, Arc::new(Fleet::default())).await?);
        let grpc_addr = grpc_listener.local_addr()?;
        let services = tonic::transport::Server::builder()
            .add_service(pb::config_service_server::ConfigServiceServer::new(
                grpc::ConfigService {
                    registry: registry.clone(),
                },
            ))
            .add_service(pb::agent_service_server::AgentServiceServer::new(
                grpc::AgentService {
                    registry: registry.clone(),
                },
            ));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc_listener);
        tokio::spawn(async move {
            if let Err(e) = services.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "control plane gRPC server stopped");
            }
        });
        // Forget silent agents so their servers move elsewhere.
        let reaper = registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(fleet::HEARTBEAT_INTERVAL);
            loop {
                tick.tick().await;
                for agent in reaper.fleet.expire_agents() {
                    tracing::warn!(%agent, "agent missed its heartbeats; rescheduling its servers");
                }
                grpc::schedule(&reaper);
            }
        });
        tracing::info!(%grpc_addr, "control plane gRPC listening");
        Ok(ControlPlane {
            registry,
            grpc_addr,
        })
    }

    /// The HTTP side: REST API and web UI.
    pub fn http_router(&self) -> axum::Router {
        api::router(self.registry.clone()).merge(ui::router())
    }
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve_http(listener: TcpListener, router: axum::Router) -> anyhow::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .context("HTTP server failed")
}
