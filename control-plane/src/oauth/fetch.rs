//! Documents the authorization server fetches from other servers: an external identity
//! provider's JWKS (a URL the operator configured), and client ID metadata documents (a URL
//! anyone may name as `client_id`, without authenticating).
//!
//! The second kind must not turn the router into a proxy into its own network (SSRF): such
//! a document is fetched only from public addresses. Loopback, private (RFC 1918, fc00::/7),
//! link-local, unspecified, shared (CGNAT), multicast, broadcast and reserved addresses are
//! refused after DNS resolution, and the connection goes to the very address that was
//! checked (the resolver hands reqwest only checked addresses), so a name that rebinds
//! between check and connect gains nothing. Redirects are followed (at most
//! [`MAX_REDIRECTS`]) only to URLs that pass the same checks; no proxy is used, since a
//! proxy would resolve the name itself. `MCPR_OAUTH_ALLOW_PRIVATE_FETCH` allows non-public
//! addresses for development: `1` all of them, or a comma-separated list of addresses and
//! networks (`10.20.0.0/16`) only those.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::Value;

/// Largest document accepted from another server (JWKS, OpenID configuration, client
/// metadata document).
const MAX_DOCUMENT: usize = 64 * 1024;
/// Redirects a client metadata document may take.
pub const MAX_REDIRECTS: usize = 3;
/// The development switch that lets client metadata documents come from non-public addresses.
pub const ALLOW_PRIVATE_FETCH: &str = "MCPR_OAUTH_ALLOW_PRIVATE_FETCH";

/// Which addresses client metadata documents may be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// Public addresses only: the default.
    #[default]
    PublicOnly,
    /// Any address (`MCPR_OAUTH_ALLOW_PRIVATE_FETCH=1`).
    Any,
    /// Public addresses and these networks (address, prefix length).
    PublicAnd(Vec<(IpAddr, u8)>),
}

impl AddressPolicy {
    /// Reads `MCPR_OAUTH_ALLOW_PRIVATE_FETCH`: unset, `0` or `false` (public only), `1` or
    /// `true` (any), or `ADDRESS[/PREFIX],…`.
    pub fn parse(text: Option<&str>) -> anyhow::Result<AddressPolicy> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(AddressPolicy::PublicOnly);
        };
        match text.to_ascii_lowercase().as_str() {
            "0" | "false" | "no" => return Ok(AddressPolicy::PublicOnly),
            "1" | "true" | "yes" => return Ok(AddressPolicy::Any),
            _ => {}
        }
        let networks = text
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|network| {
                let (address, prefix) = network.split_once('/').unwrap_or((network, ""));
                let address: IpAddr = address.parse().ok()?;
                let most = if address.is_ipv4() { 32 } else { 128 };
                let prefix = if prefix.is_empty() {
                    most
                } else {
                    prefix.parse().ok().filter(|p| *p <= most)?
                };
                Some((address, prefix))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{ALLOW_PRIVATE_FETCH} must be 1, or addresses and networks like 10.20.0.0/16 separated by commas, got {text:?}"
                )
            })?;
        Ok(AddressPolicy::PublicAnd(networks))
    }

    /// Why the router does not fetch from `ip`, if it does not.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        let kind = non_public(ip)?;
        let allowed = match self {
            AddressPolicy::PublicOnly => false,
            AddressPolicy::Any => true,
            AddressPolicy::PublicAnd(networks) => networks
                .iter()
                .any(|(net, prefix)| within(ip, *net, *prefix)),
        };
        (!allowed).then(|| {
            format!(
                "{ip} is {kind} address, which the router does not fetch client metadata from ({ALLOW_PRIVATE_FETCH}=1 allows it for development)"
            )
        })
    }
}

