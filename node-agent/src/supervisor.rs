//! Supervision of the servers assigned to this agent: start each one, keep its upstream
//! session, restart it with exponential backoff when it dies, and publish its status.
//! `Agent::reconcile` closes the gap between the assignments (desired state) and what runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mcpr_core::jsonrpc::{Message, RpcError, code};
use mcpr_core::model::{RuntimeSpec, ServerState, SessionMode};
use mcpr_proto as pb;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::assignment::Assignment;
use crate::logs::LogSink;
use crate::upstream::{self, Connection, UpstreamEvent};

/// Sent by a gateway when a client session ends (never forwarded upstream), for one
/// provider, or with no provider for all of them.
pub const SESSION_ENDED: &str = "mcpr/sessionEnded";

#[derive(Debug, Clone)]
pub struct Settings {
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A server that ran this long without dying starts its next backoff from the base.
    pub backoff_reset_after: Duration,
    pub request_timeout: Duration,
    pub startup_timeout: Duration,
    /// `per_client` servers: most client sessions (processes) per server, and how long an
    /// idle one lives.
    pub per_client_max: usize,
    pub per_client_idle: Duration,
    /// The `docker` runtime and the python sandbox.
    pub docker: crate::runtime::DockerSettings,
    pub sandbox: crate::runtime::sandbox::SandboxLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            backoff_reset_after: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            startup_timeout: Duration::from_secs(60),
            per_client_max: 32,
            per_client_idle: Duration::from_secs(600),
            docker: Default::default(),
            sandbox: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Status {
    state: ServerState,
    last_error: String,
    restart_count: u32,
    tools_json: String,
    server_info_json: String,
    retry_at: Option<Instant>,
    progress: String,
}

/// One supervised server.
pub struct Supervised {
    pub assignment: Assignment,
    session: RwLock<Option<Arc<Connection>>>,
    /// `per_client` servers: one upstream session (and process) per client session,
    /// started on the client's first request.
    clients: dashmap::DashMap<String, Arc<ClientUpstream>>,
    status: Mutex<Status>,
    stop: CancellationToken,
    changed: Arc<Notify>,
}

/// A client session's own upstream session (`per_client`).
pub struct ClientUpstream {
    connection: tokio::sync::OnceCell<Arc<Connection>>,
    last_used: Mutex<Instant>,
}

impl Supervised {
    /// Every live upstream session of this server: the shared one and the per-client ones.
    fn connections(&self) -> Vec<Arc<Connection>> {
        let mut all: Vec<Arc<Connection>> = self.session().into_iter().collect();
        all.extend(
            self.clients
                .iter()
                .filter_map(|c| c.connection.get().cloned()),
        );
        all
    }

    /// Ends the per-client sessions idle for longer than `idle` (or all with `ZERO`).
    fn reap_clients(&self, idle: Duration) -> usize {
        let mut reaped = 0;
        self.clients.retain(|_, client| {
            let keep = client.last_used.lock().unwrap().elapsed() < idle
                && client
                    .connection
                    .get()
                    .is_none_or(|c| c.close_reason().is_none());
            if !keep {
                if let Some(conn) = client.connection.get() {
                    conn.close("client session ended".into());
                }
                reaped += 1;
            }
            keep
        });
        reaped
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap());
        self.changed.notify_one();
    }

    pub fn session(&self) -> Option<Arc<Connection>> {
        self.session.read().unwrap().clone()
    }

    fn report(&self) -> pb::ServerStatus {
        let s = self.status.lock().unwrap();
        pb::ServerStatus {
            server_id: self.assignment.id.clone(),
            state: s.state.to_proto() as i32,
            last_error: s.last_error.clone(),
            restart_count: s.restart_count,
            tools_json: s.tools_json.clone(),
            server_info_json: s.server_info_json.clone(),
            updated_at_ms: mcpr_core::now_ms(),
            restart_generation: self.assignment.restart_generation,
            progress: s.progress.clone(),
        }
    }

