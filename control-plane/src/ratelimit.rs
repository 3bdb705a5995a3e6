//! Per-address token buckets for the endpoints that take credentials: the admin login and
//! the OAuth authorization server's registration, authorization and token endpoints. They
//! bound password guessing and the rows an anonymous client can make the store keep.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Buckets beyond this many are pruned of the full ones (an idle client's is full anyway).
const MAX_TRACKED: usize = 10_000;

pub struct AddressLimiter {
    /// Tokens per second and bucket size.
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl AddressLimiter {
    /// `rate` requests per second on average, `burst` at once; a rate of 0 is unlimited.
    pub fn new(rate: f64, burst: u32) -> AddressLimiter {
        AddressLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Charges one request to `addr`: `Err(wait)` when its bucket is empty.
    pub fn charge(&self, addr: IpAddr) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() > MAX_TRACKED {
            let full_after = self.burst / self.rate;
            buckets.retain(|_, (_, at)| at.elapsed().as_secs_f64() < full_after);
        }
        let now = Instant::now();
        let (tokens, at) = buckets.entry(addr).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// The client's address as the listener saw it (unspecified when unknown, e.g. in tests
/// that call the router directly: they then share one bucket).
pub fn client_address(connect: Option<&ConnectInfo<SocketAddr>>) -> IpAddr {
    connect
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after(wait: Duration) -> HeaderValue {
    HeaderValue::from(wait.as_secs_f64().ceil().max(1.0) as u64)
}

/// Middleware for the OAuth endpoints: 429 with `Retry-After` and an RFC 6749 error body
/// (`temporarily_unavailable`) when the client's address is over its rate.
pub async fn oauth_endpoints(
    State(limiter): State<Arc<AddressLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let addr = client_address(request.extensions().get::<ConnectInfo<SocketAddr>>());
    if let Err(wait) = limiter.charge(addr) {
        let body = serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": format!(
                "too many requests from this address to the authorization server: retry in {} s",
                wait.as_secs_f64().ceil().max(1.0)
            ),
        });
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after(wait));
        return response;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_refills_and_is_per_address() {
        let limiter = AddressLimiter::new(1000.0, 3);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        for _ in 0..3 {
            limiter.charge(a).unwrap();
        }
        let wait = limiter.charge(a).unwrap_err();
        assert!(wait <= Duration::from_millis(1), "{wait:?}");
        limiter
            .charge(b)
            .expect("another address has its own bucket");
        std::thread::sleep(Duration::from_millis(5));
        limiter.charge(a).expect("refilled");
        let open = AddressLimiter::new(0.0, 0);
        for _ in 0..100 {
            open.charge(a).unwrap();
        }
    }
}
