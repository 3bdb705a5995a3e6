//! The deploy files of `deploy/`, run as far as this machine allows (docs/DEPLOY.md):
//!
//! - `deploy/fly.toml`: the router image run as Fly.io runs it (its `[env]`, its volume at
//!   `/data` mounted root-owned, the secrets as environment, the health check), then replaced
//!   by a new container on the same volume, as a deploy or a restart does: servers, API keys,
//!   admin sessions and client sessions survive.
//! - `deploy/docker-compose.yml`: the cluster brought up by `docker-compose` as the file
//!   says (Postgres, two control planes, two gateways, an agent with the Docker socket), a
//!   `docker` server called through both gateways by an MCP client, then one control plane
//!   stopped: the other serves the API and calls go on; `down -v` whatever happens.
//!
//! Images are built locally, never pulled: the router image from the binaries this test runs
//! with (`deploy/Dockerfile`, `BINARIES=prebuilt`, on `mcpr/python:bookworm`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcpr_e2e::harness::{
    Api, FIXTURE_IMAGE, RawMcp, bin, containers_labelled, docker_ready, free_port, random_token,
    tool_text, wait_for, workspace_root,
};
use mcpr_e2e::rmcp_client::{ConnectOptions, McpClient, connect_http_with};
use serde_json::{Value, json};

/// The router image these tests build (the compose file's `MCPR_IMAGE`).
const ROUTER_IMAGE: &str = "mcpr/router:test";

/// Runs `docker ARGS`; its stdout, trimmed. Panics with stderr when it fails.
fn docker(args: &[&str]) -> String {
    run(Command::new("docker").args(args))
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Builds `ROUTER_IMAGE` once per test process from the binaries next to this test (the
/// Dockerfile's `BINARIES=prebuilt`), on the locally made Debian base: a build context with
/// just the Dockerfile, the entrypoint and the four binaries (debug info stripped).
fn router_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace_root();
        let context = tempfile::tempdir().unwrap();
        let profile = bin("mcpr")
            .parent()
            .and_then(Path::file_name)
            .and_then(|p| p.to_str())
            .expect("target/<profile>")
            .to_owned();
        let target = context.path().join("target").join(&profile);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::create_dir_all(context.path().join("deploy")).unwrap();
        for file in ["deploy/Dockerfile", "deploy/entrypoint.sh"] {
            std::fs::copy(root.join(file), context.path().join(file)).unwrap();
        }
        for name in [
            "mcpr",
            "mcpr-control-plane",
            "mcpr-edge-gateway",
            "mcpr-node-agent",
        ] {
            let to = target.join(name);
            std::fs::copy(bin(name), &to).unwrap();
            // Most of a debug binary is debug info, which the image does not need.
            let _ = Command::new("strip").arg("--strip-debug").arg(&to).status();
        }
        // One build at a time across test processes; the layers are cached.
        run(Command::new("flock")
            .arg("/tmp/mcpr-deploy-image.lock")
            .args(["docker", "build", "-q", "-t", ROUTER_IMAGE, "-f"])
            .arg(context.path().join("deploy/Dockerfile"))
            .args([
                "--build-arg",
                "BINARIES=prebuilt",
                "--build-arg",
                &format!("PROFILE={profile}"),
                "--build-arg",
                "BASE_IMAGE=mcpr/python:bookworm",
                "--build-arg",
                "RUST_IMAGE=mcpr/python:bookworm",
                "--build-arg",
                "APT_PACKAGES=",
            ])
            .arg(context.path()));
    });
    ROUTER_IMAGE
}

/// Removes the named containers when dropped (also when the test fails).
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", name]).output();
        }
    }
}