    /// The error a caller gets while the server has no live session.
    pub fn unavailable(&self) -> RpcError {
        let s = self.status.lock().unwrap();
        let name = &self.assignment.name;
        let mut message = match s.state {
            ServerState::Backoff => format!("provider {name:?} is restarting after a failure"),
            ServerState::Starting | ServerState::Pending => {
                format!("provider {name:?} is starting")
            }
            ServerState::Stopped => format!("provider {name:?} is stopped"),
            ServerState::Running => format!("provider {name:?} lost its session"),
        };
        if !s.last_error.is_empty() {
            message.push_str(&format!(" (last error: {})", s.last_error));
        }
        if let Some(at) = s.retry_at {
            message.push_str(&format!(
                "; next start in {:.1} s",
                at.saturating_duration_since(Instant::now()).as_secs_f32()
            ));
        }
        RpcError::new(code::UPSTREAM_UNAVAILABLE, message)
    }
}

/// The servers this agent runs.
pub struct Agent {
    pub id: String,
    settings: Settings,
    servers: RwLock<HashMap<String, Arc<Supervised>>>,
    /// Servers told to stop whose upstream has not exited yet: still reported as held, so
    /// that the control plane places them elsewhere only once they are gone.
    stopping: Mutex<Vec<Arc<Supervised>>>,
    pub(crate) logs: Arc<Mutex<Vec<pb::LogLine>>>,
    /// Woken on every status change and log line; the reporter sends what is new.
    pub(crate) changed: Arc<Notify>,
    /// What upstream servers send on their own, for every connected gateway.
    pub(crate) events: mcpr_core::relay::EventHub,
    /// The Docker Engine link (`docker` servers, the sandbox), connected on first use.
    pub docker: Arc<crate::runtime::DockerRuntime>,
    /// `python_sandbox`, reached as the reserved provider [`crate::runtime::sandbox::PROVIDER`].
    pub sandbox: Arc<crate::runtime::sandbox::Sandbox>,
    /// Set while the agent's lease ran out (`control.rs`): it stopped its servers, and a
    /// call for one is told so at once rather than waiting for it to be assigned.
    lapsed: std::sync::atomic::AtomicBool,
    /// Gateways' relay streams open on this agent (`relay.rs`).
    pub relay_streams: mcpr_core::metrics::Gauge,
    /// Relayed requests not answered yet.
    pub relay_in_flight: mcpr_core::metrics::Gauge,
}

/// One assigned server as the metrics show it.
pub struct ServerMetrics {
    pub name: String,
    pub state: ServerState,
    pub restarts: u32,
    /// Live upstream sessions: the shared one and the per-client ones.
    pub sessions: usize,
}

impl Agent {
    pub fn new(id: String, settings: Settings) -> Arc<Agent> {
        let docker = Arc::new(crate::runtime::DockerRuntime::new(
            id.clone(),
            settings.docker.clone(),
        ));
        let sandbox =
            crate::runtime::sandbox::Sandbox::new(docker.clone(), settings.sandbox.clone());
        Arc::new(Agent {
            docker,
            sandbox,
            id,
            settings,
            servers: RwLock::default(),
            stopping: Mutex::default(),
            logs: Arc::default(),
            changed: Arc::new(Notify::new()),
            events: Default::default(),
            lapsed: Default::default(),
            relay_streams: Default::default(),
            relay_in_flight: Default::default(),
        })
    }

    /// Marks the agent's lease as run out (its servers stopped) or held again.
    pub fn set_lapsed(&self, lapsed: bool) {
        self.lapsed
            .store(lapsed, std::sync::atomic::Ordering::Release);
    }

    /// How many servers this agent runs (or is starting).
    pub fn server_count(&self) -> usize {
        self.servers.read().unwrap().len()
    }

