//! Who a caller is and what it may do, checked locally from the snapshot: the request path
//! never calls the control plane.
//!
//! The credentials a snapshot carries ([`Credentials`]: API keys and admin MCP tokens by
//! hash, the rate limits,
//! with OAuth the [`oauth::ResourceServer`] and its JWT [`jwt::Verifier`]) are checked by the
//! front door's authentication step (`transport/authenticate.rs`), which then runs the
//! request with the caller's [`Access`] in a task-local; the views read it ([`caller`]) to
//! filter lists and refuse calls. Outside a request (stdio, which is local and
//! unauthenticated) the caller may use everything. The rate limit buckets and the key use
//! not yet reported ([`report_usage`], every few seconds, off the request path) live in
//! [`AuthState`], across snapshots.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use axum::response::Response;
use dashmap::DashMap;
use mcpr_core::jsonrpc::{Message, RpcError};
use mcpr_proto as pb;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Gateway;

pub mod jwt;
pub mod oauth;

use oauth::ResourceServer;

/// JSON-RPC error code of authentication and authorization refusals (implementation-defined
/// server error range).
pub const UNAUTHORIZED: i64 = -32003;
pub const RATE_LIMITED: i64 = -32004;
pub const REALM_CHALLENGE: &str = "Bearer realm=\"mcp-router\"";
/// `Credential.kind` of an admin MCP token in the snapshot (proto/proto/mcpr.proto).
pub const ADMIN_KIND: &str = "admin";
/// How often gateways report key use to the control plane.
pub const USAGE_REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// What a caller may use: everything, or some providers (whole, or some of their tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    All,
    /// provider -> `None` (every tool) or the tools allowed.
    Scoped(HashMap<String, Option<HashSet<String>>>),
}

impl Access {
    /// From scope strings: `*`, `provider`, `provider/tool`.
    pub fn from_scopes(scopes: &[String]) -> Access {
        let mut providers: HashMap<String, Option<HashSet<String>>> = HashMap::new();
        for scope in scopes {
            if scope == "*" {
                return Access::All;
            }
            match scope.split_once('/') {
                None => {
                    providers.insert(scope.clone(), None);
                }
                Some((provider, tool)) => {
                    let entry = providers
                        .entry(provider.to_owned())
                        .or_insert_with(|| Some(HashSet::new()));
                    if let Some(tools) = entry {
                        tools.insert(tool.to_owned());
                    }
                }
            }
        }
        Access::Scoped(providers)
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Access::All)
    }

    /// The provider is visible: the key names it, wholly or for some tools.
    pub fn allows_provider(&self, provider: &str) -> bool {
        match self {
            Access::All => true,
            Access::Scoped(p) => p.contains_key(provider),
        }
    }

    /// Every tool of the provider is allowed (no per-tool filtering needed).
    pub fn allows_whole_provider(&self, provider: &str) -> bool {
        match self {
            Access::All => true,
            Access::Scoped(p) => matches!(p.get(provider), Some(None)),
        }
    }

    pub fn allows_tool(&self, provider: &str, tool: &str) -> bool {
        match self {
            Access::All => true,
            Access::Scoped(p) => match p.get(provider) {
                Some(None) => true,
                Some(Some(tools)) => tools.contains(tool),
                None => false,
            },
        }
    }
}

/// Who is calling, as the per-call record names it (`observe/mod.rs`): ids and names, never
/// a secret. The grants are the snapshot's own, so naming the caller allocates nothing.
#[derive(Debug, Clone)]
pub enum Who {
    /// Outside the HTTP front door: stdio, local and unauthenticated.
    Stdio,
    /// Over HTTP where no credential is required (a loopback router without keys).
    Anonymous,
    ApiKey(Arc<KeyGrant>),
    OAuth(Arc<jwt::TokenGrant>),
    /// An admin MCP token (`Credential.kind` "admin"): the admin session that minted it
    /// (`id`) and its kind (`name`: ui, cli, open).
    Admin(Arc<KeyGrant>),
}

