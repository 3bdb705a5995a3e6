//! Attacks on the gRPC services between the components: every peer proves who it is.
//!
//! A raw gRPC client built from `proto/` calls every RPC of the control plane
//! (`ConfigService`, `AgentService`) and of the agent (`RelayService`) as a stranger would:
//! against `mcpr up`'s loopback ports (found in its log), and against the distributed
//! binaries without the cluster token, with a wrong one, and with the right one. MCP
//! clients are served throughout.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use mcpr_e2e::harness::{Cluster, Proc, RawMcp, Router, bin, random_token, tool_text, wait_for};
use mcpr_proto as pb;
use serde_json::json;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Adds `mcpr-cluster-token` to every call when given one, as a component would.
#[derive(Clone)]
struct Token(Option<String>);

impl Interceptor for Token {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("mcpr-cluster-token", token.parse().unwrap());
        }
        Ok(request)
    }
}

async fn channel(port: u16, token: Option<&str>) -> InterceptedService<Channel, Token> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to gRPC port {port}: {e}"));
    InterceptedService::new(channel, Token(token.map(str::to_owned)))
}

/// Every RPC of the control plane, as an intruder would call them (`Register("evil")`,
/// the local agent's assignments, …): each one's name and outcome.
async fn control_plane_rpcs(port: u16, token: Option<&str>) -> Vec<(&'static str, Status)> {
    let channel = channel(port, token).await;
    let mut config = pb::config_service_client::ConfigServiceClient::new(channel.clone());
    let mut agents = pb::agent_service_client::AgentServiceClient::new(channel);
    let watch = config
        .watch(pb::WatchRequest {
            gateway_id: "intruder".into(),
            known_version: 0,
        })
        .await;
    let usage = config
        .report_usage(pb::UsageReport {
            gateway_id: "intruder".into(),
            usage: vec![],
        })
        .await;
    let audit = config
        .report_audit(pb::AuditReport {
            gateway_id: "intruder".into(),
            ..Default::default()
        })
        .await;
    let register = agents
        .register(pb::RegisterRequest {
            agent_id: "evil".into(),
            relay_url: "http://127.0.0.1:9".into(),
            runtimes: vec!["process".into()],
            version: "0".into(),
            ..Default::default()
        })
        .await;
    let heartbeat = agents
        .heartbeat(pb::HeartbeatRequest {
            agent_id: "evil".into(),
        })
        .await;
    let assignments = agents
        .watch_assignments(pb::AssignmentsRequest {
            agent_id: "local".into(),
        })
        .await;
    let status = agents
        .report_status(pb::StatusReport {
            agent_id: "local".into(),
            servers: vec![],
            logs: vec![],
        })
        .await;
    vec![
        ("ConfigService.Watch", watch.err()),
        ("ConfigService.ReportUsage", usage.err()),
        ("ConfigService.ReportAudit", audit.err()),
        ("AgentService.Register", register.err()),
        ("AgentService.Heartbeat", heartbeat.err()),
        ("AgentService.WatchAssignments", assignments.err()),
        ("AgentService.ReportStatus", status.err()),
    ]
    .into_iter()
    .map(|(rpc, refusal)| {
        let refusal = refusal.unwrap_or_else(|| panic!("{rpc} was served to a stranger"));
        (rpc, refusal)
    })
    .collect()
}

/// A relay stream to the agent on `port` carrying one `tools/call` of `echo` on `provider`:
/// the echoed text, or the refusal of the stream.
async fn relay_echo(port: u16, token: Option<&str>, provider: &str) -> Result<String, Status> {
    let mut relay = pb::relay_service_client::RelayServiceClient::new(channel(port, token).await);
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "relayed"}}});
    let frame = pb::RelayFrame {
        exchange_id: 1,
        provider: provider.into(),
        client_session: String::new(),
        kind: pb::RelayKind::Request as i32,
        message: call.to_string().into_bytes(),
        related_id: String::new(),
        ..Default::default()
    };
    // The stream stays open (as a gateway's does) while the answer comes back.
    let frames = futures::stream::once(async { frame }).chain(futures::stream::pending());
    let mut answers = relay.relay(frames).await?.into_inner();
    while let Some(frame) = answers.next().await {
        let frame = frame?;
        if frame.exchange_id == 1 {
            let answer: serde_json::Value = serde_json::from_slice(&frame.message).unwrap();
            return Ok(tool_text(&answer["result"]));
        }
    }
    Err(Status::unknown("the relay stream ended without an answer"))
}