    /// Every assigned server's state, restarts and live upstream sessions, by name.
    pub fn server_metrics(&self) -> Vec<ServerMetrics> {
        let mut servers: Vec<ServerMetrics> = self
            .servers
            .read()
            .unwrap()
            .values()
            .map(|s| {
                let (state, restarts) = {
                    let status = s.status.lock().unwrap();
                    (status.state, status.restart_count)
                };
                ServerMetrics {
                    name: s.assignment.name.clone(),
                    state,
                    restarts,
                    sessions: s.connections().len(),
                }
            })
            .collect();
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        servers
    }

    /// Starts what is assigned and not running, restarts what changed, stops the rest.
    pub fn reconcile(self: &Arc<Self>, assignments: Vec<Assignment>) {
        let mut servers = self.servers.write().unwrap();
        let wanted: HashMap<String, Assignment> = assignments
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        servers.retain(|name, running| {
            let keep = wanted.get(name) == Some(&running.assignment);
            if !keep {
                tracing::info!(server = %name, "stopping server");
                running.stop.cancel();
                self.stopping.lock().unwrap().push(running.clone());
            }
            keep
        });
        for (name, assignment) in wanted {
            if servers.contains_key(&name) {
                continue;
            }
            tracing::info!(server = %name, runtime = assignment.spec.kind(), "starting server");
            let supervised = Arc::new(Supervised {
                assignment,
                session: RwLock::new(None),
                clients: Default::default(),
                status: Mutex::new(Status {
                    state: ServerState::Starting,
                    ..Default::default()
                }),
                stop: CancellationToken::new(),
                changed: self.changed.clone(),
            });
            tokio::spawn(supervise(self.clone(), supervised.clone()));
            servers.insert(name, supervised);
        }
        drop(servers);
        self.changed.notify_one();
    }

    /// Stops every server (agent shutdown).
    pub fn stop_all(&self) {
        for (_, s) in self.servers.write().unwrap().drain() {
            s.stop.cancel();
            if let Some(conn) = s.session.write().unwrap().take() {
                conn.close("agent stopping".into());
            }
        }
    }

    pub fn server(&self, name: &str) -> Option<Arc<Supervised>> {
        self.servers.read().unwrap().get(name).cloned()
    }

    pub fn status_report(&self) -> pb::StatusReport {
        let held = self.servers.read().unwrap();
        let stopping = self.stopping.lock().unwrap();
        let servers = held
            .values()
            .chain(
                stopping
                    .iter()
                    .filter(|s| !held.contains_key(&s.assignment.name)),
            )
            .map(|s| s.report())
            .collect();
        drop((held, stopping));
        let logs = std::mem::take(&mut *self.logs.lock().unwrap());
        pb::StatusReport {
            agent_id: self.id.clone(),
            servers,
            logs,
        }
    }

    /// Puts log lines that could not be delivered back in front of the buffer.
    pub fn requeue_logs(&self, mut lines: Vec<pb::LogLine>) {
        let mut logs = self.logs.lock().unwrap();
        lines.append(&mut logs);
        *logs = lines;
    }

    /// Relays one JSON-RPC request to `provider` and returns its response message.
    pub async fn relay_request(
        &self,
        provider: &str,
        client_session: &str,
        msg: Message,
    ) -> Message {
        use mcpr_core::telemetry::mcp;
        // A request of a dropped trace (the in-process gateway decided) makes no span.
        if mcpr_core::telemetry::enabled() && !mcp::is_dropped() {
            // The in-process gateway's relay span is the current span: it is the parent.
            let span = mcp::request_span(&msg, mcp::Side::Server, None);
            // Boxed: an untraced request's future stays the size it was.
            return Box::pin(self.serve_in(span, provider, client_session, msg)).await;
        }
        self.serve_request(provider, client_session, msg).await
    }