/// What kind of non-public address `ip` is (with its article), or `None` when it is public.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => "a broadcast",
        (0, _, _) => "an unspecified",
        (127, _, _) => "a loopback",
        (10, _, _) | (192, 168, _) => "a private",
        (172, 16..=31, _) => "a private",
        (100, 64..=127, _) => "a shared (CGNAT)",
        (169, 254, _) => "a link-local",
        (224..=239, _, _) => "a multicast",
        (240..=255, _, _) => "a reserved",
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a reserved",
        (198, 18..=19, _) => "a reserved",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // IPv4 inside IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96):
    // judged as the IPv4 address it reaches.
    let embedded =
        |s: &[u16]| Ipv4Addr::new((s[0] >> 8) as u8, s[0] as u8, (s[1] >> 8) as u8, s[1] as u8);
    if ip.is_unspecified() {
        return Some("an unspecified");
    }
    if ip.is_loopback() {
        return Some("a loopback");
    }
    match segments {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            return non_public_v4(embedded(&segments[6..]));
        }
        // 6to4 carries its IPv4 address in the next 32 bits.
        [0x2002, ..] => {
            return non_public_v4(embedded(&segments[1..3]));
        }
        _ => {}
    }
    Some(match segments[0] {
        s if s & 0xfe00 == 0xfc00 => "a private (unique local)",
        s if s & 0xffc0 == 0xfe80 => "a link-local",
        s if s & 0xffc0 == 0xfec0 => "a private (site-local)",
        s if s & 0xff00 == 0xff00 => "a multicast",
        0x2001 if segments[1] == 0x0db8 => "a reserved",
        _ => return None,
    })
}

/// Whether `ip` is in `net/prefix`.
fn within(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The one resolver of the metadata document client: only addresses the policy allows come
/// out, and reqwest connects to nothing else.
struct CheckedResolver {
    policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.refusal(addr.ip()) {
                    Some(why) => {
                        refused.push(why);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = if refused.is_empty() {
                    "no address".to_owned()
                } else {
                    refused.join("; ")
                };
                return Err(format!(
                    "{host} resolves to no address the router may fetch from: {why}"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The checks of a client metadata document URL, before the first request and before each
/// redirect: the scheme, and a host given as an address (which no resolver sees).
#[derive(Clone)]
pub struct DocumentUrls {
    policy: Arc<AddressPolicy>,
    /// `OAUTH_ALLOW_HTTP_CLIENT_METADATA`: plain http to a loopback name too.
    allow_http: bool,
}

impl DocumentUrls {
    pub fn new(policy: AddressPolicy, allow_http: bool) -> DocumentUrls {
        DocumentUrls {
            policy: Arc::new(policy),
            allow_http,
        }
    }

    /// Why `url` may not be fetched, if it may not.
    pub fn refusal(&self, url: &Url) -> Option<String> {
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {
                if !crate::is_loopback_host(host) {
                    return Some("plain http is only allowed to a loopback address".to_owned());
                }
            }
            other => return Some(format!("the {other} scheme is not fetched (use https)")),
        }
        if host.is_empty() {
            return Some("the URL has no host".to_owned());
        }
        // The URL parser writes every spelling of an address (`2130706433`, `0x7f.1`) as
        // the address.
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => self.policy.refusal(ip),
            Err(_) => None,
        }
    }

    /// The HTTP client for metadata documents: checked resolution and redirects, no proxy.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let urls = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                let error = format!("more than {MAX_REDIRECTS} redirects");
                return attempt.error(error);
            }
            match urls.refusal(attempt.url()) {
                Some(why) => {
                    let error = format!("redirect to {} refused: {why}", attempt.url());
                    attempt.error(error)
                }
                None => attempt.follow(),
            }
        });
        Ok(mcpr_tls::http_client()?
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: self.policy.clone(),
            }))
            .redirect(redirects)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()?)
    }
}

