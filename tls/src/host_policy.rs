//! The Host and Origin policy of every HTTP listener (MCP, REST API, web UI, OAuth, metadata
//! documents): the wall against DNS rebinding and cross-site requests.
//!
//! A page on a rebound name (`evil.com` resolving to 127.0.0.1) reaches a loopback listener
//! with its own name in `Host`, so a listener answers only the names it is known by: loopback
//! names, and `MCPR_ALLOWED_HOSTS` (on a loopback listener nothing else by default; on another
//! listener without the list, any name, with a warning at start). A browser names the page
//! that made a request in `Origin`; when present it must be a loopback origin, the request's
//! own host, or in `MCPR_ALLOWED_ORIGINS`.
//!
//! [`HostPolicy::layer`] applies the policy to a whole router, before any of its handlers or
//! other layers run; each router shapes its own refusal (a JSON-RPC error on the MCP routes,
//! the API's error body on the control plane's), always 403.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderMap, Request, Uri, header};
use axum::response::Response;
use futures::future::Either;

/// Which Hosts and Origins a listener accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// Host names (or `host:port`) accepted besides loopback ones; `None` accepts any.
    hosts: Option<Vec<String>>,
    /// Origins accepted besides loopback ones and the request's own host; `*` accepts any.
    origins: Vec<String>,
}

/// Why a request was refused: the Host or the Origin it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Host(String),
    Origin(String),
}

impl Refusal {
    /// A stable code for error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Host(_) => "host_not_allowed",
            Refusal::Origin(_) => "origin_not_allowed",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Host(host) => {
                write!(f, "host {host:?} is not allowed (set MCPR_ALLOWED_HOSTS)")
            }
            Refusal::Origin(origin) => {
                write!(
                    f,
                    "origin {origin:?} is not allowed (set MCPR_ALLOWED_ORIGINS)"
                )
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// Names every listener answers to.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl Default for HostPolicy {
    /// Loopback names and origins only.
    fn default() -> Self {
        HostPolicy {
            hosts: Some(Vec::new()),
            origins: Vec::new(),
        }
    }
}

impl HostPolicy {
    /// The policy of a listener on `listen_host` (`HOST` or `HOST:PORT`): the configured
    /// Hosts, else loopback names when it listens on loopback, else any Host (with a warning:
    /// DNS-rebinding protection is then up to the allow-list). Empty entries are ignored.
    pub fn for_listener(
        listen_host: &str,
        allowed_hosts: &[String],
        allowed_origins: &[String],
    ) -> HostPolicy {
        let listed = |entries: &[String]| -> Vec<String> {
            entries
                .iter()
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect()
        };
        let hosts = listed(allowed_hosts);
        let hosts = if !hosts.is_empty() {
            Some(hosts)
        } else if is_loopback_host(listen_host) {
            Some(Vec::new())
        } else {
            tracing::warn!(listen = %listen_host, "not on loopback and MCPR_ALLOWED_HOSTS is unset: any Host header is accepted");
            None
        };
        HostPolicy {
            hosts,
            origins: listed(allowed_origins),
        }
    }

    /// Checks a request's `Host` (or, in HTTP/2, its URI's authority) and `Origin`.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Refusal> {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let host = text(header::HOST).or_else(|| uri.authority().map(|a| a.as_str()));
        self.check_host(host)?;
        match text(header::ORIGIN) {
            Some(origin) => self.check_origin(origin, host),
            None => Ok(()),
        }
    }

    fn check_host(&self, host: Option<&str>) -> Result<(), Refusal> {
        let Some(allowed) = &self.hosts else {
            return Ok(());
        };
        let host = host.unwrap_or_default();
        let name = hostname(host);
        let ok = LOOPBACK_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
            || allowed
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(name) || a.eq_ignore_ascii_case(host));
        if ok {
            Ok(())
        } else {
            Err(Refusal::Host(host.to_owned()))
        }
    }

    fn check_origin(&self, origin: &str, host: Option<&str>) -> Result<(), Refusal> {
        if self
            .origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return Ok(());
        }
        // `null` (sandboxed frames, file pages) and anything without a scheme match nothing.
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        let loopback = LOOPBACK_NAMES
            .iter()
            .any(|n| n.eq_ignore_ascii_case(hostname(origin_host)));
        let same_host =
            !origin_host.is_empty() && host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host));
        if loopback || same_host {
            Ok(())
        } else {
            Err(Refusal::Origin(origin.to_owned()))
        }
    }

    /// A layer enforcing this policy on every route of a router (and its fallback); `refuse`
    /// shapes the 403 answer in the router's own error format.
    pub fn layer(self: &Arc<Self>, refuse: fn(&Refusal) -> Response) -> HostPolicyLayer {
        HostPolicyLayer {
            policy: self.clone(),
            refuse,
        }
    }
}