    /// A request from a remote gateway's relay frame while tracing is on: the agent's first
    /// span continues the frame's trace `context`, unless the sampler drops the trace.
    pub async fn relay_frame_request(
        &self,
        provider: &str,
        client_session: &str,
        msg: Message,
        context: &mcpr_core::telemetry::mcp::TraceContext,
    ) -> Message {
        use mcpr_core::telemetry::mcp;
        match mcp::first_span(&msg, mcp::Side::Server, context.parent()) {
            mcp::Traced::Span(span) => self.serve_in(span, provider, client_session, msg).await,
            mcp::Traced::Dropped(context) => {
                mcp::dropped_in(context, self.serve_request(provider, client_session, msg)).await
            }
        }
    }

    /// The request served as the agent's SERVER `span`.
    async fn serve_in(
        &self,
        span: tracing::Span,
        provider: &str,
        client_session: &str,
        msg: Message,
    ) -> Message {
        use mcpr_core::telemetry::mcp;
        mcp::set(&span, "mcpr.provider", provider);
        mcp::set(&span, "mcpr.agent", self.id.as_str());
        if !client_session.is_empty() {
            mcp::set(&span, "mcp.session.id", client_session);
        }
        mcp::answered_in(span, self.serve_request(provider, client_session, msg)).await
    }

    async fn serve_request(&self, provider: &str, client_session: &str, msg: Message) -> Message {
        if provider == crate::runtime::sandbox::PROVIDER {
            return self.sandbox.handle(msg).await;
        }
        let id = msg.id.clone().unwrap_or(serde_json::Value::Null);
        let session = match self.ready_session(provider).await {
            Ok(session) => session,
            Err(error) => return Message::error(id, &error),
        };
        let session = match self.client_upstream(provider, client_session).await {
            Ok(Some(own)) => own,
            Ok(None) => session,
            Err(error) => return Message::error(id, &error),
        };
        let origin = crate::upstream::routing::Origin {
            client_session: client_session.to_owned(),
            related_id: id.to_string(),
        };
        match session.request_from(msg, origin).await {
            Ok(response) => response,
            Err(error) => Message::error(id, &error),
        }
    }

