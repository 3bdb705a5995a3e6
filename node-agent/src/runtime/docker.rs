//! The `docker` runtime: an MCP server in a container of its own, spoken to over the
//! container's attach stream (stdio), through the Docker Engine API (bollard; never the
//! `docker` CLI).
//!
//! Every container is locked down (memory, CPU and pids limits; read-only root with a
//! writable tmpfs on /tmp; all capabilities dropped; no-new-privileges; user 65534; network
//! `none` unless the spec asks for egress) and labelled as the router's, with the agent that
//! owns it. The agent removes a server's container when the session ends (server stopped,
//! deleted, disabled, restarted, or dead), removes all of its containers when it stops, and
//! reaps what a crash left behind when it starts (`reap`): no container outlives its use.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    RemoveContainerOptions, WaitContainerOptions,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use mcpr_core::model::{DockerLimits, NetworkPolicy, RuntimeSpec};
use tokio::io::AsyncWrite;
use tokio::sync::{OnceCell, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::StreamReader;

use crate::assignment::Assignment;
use crate::logs::LogSink;
use crate::upstream::{self, Connection, UpstreamEvent};

/// Marks a container as the router's.
pub const LABEL_MANAGED: &str = "mcp-router.managed";
/// Which agent instance owns it (see [`DockerSettings::owner`]); reaping is per owner.
pub const LABEL_OWNER: &str = "mcp-router.owner";
pub const LABEL_AGENT: &str = "mcp-router.agent";
/// `server` or `sandbox`.
pub const LABEL_ROLE: &str = "mcp-router.role";
pub const LABEL_SERVER_ID: &str = "mcp-router.server-id";
pub const LABEL_SERVER_NAME: &str = "mcp-router.server";

/// The unprivileged user every container runs as (`nobody` in Debian images).
pub const CONTAINER_USER: &str = "65534:65534";

#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// The Docker endpoint (`unix:///var/run/docker.sock`, `tcp://…`); `None`: `DOCKER_HOST`
    /// or the local socket.
    pub host: Option<String>,
    /// Base image of `uvx` servers, plain `command` servers and the python sandbox
    /// (`MCPR_PYTHON_IMAGE`).
    pub python_image: String,
    /// Base image of `npx` servers (`MCPR_NODE_IMAGE`).
    pub node_image: String,
    /// Warm containers kept for `python_sandbox` (`MCPR_SANDBOX_POOL`); 0: a cold container
    /// per call.
    pub sandbox_pool: usize,
    /// Identifies this agent instance's containers across its restarts, so that it reaps
    /// its own orphans and never another agent's on the same host. Empty: derived from the
    /// agent id and the control plane URL (`lib::start`).
    pub owner: String,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            host: None,
            python_image: super::images::DEFAULT_PYTHON_IMAGE.into(),
            node_image: super::images::DEFAULT_NODE_IMAGE.into(),
            sandbox_pool: 2,
            owner: String::new(),
        }
    }
}

/// The agent's link to the Docker Engine, made on first use.
pub struct DockerRuntime {
    pub settings: DockerSettings,
    agent_id: String,
    client: OnceCell<Docker>,
    /// One image build at a time: two servers with the same spec build it once.
    pub(crate) builds: tokio::sync::Mutex<()>,
    /// One pull at a time: servers and the sandbox starting together pull a base once.
    pub(crate) pulls: tokio::sync::Mutex<()>,
    /// Default base images that could not be pulled -> the local image used instead, so
    /// that later starts do not ask the registry again.
    pub(crate) base_fallbacks: std::sync::Mutex<HashMap<String, String>>,
}

/// A container's stdio, attached.
pub struct Attached {
    pub id: String,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    pub output: Pin<
        Box<
            dyn Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Send,
        >,
    >,
}

/// What to run: an image and, when they differ from the image's, entrypoint and command.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
}

/// A container to create.
pub struct ContainerPlan {
    pub name: String,
    pub launch: Launch,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub memory_mb: u64,
    pub millicpus: u64,
    pub pids: u64,
    pub tmpfs_mb: u64,
    pub network: NetworkPolicy,
    /// docker-init as PID 1 (reaps zombies, forwards signals): for servers, which may fork.
    pub init: bool,
}

impl DockerRuntime {
    pub fn new(agent_id: String, settings: DockerSettings) -> DockerRuntime {
        DockerRuntime {
            settings,
            agent_id,
            client: OnceCell::new(),
            builds: tokio::sync::Mutex::new(()),
            pulls: tokio::sync::Mutex::new(()),
            base_fallbacks: Default::default(),
        }
    }

    /// Where the Docker Engine is expected, for messages.
    pub fn endpoint(&self) -> String {
        self.settings
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
    }

