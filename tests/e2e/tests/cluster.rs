//! Fault tests of a cluster (issue 15) whose components run on hosts of their own: each
//! control plane, agent and gateway, and Postgres, in a network namespace with its own
//! address (`mcpr_e2e::hosts`). Faults are injected at the process level (kill -9) and at
//! the network level (a host's traffic dropped). Each test asserts what clients see, that
//! nothing acknowledged is lost, and that no `shared` server ever runs on two agents (the
//! agents' child processes, sampled every 50 ms). The measured failover times are printed
//! (`MEASURED …`) and recorded in docs/DEPLOY.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcpr_e2e::harness::{Api, Proc, RawMcp, bin, random_token, tool_text, wait_for};
use mcpr_e2e::hosts::{Host, Network, Postgres, children_with};
use serde_json::{Value, json};

const PASSCODE: &str = "cluster-test-passcode-0123456789";
const API_KEY: &str = "mcpr-cluster-test-api-key-0123456789abcdef";
const SESSION_KEY: &str = "cluster-test-session-key-0123456789abcdef";
/// base64 of 32 bytes: every control plane seals and unseals secrets with the same key.
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A cluster on hosts of its own. Fields drop in order: processes before the network.
struct Hosted {
    control_planes: Vec<Option<Proc>>,
    agents: Vec<Proc>,
    gateways: Vec<Proc>,
    postgres: Postgres,
    cp_hosts: Vec<Host>,
    agent_hosts: Vec<Host>,
    gateway_hosts: Vec<Host>,
    data: Vec<tempfile::TempDir>,
    token: String,
    /// Each agent's `--label` (empty: none).
    labels: Vec<String>,
    _network: Network,
}

/// `None` (with a loud message) where network namespaces cannot be made; CI runs as root.
fn network() -> Option<Network> {
    match Network::available() {
        Ok(()) => Some(Network::create()),
        Err(why) if std::env::var("MCPR_REQUIRE_NETNS").is_ok_and(|v| v == "1") => {
            panic!("MCPR_REQUIRE_NETNS=1 but {why}")
        }
        Err(why) => {
            eprintln!("\n!!! SKIPPING cluster fault test: {why} !!!\n");
            None
        }
    }
}

fn cluster_env(command: &mut std::process::Command, token: &str) {
    command
        .env("MCPR_CLUSTER_TOKEN", token)
        .env_remove("MCPR_CLUSTER_TOKEN_FILE")
        .env_remove("MCPR_INSECURE_GRPC")
        .env_remove("DATABASE_URL");
}

impl Hosted {
    async fn start(control_planes: usize, agents: usize, gateways: usize) -> Option<Hosted> {
        Hosted::start_labelled(control_planes, &vec![""; agents], agents, gateways).await
    }