    /// The provider's live session. A provider that is being assigned or is starting (the
    /// first moments after `mcpr up` or `server add`) is waited for, up to
    /// the startup grace (`MCPR_STARTUP_GRACE_SECS`), so that early callers get an answer
    /// rather than a spurious error.
    async fn ready_session(&self, provider: &str) -> Result<Arc<Connection>, RpcError> {
        let deadline = Instant::now() + mcpr_core::settings::Limits::current().startup_grace;
        loop {
            let server = self.server(provider);
            if let Some(session) = server.as_ref().and_then(|s| s.session()) {
                // Closed (its process exited) and not yet replaced by the supervisor: the
                // caller learns whose session it was, and why, not only the bare reason.
                if let Some(reason) = session.close_reason() {
                    return Err(RpcError::new(
                        code::UPSTREAM_UNAVAILABLE,
                        format!("provider {provider:?} lost its session: {reason}"),
                    ));
                }
                return Ok(session);
            }
            if server.is_none() && self.lapsed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(RpcError::new(
                    code::UPSTREAM_UNAVAILABLE,
                    format!(
                        "provider {provider:?} was stopped on agent {:?}: the agent lost contact with every control plane and its lease ran out, so the provider is being moved to another agent; retry shortly",
                        self.id
                    ),
                ));
            }
            let starting = server
                .as_ref()
                .is_none_or(|s| s.status.lock().unwrap().state == ServerState::Starting);
            if !starting || Instant::now() >= deadline {
                return Err(match server {
                    Some(server) => server.unavailable(),
                    None => RpcError::new(
                        code::UPSTREAM_UNAVAILABLE,
                        format!("provider {provider:?} does not run on this agent"),
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// For a `per_client` server, the client session's own upstream session, started on
    /// first use (at most `per_client_max` per server); `None` for `shared` servers.
    async fn client_upstream(
        &self,
        provider: &str,
        client_session: &str,
    ) -> Result<Option<Arc<Connection>>, RpcError> {
        let Some(server) = self.server(provider) else {
            return Ok(None);
        };
        if server.assignment.session_mode != SessionMode::PerClient || client_session.is_empty() {
            return Ok(None);
        }
        let client = match server.clients.get(client_session) {
            Some(client) => client.clone(),
            None => {
                if server.clients.len() >= self.settings.per_client_max {
                    server.reap_clients(self.settings.per_client_idle);
                    if server.clients.len() >= self.settings.per_client_max {
                        return Err(RpcError::new(
                            code::UPSTREAM_UNAVAILABLE,
                            format!(
                                "provider {provider:?} already runs {} per-client sessions (its limit)",
                                self.settings.per_client_max
                            ),
                        ));
                    }
                }
                server
                    .clients
                    .entry(client_session.to_owned())
                    .or_insert_with(|| {
                        Arc::new(ClientUpstream {
                            connection: Default::default(),
                            last_used: Mutex::new(Instant::now()),
                        })
                    })
                    .clone()
            }
        };
        *client.last_used.lock().unwrap() = Instant::now();
        let logs = LogSink::new(
            server.assignment.id.clone(),
            self.logs.clone(),
            self.changed.clone(),
        );
        let conn = client
            .connection
            .get_or_try_init(|| async {
                // Tool-list changes are followed on the shared session; these events can go.
                let (events, _) = mpsc::unbounded_channel();
                let (conn, _) =
                    start(self, &server.assignment, &logs, events, &self.settings).await?;
                conn.routing
                    .connect(&server.assignment.name, &self.id, self.events.clone());
                logs.line(
                    "agent",
                    format!("per-client session started ({} open)", server.clients.len()),
                );
                Ok::<_, String>(conn)
            })
            .await
            .map_err(|e| {
                server.clients.remove(client_session);
                RpcError::new(
                    code::UPSTREAM_UNAVAILABLE,
                    format!("provider {provider:?}: cannot start a session for this client: {e}"),
                )
            })?
            .clone();
        if let Some(reason) = conn.close_reason() {
            server.clients.remove(client_session);
            return Err(RpcError::new(
                code::UPSTREAM_UNAVAILABLE,
                format!("provider {provider:?}: this client's session ended: {reason}"),
            ));
        }
        Ok(Some(conn))
    }

    /// Relays a client's answer to a server-to-client request back to its upstream.
    pub async fn relay_response(&self, provider: &str, msg: Message) {
        let Some(server) = self.server(provider) else {
            return;
        };
        let Some(id) = msg.id.as_ref().and_then(|v| v.as_str()).map(str::to_owned) else {
            return;
        };
        if let Some(conn) = server
            .connections()
            .into_iter()
            .find(|c| c.routing.awaits(&id))
        {
            conn.respond(msg).await;
        }
    }

    pub fn subscribe_events(
        &self,
        sink: mcpr_core::relay::EventSink,
    ) -> mcpr_core::relay::Subscription {
        self.events.subscribe(sink)
    }

    pub async fn relay_notification(&self, provider: &str, client_session: &str, msg: Message) {
        if msg.method.as_deref() == Some(SESSION_ENDED) {
            // No provider: the session was on a view of every provider (`/mcp`, `/mcp/all`).
            let servers: Vec<Arc<Supervised>> = if provider.is_empty() {
                self.servers.read().unwrap().values().cloned().collect()
            } else {
                self.server(provider).into_iter().collect()
            };
            for server in servers {
                if let Some((_, client)) = server.clients.remove(client_session)
                    && let Some(conn) = client.connection.get()
                {
                    conn.close("client session ended".into());
                }
            }
            return;
        }
        let Some(server) = self.server(provider) else {
            return;
        };
        let own = server
            .clients
            .get(client_session)
            .and_then(|c| c.connection.get().cloned());
        let Some(session) = own.or_else(|| server.session()) else {
            return;
        };
        if msg.method.as_deref() == Some("notifications/cancelled") {
            session.cancel(client_session, msg).await;
        } else {
            let _ = session.notify(msg).await;
        }
    }
}

/// Keeps one server running until it is stopped.
async fn supervise(agent: Arc<Agent>, server: Arc<Supervised>) {
    let settings = &agent.settings;
    let reporting = Arc::downgrade(&server);
    let logs = LogSink::new(
        server.assignment.id.clone(),
        agent.logs.clone(),
        agent.changed.clone(),
    )
    .with_progress(move |line| {
        if let Some(server) = reporting.upgrade() {
            server.set_status(|s| s.progress = line);
        }
    });
    let mut backoff = settings.backoff_base;
    loop {
        server.set_status(|s| {
            s.state = ServerState::Starting;
            s.retry_at = None;
        });
        let started = Instant::now();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let outcome = tokio::select! {
            _ = server.stop.cancelled() => None,
            started = start(&agent, &server.assignment, &logs, events_tx, settings) => Some(started),
        };
        // Before the state changes: no installer line may land after the progress is cleared.
        logs.stderr_progress(None);
        let error = match outcome {
            None => break,
            Some(Err(error)) => error,
            Some(Ok((conn, handshake))) => {
                conn.routing
                    .connect(&server.assignment.name, &agent.id, agent.events.clone());
                *server.session.write().unwrap() = Some(conn.clone());
                server.set_status(|s| {
                    s.state = ServerState::Running;
                    s.progress.clear();
                    s.tools_json = handshake.tools_json;
                    s.server_info_json = handshake.server_info_json;
                });
                logs.line(
                    "agent",
                    format!("MCP session ready, {} tools", handshake.tool_count),
                );
                let mut reap = tokio::time::interval(Duration::from_secs(30));
                let reason = loop {
                    tokio::select! {
                        reason = conn.closed() => break Some(reason),
                        _ = reap.tick() => {
                            let reaped = server.reap_clients(settings.per_client_idle);
                            if reaped > 0 {
                                logs.line("agent", format!("{reaped} idle per-client sessions ended"));
                            }
                        }
                        _ = server.stop.cancelled() => break None,
                        Some(UpstreamEvent::ToolsChanged) = events.recv() => {
                            match conn.list_tools().await {
                                Ok((tools, count)) => {
                                    logs.line("agent", format!("tool list changed: {count} tools"));
                                    server.set_status(|s| s.tools_json = tools);
                                }
                                Err(e) => logs.line("agent", format!("cannot refresh tools: {e}")),
                            }
                        }
                    }
                };
                *server.session.write().unwrap() = None;
                server.reap_clients(Duration::ZERO);
                match reason {
                    None => {
                        conn.close("server stopped".into());
                        // Held until its process has exited (bounded: a process that
                        // ignores the kill is not the next agent's problem forever).
                        let _ = tokio::time::timeout(STOP_WAIT, conn.gone()).await;
                        break;
                    }
                    Some(reason) => reason,
                }
            }
        };
        if started.elapsed() >= settings.backoff_reset_after {
            backoff = settings.backoff_base;
        }
        tracing::warn!(server = %server.assignment.name, %error, retry_in = ?backoff, "server failed");
        logs.line(
            "agent",
            format!(
                "failed: {error}; restarting in {:.1} s",
                backoff.as_secs_f32()
            ),
        );
        server.set_status(|s| {
            s.state = ServerState::Backoff;
            s.progress.clear();
            s.last_error = error;
            s.restart_count += 1;
            s.retry_at = Some(Instant::now() + backoff);
        });
        tokio::select! {
            _ = server.stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(settings.backoff_max);
    }
    server.set_status(|s| {
        s.state = ServerState::Stopped;
        s.retry_at = None;
    });
    agent
        .stopping
        .lock()
        .unwrap()
        .retain(|s| !Arc::ptr_eq(s, &server));
    agent.changed.notify_one();
}

/// How long a stopped server is still reported as held while its process exits.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Prepares what the server needs (a `docker` server's image, built once: that takes as
/// long as it takes), then connects within the startup timeout.
async fn start(
    agent: &Agent,
    assignment: &Assignment,
    logs: &LogSink,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    settings: &Settings,
) -> Result<(Arc<Connection>, upstream::Handshake), String> {
    let launch = match &assignment.spec {
        RuntimeSpec::Docker { .. } => {
            Some(crate::runtime::images::resolve(&agent.docker, &assignment.spec, logs).await?)
        }
        _ => None,
    };
    let connecting = connect(agent, assignment, launch, logs, events, settings);
    tokio::time::timeout(settings.startup_timeout, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no MCP handshake within {} s",
                settings.startup_timeout.as_secs()
            ))
        })
}

async fn connect(
    agent: &Agent,
    assignment: &Assignment,
    launch: Option<crate::runtime::docker::Launch>,
    logs: &LogSink,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    settings: &Settings,
) -> Result<(Arc<Connection>, upstream::Handshake), String> {
    let conn = match &assignment.spec {
        RuntimeSpec::Process {
            command,
            args,
            env,
            cwd,
        } => {
            if let Some(installer) = installer(command) {
                // The first start of a package resolves, builds and installs it, for as long
                // as that takes: its installer's lines are the progress.
                logs.progress(format!("installing with {installer}"));
                logs.stderr_progress(Some(format!("installing with {installer}")));
            }
            upstream::process::spawn(
                upstream::process::ProcessSpec {
                    command,
                    args,
                    env,
                    cwd: cwd.as_deref(),
                },
                logs.clone(),
                events,
                settings.request_timeout,
            )?
        }
        RuntimeSpec::Remote { url, headers } => {
            upstream::remote::connect(url, headers, events, settings.request_timeout)?
        }
        RuntimeSpec::Docker { .. } => {
            agent
                .docker
                .run_server(
                    assignment,
                    launch.ok_or("docker server without an image")?,
                    logs.clone(),
                    events,
                    settings.request_timeout,
                )
                .await?
        }
    };
    match conn.handshake("mcp-router").await {
        Ok(handshake) => {
            conn.start_listening();
            Ok((conn, handshake))
        }
        Err(e) => {
            // Prefer the reason the session died (exit status) over the symptom.
            let reason = conn.close_reason();
            conn.close("handshake failed".into());
            Err(match reason {
                Some(reason) => format!("MCP handshake failed: {reason}"),
                None => format!("MCP handshake failed: {}", e.message),
            })
        }
    }
}

/// The package runner a process command is (`uvx`, `npx`, …), whose start installs first.
fn installer(command: &str) -> Option<&str> {
    let runner = command.rsplit('/').next().unwrap_or(command);
    ["uvx", "uv", "npx", "pipx", "bunx"]
        .contains(&runner)
        .then_some(runner)
}

impl mcpr_core::relay::LocalAgent for Agent {
    fn request<'a>(
        &'a self,
        provider: &'a str,
        session: &'a str,
        message: Message,
    ) -> mcpr_core::relay::BoxFuture<'a, Message> {
        Box::pin(self.relay_request(provider, session, message))
    }

    fn respond<'a>(
        &'a self,
        provider: &'a str,
        message: Message,
    ) -> mcpr_core::relay::BoxFuture<'a, ()> {
        Box::pin(self.relay_response(provider, message))
    }

    fn subscribe(&self, sink: mcpr_core::relay::EventSink) -> mcpr_core::relay::Subscription {
        self.subscribe_events(sink)
    }

    fn notify<'a>(
        &'a self,
        provider: &'a str,
        session: &'a str,
        message: Message,
    ) -> mcpr_core::relay::BoxFuture<'a, ()> {
        Box::pin(self.relay_notification(provider, session, message))
    }
}