/// `127.0.0.1`, `::1`, `[::1]`, `localhost`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    if let Ok(addr) = host.parse::<std::net::SocketAddr>() {
        return addr.ip().is_loopback();
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name.eq_ignore_ascii_case("localhost")
}

/// The name part of `host[:port]` (an IPv6 literal keeps its brackets).
fn hostname(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port.split_inclusive(']').next().unwrap_or(host_port);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

/// See [`HostPolicy::layer`].
#[derive(Clone)]
pub struct HostPolicyLayer {
    policy: Arc<HostPolicy>,
    refuse: fn(&Refusal) -> Response,
}

impl<S> tower::Layer<S> for HostPolicyLayer {
    type Service = HostPolicyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        HostPolicyService {
            inner,
            policy: self.policy.clone(),
            refuse: self.refuse,
        }
    }
}

/// The service [`HostPolicyLayer`] wraps around each route: no allocation on the way
/// through, the refusal is a ready answer.
#[derive(Clone)]
pub struct HostPolicyService<S> {
    inner: S,
    policy: Arc<HostPolicy>,
    refuse: fn(&Refusal) -> Response,
}

impl<S, B> tower::Service<Request<B>> for HostPolicyService<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.policy.check(request.headers(), request.uri()) {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(refusal) => {
                tracing::debug!(%refusal, path = %request.uri().path(), "request refused by the host policy");
                Either::Left(ready(Ok((self.refuse)(&refusal))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn check(policy: &HostPolicy, pairs: &[(&str, &str)]) -> Result<(), Refusal> {
        policy.check(&headers(pairs), &Uri::from_static("/api/v1/servers"))
    }

    #[test]
    fn loopback_listener_answers_loopback_names_only() {
        let policy = HostPolicy::for_listener("127.0.0.1", &[], &[]);
        for host in [
            "127.0.0.1:8000",
            "localhost:8000",
            "[::1]:8000",
            "LOCALHOST",
        ] {
            assert_eq!(check(&policy, &[("host", host)]), Ok(()), "{host}");
        }
        assert_eq!(
            check(&policy, &[("host", "evil.com:8000")]),
            Err(Refusal::Host("evil.com:8000".into()))
        );
        assert_eq!(
            Refusal::Host("evil.com:8000".into()).to_string(),
            "host \"evil.com:8000\" is not allowed (set MCPR_ALLOWED_HOSTS)"
        );
        // No Host at all (HTTP/1.0): refused; HTTP/2 names it in the URI.
        assert!(check(&policy, &[]).is_err());
        let h2 = Uri::from_static("http://localhost:8000/mcp");
        assert_eq!(policy.check(&HeaderMap::new(), &h2), Ok(()));
    }

    #[test]
    fn allow_lists_and_wildcard_listeners() {
        let listed = HostPolicy::for_listener(
            "0.0.0.0:8000",
            &["router.example".into(), " ".into()],
            &["https://app.example".into()],
        );
        assert_eq!(check(&listed, &[("host", "router.example:8000")]), Ok(()));
        assert!(check(&listed, &[("host", "other.example")]).is_err());
        assert_eq!(
            check(
                &listed,
                &[
                    ("host", "router.example"),
                    ("origin", "https://app.example")
                ]
            ),
            Ok(())
        );
        let open = HostPolicy::for_listener("0.0.0.0:8000", &[], &[]);
        assert_eq!(check(&open, &[("host", "anything.example")]), Ok(()));
    }

    #[test]
    fn origins_must_be_loopback_the_same_host_or_listed() {
        let policy = HostPolicy::default();
        let host = ("host", "127.0.0.1:8000");
        for origin in [
            "http://127.0.0.1:8000",
            "http://localhost:3000",
            "http://[::1]:9",
        ] {
            assert_eq!(
                check(&policy, &[host, ("origin", origin)]),
                Ok(()),
                "{origin}"
            );
        }
        for origin in ["http://evil.com:8000", "null", "127.0.0.1"] {
            assert_eq!(
                check(&policy, &[host, ("origin", origin)]),
                Err(Refusal::Origin(origin.into())),
                "{origin}"
            );
        }
        let any = HostPolicy::for_listener("127.0.0.1", &[], &["*".into()]);
        assert_eq!(
            check(&any, &[host, ("origin", "https://x.example")]),
            Ok(())
        );
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost",
            "::1",
            "[::1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["0.0.0.0", "0.0.0.0:8080", "10.0.0.5", "example.com"] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert_eq!(hostname("localhost:8000"), "localhost");
        assert_eq!(hostname("[::1]:8000"), "[::1]");
        assert_eq!(hostname("example.com"), "example.com");
    }
}
