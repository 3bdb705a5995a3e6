//! How the components prove to each other that they belong to one router: the cluster
//! token. Every gRPC call between them carries it in the `mcpr-cluster-token` metadata (a
//! stream carries it once, when it opens: the relay is one stream per agent, so this costs
//! nothing per MCP message), and every gRPC server of the router checks it in constant time
//! before any service sees the call. `mcpr up` makes a random token per process, which only
//! its three components know; a distributed cluster shares one through `MCPR_CLUSTER_TOKEN`
//! (or `--cluster-token-file`). Mutual TLS (`MCPR_TLS_CA`, the crate root) proves membership
//! with certificates instead; a gRPC listener off loopback needs one or the other
//! ([`check_grpc_listener`]) unless `--insecure-grpc` says the network is trusted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use subtle::ConstantTimeEq;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::Tls;

/// The metadata key of the token on every gRPC call between the components.
pub const TOKEN_METADATA: &str = "mcpr-cluster-token";

/// Shorter tokens can be guessed; 32 characters is what `openssl rand -hex 16` prints.
const MIN_TOKEN_LEN: usize = 32;

/// The settings of the cluster token on a binary's command line.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// File holding the cluster token (instead of MCPR_CLUSTER_TOKEN in the environment:
    /// a token given as a flag would show in every process list).
    #[arg(
        id = "cluster_token_file",
        long = "cluster-token-file",
        value_name = "PATH",
        env = "MCPR_CLUSTER_TOKEN_FILE"
    )]
    pub token_file: Option<PathBuf>,
}

impl ClusterArgs {
    /// The token from `--cluster-token-file` or `MCPR_CLUSTER_TOKEN`, if any.
    pub fn token(&self) -> anyhow::Result<Option<ClusterToken>> {
        self.token_from(|name| std::env::var(name).ok())
    }

    /// [`ClusterArgs::token`], reading the environment through `env`.
    pub fn token_from(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<ClusterToken>> {
        let from_env = env("MCPR_CLUSTER_TOKEN").filter(|t| !t.trim().is_empty());
        match (&self.token_file, from_env) {
            (Some(_), Some(_)) => {
                anyhow::bail!("MCPR_CLUSTER_TOKEN and --cluster-token-file are both set: keep one")
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --cluster-token-file {}", path.display()))?;
                let setting = format!("the token in {}", path.display());
                ClusterToken::parse(text.trim(), &setting).map(Some)
            }
            (None, Some(text)) => ClusterToken::parse(text.trim(), "MCPR_CLUSTER_TOKEN").map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// The shared secret of a cluster's components. Never printed: `Debug` shows no byte of it.
#[derive(Clone)]
pub struct ClusterToken(AsciiMetadataValue);

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterToken(********)")
    }
}

impl ClusterToken {
    /// A fresh token of 32 random bytes (hex): `mcpr up`'s per-process secret, which lives
    /// in its memory only.
    pub fn random() -> ClusterToken {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        ClusterToken::parse(&hex, "a random token").expect("hex is a valid token")
    }

    /// An operator's token: at least 32 characters of visible ASCII (it travels as gRPC
    /// metadata). `setting` names where it came from, for the error.
    pub fn parse(text: &str, setting: &str) -> anyhow::Result<ClusterToken> {
        anyhow::ensure!(
            text.chars().all(|c| c.is_ascii_graphic()),
            "{setting} must be visible ASCII characters without spaces"
        );
        anyhow::ensure!(
            text.len() >= MIN_TOKEN_LEN,
            "{setting} is {} characters long, fewer than {MIN_TOKEN_LEN} (make one with `openssl rand -hex 32`)",
            text.len()
        );
        let mut value = AsciiMetadataValue::try_from(text)
            .map_err(|_| anyhow::anyhow!("{setting} is not valid gRPC metadata"))?;
        // Kept out of HTTP/2 header compression tables, as credentials should be.
        value.set_sensitive(true);
        Ok(ClusterToken(value))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

/// What every gRPC server of the router runs on each call (each stream, once) before a
/// service sees it: with a token configured, the call must carry it.
#[derive(Clone, Debug)]
pub struct CheckToken(Option<ClusterToken>);

impl CheckToken {
    pub fn new(token: Option<&ClusterToken>) -> CheckToken {
        CheckToken(token.cloned())
    }
}

impl Interceptor for CheckToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.0 else {
            return Ok(request);
        };
        let verdict = match request.metadata().get(TOKEN_METADATA) {
            None => Err(Status::unauthenticated(format!(
                "missing cluster token: this router's gRPC services answer only its own components, \
                 which send MCPR_CLUSTER_TOKEN in the {TOKEN_METADATA} metadata"
            ))),
            Some(presented) if token.matches(presented.as_bytes()) => Ok(()),
            Some(_) => Err(Status::unauthenticated(format!(
                "wrong cluster token: the {TOKEN_METADATA} metadata does not match this router's MCPR_CLUSTER_TOKEN"
            ))),
        };
        verdict?;
        // The services never need it, so no log line of theirs can carry it.
        request.metadata_mut().remove(TOKEN_METADATA);
        Ok(request)
    }
}

/// What every gRPC client of the router adds to each call: the token, when it has one.
#[derive(Clone, Debug)]
pub struct SendToken(Option<ClusterToken>);

impl Interceptor for SendToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert(TOKEN_METADATA, token.0.clone());
        }
        Ok(request)
    }
}

/// A channel to another component whose calls carry the cluster token.
pub type GrpcChannel = InterceptedService<Channel, SendToken>;

/// Wraps `channel` so that every call on it carries `token`.
pub fn with_token(channel: Channel, token: Option<&ClusterToken>) -> GrpcChannel {
    InterceptedService::new(channel, SendToken(token.cloned()))
}

