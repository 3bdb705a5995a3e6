//! `/metrics` (Prometheus text format) on an HTTP listener, and who may read it: open on a
//! loopback listener; on any other, only with `Authorization: Bearer $MCPR_METRICS_TOKEN`
//! (401 without). A dedicated metrics listener (`--metrics-listen`) is open unless a token
//! is set. The Host and Origin policy of the listener applies, as on every route.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;

use crate::host_policy::{HostPolicy, Refusal};

/// Renders every family of the process (its components' and the process's own).
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Who may read `/metrics` on one listener.
#[derive(Clone, Debug)]
pub struct MetricsAccess {
    /// No token asked (a loopback listener, or a dedicated one without a token set).
    open: bool,
    token: Option<Arc<str>>,
}

impl MetricsAccess {
    /// For a listener that serves more than the metrics: open on loopback, else behind
    /// `token` (`MCPR_METRICS_TOKEN`), refused to all when there is none.
    pub fn for_listener(loopback: bool, token: Option<String>) -> MetricsAccess {
        MetricsAccess {
            open: loopback,
            token: token.map(Into::into),
        }
    }

    /// For a listener that serves only the metrics (`--metrics-listen`): the operator chose
    /// its address, so it is open unless a token is set.
    pub fn dedicated(token: Option<String>) -> MetricsAccess {
        MetricsAccess {
            open: token.is_none(),
            token: token.map(Into::into),
        }
    }

    /// The refusal of a request that may not read the metrics, if it may not.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if self.open {
            return None;
        }
        let Some(token) = &self.token else {
            return Some(refuse(
                "metrics are open on loopback only: set MCPR_METRICS_TOKEN to read them here with \"Authorization: Bearer …\", or serve them on --metrics-listen",
            ));
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match presented {
            Some(t) if bool::from(t.as_bytes().ct_eq(token.as_bytes())) => None,
            Some(_) => Some(refuse("wrong metrics token (MCPR_METRICS_TOKEN)")),
            None => Some(refuse(
                "missing metrics token: send \"Authorization: Bearer $MCPR_METRICS_TOKEN\"",
            )),
        }
    }
}

fn refuse(why: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
        why,
    )
        .into_response()
}

fn host_refusal(refusal: &Refusal) -> Response {
    (StatusCode::FORBIDDEN, refusal.to_string()).into_response()
}

/// The `/metrics` route, behind `access` and the listener's Host and Origin `policy`.
pub fn router(render: Render, access: MetricsAccess, policy: &Arc<HostPolicy>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let render = render.clone();
                let access = access.clone();
                async move {
                    if let Some(refusal) = access.refusal(&headers) {
                        return refusal;
                    }
                    (
                        [(header::CONTENT_TYPE, mcpr_core::metrics::CONTENT_TYPE)],
                        render(),
                    )
                        .into_response()
                }
            }),
        )
        .layer(policy.layer(host_refusal))
}

/// A [`Render`] of the process's own metrics followed by `component`'s families.
pub fn with_process(
    component: impl Fn(&mut mcpr_core::metrics::Exposition) + Send + Sync + 'static,
) -> Render {
    Arc::new(move || {
        let mut out = mcpr_core::metrics::Exposition::new();
        mcpr_core::metrics::process_metrics(&mut out);
        component(&mut out);
        out.finish()
    })
}

/// `/metrics` for a binary with an HTTP listener: the route to merge into that listener's
/// router (`loopback`: whether it listens on loopback), and, with `metrics_listen`
/// (`--metrics-listen`), a listener of its own. The token is `MCPR_METRICS_TOKEN`.
pub async fn setup(
    render: Render,
    loopback: bool,
    metrics_listen: Option<&str>,
    policy: &Arc<HostPolicy>,
    tls: Option<Arc<crate::Tls>>,
) -> anyhow::Result<Router> {
    let token = mcpr_core::metrics::metrics_token_from_env(|k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?;
    if let Some(addr) = metrics_listen {
        serve_dedicated(addr, render.clone(), token.clone(), tls).await?;
    }
    Ok(router(
        render,
        MetricsAccess::for_listener(loopback, token),
        policy,
    ))
}

/// Serves only `/metrics` on `addr` (`--metrics-listen`), until the process ends.
pub async fn serve_dedicated(
    addr: &str,
    render: Render,
    token: Option<String>,
    tls: Option<Arc<crate::Tls>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
    let local = listener.local_addr()?;
    let policy = Arc::new(HostPolicy::for_listener(&local.to_string(), &[], &[]));
    let router = router(render, MetricsAccess::dedicated(token), &policy);
    tracing::info!(addr = %local, "metrics listening");
    Ok(tokio::spawn(async move {
        if let Err(e) = crate::serve_http(listener, router, tls).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn loopback_is_open_and_elsewhere_needs_the_token() {
        let loopback = MetricsAccess::for_listener(true, None);
        assert!(loopback.refusal(&HeaderMap::new()).is_none());
        let public = MetricsAccess::for_listener(false, Some("s3".into()));
        assert!(public.refusal(&HeaderMap::new()).is_some());
        assert!(public.refusal(&bearer("wrong")).is_some());
        assert!(public.refusal(&bearer("s3")).is_none());
        let closed = MetricsAccess::for_listener(false, None);
        assert!(closed.refusal(&bearer("anything")).is_some());
        assert!(
            MetricsAccess::dedicated(None)
                .refusal(&HeaderMap::new())
                .is_none()
        );
        assert!(
            MetricsAccess::dedicated(Some("t".into()))
                .refusal(&HeaderMap::new())
                .is_some()
        );
    }
}
