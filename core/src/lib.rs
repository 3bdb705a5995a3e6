//! What the MCP Router binaries share: the domain model of a registered server and its
//! validation, the JSON-RPC envelope the data path parses, and start-up plumbing (logging).
//! It holds no business logic of any one binary.

pub mod git;
pub mod jsonrpc;
pub mod mcp_headers;
pub mod metrics;
pub mod model;
pub mod placement;
pub mod relay;
pub mod settings;
pub mod sse;
pub mod telemetry;

/// Milliseconds since the Unix epoch, the timestamp unit on the wire.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// An error with its chain of sources, one line: `reqwest` and `tonic` errors keep the
/// useful part (connection refused, DNS, TLS) in their sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