/// How peers of a gRPC server with these settings prove who they are, for its start-up log.
pub fn peer_authentication(tls: Option<&Tls>, token: Option<&ClusterToken>) -> &'static str {
    match (tls.is_some_and(Tls::requires_client_certificates), token) {
        (true, Some(_)) => "mutual TLS and cluster token",
        (true, None) => "mutual TLS",
        (false, Some(_)) => "cluster token",
        (false, None) => "none",
    }
}

/// Refuses a gRPC listener off loopback that no peer has to prove itself to: anyone who
/// reaches it could read server secrets and the session key, and call every tool. With
/// `insecure` (`--insecure-grpc`, a network the operator trusts) it starts with a warning.
/// `flag` names the listen setting, for the error.
pub fn check_grpc_listener(
    addr: SocketAddr,
    flag: &str,
    tls: Option<&Tls>,
    token: Option<&ClusterToken>,
    insecure: bool,
) -> anyhow::Result<()> {
    let mutual_tls = tls.is_some_and(Tls::requires_client_certificates);
    if addr.ip().is_loopback() || mutual_tls || token.is_some() {
        return Ok(());
    }
    if insecure {
        tracing::warn!(
            "INSECURE: gRPC on {addr} accepts any peer (--insecure-grpc): whoever reaches it can \
             read server secrets and the session key and call every tool; set MCPR_CLUSTER_TOKEN \
             or mutual TLS (docs/AUTH.md)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve gRPC on {addr} ({flag}), which is not a loopback address, without peer \
         authentication: set MCPR_CLUSTER_TOKEN (the same secret of 32+ characters on every control \
         plane, node agent and edge gateway, e.g. from `openssl rand -hex 32`), or use mutual TLS \
         (MCPR_TLS_CERT, MCPR_TLS_KEY and MCPR_TLS_CA; docs/TLS.md), or pass --insecure-grpc on a \
         network you trust"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment holding `MCPR_CLUSTER_TOKEN=value` alone (nothing with `None`).
    fn env_token(value: Option<&str>) -> impl Fn(&str) -> Option<String> {
        let value = value.map(str::to_owned);
        move |name| value.clone().filter(|_| name == "MCPR_CLUSTER_TOKEN")
    }

    fn call_with(check: &mut CheckToken, presented: Option<&str>) -> Result<(), Status> {
        let mut request = Request::new(());
        if let Some(text) = presented {
            request
                .metadata_mut()
                .insert(TOKEN_METADATA, text.parse().unwrap());
        }
        check.call(request).map(|passed| {
            assert!(passed.metadata().get(TOKEN_METADATA).is_none());
        })
    }

    #[test]
    fn tokens_are_long_visible_ascii_and_never_printed() {
        let good = "0123456789abcdef0123456789abcdef";
        let args = ClusterArgs::default();
        let token = args
            .token_from(env_token(Some(&format!("{good}\n"))))
            .unwrap()
            .unwrap();
        assert!(token.matches(good.as_bytes()));
        assert!(!format!("{token:?}").contains("0123"));
        assert!(args.token_from(env_token(None)).unwrap().is_none());
        let short = args.token_from(env_token(Some("short"))).unwrap_err();
        assert!(
            short
                .to_string()
                .starts_with("MCPR_CLUSTER_TOKEN is 5 characters long"),
            "{short}"
        );
        let spaced = ClusterToken::parse(&format!("{good} x"), "MCPR_CLUSTER_TOKEN").unwrap_err();
        assert!(spaced.to_string().contains("without spaces"), "{spaced}");
        let random = ClusterToken::random();
        assert_eq!(random.0.len(), 64);
        assert!(!random.matches(ClusterToken::random().0.as_bytes()));
    }

    #[test]
    fn a_token_file_or_the_environment_but_not_both() {
        let dir = std::env::temp_dir().join(format!("mcpr-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "fedcba9876543210fedcba9876543210\n").unwrap();
        let args = ClusterArgs {
            token_file: Some(path.clone()),
        };
        let token = args.token_from(env_token(None)).unwrap().unwrap();
        assert!(token.matches(b"fedcba9876543210fedcba9876543210"));
        let both = args.token_from(env_token(Some("x"))).unwrap_err();
        assert!(both.to_string().contains("both set"), "{both}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn servers_refuse_a_missing_or_wrong_token() {
        let token = ClusterToken::random();
        let mut check = CheckToken::new(Some(&token));
        let missing = call_with(&mut check, None).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().starts_with("missing cluster token"));
        let wrong = call_with(&mut check, Some(&"0".repeat(64))).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(wrong.message().starts_with("wrong cluster token"));
        let right = std::str::from_utf8(token.0.as_bytes()).unwrap().to_owned();
        call_with(&mut check, Some(&right)).unwrap();
        // Without a token (loopback, or mutual TLS) the check lets every call through.
        call_with(&mut CheckToken::new(None), None).unwrap();
    }

    #[test]
    fn only_loopback_listens_without_peer_authentication() {
        let public: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        check_grpc_listener(local, "--grpc-listen", None, None, false).unwrap();
        let refused = check_grpc_listener(public, "--grpc-listen", None, None, false).unwrap_err();
        let message = refused.to_string();
        for way_out in ["MCPR_CLUSTER_TOKEN", "MCPR_TLS_CA", "--insecure-grpc"] {
            assert!(message.contains(way_out), "{message}");
        }
        let token = ClusterToken::random();
        check_grpc_listener(public, "--grpc-listen", None, Some(&token), false).unwrap();
        check_grpc_listener(public, "--grpc-listen", None, None, true).unwrap();
    }
}