fn assert_refused(rpc: &str, refusal: &Status, why: &str) {
    assert_eq!(refusal.code(), Code::Unauthenticated, "{rpc}: {refusal:?}");
    assert!(
        refusal.message().starts_with(why),
        "{rpc}: {:?} does not start with {why:?}",
        refusal.message()
    );
}

/// Every RPC of the control plane on `grpc_port` and the relay on `relay_port` refuse a
/// caller without a token, then one with `wrong`, each saying which.
async fn refuse_strangers(grpc_port: u16, relay_port: u16, wrong: &str) {
    for (token, why) in [
        (None, "missing cluster token"),
        (Some(wrong), "wrong cluster token"),
    ] {
        for (rpc, refusal) in control_plane_rpcs(grpc_port, token).await {
            assert_refused(rpc, &refusal, why);
        }
        let relayed = relay_echo(relay_port, token, "echo").await;
        assert_refused("RelayService.Relay", &relayed.unwrap_err(), why);
    }
}

/// The port in the first `127.0.0.1:PORT` after `marker` in `log`.
fn port_after(log: &str, marker: &str) -> u16 {
    let line = log
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in the log:\n{log}"));
    let rest = &line[line.find(marker).unwrap()..];
    let at = rest.find("127.0.0.1:").expect("a loopback address") + "127.0.0.1:".len();
    let digits: String = rest[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

async fn echo_through(url: &str, text: &str) {
    let mut mcp = RawMcp::new(url);
    mcp.initialize().await;
    let result = mcp
        .call("echo", json!({"text": text}))
        .await
        .expect("echo answers");
    assert_eq!(tool_text(&result), text);
}

#[tokio::test]
async fn mcpr_up_answers_no_other_process_on_its_grpc_ports() {
    let router = Router::start().await;
    let api = router.api();
    api.add_fixture("echo", &[]).await;
    api.wait_state("echo", "running").await;
    let mcp = router.mcp_url("/mcp/p/echo");
    echo_through(&mcp, "before").await;
    let log = router.proc.log();
    let grpc_port = port_after(&log, "control plane gRPC listening");
    let relay_port = port_after(&log, "node agent relay listening");

    // Another process of the machine, without the process's secret or with a guess, is
    // refused on every RPC: no session key, no server environments, no rogue agent.
    refuse_strangers(grpc_port, relay_port, &random_token()).await;
    echo_through(&mcp, "meanwhile").await;
    // The refused Register placed nothing on "evil": the server still runs on the local
    // agent, and the router kept serving.
    let server = api.server("echo").await;
    assert_eq!(server["status"]["state"], "running", "{server}");
    echo_through(&mcp, "after").await;
}

#[tokio::test]
async fn the_cluster_serves_only_peers_with_its_token() {
    let mut cluster = Cluster::start(1, None).await;
    let api = cluster.api();
    api.add_fixture("echo", &[]).await;
    api.wait_state("echo", "running").await;
    let mcp = cluster.mcp_url(0, "/mcp/p/echo");
    wait_for("the gateway to route echo", Duration::from_secs(20), || {
        let mcp = mcp.clone();
        async move {
            let mut client = RawMcp::new(&mcp);
            client.initialize().await;
            let call = client.call("echo", json!({"text": "ready"})).await;
            call.ok().map(|_| ())
        }
    })
    .await;
    let (grpc_port, relay_port) = (cluster.grpc_port, cluster.relay_ports[0]);

    let wrong = random_token();
    refuse_strangers(grpc_port, relay_port, &wrong).await;
    echo_through(&mcp, "meanwhile").await;

    // With the cluster's token the same raw client is a member: the snapshot, the agent's
    // assignments with the server's secret, a relayed tool call.
    let token = Some(cluster.token.as_str());
    let channel = channel(grpc_port, token).await;
    let mut config = pb::config_service_client::ConfigServiceClient::new(channel.clone());
    let snapshot = config
        .watch(pb::WatchRequest {
            gateway_id: "member".into(),
            known_version: 0,
        })
        .await
        .expect("a member watches the configuration")
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert!(!snapshot.session_key.is_empty());
    assert!(snapshot.providers.iter().any(|p| p.name == "echo"));
    let mut agents = pb::agent_service_client::AgentServiceClient::new(channel);
    let assignments = agents
        .watch_assignments(pb::AssignmentsRequest {
            agent_id: "agent-0".into(),
        })
        .await
        .expect("a member follows assignments")
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    let spec = format!("{:?}", assignments.servers[0].spec);
    assert!(spec.contains("s3cret-value"), "{spec}");
    assert_eq!(
        relay_echo(relay_port, token, "echo").await.unwrap(),
        "relayed"
    );

    // An agent and a gateway started with another token are refused, and say why: the
    // agent gets no assignment (nor its secrets), the gateway no snapshot.
    cluster.add_agent_with_env("intruder", &[("MCPR_CLUSTER_TOKEN", &wrong)]);
    let intruder = cluster.agents.last().unwrap();
    intruder
        .wait_log("wrong cluster token", Duration::from_secs(20))
        .await;
    assert!(!intruder.log().contains("registered with the control plane"));
    let gateway_port = mcpr_e2e::harness::free_port();
    let mut command = Command::new(bin("mcpr-edge-gateway"));
    command
        .args(["--listen", &format!("127.0.0.1:{gateway_port}")])
        .args(["--control-plane", &format!("http://127.0.0.1:{grpc_port}")])
        .env("MCPR_CLUSTER_TOKEN", &wrong);
    let gateway = Proc::spawn("intruder-gateway", command);
    gateway
        .wait_log("wrong cluster token", Duration::from_secs(20))
        .await;
    let mut stranger = RawMcp::new(&format!("http://127.0.0.1:{gateway_port}/mcp/all"));
    stranger.initialize().await;
    let tools = stranger.request("tools/list", json!({})).await;
    assert_eq!(tools["result"]["tools"], json!([]), "{tools}");
    echo_through(&mcp, "after").await;
}

/// Starts `binary` off loopback (with a data dir of its own, in `dir`), with `extra`
/// arguments and `envs`, and nothing of the test runner's settings.
fn spawn_exposed(
    binary: &str,
    dir: &tempfile::TempDir,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Proc {
    let mut command = Command::new(bin(binary));
    match binary {
        "mcpr-control-plane" => command
            .args(["--http-listen", "127.0.0.1:0", "--grpc-listen", "0.0.0.0:0"])
            .arg("--data-dir")
            .arg(tempfile::tempdir_in(dir.path()).unwrap().keep()),
        _ => command.args([
            "--id",
            "exposed",
            "--control-plane",
            "http://127.0.0.1:9",
            "--relay-listen",
            "0.0.0.0:0",
        ]),
    };
    command
        .args(extra)
        .env_remove("MCPR_CLUSTER_TOKEN")
        .env_remove("MCPR_CLUSTER_TOKEN_FILE")
        .env_remove("MCPR_INSECURE_GRPC")
        .env_remove("DATABASE_URL")
        .env_remove("ADMIN_PASSCODE");
    for (k, v) in envs {
        command.env(k, v);
    }
    Proc::spawn(binary, command)
}

#[tokio::test]
async fn a_grpc_listener_off_loopback_needs_a_token_or_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let binaries = [
        (
            "mcpr-control-plane",
            "--grpc-listen",
            "control plane gRPC listening",
        ),
        (
            "mcpr-node-agent",
            "--relay-listen",
            "node agent relay listening",
        ),
    ];
    for (binary, flag, listening) in binaries {
        let mut refused = spawn_exposed(binary, &dir, &[], &[]);
        let status = refused.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(status.code(), Some(1), "{binary}: {}", refused.log());
        let log = refused.log();
        for named in [
            "refusing to serve gRPC on 0.0.0.0:",
            flag,
            "MCPR_CLUSTER_TOKEN",
            "MCPR_TLS_CA",
            "--insecure-grpc",
        ] {
            assert!(
                log.contains(named),
                "{binary} does not name {named:?}: {log}"
            );
        }

        let insecure = spawn_exposed(binary, &dir, &["--insecure-grpc"], &[]);
        insecure.wait_log(listening, Duration::from_secs(20)).await;
        let log = insecure.log();
        assert!(log.contains("INSECURE: gRPC on 0.0.0.0:"), "{log}");

        let token = random_token();
        let mut guarded = spawn_exposed(binary, &dir, &[], &[("MCPR_CLUSTER_TOKEN", &token)]);
        guarded.wait_log(listening, Duration::from_secs(20)).await;
        assert!(guarded.is_running());
        let log = guarded.log();
        assert!(!log.contains("INSECURE"), "{log}");
        assert!(!log.contains(&token), "the token was logged: {log}");
    }
}