/// The client whose request is being handled: what it may use, who it is, and the protocol
/// version its request names (from `MCP-Protocol-Version`, one of the versions the gateway
/// speaks, else none).
#[derive(Debug, Clone)]
pub struct Caller {
    pub access: Arc<Access>,
    pub who: Who,
    pub protocol_version: Option<&'static str>,
}

tokio::task_local! {
    static CALLER: Caller;
}

/// The access of a caller that may use everything, shared rather than made per request.
pub fn everything() -> Arc<Access> {
    static ALL: std::sync::LazyLock<Arc<Access>> =
        std::sync::LazyLock::new(|| Arc::new(Access::All));
    ALL.clone()
}

/// The access of the client whose request is being handled (everything outside the HTTP
/// front door: stdio is local and unauthenticated).
pub fn caller() -> Arc<Access> {
    CALLER
        .try_with(|c| c.access.clone())
        .unwrap_or_else(|_| everything())
}

/// Who the client whose request is being handled is, and the version its request names
/// (stdio outside the HTTP front door).
pub fn who() -> (Who, Option<&'static str>) {
    CALLER
        .try_with(|c| (c.who.clone(), c.protocol_version))
        .unwrap_or((Who::Stdio, None))
}

/// `future` with the current caller: wrap any future that handles a client request in a
/// task of its own (`tokio::spawn(auth::inherit(…))`), or it would run as a local caller.
pub fn inherit<F: std::future::Future>(future: F) -> impl std::future::Future<Output = F::Output> {
    let current = CALLER.try_with(Caller::clone).unwrap_or_else(|_| Caller {
        access: everything(),
        who: Who::Stdio,
        protocol_version: None,
    });
    CALLER.scope(current, future)
}

/// `future` run as `caller` (the authentication step, once per request).
pub fn as_caller<F: std::future::Future>(
    caller: Caller,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    CALLER.scope(caller, future)
}

/// One API key as the gateway knows it.
#[derive(Debug)]
pub struct KeyGrant {
    pub id: String,
    pub name: String,
    pub hash: [u8; 32],
    pub access: Arc<Access>,
    /// Unix ms; 0 = never.
    pub expires_at_ms: i64,
    pub revoked: bool,
}

/// Token bucket settings (rate per second, burst); rate 0 = unlimited.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Limit {
    pub rate: f64,
    pub burst: f64,
}

/// The credentials part of a snapshot.
#[derive(Debug, Default)]
pub struct Credentials {
    pub required: bool,
    /// SHA-256 of the key -> grant.
    pub keys: HashMap<[u8; 32], Arc<KeyGrant>>,
    /// SHA-256 of an admin MCP token -> grant (always everything): the short-lived tokens
    /// with which an admin calls MCP, e.g. from the web UI's "Try a tool".
    pub admins: HashMap<[u8; 32], Arc<KeyGrant>>,
    pub per_key: Limit,
    pub per_address: Limit,
    /// JWT access tokens accepted besides keys (OAuth enabled or an external IdP).
    pub oauth: Option<ResourceServer>,
}

impl Credentials {
    pub fn from_proto(credentials: Vec<pb::Credential>, policy: Option<pb::AuthPolicy>) -> Self {
        let policy = policy.unwrap_or_default();
        let oauth = ResourceServer::from_proto(policy.oauth.as_ref());
        let (admin_tokens, api_keys): (Vec<_>, Vec<_>) = credentials
            .into_iter()
            .filter(|c| c.kind == "api_key" || c.kind == ADMIN_KIND)
            .partition(|c| c.kind == ADMIN_KIND);
        let grants = |credentials: Vec<pb::Credential>, admin: bool| {
            credentials
                .into_iter()
                .filter_map(|c| {
                    let hash: [u8; 32] = c.hash.as_slice().try_into().ok()?;
                    let access = if admin {
                        everything()
                    } else {
                        Arc::new(Access::from_scopes(&c.scopes))
                    };
                    Some((
                        hash,
                        Arc::new(KeyGrant {
                            access,
                            id: c.id,
                            name: c.name,
                            hash,
                            expires_at_ms: c.expires_at_ms,
                            revoked: c.revoked,
                        }),
                    ))
                })
                .collect()
        };
        Credentials {
            required: policy.required,
            keys: grants(api_keys, false),
            admins: grants(admin_tokens, true),
            per_key: Limit {
                rate: policy.per_key_rate,
                burst: f64::from(policy.per_key_burst.max(1)),
            },
            per_address: Limit {
                rate: policy.per_address_rate,
                burst: f64::from(policy.per_address_burst.max(1)),
            },
            oauth,
        }
    }