/// A file parsed by Python's `tomllib` (no TOML crate in the workspace): the test reads
/// `deploy/fly.toml` itself, so what it runs is what the file says.
fn read_toml(path: &Path) -> Value {
    let text = run(Command::new("python3")
        .args([
            "-c",
            "import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(path));
    serde_json::from_str(&text).unwrap()
}

/// The host port docker published for `container`'s `port`.
fn published_port(container: &str, port: u16) -> u16 {
    let mapping = docker(&["port", container, &format!("{port}/tcp")]);
    let first = mapping.lines().next().expect("a published port");
    first.rsplit(':').next().unwrap().parse().unwrap()
}

fn docker_logs(container: &str) -> String {
    Command::new("docker")
        .args(["logs", "--tail", "60", container])
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
}

/// Waits for `GET url` to answer 200 with `host` as its `Host` header (as a platform's health
/// checker sends it: the machine's own address, not the public name).
async fn wait_health(url: &str, host: &str, container: &str) {
    let client = reqwest::Client::new();
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        wait_for(
            &format!("{url} to answer 200"),
            Duration::from_secs(60),
            || {
                let request = client.get(url).header("host", host).send();
                async move { request.await.ok().filter(|r| r.status() == 200).map(|_| ()) }
            },
        ),
    )
    .await;
    assert!(
        waited.is_ok(),
        "{url}: no answer; log:\n{}",
        docker_logs(container)
    );
}

/// `tools/call` of the fixture's `whoami` on `/mcp/p/PROVIDER`; the text it answers.
async fn whoami(mcp: &mut RawMcp) -> String {
    let result = mcp
        .call("whoami", json!({}))
        .await
        .unwrap_or_else(|e| panic!("whoami through {}: {e}", mcp.url));
    tool_text(&result)
}

#[tokio::test]
async fn fly_machine_restarted_on_its_volume_keeps_servers_keys_and_sessions() {
    if !docker_ready() {
        return;
    }
    let image = router_image();
    let fly = read_toml(&workspace_root().join("deploy/fly.toml"));
    let mount = fly["mounts"][0]["destination"].as_str().unwrap().to_owned();
    assert_eq!(mount, "/data", "the volume is mounted at /data");
    assert_eq!(
        fly["env"]["MCPR_DATA_DIR"],
        json!(mount),
        "the database lives on the volume"
    );
    let port = fly["http_service"]["internal_port"].as_u64().unwrap() as u16;
    let check = fly["http_service"]["checks"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fly["http_service"]["force_https"], json!(true));

    // A Fly volume: an empty ext4 file system, owned by root, with lost+found.
    let volume = tempfile::tempdir().unwrap();
    std::fs::create_dir(volume.path().join("lost+found")).unwrap();
    let passcode = format!("pass-{}", random_token());
    let api_key = format!("mcpr_{}", random_token());
    let session_key = random_token();
    let name = format!("mcpr-deploy-fly-{}-{}", std::process::id(), free_port());
    let _cleanup = Containers(vec![name.clone()]);
    // `fly deploy` runs the image's entrypoint and command with [env] and the secrets.
    let start = || {
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "-p".into(),
            format!("127.0.0.1::{port}"),
            "-v".into(),
            format!("{}:{mount}", volume.path().display()),
            // A server to register: the fixture binary (it links only glibc, as the image has).
            "-v".into(),
            format!(
                "{}:/opt/fixture-server:ro",
                bin("mcpr-fixture-server").display()
            ),
        ];
        for (key, value) in fly["env"].as_object().unwrap() {
            args.extend(["-e".into(), format!("{key}={}", value.as_str().unwrap())]);
        }
        for secret in [
            ("ADMIN_PASSCODE", &passcode),
            ("MCP_API_KEY", &api_key),
            ("MCPR_SESSION_KEY", &session_key),
        ] {
            args.extend(["-e".into(), format!("{}={}", secret.0, secret.1)]);
        }
        args.push(image.into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args);
        published_port(&name, port)
    };

    let host_port = start();
    let base = format!("http://127.0.0.1:{host_port}");
    wait_health(&format!("{base}{check}"), "172.19.0.5:8000", &name).await;
    let token = Api::new(&base).login(&passcode).await;
    let admin = Api::new(&base).with_token(&token);
    admin
        .add(json!({"name": "fx", "runtime": {"kind": "process",
            "command": "/opt/fixture-server", "args": ["--name", "fx-on-fly"]}}))
        .await;
    admin.wait_state("fx", "running").await;
    let (created_key, _) = admin.create_key("laptop", Some(&["fx"])).await;
    let mut session = RawMcp::with_key(&format!("{base}/mcp/p/fx"), &api_key);
    session.initialize().await;
    assert_eq!(whoami(&mut session).await, "fx-on-fly");
    // The data directory was given to the mcpr user; the database is in it.
    let listing = run(Command::new("ls").arg("-ln").arg(volume.path()));
    assert!(
        listing.contains("mcpr.db"),
        "no database on the volume:\n{listing}"
    );
    let owner = run(Command::new("stat")
        .args(["-c", "%u %a"])
        .arg(volume.path()));
    assert_eq!(
        owner, "10001 700",
        "the volume's top directory belongs to mcpr, 0700"
    );

    // A deploy or `fly machine restart`: the machine's root file system is the image again;
    // only the volume carries over.
    docker(&["rm", "-f", &name]);
    let host_port = start();
    let base = format!("http://127.0.0.1:{host_port}");
    wait_health(&format!("{base}{check}"), "172.19.0.5:8000", &name).await;
    // The admin session made before the restart still works, the server is still there.
    let admin = Api::new(&base).with_token(&token);
    admin.wait_state("fx", "running").await;
    let (status, servers) = admin.get("/api/v1/servers").await;
    assert_eq!(status, 200, "{servers}");
    assert_eq!(servers.as_array().map(Vec::len), Some(1), "{servers}");
    // The session survives too (same MCPR_SESSION_KEY), and both keys still open the door.
    session.url = format!("{base}/mcp/p/fx");
    assert_eq!(whoami(&mut session).await, "fx-on-fly");
    let mut with_created = RawMcp::with_key(&format!("{base}/mcp/p/fx"), &created_key);
    with_created.initialize().await;
    assert_eq!(whoami(&mut with_created).await, "fx-on-fly");
}

/// A compose project of `deploy/docker-compose.yml` under a name of its own, with the
/// environment the file asks for; `down -v` when dropped (also when the test fails), and
/// the containers its agent made removed should the agent not have reaped them.
struct ComposeProject {
    name: String,
    env: Vec<(&'static str, String)>,
    agent_id: String,
}

impl ComposeProject {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(workspace_root().join("deploy/docker-compose.yml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn run(&self, args: &[&str]) -> String {
        run(&mut self.command(args))
    }

    /// The container of `service` (compose 1.x names it PROJECT_SERVICE_1).
    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.name)
    }

    fn logs(&self) -> String {
        self.command(&["logs", "--no-color", "--tail", "40"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until every service in `services` is healthy (their compose healthchecks).
    async fn wait_healthy(&self, services: &[&str]) {
        for service in services {
            let container = self.container(service);
            let healthy = tokio::time::timeout(
                Duration::from_secs(90),
                wait_for(
                    &format!("{container} healthy"),
                    Duration::from_secs(90),
                    || {
                        let container = container.clone();
                        async move {
                            let output = Command::new("docker")
                                .args(["inspect", "-f", "{{.State.Health.Status}}", &container])
                                .output()
                                .ok()?;
                            (String::from_utf8_lossy(&output.stdout).trim() == "healthy")
                                .then_some(())
                        }
                    },
                ),
            )
            .await;
            assert!(
                healthy.is_ok(),
                "{container} never healthy:\n{}",
                self.logs()
            );
        }
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("compose logs of {}:\n{}", self.name, self.logs());
        }
        let _ = self
            .command(&["down", "-v", "--remove-orphans", "--timeout", "20"])
            .output();
        for id in containers_labelled(&[("mcp-router.agent", &self.agent_id)]) {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
    }
}

/// A session of rmcp's streamable-HTTP client on `url`, with the API key.
async fn mcp_session(url: &str, api_key: &str) -> McpClient {
    let options = ConnectOptions {
        bearer_token: Some(api_key.to_owned()),
        ..Default::default()
    };
    connect_http_with(url, &options)
        .await
        .unwrap_or_else(|e| panic!("MCP session on {url}: {e:#}"))
}

/// Waits until a new session on `url` answers `tool` with `expected`.
async fn answers(url: &str, api_key: &str, tool: &str, expected: &str) {
    wait_for(
        &format!("{tool} through {url}"),
        Duration::from_secs(30),
        || async move {
            let options = ConnectOptions {
                bearer_token: Some(api_key.to_owned()),
                request_timeout: Duration::from_secs(10),
                ..Default::default()
            };
            let client = connect_http_with(url, &options).await.ok()?;
            let text = client.call_tool_text(tool, json!({})).await.ok();
            let _ = client.close().await;
            (text.as_deref() == Some(expected)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn compose_cluster_serves_through_both_gateways_and_outlives_a_control_plane() {
    if !docker_ready() {
        return;
    }
    let image = router_image();
    // Postgres without a registry, as the file's default MCPR_POSTGRES_IMAGE.
    run(Command::new("flock")
        .arg("/tmp/mcpr-docker-images.lock")
        .arg(workspace_root().join("scripts/docker-images"))
        .arg("postgres"));
    let unique = format!("{}{}", std::process::id(), free_port());
    let docker_gid = run(Command::new("stat").args(["-c", "%g", "/var/run/docker.sock"]));
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let passcode = format!("pass-{}", random_token());
    let agent_id = format!("agent-compose-{unique}");
    let project = ComposeProject {
        name: format!("mcprtest{unique}"),
        env: vec![
            ("MCPR_IMAGE", image.to_owned()),
            ("ADMIN_PASSCODE", passcode.clone()),
            ("POSTGRES_PASSWORD", random_token()),
            ("MCPR_SESSION_KEY", random_token()),
            ("MCPR_CLUSTER_TOKEN", random_token()),
            // base64 of 32 bytes.
            (
                "MCPR_MASTER_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
            ),
            ("DOCKER_GID", docker_gid),
            ("MCPR_AGENT_ID", agent_id.clone()),
            ("MCPR_API_PORT", ports[0].to_string()),
            ("MCPR_API_PORT_2", ports[1].to_string()),
            ("MCPR_GATEWAY_PORT", ports[2].to_string()),
            ("MCPR_GATEWAY_PORT_2", ports[3].to_string()),
        ],
        agent_id,
    };
    project.run(&["up", "-d", "--no-build"]);
    project
        .wait_healthy(&[
            "postgres",
            "control-plane-1",
            "control-plane-2",
            "edge-gateway-1",
            "edge-gateway-2",
        ])
        .await;
    let apis: Vec<Api> = {
        let mut apis = Vec::new();
        for port in &ports[..2] {
            let api = Api::new(&format!("http://127.0.0.1:{port}"));
            let token = api.login(&passcode).await;
            apis.push(api.with_token(&token));
        }
        apis
    };
    // The agent registered with its labels; a docker server runs on it.
    let agent = project.agent_id.clone();
    let agents = wait_for("the agent registered", Duration::from_secs(60), || {
        let api = apis[1].clone();
        async move {
            let (_, cluster) = api.get("/api/v1/cluster").await;
            let agents = cluster["agents"].as_array()?.clone();
            (!agents.is_empty()).then_some(agents)
        }
    })
    .await;
    assert_eq!(agents[0]["id"], json!(agent), "{agents:?}");
    assert_eq!(agents[0]["labels"], json!({"docker": "true"}), "{agents:?}");
    apis[0]
        .add(
            json!({"name": "fx", "runtime": {"kind": "docker", "image": FIXTURE_IMAGE,
            "args": ["--name", "fx-compose"]}}),
        )
        .await;
    let server = apis[1]
        .wait_until("fx", "running on the compose agent", |s| {
            s["status"]["state"] == "running"
        })
        .await;
    assert_eq!(server["status"]["agent_id"], json!(agent));
    let (api_key, _) = apis[0].create_key("compose", None).await;
    let gateways: Vec<String> = ports[2..]
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}/mcp/p/fx"))
        .collect();
    for url in &gateways {
        answers(url, &api_key, "whoami", "fx-compose").await;
    }
    let sessions = [
        mcp_session(&gateways[0], &api_key).await,
        mcp_session(&gateways[1], &api_key).await,
    ];

    // One control plane stopped: the other answers the API, takes writes, and what is
    // written reaches both gateways; the sessions made before go on.
    project.run(&["stop", "control-plane-1"]);
    assert_eq!(apis[1].get("/api/v1/servers/fx").await.0, 200);
    apis[1]
        .add(
            json!({"name": "fx2", "runtime": {"kind": "docker", "image": FIXTURE_IMAGE,
            "args": ["--name", "fx-compose-2"]}}),
        )
        .await;
    apis[1].wait_state("fx2", "running").await;
    for session in &sessions {
        assert_eq!(
            session.call_tool_text("whoami", json!({})).await.unwrap(),
            "fx-compose"
        );
    }
    for port in &ports[2..] {
        let url = format!("http://127.0.0.1:{port}/mcp/p/fx2");
        answers(&url, &api_key, "whoami", "fx-compose-2").await;
    }
    let (_, cluster) = apis[1].get("/api/v1/cluster").await;
    let leader: Vec<&Value> = cluster["control_planes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|cp| cp["leader"] == true)
        .collect();
    assert_eq!(leader.len(), 1, "{cluster}");
    assert_eq!(leader[0]["id"], cluster["this_control_plane"], "{cluster}");
    for session in sessions {
        session.close().await.unwrap();
    }
}