/// GETs a JSON document with `client`'s timeouts and redirect policy, at most
/// [`MAX_DOCUMENT`] bytes.
pub async fn fetch_json(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let mut response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("fetching {url}: {}", mcpr_core::error_chain(&e)))?;
    anyhow::ensure!(
        response.status().is_success(),
        "fetching {url}: HTTP {}",
        response.status()
    );
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("reading {url}: {e}"))?
    {
        body.extend_from_slice(&chunk);
        anyhow::ensure!(
            body.len() <= MAX_DOCUMENT,
            "{url} is larger than {MAX_DOCUMENT} bytes"
        );
    }
    serde_json::from_slice(&body).map_err(|e| anyhow::anyhow!("{url} is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_public_addresses_by_default() {
        let policy = AddressPolicy::default();
        for (address, kind) in [
            ("127.0.0.1", "a loopback"),
            ("10.1.2.3", "a private"),
            ("172.31.0.1", "a private"),
            ("192.168.1.1", "a private"),
            ("169.254.169.254", "a link-local"),
            ("0.0.0.0", "an unspecified"),
            ("100.64.0.1", "a shared (CGNAT)"),
            ("224.0.0.1", "a multicast"),
            ("255.255.255.255", "a broadcast"),
            ("::1", "a loopback"),
            ("::", "an unspecified"),
            ("fd00::1", "a private (unique local)"),
            ("fe80::1", "a link-local"),
            ("ff02::1", "a multicast"),
            ("::ffff:127.0.0.1", "a loopback"),
            ("::ffff:10.0.0.1", "a private"),
            ("64:ff9b::a9fe:a9fe", "a link-local"),
            ("2002:7f00:1::", "a loopback"),
        ] {
            let why = policy.refusal(ip(address)).unwrap_or_default();
            assert!(
                why.starts_with(&format!("{address} is {kind} address")),
                "{address}: {why}"
            );
        }
        for public in [
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(policy.refusal(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_development_switch() {
        assert_eq!(
            AddressPolicy::parse(None).unwrap(),
            AddressPolicy::PublicOnly
        );
        assert_eq!(
            AddressPolicy::parse(Some("0")).unwrap(),
            AddressPolicy::PublicOnly
        );
        let any = AddressPolicy::parse(Some("1")).unwrap();
        assert_eq!(any.refusal(ip("127.0.0.1")), None);
        let some = AddressPolicy::parse(Some("10.20.0.0/16, 127.0.0.2")).unwrap();
        assert_eq!(some.refusal(ip("10.20.3.4")), None);
        assert_eq!(some.refusal(ip("127.0.0.2")), None);
        assert!(some.refusal(ip("10.21.0.1")).is_some());
        assert!(some.refusal(ip("127.0.0.1")).is_some());
        for bad in ["yes please", "10.0.0.0/33", "10.0.0/8"] {
            let error = AddressPolicy::parse(Some(bad)).unwrap_err().to_string();
            assert!(error.contains(ALLOW_PRIVATE_FETCH), "{error}");
        }
    }

    #[test]
    fn urls_with_addresses_are_checked_before_any_request() {
        let urls = DocumentUrls::new(AddressPolicy::PublicOnly, true);
        let refusal = |u: &str| urls.refusal(&Url::parse(u).unwrap());
        assert!(
            refusal("https://127.0.0.1/c.json")
                .unwrap()
                .contains("loopback")
        );
        assert!(
            refusal("https://2130706433/c.json")
                .unwrap()
                .contains("127.0.0.1 is a loopback")
        );
        assert!(
            refusal("https://[::ffff:7f00:1]/c.json")
                .unwrap()
                .contains("loopback")
        );
        assert!(
            refusal("http://example.com/c.json")
                .unwrap()
                .contains("plain http")
        );
        assert!(refusal("ftp://example.com/c.json").is_some());
        // Names are checked when they are resolved.
        assert_eq!(refusal("https://client.example/c.json"), None);
        let strict = DocumentUrls::new(AddressPolicy::PublicOnly, false);
        assert!(
            strict
                .refusal(&Url::parse("http://127.0.0.1/c.json").unwrap())
                .is_some()
        );
    }
}