    /// Checks a presented admin MCP token: `None` when it is none (it may be an API key),
    /// else its grant or why it is refused. Expiry is checked on this gateway's clock: an
    /// expired token may still be in the snapshot until the next one leaves it out.
    pub fn check_admin(
        &self,
        presented: &str,
        now_ms: i64,
    ) -> Option<Result<&Arc<KeyGrant>, &'static str>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let grant = self.admins.get(&digest)?;
        if !bool::from(grant.hash.ct_eq(&digest)) {
            return None;
        }
        if grant.revoked || (grant.expires_at_ms != 0 && grant.expires_at_ms <= now_ms) {
            return Some(Err("the admin MCP token expired: ask for a new one"));
        }
        Some(Ok(grant))
    }

    /// Checks a presented key: the grant, or why it is refused.
    pub fn check(&self, presented: &str, now_ms: i64) -> Result<&Arc<KeyGrant>, &'static str> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // The map lookup is keyed by the SHA-256 of a 256-bit secret, which leaks nothing
        // useful through timing; the final comparison is constant-time regardless.
        let Some(grant) = self.keys.get(&digest) else {
            return Err("unknown API key");
        };
        if !bool::from(grant.hash.ct_eq(&digest)) {
            return Err("unknown API key");
        }
        if grant.revoked {
            return Err("the API key was revoked");
        }
        if grant.expires_at_ms != 0 && grant.expires_at_ms <= now_ms {
            return Err("the API key expired");
        }
        Ok(grant)
    }
}

/// What the gateway keeps across snapshots: rate limit buckets and unreported key use.
#[derive(Default)]
pub struct AuthState {
    per_key: DashMap<String, Mutex<Bucket>>,
    per_address: DashMap<IpAddr, Mutex<Bucket>>,
    /// key id -> (last use in unix ms, requests since the last report)
    usage: DashMap<String, (AtomicI64, AtomicU64)>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AuthState {
    /// Takes one token of `address`'s bucket; `Err(wait)` when it is empty.
    pub fn take_per_address(&self, address: &IpAddr, limit: Limit) -> Result<(), Duration> {
        AuthState::take(&self.per_address, address, limit)
    }

    /// Takes one token of the credential `bucket`; `Err(wait)` when it is empty.
    pub fn take_per_key(&self, bucket: &String, limit: Limit) -> Result<(), Duration> {
        AuthState::take(&self.per_key, bucket, limit)
    }

    /// Takes one token; `Err(wait)` when the bucket is empty.
    fn take<K: std::hash::Hash + Eq + Clone>(
        map: &DashMap<K, Mutex<Bucket>>,
        key: &K,
        limit: Limit,
    ) -> Result<(), Duration> {
        if limit.rate <= 0.0 {
            return Ok(());
        }
        if map.len() > 100_000 {
            // Forget full buckets: an idle client's bucket is full again anyway.
            map.retain(|_, b| {
                b.get_mut().unwrap().at.elapsed().as_secs_f64() * limit.rate < limit.burst
            });
        }
        let entry = map.entry(key.clone()).or_insert_with(|| {
            Mutex::new(Bucket {
                tokens: limit.burst,
                at: Instant::now(),
            })
        });
        let mut bucket = entry.lock().unwrap();
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * limit.rate;
        bucket.tokens = (bucket.tokens + refill).min(limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / limit.rate))
        }
    }

    pub(crate) fn record_use(&self, key_id: &str, now_ms: i64) {
        let bump = |entry: &(AtomicI64, AtomicU64)| {
            entry.0.fetch_max(now_ms, Ordering::Relaxed);
            entry.1.fetch_add(1, Ordering::Relaxed);
        };
        if let Some(entry) = self.usage.get(key_id) {
            return bump(&entry);
        }
        let entry = self
            .usage
            .entry(key_id.to_owned())
            .or_insert_with(|| (AtomicI64::new(0), AtomicU64::new(0)));
        bump(&entry);
    }

    /// Takes the usage recorded since the last call.
    fn drain_usage(&self) -> Vec<pb::CredentialUsage> {
        let ids: Vec<String> = self.usage.iter().map(|e| e.key().clone()).collect();
        ids.into_iter()
            .filter_map(|id| {
                let (_, (last, count)) = self.usage.remove(&id)?;
                Some(pb::CredentialUsage {
                    credential_id: id,
                    last_used_ms: last.into_inner(),
                    requests: count.into_inner(),
                })
            })
            .collect()
    }
}

