//! The control planes a gateway or an agent follows (`--control-plane URL1,URL2,…`), and the
//! rule by which it moves from one to the next when its own goes away: every URL in turn,
//! at once after a link that worked, with a doubling pause once a whole round failed. The
//! channels notice a control plane that vanished without closing its connections (a host
//! cut off) by HTTP/2 pings, within [`PING_INTERVAL`] + [`PING_TIMEOUT`].

use std::time::Duration;

use anyhow::Context;
use tonic::transport::Endpoint;

use crate::cluster::{ClusterToken, GrpcChannel};

/// How long connecting to one control plane may take before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings on every control-plane channel, also while no call is open.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A ping unanswered this long closes the connection (and fails its calls).
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// The first pause after a round in which no control plane answered; doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(200);
/// Kept under the agents' lease (5 s) so that control planes coming back find their agents
/// again before a new leader may expire them.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// The control planes' gRPC URLs, in order of preference, validated once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlanes {
    urls: Vec<String>,
}

impl ControlPlanes {
    /// One URL or several separated by commas (spaces around them ignored). `setting` names
    /// where the text came from, for the error.
    pub fn parse(text: &str, setting: &str) -> anyhow::Result<ControlPlanes> {
        let mut urls = Vec::new();
        for url in text.split(',').map(str::trim) {
            anyhow::ensure!(
                !url.is_empty(),
                "{setting} has an empty entry in {text:?}: give URLs separated by commas, e.g. http://cp-1:50051,http://cp-2:50051"
            );
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "{setting}: {url:?} is not an http:// or https:// URL"
            );
            Endpoint::from_shared(url.to_owned())
                .with_context(|| format!("{setting}: {url:?} is not a valid URL"))?;
            anyhow::ensure!(
                !urls.iter().any(|u| u == url),
                "{setting} lists {url:?} twice"
            );
            urls.push(url.to_owned());
        }
        Ok(ControlPlanes { urls })
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The URLs as one would give them again (the single-URL form is the URL itself).
    pub fn joined(&self) -> String {
        self.urls.join(",")
    }

    /// The endpoint of the control plane at `index`, with the connect timeout and the pings.
    pub fn endpoint(&self, index: usize) -> anyhow::Result<Endpoint> {
        let url = &self.urls[index % self.urls.len()];
        Ok(crate::grpc_endpoint(url)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT)
            .keep_alive_while_idle(true))
    }

    /// A channel to the control plane at `index` that connects on first use and carries
    /// the cluster token.
    pub fn channel(
        &self,
        index: usize,
        token: Option<&ClusterToken>,
    ) -> anyhow::Result<GrpcChannel> {
        Ok(crate::cluster::with_token(
            self.endpoint(index)?.connect_lazy(),
            token,
        ))
    }
}

/// Which control plane to try next, and how long to wait before.
#[derive(Debug)]
pub struct Failover {
    count: usize,
    current: usize,
    /// Control planes that failed in a row since the last link that worked.
    failed_in_row: usize,
    pause: Duration,
}

impl Failover {
    pub fn new(control_planes: &ControlPlanes) -> Failover {
        Failover {
            count: control_planes.len().max(1),
            current: 0,
            failed_in_row: 0,
            pause: FIRST_PAUSE,
        }
    }

    /// The index of the control plane to use now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The link to the current control plane ended; `worked` when it had been up (a stream
    /// that served, a registration that was answered). Moves to the next control plane and
    /// returns how long to wait before trying it: nothing after a link that worked or while
    /// some control plane of this round is still untried, a doubling pause once all failed.
    pub fn next(&mut self, worked: bool) -> Duration {
        self.current = (self.current + 1) % self.count;
        if worked {
            self.failed_in_row = 0;
            self.pause = FIRST_PAUSE;
            return Duration::ZERO;
        }
        self.failed_in_row += 1;
        if self.failed_in_row < self.count {
            return Duration::ZERO;
        }
        self.failed_in_row = 0;
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        pause
    }
}

/// Whether `error` (anywhere in its chain) is a refused TCP connection: the host answered
/// and nothing listens there, so no control plane runs at that address.
pub fn is_connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_bad_entries_are_named() {
        let one = ControlPlanes::parse("http://127.0.0.1:50051", "--control-plane").unwrap();
        assert_eq!(one.urls(), ["http://127.0.0.1:50051"]);
        assert_eq!(one.joined(), "http://127.0.0.1:50051");
        let two = ControlPlanes::parse(" http://a:1 , https://b:2", "--control-plane").unwrap();
        assert_eq!(two.urls(), ["http://a:1", "https://b:2"]);
        let empty = ControlPlanes::parse("http://a:1,,http://b:2", "--control-plane")
            .unwrap_err()
            .to_string();
        assert!(empty.contains("empty entry"), "{empty}");
        let scheme = ControlPlanes::parse("http://a:1,b:2", "--control-plane")
            .unwrap_err()
            .to_string();
        assert!(scheme.contains("\"b:2\" is not an http"), "{scheme}");
        let twice = ControlPlanes::parse("http://a:1,http://a:1", "--control-plane")
            .unwrap_err()
            .to_string();
        assert!(twice.contains("twice"), "{twice}");
    }

    #[test]
    fn failover_tries_each_then_pauses_longer_each_round() {
        let planes = ControlPlanes::parse("http://a:1,http://b:2,http://c:3", "x").unwrap();
        let mut failover = Failover::new(&planes);
        assert_eq!(failover.current(), 0);
        assert_eq!(failover.next(false), Duration::ZERO);
        assert_eq!(failover.current(), 1);
        assert_eq!(failover.next(false), Duration::ZERO);
        assert_eq!(failover.next(false), FIRST_PAUSE, "a whole round failed");
        assert_eq!(failover.current(), 0);
        for _ in 0..2 {
            failover.next(false);
        }
        assert_eq!(failover.next(false), FIRST_PAUSE * 2);
        for _ in 0..30 {
            assert!(failover.next(false) <= MAX_PAUSE);
        }
        assert_eq!(failover.next(true), Duration::ZERO, "a link that worked");
        assert_eq!(failover.next(false), Duration::ZERO);
        assert_eq!(failover.next(false), Duration::ZERO);
        assert_eq!(failover.next(false), FIRST_PAUSE, "the pause starts over");
    }

    #[test]
    fn a_refused_connection_is_told_apart() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let wrapped = anyhow::Error::new(refused).context("connecting");
        assert!(is_connection_refused(wrapped.as_ref()));
        let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert!(!is_connection_refused(&timeout));
    }
}
