//! Any bytes as the `Authorization` and `X-API-Key` headers: extracting the presented
//! credential never panics, and what it returns is a trimmed, non-empty part of the input.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use mcpr_edge_gateway::access::presented_key;

fuzz_target!(|data: &[u8]| {
    let (authorization, api_key) = data.split_at(data.len() / 2);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Ok(value) = HeaderValue::from_bytes(api_key) {
        headers.insert("x-api-key", value);
    }
    if let Some(key) = presented_key(&headers) {
        assert!(!key.is_empty());
        assert_eq!(key, key.trim());
        assert!(data.windows(key.len()).any(|w| w == key.as_bytes()));
    }
});