    /// A host per entry of `labels`, an agent with those labels started on the first
    /// `started` of them (the others by [`Hosted::start_agent`]).
    async fn start_labelled(
        control_planes: usize,
        labels: &[&str],
        started: usize,
        gateways: usize,
    ) -> Option<Hosted> {
        let agents = labels.len();
        let mut network = network()?;
        let pg_host = network.host("postgres");
        let cp_hosts: Vec<Host> = (0..control_planes)
            .map(|i| network.host(&format!("cp-{i}")))
            .collect();
        let agent_hosts: Vec<Host> = (0..agents)
            .map(|i| network.host(&format!("agent-{i}")))
            .collect();
        let gateway_hosts: Vec<Host> = (0..gateways)
            .map(|i| network.host(&format!("gateway-{i}")))
            .collect();
        let postgres = Postgres::start(&pg_host).await;
        let mut hosted = Hosted {
            control_planes: Vec::new(),
            agents: Vec::new(),
            gateways: Vec::new(),
            postgres,
            data: (0..control_planes)
                .map(|_| tempfile::tempdir().unwrap())
                .collect(),
            cp_hosts,
            agent_hosts,
            gateway_hosts,
            token: random_token(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            _network: network,
        };
        // One at a time: the first creates the schema.
        for i in 0..control_planes {
            let proc = hosted.spawn_control_plane(i);
            hosted.control_planes.push(Some(proc));
            hosted.admin(i).await;
        }
        for i in 0..started {
            let proc = hosted.spawn_agent(i);
            hosted.agents.push(proc);
        }
        for agent in &hosted.agents {
            agent
                .wait_log("registered with the control plane", Duration::from_secs(20))
                .await;
        }
        for i in 0..gateways {
            let proc = hosted.spawn_gateway(i);
            hosted.gateways.push(proc);
        }
        Some(hosted)
    }

    fn control_plane_list(&self) -> String {
        self.cp_hosts
            .iter()
            .map(|h| format!("http://{}:50051", h.ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn_control_plane(&self, i: usize) -> Proc {
        let host = &self.cp_hosts[i];
        let mut command = host.command(&bin("mcpr-control-plane"));
        cluster_env(&mut command, &self.token);
        command
            .args(["--http-listen", &format!("{}:8080", host.ip)])
            .args(["--grpc-listen", &format!("{}:50051", host.ip)])
            .arg("--data-dir")
            .arg(self.data[i].path())
            .env("DATABASE_URL", self.postgres.url())
            .env("ADMIN_PASSCODE", PASSCODE)
            .env("MCP_API_KEY", API_KEY)
            .env("MCPR_SESSION_KEY", SESSION_KEY)
            .env("MCPR_MASTER_KEY", MASTER_KEY);
        Proc::spawn(&format!("cp-{i}"), command)
    }

    fn spawn_agent(&self, i: usize) -> Proc {
        let host = &self.agent_hosts[i];
        let mut command = host.command(&bin("mcpr-node-agent"));
        cluster_env(&mut command, &self.token);
        command
            .args(["--id", &format!("agent-{i}")])
            .args(["--control-plane", &self.control_plane_list()])
            .args(["--relay-listen", &format!("{}:50061", host.ip)])
            .args(["--backoff-ms", "200"]);
        if !self.labels[i].is_empty() {
            command.args(["--label", &self.labels[i]]);
        }
        Proc::spawn(&format!("agent-{i}"), command)
    }

    /// Starts the next agent not started yet, registered when this returns.
    async fn start_agent(&mut self) {
        let proc = self.spawn_agent(self.agents.len());
        proc.wait_log("registered with the control plane", Duration::from_secs(20))
            .await;
        self.agents.push(proc);
    }

    fn spawn_gateway(&self, i: usize) -> Proc {
        let host = &self.gateway_hosts[i];
        let mut command = host.command(&bin("mcpr-edge-gateway"));
        cluster_env(&mut command, &self.token);
        command
            .args(["--listen", &format!("{}:8000", host.ip)])
            .args(["--control-plane", &self.control_plane_list()])
            .args(["--id", &format!("gateway-{i}")]);
        Proc::spawn(&format!("gateway-{i}"), command)
    }

    /// The admin API of control plane `i`, logged in.
    async fn admin(&self, i: usize) -> Api {
        let api = Api::new(&format!("http://{}:8080", self.cp_hosts[i].ip));
        api.wait_healthy().await;
        let token = api.login(PASSCODE).await;
        api.with_token(&token)
    }

    /// An MCP session on gateway `i`'s flat view, once the gateway serves `tool`.
    async fn client(&self, i: usize, tool: &str) -> RawMcp {
        let url = format!("http://{}:8000/mcp/all", self.gateway_hosts[i].ip);
        wait_for(
            &format!("gateway-{i} to serve {tool}"),
            Duration::from_secs(20),
            || {
                let url = url.clone();
                async move {
                    let mut client = RawMcp::with_key(&url, API_KEY);
                    if client.try_initialize().await.status != 200 {
                        return None;
                    }
                    client.initialize().await;
                    let answer = timeout(client.call(tool, json!({}))).await?;
                    answer.ok().map(|_| client)
                }
            },
        )
        .await
    }

    fn agent_pids(&self) -> Vec<u32> {
        self.agents.iter().map(|a| a.pid()).collect()
    }
}

/// A call's answer within 10 s, or `None`.
async fn timeout<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .ok()
}

/// A fixture server over stdio named `name` (`whoami` answers its name).
async fn add_server(api: &Api, name: &str) {
    api.add(json!({
        "name": name,
        "runtime": {"kind": "process", "command": bin("mcpr-fixture-server"), "args": ["--name", name]},
    }))
    .await;
}

/// Waits up to 15 s until a new session on the gateway at `url` can call `tool`.
async fn served_to_new_sessions(url: &str, tool: &str) {
    wait_for(
        &format!("{tool} through the gateway"),
        Duration::from_secs(15),
        move || async move {
            let mut fresh = RawMcp::with_key(url, API_KEY);
            fresh.initialize().await;
            timeout(fresh.call(tool, json!({}))).await?.ok()
        },
    )
    .await;
}

/// Calls server `name`'s `whoami` on `client` every 300 ms for `during`, each answered with
/// its name, then lists its tool to a new session (`with` says what is going on, for a failure).
async fn keeps_serving(client: &mut RawMcp, name: &str, during: Duration, with: &str) {
    let tool = format!("{name}__whoami");
    let start = Instant::now();
    while start.elapsed() < during {
        let answer = timeout(client.call(&tool, json!({})))
            .await
            .expect("an answer")
            .unwrap_or_else(|e| panic!("{name} failed with {with}: {e}"));
        assert_eq!(tool_text(&answer), name);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut fresh = RawMcp::with_key(&client.url.clone(), API_KEY);
    fresh.initialize().await;
    let listed: Value = fresh.request("tools/list", json!({})).await;
    assert!(listed.to_string().contains(&tool), "{listed}");
}

/// The copies of server `name` each agent runs (its fixture child processes).
fn copies(agent_pids: &[u32], name: &str) -> Vec<usize> {
    let needle = format!("--name {name} ");
    agent_pids
        .iter()
        .map(|pid| children_with(*pid, &needle).len())
        .collect()
}

/// Samples every 50 ms, until dropped, the most copies of any of `names` running at once.
struct TwiceWatch {
    most: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TwiceWatch {
    fn start(agent_pids: Vec<u32>, names: Vec<String>) -> TwiceWatch {
        let most = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (most.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for name in &names {
                    let running: usize = copies(&agent_pids, name).iter().sum();
                    m.fetch_max(running, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        TwiceWatch { most, stop }
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::Relaxed)
    }
}

impl Drop for TwiceWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `GET /api/v1/cluster`'s leader id, when the lease is held.
async fn leader(api: &Api) -> Option<String> {
    let (status, body) = api.get("/api/v1/cluster").await;
    if status != 200 {
        return None;
    }
    body["control_planes"]
        .as_array()?
        .iter()
        .find(|cp| cp["leader"] == true)
        .and_then(|cp| cp["id"].as_str().map(str::to_owned))
}

async fn this_control_plane(api: &Api) -> String {
    let (status, body) = api.get("/api/v1/cluster").await;
    assert_eq!(status, 200, "GET /api/v1/cluster: {body}");
    body["this_control_plane"].as_str().unwrap().to_owned()
}

async fn server_agent(api: &Api, name: &str) -> String {
    let server = api.wait_state(name, "running").await;
    server["status"]["agent_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn leader_killed_another_leads_within_10_s_and_no_server_runs_twice() {
    let Some(mut hosted) = Hosted::start(2, 2, 1).await else {
        return;
    };
    let apis = [hosted.admin(0).await, hosted.admin(1).await];
    let names: Vec<String> = (0..4).map(|i| format!("lk-{i}")).collect();
    for name in &names {
        add_server(&apis[0], name).await;
    }
    for name in &names {
        server_agent(&apis[0], name).await;
    }
    let watch = TwiceWatch::start(hosted.agent_pids(), names.clone());
    let mut client = hosted.client(0, "lk-0__whoami").await;
    let leader_id = wait_for("a leader", Duration::from_secs(10), || leader(&apis[0])).await;
    let ids = [
        this_control_plane(&apis[0]).await,
        this_control_plane(&apis[1]).await,
    ];
    let dead = ids.iter().position(|id| *id == leader_id).unwrap();
    let survivor = 1 - dead;
    let placed_before: Vec<String> = {
        let mut placed = Vec::new();
        for name in &names {
            placed.push(server_agent(&apis[survivor], name).await);
        }
        placed
    };

    let killed = Instant::now();
    hosted.control_planes[dead].take().unwrap().kill();
    let api = &apis[survivor];
    let survivor_id = &ids[survivor];
    let new_leader = wait_for(
        "the surviving control plane to lead",
        Duration::from_secs(10),
        move || async move {
            leader(api)
                .await
                .filter(|id| id == survivor_id)
                .map(|_| killed.elapsed())
        },
    )
    .await;
    eprintln!(
        "MEASURED leader failover (kill -9 to the survivor leading): {} ms",
        new_leader.as_millis()
    );
    assert!(new_leader < Duration::from_secs(10));

    // API writes keep working, and the new server reaches the gateway through whichever
    // control plane it follows now.
    add_server(api, "lk-new").await;
    server_agent(api, "lk-new").await;
    let answered = Instant::now();
    served_to_new_sessions(&client.url, "lk-new__whoami").await;
    eprintln!(
        "MEASURED server added after the failover callable on the gateway in {} ms",
        answered.elapsed().as_millis()
    );
    // Existing servers stayed where they were and kept answering.
    for (name, agent) in names.iter().zip(&placed_before) {
        assert_eq!(&server_agent(api, name).await, agent, "{name} moved");
    }
    let answer = timeout(client.call("lk-1__whoami", json!({})))
        .await
        .expect("an answer")
        .expect("lk-1 answers after the failover");
    assert_eq!(tool_text(&answer), "lk-1");
    assert_eq!(watch.most(), 1, "a server ran on two agents at once");
    for name in &names {
        assert_eq!(
            copies(&hosted.agent_pids(), name).iter().sum::<usize>(),
            1,
            "{name} runs once"
        );
    }

    // What an operator sees: `mcpr cluster status` against the survivor.
    let base = format!("http://{}:8080", hosted.cp_hosts[survivor].ip);
    let token = Api::new(&base).login(PASSCODE).await;
    let status = std::process::Command::new(bin("mcpr"))
        .args(["--url", &base, "cluster", "status"])
        .env("MCPR_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let leader_line = text
        .lines()
        .find(|l| l.contains("leader (epoch"))
        .unwrap_or_else(|| panic!("no leader in {text}"));
    assert!(leader_line.starts_with(survivor_id.as_str()), "{text}");
    for agent in ["agent-0", "agent-1"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(agent) && l.contains("lk-")),
            "{text}"
        );
    }
    assert!(text.lines().any(|l| l.starts_with("gateway-0")), "{text}");
}

#[tokio::test]
async fn agent_host_cut_off_its_servers_move_within_15_s_and_old_copies_stop() {
    let Some(hosted) = Hosted::start(1, 2, 1).await else {
        return;
    };
    let api = hosted.admin(0).await;
    add_server(&api, "cut-0").await;
    add_server(&api, "cut-1").await;
    let first = server_agent(&api, "cut-0").await;
    let cut = if first == "agent-0" { 0 } else { 1 };
    let other = format!("agent-{}", 1 - cut);
    let watch = TwiceWatch::start(
        hosted.agent_pids(),
        vec!["cut-0".to_owned(), "cut-1".to_owned()],
    );
    let mut client = hosted.client(0, "cut-0__whoami").await;

    let cut_at = Instant::now();
    hosted.agent_hosts[cut].cut_off();
    // Every call answers quickly, with a clear error until the server runs elsewhere.
    let mut slowest_error = Duration::ZERO;
    let mut errors = Vec::new();
    let moved = loop {
        let asked = Instant::now();
        let answer = timeout(client.call("cut-0__whoami", json!({})))
            .await
            .expect("a call answered within 10 s while an agent is cut off");
        match answer {
            Ok(result) => {
                assert_eq!(tool_text(&result), "cut-0");
                if server_agent(&api, "cut-0").await == other && asked > cut_at {
                    break cut_at.elapsed();
                }
            }
            Err(error) => {
                slowest_error = slowest_error.max(asked.elapsed());
                let message = error["message"].as_str().unwrap_or_default().to_owned();
                let clear = [
                    "is unreachable",
                    "was stopped on agent",
                    "not placed",
                    "which is gone",
                    "not running",
                    "starting",
                ];
                assert!(
                    clear.iter().any(|c| message.contains(c)),
                    "unclear error while the agent is cut off: {error}"
                );
                errors.push(message);
            }
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(15),
            "cut-0 did not move within 15 s; errors: {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "MEASURED agent cut off: its server callable on another agent after {} ms; slowest failed call {} ms; {} failed calls, e.g. {:?}",
        moved.as_millis(),
        slowest_error.as_millis(),
        errors.len(),
        errors.first()
    );
    assert!(
        slowest_error < Duration::from_secs(6),
        "calls failed slowly ({slowest_error:?})"
    );
    // The cut-off agent stopped its copies when its lease ran out, before they started
    // elsewhere: never two at once.
    let pids = hosted.agent_pids();
    assert_eq!(copies(&pids, "cut-0")[cut], 0, "the old copy stopped");
    server_agent(&api, "cut-1").await;

    // Back on the network: it registers again and runs nothing it gave up.
    hosted.agent_hosts[cut].restore();
    let agent_id = &format!("agent-{cut}");
    let api = &api;
    wait_for(
        "the agent back in the cluster",
        Duration::from_secs(15),
        move || async move {
            let (_, body) = api.get("/api/v1/cluster").await;
            body["agents"].as_array()?.iter().find(|a| {
                a["id"] == agent_id.as_str() && a["silent_ms"].as_i64().is_some_and(|s| s < 1500)
            })?;
            Some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["cut-0", "cut-1"] {
        let running = copies(&pids, name);
        assert_eq!(
            running.iter().sum::<usize>(),
            1,
            "{name} runs once: {running:?}"
        );
        assert_eq!(
            running[cut], 0,
            "{name} is not back on the agent that gave it up"
        );
    }
    assert_eq!(watch.most(), 1, "a server ran on two agents at once");
}

#[tokio::test]
async fn postgres_restarted_control_planes_reconnect_and_no_acknowledged_write_is_lost() {
    let Some(mut hosted) = Hosted::start(2, 1, 0).await else {
        return;
    };
    let apis = Arc::new([hosted.admin(0).await, hosted.admin(1).await]);
    let stop = Arc::new(AtomicBool::new(false));
    // Writes to both control planes in turn, as fast as they answer; keeps the names of
    // the acknowledged ones and when the first one after the restart was acknowledged.
    let writer = {
        let (apis, stop) = (apis.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acknowledged: Vec<(String, Instant)> = Vec::new();
            let mut refused = 0;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("key-{i}");
                let api = &apis[i % 2];
                let call = api.post("/api/v1/keys", json!({"name": name}));
                match tokio::time::timeout(Duration::from_secs(2), call).await {
                    Ok((201, _)) => acknowledged.push((name, Instant::now())),
                    _ => refused += 1,
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acknowledged, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    hosted.postgres.restart(Duration::from_secs(1)).await;
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, refused) = writer.await.unwrap();
    let first_after = acknowledged
        .iter()
        .find(|(_, at)| *at > back)
        .map(|(_, at)| at.duration_since(back))
        .expect("writes acknowledged again after Postgres came back");
    eprintln!(
        "MEASURED Postgres restart: first write acknowledged {} ms after Postgres accepted connections again; {} writes acknowledged, {} refused meanwhile",
        first_after.as_millis(),
        acknowledged.len(),
        refused
    );
    assert!(
        first_after < Duration::from_secs(5),
        "control planes reconnect"
    );
    // Every acknowledged write is there, on both control planes (the other one's within
    // its next syncs).
    for api in apis.iter() {
        let acknowledged = &acknowledged;
        let missing = wait_for(
            "every acknowledged key listed",
            Duration::from_secs(5),
            move || async move {
                let (status, keys) = api.get("/api/v1/keys").await;
                assert_eq!(status, 200, "{keys}");
                let listed: Vec<String> = keys
                    .as_array()
                    .or_else(|| keys["keys"].as_array())
                    .expect("a list of keys")
                    .iter()
                    .filter_map(|k| k["name"].as_str().map(str::to_owned))
                    .collect();
                let missing: Vec<&String> = acknowledged
                    .iter()
                    .map(|(name, _)| name)
                    .filter(|name| !listed.contains(name))
                    .collect();
                missing.is_empty().then_some(missing)
            },
        )
        .await;
        assert!(missing.is_empty());
    }
    // And the cluster leads again.
    wait_for("a leader again", Duration::from_secs(10), || {
        leader(&apis[0])
    })
    .await;
}

#[tokio::test]
async fn control_planes_all_down_gateways_and_agents_keep_serving() {
    let Some(mut hosted) = Hosted::start(2, 1, 1).await else {
        return;
    };
    let api = hosted.admin(0).await;
    add_server(&api, "keep").await;
    server_agent(&api, "keep").await;
    let mut client = hosted.client(0, "keep__whoami").await;
    let before = children_with(hosted.agents[0].pid(), "--name keep ");
    assert_eq!(before.len(), 1);

    for cp in &mut hosted.control_planes {
        cp.take().unwrap().kill();
    }
    // Longer than the agents' lease: with every control plane refusing connections, none
    // can move the server, and the agent keeps it.
    // A new client session too, from the gateway's last snapshot.
    keeps_serving(
        &mut client,
        "keep",
        Duration::from_secs(8),
        "the control planes down",
    )
    .await;
    assert_eq!(
        children_with(hosted.agents[0].pid(), "--name keep "),
        before,
        "the same process all along"
    );

    // Back: the agent finds them again before any could expire it, and the server keeps
    // its process.
    for i in 0..2 {
        let proc = hosted.spawn_control_plane(i);
        hosted.control_planes[i] = Some(proc);
    }
    let api = hosted.admin(1).await;
    wait_for("a leader", Duration::from_secs(10), || leader(&api)).await;
    add_server(&api, "after").await;
    server_agent(&api, "after").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(server_agent(&api, "keep").await, "agent-0");
    assert_eq!(
        children_with(hosted.agents[0].pid(), "--name keep "),
        before,
        "the server was never restarted"
    );
    served_to_new_sessions(&client.url, "after__whoami").await;
    let answer = timeout(client.call("keep__whoami", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tool_text(&answer), "keep");
}

/// A gateway that fails over to a control plane which has not caught up with Postgres (here
/// cut off from it) keeps the newer snapshot it has: no server is forgotten, no call fails.
/// Once that control plane catches up the gateway follows it again; and when the database
/// goes back (restored from a backup) the control planes raise the version past what was
/// served, so the gateway follows the changes made after, and the agents a leader that took
/// the lease before they said which epoch they followed.
#[tokio::test]
async fn a_gateway_keeps_its_snapshot_when_it_fails_over_to_a_lagging_control_plane() {
    let Some(mut hosted) = Hosted::start(2, 1, 1).await else {
        return;
    };
    let api = hosted.admin(0).await;
    // cp-1 stops hearing from Postgres: it goes on serving the cluster as it was.
    hosted.cp_hosts[1].cut_off_from(hosted.postgres.host());
    add_server(&api, "late").await;
    server_agent(&api, "late").await;
    let mut client = hosted.client(0, "late__whoami").await;

    hosted.control_planes[0].take().unwrap().kill();
    hosted.gateways[0]
        .wait_log("moving to another control plane", Duration::from_secs(15))
        .await;
    keeps_serving(
        &mut client,
        "late",
        Duration::from_secs(3),
        "the lagging control plane",
    )
    .await;
    hosted.gateways[0]
        .wait_log(
            "ignoring a snapshot older than the one served",
            Duration::from_secs(1),
        )
        .await;

    // Caught up: what is added through cp-1 reaches the gateway.
    hosted.cp_hosts[1].restore_to(hosted.postgres.host());
    let api = hosted.admin(1).await;
    add_server(&api, "caught").await;
    server_agent(&api, "caught").await;
    served_to_new_sessions(&client.url, "caught__whoami").await;

    // The database goes back (as a restored backup would): an older config version and
    // lease epoch. The next change still reaches the agent and the gateway.
    hosted
        .postgres
        .sql("UPDATE cluster_version SET version = 1 WHERE name = 'config'");
    hosted.postgres.sql(
        "UPDATE cluster_lease SET holder = 'restored', epoch = 0, expires_at_ms = 0 \
         WHERE name = 'placement'",
    );
    add_server(&api, "restored").await;
    server_agent(&api, "restored").await;
    served_to_new_sessions(&client.url, "restored__whoami").await;
    hosted.control_planes[1]
        .as_ref()
        .unwrap()
        .wait_log(
            "the cluster's config version went back",
            Duration::from_secs(1),
        )
        .await;

    // Gone back again, and every control plane restarts on it: the first to lead takes the
    // lease (epoch 1) before the agent, paused meanwhile, says it followed a later one. The
    // lease is ended for a takeover past it, and the agent follows the new leader.
    hosted.control_planes[1].take().unwrap().kill();
    hosted.postgres.sql(
        "UPDATE cluster_lease SET holder = 'restored', epoch = 0, expires_at_ms = 0 \
         WHERE name = 'placement'",
    );
    let agent = hosted.agents[0].pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &agent])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {agent}");
    };
    signal("-STOP");
    for i in 0..2 {
        hosted.control_planes[i] = Some(hosted.spawn_control_plane(i));
    }
    let api = hosted.admin(0).await;
    wait_for("a leader", Duration::from_secs(10), || leader(&api)).await;
    signal("-CONT");
    add_server(&api, "restarted").await;
    server_agent(&api, "restarted").await;
    served_to_new_sessions(&client.url, "restarted__whoami").await;
    let outdated = "agents followed a later placement epoch than the lease's";
    assert!(
        hosted
            .control_planes
            .iter()
            .flatten()
            .any(|cp| cp.log().contains(outdated)),
        "a control plane ended the outdated lease"
    );
    let answer = timeout(client.call("late__whoami", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tool_text(&answer), "late");
}

/// The all-in-one (SQLite) reports itself as the one control plane, always leading, with its
/// agent and the servers on it and its gateway at the current version.
#[tokio::test]
async fn single_router_reports_itself_as_the_one_leading_control_plane() {
    let router = mcpr_e2e::harness::Router::start().await;
    let api = router.api();
    add_server(&api, "solo").await;
    server_agent(&api, "solo").await;
    let body = wait_for(
        "the gateway at the current version",
        Duration::from_secs(10),
        || async {
            let (status, body) = api.get("/api/v1/cluster").await;
            assert_eq!(status, 200, "{body}");
            (body["gateways"][0]["lag"] == 0).then_some(body)
        },
    )
    .await;
    assert_eq!(body["mode"], "single");
    assert!(body.get("lease").is_none(), "{body}");
    assert_eq!(body["control_planes"][0]["leader"], true);
    assert_eq!(body["agents"][0]["id"], "local");
    assert_eq!(body["agents"][0]["servers"], json!(["solo"]));
    assert_eq!(body["gateways"][0]["id"], "local");
}

/// Placement constraints across two control planes: a selector picks the agent by its
/// labels; with none matching the server waits, unplaced and saying why, and runs as soon as
/// a matching agent registers; a selector changed moves it, its old copy stopped before the
/// new one starts. Servers added with the CLI's `--selector`, labels given with `--label`.
#[tokio::test]
async fn selectors_place_servers_by_agent_labels_and_a_change_moves_them_once() {
    let labels = ["zone=a,docker=true", "zone=b", "zone=c"];
    let Some(mut hosted) = Hosted::start_labelled(2, &labels, 2, 1).await else {
        return;
    };
    let apis = [hosted.admin(0).await, hosted.admin(1).await];
    let base = format!("http://{}:8080", hosted.cp_hosts[0].ip);
    let token = Api::new(&base).login(PASSCODE).await;
    let mcpr = |args: &[&str]| {
        let output = std::process::Command::new(bin("mcpr"))
            .args(["--url", &base])
            .args(args)
            .env("MCPR_ADMIN_TOKEN", &token)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let fixture = bin("mcpr-fixture-server");
    let add = |name: &str, selector: &str| {
        let command = format!("{} --name {name}", fixture.display());
        mcpr(&[
            "server",
            "add",
            name,
            "--command",
            &command,
            "--selector",
            selector,
        ])
    };
    let (ok, text) = add("zoned", "zone=a");
    assert!(ok, "{text}");
    assert_eq!(server_agent(&apis[1], "zoned").await, "agent-0");

    // Bad selectors are refused, naming what is wrong; nothing is stored.
    let (ok, text) = add("bad", "zone");
    assert!(
        !ok && text.contains("--selector: expected KEY=VALUE, got \"zone\""),
        "{text}"
    );
    let (status, body) = apis[0]
        .post(
            "/api/v1/servers",
            json!({"name": "bad", "runtime": {"kind": "process", "command": "x"},
                   "placement": {"selector": {"zone": "a b"}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("placement.selector.zone"),
        "{body}"
    );
    assert_eq!(apis[0].get("/api/v1/servers/bad").await.0, 404);

    // No agent in zone c yet: unplaced, and everyone says why.
    let (ok, text) = add("later", "zone=c");
    assert!(ok, "{text}");
    let unplaced = apis[1]
        .wait_until("later", "unplaced with a reason", |s| {
            s["unplaced"] == "no agent matches zone=c"
        })
        .await;
    assert_eq!(unplaced["status"]["agent_id"], "", "{unplaced}");
    let (_, cluster) = apis[1].get("/api/v1/cluster").await;
    assert_eq!(
        cluster["unplaced"],
        json!([{"name": "later", "reason": "no agent matches zone=c"}]),
        "{cluster}"
    );
    let agent_0 = cluster["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "agent-0")
        .cloned()
        .unwrap_or_else(|| panic!("{cluster}"));
    assert_eq!(agent_0["labels"], json!({"docker": "true", "zone": "a"}));
    let (ok, text) = mcpr(&["cluster", "status"]);
    assert!(ok, "{text}");
    let row = |id: &str| text.lines().find(|l| l.starts_with(id)).map(str::to_owned);
    let agent_row = row("agent-0").unwrap_or_else(|| panic!("{text}"));
    assert!(
        agent_row.contains("docker=true,zone=a") && agent_row.contains("zoned"),
        "{text}"
    );
    let unplaced_row = row("later").unwrap_or_else(|| panic!("{text}"));
    assert!(unplaced_row.contains("no agent matches zone=c"), "{text}");
    // The gateway does not wait for it and its calls say why.
    let mut client = hosted.client(0, "zoned__whoami").await;
    let refused = timeout(client.call("later__whoami", json!({})))
        .await
        .expect("an answer");
    let refusal = format!("{refused:?}");
    assert!(refusal.contains("no agent matches zone=c"), "{refusal}");

    // An agent of zone c registers: the server runs there.
    hosted.start_agent().await;
    assert_eq!(server_agent(&apis[0], "later").await, "agent-2");
    served_to_new_sessions(&client.url, "later__whoami").await;

    // The selector changed to zone b: it moves to agent-1, never running twice.
    let watch = TwiceWatch::start(hosted.agent_pids(), vec!["zoned".to_owned()]);
    let (ok, text) = mcpr(&["server", "update", "zoned", "--selector", "zone=b"]);
    assert!(ok, "{text}");
    let moved = apis[1]
        .wait_until("zoned", "running on agent-1", |s| {
            s["status"]["state"] == "running" && s["status"]["agent_id"] == "agent-1"
        })
        .await;
    assert_eq!(moved["placement"], json!({"selector": {"zone": "b"}}));
    served_to_new_sessions(&client.url, "zoned__whoami").await;
    let answer = timeout(client.call("zoned__whoami", json!({})))
        .await
        .expect("an answer")
        .expect("zoned answers after its move");
    assert_eq!(tool_text(&answer), "zoned");
    assert_eq!(watch.most(), 1, "zoned ran on two agents at once");
    assert_eq!(copies(&hosted.agent_pids(), "zoned"), vec![0, 1, 0]);
    assert_eq!(copies(&hosted.agent_pids(), "later"), vec![0, 0, 1]);
}
