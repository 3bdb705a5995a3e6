//! TLS (rustls) for every listener of the router and every link between its components.
//!
//! One identity per process. `MCPR_TLS_CERT` and `MCPR_TLS_KEY` (PEM files; or `--tls-cert`,
//! `--tls-key`) turn TLS on for every listener the process has: the HTTP one (MCP, REST API,
//! web UI) and the gRPC ones (config watch, agent service, relay). `MCPR_TLS_CA` (PEM) is
//! the authority the components trust for each other: a gRPC client verifies its server
//! against it and presents its own certificate, and a gRPC server with a CA requires a client
//! certificate signed by it (mutual TLS), so that only the cluster's own components can watch
//! configuration (which carries key hashes and the session key) or relay sessions. Peers
//! reach a TLS listener with `https://` URLs; an `https://` URL without `MCPR_TLS_CA` is
//! verified against the system's roots.
//!
//! Servers take their [`Tls`] explicitly; clients deep in the data path (a gateway's relay
//! connections, an agent's control-plane link, the CLI) read the process's settings with
//! [`current`], installed once at start by [`TlsArgs::install`].
//!
//! Without mutual TLS, the components prove who they are with the cluster token
//! ([`cluster`]), which every gRPC server made by [`grpc_server`] checks.
//! What every HTTP listener shares lives here too: the listener itself (`serve.rs`) and its
//! Host and Origin policy (`host_policy.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// A client that has not finished its TLS handshake by then is dropped: a slow or silent
/// peer must not hold a task and a socket forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub mod cluster;
pub mod control_planes;
pub mod host_policy;
pub mod metrics;
mod serve;

static PROCESS: OnceLock<Option<Arc<Tls>>> = OnceLock::new();

/// The TLS settings of a binary's command line (each also from its environment variable).
/// Argument ids carry a `tls_` prefix: they are global in `mcpr`, whose subcommands have
/// arguments of their own called `key`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// PEM certificate chain of this process: turns on TLS on every listener.
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        global = true,
        env = "MCPR_TLS_CERT",
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        id = "tls_key",
        long = "tls-key",
        global = true,
        env = "MCPR_TLS_KEY",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,
    /// PEM certificate authority the components trust for each other (mutual TLS on gRPC).
    #[arg(
        id = "tls_ca",
        long = "tls-ca",
        value_name = "PEM",
        global = true,
        env = "MCPR_TLS_CA"
    )]
    pub ca: Option<PathBuf>,
}

impl TlsArgs {
    /// Loads and checks the files: `None` when no certificate is configured.
    pub fn load(&self) -> anyhow::Result<Option<Arc<Tls>>> {
        let ca = self.ca.as_deref().map(read_ca).transpose()?;
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(Arc::new(Tls::load(cert, key, ca)?))),
            (None, None) => Ok(ca.map(|ca| {
                Arc::new(Tls {
                    identity: None,
                    ca: Some(ca),
                    http: None,
                })
            })),
            (Some(_), None) => anyhow::bail!("MCPR_TLS_CERT is set but MCPR_TLS_KEY is not"),
            (None, Some(_)) => anyhow::bail!("MCPR_TLS_KEY is set but MCPR_TLS_CERT is not"),
        }
    }

    /// Loads the files and makes them this process's TLS settings (see [`current`]).
    pub fn install(&self) -> anyhow::Result<Option<Arc<Tls>>> {
        let tls = self.load()?;
        if PROCESS.set(tls.clone()).is_err() {
            anyhow::bail!("TLS settings were installed twice in one process");
        }
        Ok(tls)
    }
}

/// The process's TLS settings, if [`TlsArgs::install`] found any.
pub fn current() -> Option<Arc<Tls>> {
    PROCESS.get().cloned().flatten()
}

/// This process's certificate and key (when it serves TLS) and the components' authority.
pub struct Tls {
    identity: Option<(Vec<u8>, Vec<u8>)>,
    ca: Option<Vec<u8>>,
    http: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("serves", &self.identity.is_some())
            .field("ca", &self.ca.is_some())
            .finish_non_exhaustive()
    }
}