/// The presented API key: `Authorization: Bearer KEY`, else `X-API-Key: KEY`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, key) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim())
            .filter(|k| !k.is_empty());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Marks a lone JSON answer that refuses a request for the caller's scopes (`refused`):
/// with OAuth on, the auth layer makes it a 403 with the `insufficient_scope` challenge
/// naming the scope that would grant it, on every view. (Without OAuth there is nothing to
/// step up to, and the JSON-RPC error stays as it is.)
#[derive(Clone)]
pub struct ScopeRefusal(pub String);

/// Marks `response` when `answer` is a refusal for scopes; only error answers are read.
pub fn mark_scope_refusal(response: &mut Response, answer: &Message) {
    if let Some(error) = answer
        .error
        .as_ref()
        .and_then(|e| serde_json::from_str::<RpcError>(e.get()).ok())
    {
        mark_refused_scope(response, &error);
    }
}

/// Marks `response` when `error` refuses a request for scopes (for a caller that has the
/// error parsed already).
pub fn mark_refused_scope(response: &mut Response, error: &RpcError) {
    if error.code != UNAUTHORIZED {
        return;
    }
    if let Some(scope) = error
        .data
        .as_ref()
        .and_then(|d| d.get("scope"))
        .and_then(Value::as_str)
    {
        response
            .extensions_mut()
            .insert(ScopeRefusal(scope.to_owned()));
    }
}

/// Refuses a tool the caller may not call, naming it.
pub fn authorize_tool(provider: &str, tool: &str) -> Result<(), RpcError> {
    if caller().allows_tool(provider, tool) {
        Ok(())
    } else {
        Err(refused(provider, Some(tool)))
    }
}

/// Refuses a provider the caller may not see, naming it.
pub fn authorize_provider(provider: &str) -> Result<(), RpcError> {
    if caller().allows_provider(provider) {
        Ok(())
    } else {
        Err(refused(provider, None))
    }
}

/// The refusal names what was refused, and in `data.scope` the scope that would grant it.
fn refused(provider: &str, tool: Option<&str>) -> RpcError {
    let (what, scope) = match tool {
        Some(tool) => (
            format!("tool {tool:?} of provider {provider:?}"),
            format!("{provider}/{tool}"),
        ),
        None => (format!("provider {provider:?}"), provider.to_owned()),
    };
    let mut error = RpcError::new(
        UNAUTHORIZED,
        format!("forbidden: this API key or token may not use {what} (not in its scopes)"),
    );
    error.data = Some(serde_json::json!({ "scope": scope }));
    error
}

