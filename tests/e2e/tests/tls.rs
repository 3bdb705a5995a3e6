//! TLS on every listener (issue 5): `mcpr up` serves HTTPS on its one port, and the three
//! distributed binaries serve HTTPS and link over mutual-TLS gRPC, refusing a peer without a
//! certificate from the cluster's authority. Certificates come from a test CA made here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcpr_e2e::harness::{Api, Proc, bin, free_port, wait_for};
use mcpr_proto as pb;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// A certificate authority and the certificates it signs, as PEM files in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct IdentityFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for localhost and 127.0.0.1, for serving and for client authentication.
    fn issue(&self, name: &str) -> IdentityFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let files = IdentityFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

fn tls_args(command: &mut Command, id: &IdentityFiles, ca: &Path) {
    command
        .arg("--tls-cert")
        .arg(&id.cert)
        .arg("--tls-key")
        .arg(&id.key)
        .arg("--tls-ca")
        .arg(ca);
}

fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// `mcpr call` against `url`, trusting `ca`: the CLI's own HTTPS path, then MCP over HTTPS.
fn cli(url: &str, ca: &Path, args: &[&str]) -> String {
    let output = Command::new(bin("mcpr"))
        .args(args)
        .env("MCPR_URL", url)
        .env("MCPR_TLS_CA", ca)
        .env_remove("MCPR_TLS_CERT")
        .env_remove("MCPR_TLS_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "mcpr {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn mcpr_up_serves_https_on_its_one_port() {
    let pki = Pki::new("up");
    let router_id = pki.issue("router");
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(bin("mcpr"));
    command
        .args(["up", "--port", &port.to_string(), "--data-dir"])
        .arg(data.path())
        .env_remove("MCPR_URL");
    tls_args(&mut command, &router_id, &pki.ca_path());
    let router = Proc::spawn("mcpr-up-tls", command);
    let base = format!("https://127.0.0.1:{port}");
    let api = Api::with_client(&base, https_client(&pki.ca_path()));
    api.wait_healthy().await;
    assert!(
        router
            .log()
            .contains(&format!("https://127.0.0.1:{port}/mcp")),
        "the banner names the https URLs: {}",
        router.log()
    );

    // Plain HTTP on the TLS port gets no answer, and a client that does not trust the
    // router's authority refuses it.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health")).await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    let untrusting = reqwest::get(format!("{base}/api/v1/health")).await;
    let error = format!("{:?}", untrusting.expect_err("an unknown CA was accepted"));
    assert!(
        error.contains("certificate") || error.contains("Certificate"),
        "{error}"
    );

    api.add_fixture("echo", &[]).await;
    api.wait_state("echo", "running").await;
    let answer = cli(
        &base,
        &pki.ca_path(),
        &["call", "echo", "echo", "--args", r#"{"text":"over tls"}"#],
    );
    assert!(answer.contains("over tls"), "{answer}");
}

#[tokio::test]
async fn the_cluster_links_over_mutual_tls() {
    let pki = Pki::new("cluster");
    let ca = pki.ca_path();
    let data = tempfile::tempdir().unwrap();
    let (api_port, grpc_port, relay_port, gateway_port) =
        (free_port(), free_port(), free_port(), free_port());

    let mut command = Command::new(bin("mcpr-control-plane"));
    command
        .args(["--http-listen", &format!("127.0.0.1:{api_port}")])
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("DATABASE_URL");
    tls_args(&mut command, &pki.issue("control-plane"), &ca);
    let _control_plane = Proc::spawn("control-plane-tls", command);
    let control_plane_url = format!("https://localhost:{grpc_port}");

    let mut command = Command::new(bin("mcpr-node-agent"));
    command
        .args(["--id", "agent-tls", "--control-plane", &control_plane_url])
        .args(["--relay-listen", &format!("127.0.0.1:{relay_port}")]);
    tls_args(&mut command, &pki.issue("agent"), &ca);
    let agent = Proc::spawn("agent-tls", command);

    let mut command = Command::new(bin("mcpr-edge-gateway"));
    command
        .args(["--listen", &format!("127.0.0.1:{gateway_port}")])
        .args(["--control-plane", &control_plane_url]);
    tls_args(&mut command, &pki.issue("gateway"), &ca);
    let _gateway = Proc::spawn("gateway-tls", command);

    let api = Api::with_client(&format!("https://127.0.0.1:{api_port}"), https_client(&ca));
    api.wait_healthy().await;
    agent
        .wait_log("registered with the control plane", Duration::from_secs(20))
        .await;
    api.add_fixture("echo", &[]).await;
    api.wait_state("echo", "running").await;
    assert!(
        agent
            .log()
            .contains(&format!("https://127.0.0.1:{relay_port}")),
        "the agent advertises an https relay: {}",
        agent.log()
    );

    // A tool call crosses gateway (HTTPS) -> agent (mTLS relay) -> fixture; config reached
    // the gateway over the mTLS watch stream.
    let gateway = format!("https://127.0.0.1:{gateway_port}");
    let answer = wait_for(
        "a call through the TLS cluster",
        Duration::from_secs(20),
        || {
            let output = Command::new(bin("mcpr"))
                .args(["call", "echo", "echo", "--args", r#"{"text":"mtls"}"#])
                .env("MCPR_URL", &gateway)
                .env("MCPR_TLS_CA", &ca)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            async move { output.status.success().then_some(stdout) }
        },
    )
    .await;
    assert!(answer.contains("mtls"), "{answer}");

    // The gRPC services refuse a peer that trusts the CA but shows no client certificate,
    // one whose certificate comes from another authority, and plain gRPC.
    let ca_pem = std::fs::read(&ca).unwrap();
    let stranger_pki = Pki::new("stranger");
    let stranger = stranger_pki.issue("stranger");
    let stranger_identity = Identity::from_pem(
        std::fs::read(&stranger.cert).unwrap(),
        std::fs::read(&stranger.key).unwrap(),
    );
    let member = pki.issue("member");
    let member_identity = Identity::from_pem(
        std::fs::read(&member.cert).unwrap(),
        std::fs::read(&member.key).unwrap(),
    );
    let attempts = [
        (
            "a certificate of the cluster's CA",
            Some(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&ca_pem))
                    .identity(member_identity),
            ),
        ),
        (
            "no client certificate",
            Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca_pem))),
        ),
        (
            "a certificate of another CA",
            Some(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&ca_pem))
                    .identity(stranger_identity),
            ),
        ),
        ("plain gRPC", None),
    ];
    for (what, tls) in attempts {
        let url = match tls {
            Some(_) => format!("https://localhost:{grpc_port}"),
            None => format!("http://127.0.0.1:{grpc_port}"),
        };
        let mut endpoint = Endpoint::from_shared(url)
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(3));
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).unwrap();
        }
        let watched = match endpoint.connect().await {
            Err(e) => Err(e.to_string()),
            Ok(channel) => pb::config_service_client::ConfigServiceClient::new(channel)
                .watch(pb::WatchRequest {
                    gateway_id: "intruder".into(),
                    known_version: 0,
                })
                .await
                .map(|_| ())
                .map_err(|status| status.to_string()),
        };
        // Only the first attempt (this cluster's own certificate) is served.
        let member = what.starts_with("a certificate of the cluster");
        assert_eq!(watched.is_ok(), member, "{what}: {watched:?}");
    }
}