    /// The engine, connected and with the API version negotiated (the newest both speak).
    /// Failures are not cached: a daemon that comes up later is used then.
    pub async fn client(&self) -> Result<&Docker, String> {
        self.client
            .get_or_try_init(|| async {
                let unreachable = |e: &dyn std::fmt::Display| {
                    format!("Docker is not reachable at {}: {e}", self.endpoint())
                };
                let docker = match &self.settings.host {
                    None => Docker::connect_with_defaults(),
                    Some(host) if host.starts_with("tcp://") || host.starts_with("http://") => {
                        Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION)
                    }
                    Some(host) => {
                        Docker::connect_with_unix(host, 120, bollard::API_DEFAULT_VERSION)
                    }
                }
                .map_err(|e| unreachable(&e))?;
                let docker =
                    tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
                        .await
                        .map_err(|_| unreachable(&"no answer within 10 s"))?
                        .map_err(|e| unreachable(&e))?;
                Ok(docker)
            })
            .await
    }

    /// Labels of a container this agent owns.
    pub fn labels(&self, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_OWNER.to_owned(), self.settings.owner.clone()),
            (LABEL_AGENT.to_owned(), self.agent_id.clone()),
            (LABEL_ROLE.to_owned(), role.to_owned()),
        ])
    }

    /// Removes every container this agent owns: on start (what a crash left behind) and on
    /// stop. Returns how many were removed; without Docker, none.
    pub async fn reap(&self) -> usize {
        let Ok(docker) = self.client().await else {
            return 0;
        };
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_OWNER}={}", self.settings.owner),
            ],
        )]);
        let containers = match docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        {
            Ok(containers) => containers,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers to reap");
                return 0;
            }
        };
        let ids: Vec<String> = containers.into_iter().filter_map(|c| c.id).collect();
        let count = ids.len();
        futures::future::join_all(ids.iter().map(|id| remove(docker, id))).await;
        if count > 0 {
            tracing::info!(count, owner = %self.settings.owner, "removed containers of this agent");
        }
        count
    }

    /// Creates a locked-down container, attaches to its stdio and starts it. The container
    /// is removed again when any step fails.
    pub async fn run_attached(&self, plan: ContainerPlan) -> Result<Attached, String> {
        let docker = self.client().await?;
        let memory = (plan.memory_mb * 1024 * 1024) as i64;
        let network_mode = match plan.network {
            NetworkPolicy::None => "none",
            NetworkPolicy::Egress => "bridge",
        };
        let host_config = HostConfig {
            memory: Some(memory),
            // Equal to memory: no swap, so a hog meets the OOM killer rather than the disk.
            memory_swap: Some(memory),
            nano_cpus: Some((plan.millicpus * 1_000_000) as i64),
            pids_limit: Some(plan.pids as i64),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,nosuid,nodev,size={}m", plan.tmpfs_mb),
            )])),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            network_mode: Some(network_mode.to_owned()),
            init: Some(plan.init),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(plan.launch.image.clone()),
            entrypoint: plan.launch.entrypoint.clone(),
            cmd: plan.launch.cmd.clone(),
            env: Some(plan.env),
            user: Some(CONTAINER_USER.to_owned()),
            working_dir: Some("/tmp".to_owned()),
            labels: Some(plan.labels),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(false),
            tty: Some(false),
            network_disabled: Some(plan.network == NetworkPolicy::None),
            host_config: Some(host_config),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(plan.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    message,
                } => format!(
                    "image {} is not on this host ({message}); see docs/DOCKER.md (scripts/docker-images builds the router's base images without a registry)",
                    plan.launch.image
                ),
                e => format!("cannot create container {}: {e}", plan.name),
            })?;
        let id = created.id;
        let attached = async {
            let streams = docker
                .attach_container(
                    &id,
                    Some(AttachContainerOptions {
                        stdin: true,
                        stdout: true,
                        stderr: true,
                        stream: true,
                        logs: false,
                        detach_keys: None,
                    }),
                )
                .await
                .map_err(|e| format!("cannot attach to container {}: {e}", plan.name))?;
            docker
                .start_container(
                    &id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| format!("cannot start container {}: {e}", plan.name))?;
            Ok::<_, String>(streams)
        }
        .await;
        match attached {
            Ok(streams) => Ok(Attached {
                id,
                input: streams.input,
                output: streams.output,
            }),
            Err(e) => {
                remove(docker, &id).await;
                Err(e)
            }
        }
    }

    /// Runs a `docker` server: its image (built first when the spec asks for one), a
    /// container, and an MCP session over the container's stdio.
    pub async fn run_server(
        self: &Arc<Self>,
        assignment: &Assignment,
        launch: Launch,
        logs: LogSink,
        events: mpsc::UnboundedSender<UpstreamEvent>,
        request_timeout: Duration,
    ) -> Result<Arc<Connection>, String> {
        let (server_id, server_name, spec) = (&assignment.id, &assignment.name, &assignment.spec);
        let RuntimeSpec::Docker { env, network, .. } = spec else {
            return Err("not a docker spec".into());
        };
        let limits: DockerLimits = spec.docker_limits().expect("docker spec");
        let mut labels = self.labels("server");
        labels.insert(LABEL_SERVER_ID.to_owned(), server_id.to_owned());
        labels.insert(LABEL_SERVER_NAME.to_owned(), server_name.to_owned());
        // HOME on the tmpfs: launchers (npm, uv, pip) write caches there.
        let mut container_env = vec!["HOME=/tmp".to_owned()];
        container_env.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let name = format!(
            "mcpr-{server_name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let image = launch.image.clone();
        let attached = self
            .run_attached(ContainerPlan {
                name: name.clone(),
                launch,
                env: container_env,
                labels,
                memory_mb: limits.memory_mb,
                millicpus: limits.millicpus,
                pids: limits.pids,
                tmpfs_mb: 256,
                network: *network,
                init: true,
            })
            .await?;
        let id = attached.id.clone();
        let (stdout, stderr) = demux(attached.output);
        let conn = upstream::lines::connect(
            attached.input,
            stdout,
            logs.clone(),
            events,
            request_timeout,
        );

        tokio::spawn(upstream::lines::read_log(stderr, logs.clone()));

        // The container's exit closes the session; the session's end removes the container.
        let runtime = self.clone();
        let watched = conn.clone();
        let exit_logs = logs.clone();
        let short = id[..12.min(id.len())].to_owned();
        let exit_short = short.clone();
        tokio::spawn(async move {
            let short = exit_short;
            let Ok(docker) = runtime.client().await else {
                return;
            };
            let mut wait = docker.wait_container(&id, None::<WaitContainerOptions>);
            let mut health = tokio::time::interval(HEALTH_INTERVAL);
            health.tick().await;
            loop {
                tokio::select! {
                    exit = wait.next() => {
                        let reason = exit_reason(docker, &id, exit, limits.memory_mb).await;
                        exit_logs.line("agent", format!("container {short}: {reason}"));
                        watched.close(reason);
                        break;
                    }
                    _ = watched.closed() => break,
                    _ = health.tick() => {
                        // Alive is not enough: a server that stopped answering is replaced.
                        if let Err(reason) = ping(&watched).await {
                            exit_logs.line("agent", format!("container {short}: {reason}"));
                            watched.close(reason);
                            break;
                        }
                    }
                }
            }
            drop(watched);
            remove(docker, &id).await;
            exit_logs.line("agent", format!("container {short} removed"));
        });
        logs.line(
            "agent",
            format!(
                "started container {short} ({name}) from {image}: {} MiB, {:.2} CPU, {} pids, network {}",
                limits.memory_mb,
                limits.millicpus as f64 / 1000.0,
                limits.pids,
                network.as_str()
            ),
        );
        Ok(conn)
    }
}