/// The transparent view (`/mcp/p/{provider}`) for a key scoped to some of the provider's
/// tools: a call to another tool is refused, `tools/list` answers are filtered. (The layer
/// already refused a provider outside the scopes.)
pub async fn guard_transparent<F, Fut>(provider: &str, message: Message, relay: F) -> Message
where
    F: FnOnce(Message) -> Fut,
    Fut: std::future::Future<Output = Message>,
{
    let access = caller();
    if access.allows_whole_provider(provider) {
        return relay(message).await;
    }
    let id = message.id.clone().unwrap_or(Value::Null);
    if !access.allows_provider(provider) {
        return Message::error(id, &refused(provider, None));
    }
    match message.method.as_deref() {
        Some("tools/call") => {
            let tool = message
                .params_value()
                .ok()
                .and_then(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            if !access.allows_tool(provider, &tool) {
                return Message::error(id, &refused(provider, Some(&tool)));
            }
            relay(message).await
        }
        Some("tools/list") => {
            let mut answer = relay(message).await;
            let Some(result) = answer.result.as_ref() else {
                return answer;
            };
            let Ok(mut result) = serde_json::from_str::<Map<String, Value>>(result.get()) else {
                return answer;
            };
            if let Some(Value::Array(tools)) = result.get_mut("tools") {
                tools.retain(|t| {
                    t.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|name| access.allows_tool(provider, name))
                });
            }
            answer.result = Some(mcpr_core::jsonrpc::to_raw(&Value::Object(result)));
            answer
        }
        _ => relay(message).await,
    }
}

/// A ConfigService client of the control plane `failover` is at, with the cluster token,
/// for the gateway's reports (key use, audit records); `None` when it cannot be reached.
pub(crate) async fn config_client(
    gateway: &Gateway,
    control_planes: &mcpr_tls::control_planes::ControlPlanes,
    failover: &mcpr_tls::control_planes::Failover,
) -> Option<pb::config_service_client::ConfigServiceClient<mcpr_tls::cluster::GrpcChannel>> {
    let endpoint = control_planes.endpoint(failover.current()).ok()?;
    let channel = endpoint
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .ok()?;
    let channel = mcpr_tls::cluster::with_token(channel, gateway.config.cluster_token.as_ref());
    Some(pb::config_service_client::ConfigServiceClient::new(channel))
}

