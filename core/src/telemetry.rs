//! Logging set-up shared by every binary. Logs go to stderr always: in `mcpr stdio` stdout
//! carries the MCP protocol and a single stray line would corrupt it.

use tracing_subscriber::EnvFilter;

/// Installs a stderr `tracing` subscriber filtered by `RUST_LOG` (default `info`, with the
/// chattier dependencies at `warn`). Calling it twice is harmless.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,sqlx=warn"));
    let json = std::env::var("MCPR_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