/// How often a running server is sent an MCP `ping`, and how long it has to answer.
const HEALTH_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Health check: an MCP `ping` answered in time (an error answer still proves it is alive).
async fn ping(conn: &Connection) -> Result<(), String> {
    let request = mcpr_core::jsonrpc::Message::request(serde_json::json!(0), "ping", None);
    match tokio::time::timeout(PING_TIMEOUT, conn.request(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.code == mcpr_core::jsonrpc::code::UPSTREAM_TIMEOUT => {
            Err(format!("no answer to an MCP ping: {}", e.message))
        }
        Ok(Err(_)) => Ok(()),
        Err(_) => Err(format!(
            "no answer to an MCP ping within {} s",
            PING_TIMEOUT.as_secs()
        )),
    }
}

/// Why a container stopped, from its wait result (and its state, for the OOM killer).
async fn exit_reason(
    docker: &Docker,
    id: &str,
    exit: Option<Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>>,
    memory_mb: u64,
) -> String {
    let code = match exit {
        Some(Ok(response)) => Some(response.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
        Some(Err(e)) => return format!("lost track of the container: {e}"),
        None => None,
    };
    let oom = oom_killed(docker, id).await;
    match (code, oom) {
        (_, true) => format!("container ran out of memory (limit {memory_mb} MiB) and was killed"),
        (Some(137), false) => "container was killed (exit status 137)".to_owned(),
        (Some(code), false) => format!("container exited with status {code}"),
        (None, false) => "container stopped".to_owned(),
    }
}

pub async fn oom_killed(docker: &Docker, id: &str) -> bool {
    docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.oom_killed)
        .unwrap_or(false)
}

/// Kills and removes a container; one that is already gone is fine.
pub async fn remove(docker: &Docker, id: &str) {
    let result = docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await;
    match result {
        Ok(()) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => {}
        Err(e) => tracing::warn!(container = %id, error = %e, "cannot remove container"),
    }
}

type ByteStream = ReceiverStream<std::io::Result<Bytes>>;

/// Splits an attach stream into stdout and stderr readers.
pub fn demux(
    mut output: Pin<
        Box<
            dyn Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Send,
        >,
    >,
) -> (
    StreamReader<ByteStream, Bytes>,
    StreamReader<ByteStream, Bytes>,
) {
    let (out_tx, out_rx) = mpsc::channel(64);
    let (err_tx, err_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        use bollard::container::LogOutput;
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    if out_tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
                Ok(LogOutput::StdErr { message }) => {
                    let _ = err_tx.send(Ok(message)).await;
                }
                Ok(LogOutput::StdIn { .. }) => {}
                Err(e) => {
                    let _ = out_tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    (
        StreamReader::new(ReceiverStream::new(out_rx)),
        StreamReader::new(ReceiverStream::new(err_rx)),
    )
}