/// Reports key use to the control plane every [`USAGE_REPORT_INTERVAL`] while the gateway
/// lives; a failed report is merged back and retried.
pub async fn report_usage(
    gateway: Weak<Gateway>,
    control_planes: mcpr_tls::control_planes::ControlPlanes,
    gateway_id: String,
) {
    let mut tick = tokio::time::interval(USAGE_REPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failover = mcpr_tls::control_planes::Failover::new(&control_planes);
    let mut client: Option<
        pb::config_service_client::ConfigServiceClient<mcpr_tls::cluster::GrpcChannel>,
    > = None;
    loop {
        tick.tick().await;
        let Some(gw) = gateway.upgrade() else { return };
        let usage = gw.auth.drain_usage();
        if usage.is_empty() {
            continue;
        }
        if client.is_none() {
            client = config_client(&gw, &control_planes, &failover).await;
        }
        let report = pb::UsageReport {
            gateway_id: gateway_id.clone(),
            usage: usage.clone(),
        };
        let sent = match client.as_mut() {
            Some(c) => c.report_usage(report).await.is_ok(),
            None => false,
        };
        if !sent {
            client = None;
            // The next tick tries the next control plane; the use is kept until one takes it.
            failover.next(false);
            for u in usage {
                gw.auth.record_use(&u.credential_id, u.last_used_ms);
            }
            tracing::debug!("key usage report failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_grant_providers_and_tools() {
        assert!(Access::from_scopes(&scopes(&["*"])).is_all());
        let a = Access::from_scopes(&scopes(&["time", "gh/create_issue"]));
        assert!(a.allows_provider("time") && a.allows_provider("gh"));
        assert!(!a.allows_provider("other"));
        assert!(a.allows_tool("time", "anything"));
        assert!(a.allows_tool("gh", "create_issue"));
        assert!(!a.allows_tool("gh", "delete_repo"));
        assert!(a.allows_whole_provider("time") && !a.allows_whole_provider("gh"));
        // A whole-provider scope wins over a tool scope, in any order.
        let b = Access::from_scopes(&scopes(&["gh/x", "gh"]));
        assert!(b.allows_tool("gh", "y"));
        let c = Access::from_scopes(&scopes(&["gh", "gh/x"]));
        assert!(c.allows_tool("gh", "y"));
    }

    #[test]
    fn keys_are_checked_by_hash_with_reasons() {
        let key = |id: &str, secret: &str, revoked: bool, expires_at_ms: i64| pb::Credential {
            id: id.into(),
            kind: "api_key".into(),
            hash: Sha256::digest(secret.as_bytes()).to_vec(),
            scopes: scopes(&["*"]),
            name: id.into(),
            expires_at_ms,
            revoked,
        };
        let creds = Credentials::from_proto(
            vec![
                key("a", "mcpr_a", false, 0),
                key("r", "mcpr_r", true, 0),
                key("e", "mcpr_e", false, 1000),
            ],
            Some(pb::AuthPolicy {
                required: true,
                ..Default::default()
            }),
        );
        assert_eq!(creds.check("mcpr_a", 5000).unwrap().id, "a");
        assert_eq!(creds.check("mcpr_x", 5000).unwrap_err(), "unknown API key");
        assert_eq!(
            creds.check("mcpr_r", 5000).unwrap_err(),
            "the API key was revoked"
        );
        assert_eq!(
            creds.check("mcpr_e", 5000).unwrap_err(),
            "the API key expired"
        );
        assert!(creds.check("mcpr_e", 500).is_ok());
    }

    #[test]
    fn admin_tokens_grant_everything_until_they_expire_and_are_no_api_keys() {
        let credential =
            |kind: &str, secret: &str, granted: &[&str], expires_at_ms: i64| pb::Credential {
                id: "session-1".into(),
                kind: kind.into(),
                hash: Sha256::digest(secret.as_bytes()).to_vec(),
                scopes: scopes(granted),
                name: "ui".into(),
                expires_at_ms,
                revoked: false,
            };
        let creds = Credentials::from_proto(
            vec![
                // Whatever scopes come with it, an admin token may use everything.
                credential("admin", "mcprm_live", &["time"], 10_000),
                credential("admin", "mcprm_old", &["*"], 1_000),
                credential("api_key", "mcpr_key", &["time"], 0),
                credential("other", "mcprm_other", &["*"], 0),
            ],
            Some(pb::AuthPolicy {
                required: true,
                ..Default::default()
            }),
        );
        let grant = creds.check_admin("mcprm_live", 5_000).unwrap().unwrap();
        assert!(grant.access.is_all());
        assert_eq!(
            (grant.id.as_str(), grant.name.as_str()),
            ("session-1", "ui")
        );
        assert_eq!(
            creds.check_admin("mcprm_old", 5_000).unwrap().unwrap_err(),
            "the admin MCP token expired: ask for a new one"
        );
        assert!(creds.check_admin("mcprm_live", 10_000).unwrap().is_err());
        // An admin token is not an API key, nor an API key an admin token; unknown kinds
        // are neither.
        assert_eq!(
            creds.check("mcprm_live", 5_000).unwrap_err(),
            "unknown API key"
        );
        assert!(creds.check_admin("mcpr_key", 5_000).is_none());
        assert!(creds.check_admin("mcprm_other", 5_000).is_none());
        assert!(creds.check("mcpr_key", 5_000).is_ok());
    }

    #[test]
    fn presented_keys() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, "bearer k2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k2"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(presented_key(&h), None);
    }

    #[test]
    fn buckets_refill() {
        let map = DashMap::new();
        let limit = Limit {
            rate: 1.0,
            burst: 2.0,
        };
        assert!(AuthState::take(&map, &"k", limit).is_ok());
        assert!(AuthState::take(&map, &"k", limit).is_ok());
        assert!(AuthState::take(&map, &"k", limit).is_err());
        assert!(AuthState::take(&map, &"k", Limit::default()).is_ok());
    }
}