impl Tls {
    fn load(cert_path: &Path, key_path: &Path, ca: Option<Vec<u8>>) -> anyhow::Result<Tls> {
        let cert = std::fs::read(cert_path)
            .with_context(|| format!("reading MCPR_TLS_CERT {}", cert_path.display()))?;
        let key = std::fs::read(key_path)
            .with_context(|| format!("reading MCPR_TLS_KEY {}", key_path.display()))?;
        let chain = certificates(&cert, "MCPR_TLS_CERT", cert_path)?;
        let private = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| anyhow::anyhow!("MCPR_TLS_KEY {}: {e}", key_path.display()))?;
        let mut http = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .with_context(|| {
                format!(
                    "MCPR_TLS_KEY {} does not fit MCPR_TLS_CERT {}",
                    key_path.display(),
                    cert_path.display()
                )
            })?;
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            identity: Some((cert, key)),
            ca,
            http: Some(Arc::new(http)),
        })
    }

    /// Whether this process serves TLS (a certificate is configured).
    pub fn serves(&self) -> bool {
        self.http.is_some()
    }

    /// Whether its gRPC servers require a client certificate from the components' authority
    /// (mutual TLS: a certificate and a CA).
    pub fn requires_client_certificates(&self) -> bool {
        self.identity.is_some() && self.ca.is_some()
    }

    /// The settings for a gRPC server: its identity, and with a CA, required client
    /// certificates. `None` when this process has no certificate.
    pub fn grpc_server(&self) -> Option<ServerTlsConfig> {
        let (cert, key) = self.identity.as_ref()?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.ca {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        Some(config)
    }

    fn grpc_client(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        match &self.ca {
            Some(ca) => config = config.ca_certificate(Certificate::from_pem(ca)),
            None => config = config.with_native_roots(),
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }

    /// The components' authority, for HTTP clients (the CLI, the agent's remote upstreams).
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca.as_deref()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_ca(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem =
        std::fs::read(path).with_context(|| format!("reading MCPR_TLS_CA {}", path.display()))?;
    certificates(&pem, "MCPR_TLS_CA", path)?;
    Ok(pem)
}

/// The PEM certificates of a file, at least one; errors name the setting and the file.
fn certificates(
    pem: &[u8],
    setting: &str,
    path: &Path,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{setting} {}: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{setting} {} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

/// A gRPC server builder whose every call must carry the cluster token (when one is given).
pub type GrpcServer = tonic::transport::Server<
    tower::layer::util::Stack<
        tonic::service::InterceptorLayer<cluster::CheckToken>,
        tower::layer::util::Identity,
    >,
>;

/// A gRPC server builder, with TLS when this process serves it, and the cluster token's
/// check in front of every service it will hold (see [`cluster`]).
pub fn grpc_server(
    tls: Option<&Tls>,
    token: Option<&cluster::ClusterToken>,
) -> anyhow::Result<GrpcServer> {
    let builder = tonic::transport::Server::builder().layer(tonic::service::InterceptorLayer::new(
        cluster::CheckToken::new(token),
    ));
    match tls.and_then(Tls::grpc_server) {
        Some(config) => builder
            .tls_config(config)
            .context("configuring TLS on the gRPC server"),
        None => Ok(builder),
    }
}

/// A gRPC endpoint for `url`: `https://` URLs use TLS with the process's settings.
pub fn grpc_endpoint(url: &str) -> anyhow::Result<Endpoint> {
    let endpoint =
        Endpoint::from_shared(url.to_owned()).with_context(|| format!("invalid URL {url:?}"))?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let config = match current() {
        Some(tls) => tls.grpc_client(),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    endpoint
        .tls_config(config)
        .with_context(|| format!("configuring TLS for {url}"))
}

/// An HTTP client builder that trusts the components' authority besides the system's roots.
pub fn http_client() -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = current().as_ref().and_then(|tls| tls.ca_pem()) {
        for cert in reqwest::Certificate::from_pem_bundle(pem).context("MCPR_TLS_CA")? {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// The TLS settings of the agent's streamable-HTTP upstream client: servers are verified
/// against the system's roots, the bundled web PKI roots and the components' authority
/// (`MCPR_TLS_CA`). The data path uses hyper directly rather than reqwest: reqwest's redirect
/// and retry layers and its URL round trips were a fifth of the router's instructions per
/// tool call (docs/BENCHMARKS.md).
pub fn upstream_tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Unreadable system certificates are skipped, as every HTTP client does: the bundled
    // roots and MCPR_TLS_CA remain.
    let (added, _ignored) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    tracing::trace!(added, "system root certificates");
    if let Some(pem) = current().as_ref().and_then(|tls| tls.ca_pem()) {
        for cert in certificates(pem, "MCPR_TLS_CA", Path::new("(loaded)"))? {
            roots.add(cert).context("MCPR_TLS_CA")?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

pub use rustls;
pub use serve::{BodyTimeout, http_workers, is_body_timeout, serve_http, worker_index};
