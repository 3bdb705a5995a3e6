//! The limits that keep one client from exhausting the router (issue 11): batch length,
//! response size, client sessions, HTTP read timeouts and connection caps. Read from the
//! environment once at start (`Limits::install_from_env`, called by every binary's `main`),
//! so that a bad value stops the process with an error naming the variable instead of being
//! noticed under attack; the hot path then reads a `&'static Limits`.
//!
//! The source is injectable (`Limits::from_source`): tests never touch the process
//! environment.

use std::sync::OnceLock;
use std::time::Duration;

/// Every limit, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest JSON-RPC batch (`MCPR_MAX_BATCH`).
    pub max_batch: usize,
    /// Most bytes the answer to one HTTP request (a batch's answers together) may have
    /// (`MCPR_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
    /// Client sessions a gateway holds (`MCPR_MAX_SESSIONS`).
    pub max_sessions: usize,
    /// Client sessions of one credential (`MCPR_MAX_SESSIONS_PER_CREDENTIAL`).
    pub max_sessions_per_credential: usize,
    /// A client session unused this long is forgotten (`MCPR_SESSION_IDLE_SECS`).
    pub session_idle: Duration,
    /// A request's headers must arrive within this (`MCPR_HEADER_TIMEOUT_SECS`).
    pub header_timeout: Duration,
    /// A request's body must arrive within this (`MCPR_BODY_TIMEOUT_SECS`).
    pub body_timeout: Duration,
    /// A connection with no request running is closed after this (`MCPR_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Open connections from one client address (`MCPR_MAX_CONNECTIONS_PER_IP`).
    pub max_connections_per_ip: usize,
    /// Open connections of one listener (`MCPR_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long a list or a call waits for a server still being placed or starting before
    /// it answers without it (`MCPR_STARTUP_GRACE_SECS`): a first `npx -y`/`uvx` run
    /// downloads, a loaded host starts Python servers slowly.
    pub startup_grace: Duration,
}

/// A variable whose value is not what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {problem}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub value: String,
    pub problem: &'static str,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 64,
            max_response_bytes: 64 * 1024 * 1024,
            max_sessions: 10_000,
            max_sessions_per_credential: 1_000,
            session_idle: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections_per_ip: 512,
            max_connections: default_max_connections(open_files_soft_limit()),
            startup_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The limits the variables `get` returns ask for; unset or empty ones keep their default.
    pub fn from_source(get: impl Fn(&str) -> Option<String>) -> Result<Limits, SettingsError> {
        let defaults = Limits::default();
        let count = |variable: &'static str, default: usize| -> Result<usize, SettingsError> {
            match value_of(&get, variable) {
                None => Ok(default),
                Some(value) => parse_count(variable, &value),
            }
        };
        let seconds = |variable: &'static str, default: Duration| {
            count(variable, default.as_secs() as usize).map(|s| Duration::from_secs(s as u64))
        };
        let max_response_bytes = match value_of(&get, "MCPR_MAX_RESPONSE_BYTES") {
            None => defaults.max_response_bytes,
            Some(value) => parse_bytes("MCPR_MAX_RESPONSE_BYTES", &value)?,
        };
        Ok(Limits {
            max_batch: count("MCPR_MAX_BATCH", defaults.max_batch)?,
            max_response_bytes,
            max_sessions: count("MCPR_MAX_SESSIONS", defaults.max_sessions)?,
            max_sessions_per_credential: count(
                "MCPR_MAX_SESSIONS_PER_CREDENTIAL",
                defaults.max_sessions_per_credential,
            )?,
            session_idle: seconds("MCPR_SESSION_IDLE_SECS", defaults.session_idle)?,
            header_timeout: seconds("MCPR_HEADER_TIMEOUT_SECS", defaults.header_timeout)?,
            body_timeout: seconds("MCPR_BODY_TIMEOUT_SECS", defaults.body_timeout)?,
            idle_timeout: seconds("MCPR_IDLE_TIMEOUT_SECS", defaults.idle_timeout)?,
            max_connections_per_ip: count(
                "MCPR_MAX_CONNECTIONS_PER_IP",
                defaults.max_connections_per_ip,
            )?,
            max_connections: count("MCPR_MAX_CONNECTIONS", defaults.max_connections)?,
            startup_grace: seconds("MCPR_STARTUP_GRACE_SECS", defaults.startup_grace)?,
        })
    }

    /// The limits of the process environment.
    pub fn from_env() -> Result<Limits, SettingsError> {
        Limits::from_source(|name| std::env::var(name).ok())
    }

    /// Reads the environment and makes the result what [`Limits::current`] returns: call it
    /// first thing in `main`, so that a bad value stops the start.
    pub fn install_from_env() -> Result<&'static Limits, SettingsError> {
        let limits = Limits::from_env()?;
        Ok(INSTALLED.get_or_init(|| limits))
    }

    /// The process's limits: those installed at start, else (a library used without a
    /// binary's `main`, as in unit tests) the environment's or, when that is invalid, the
    /// defaults.
    pub fn current() -> &'static Limits {
        INSTALLED.get_or_init(|| {
            Limits::from_env().unwrap_or_else(|e| {
                tracing::error!(error = %e, "using the default limits");
                Limits::default()
            })
        })
    }
}

static INSTALLED: OnceLock<Limits> = OnceLock::new();

fn value_of(get: &impl Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    get(variable)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn parse_count(variable: &'static str, value: &str) -> Result<usize, SettingsError> {
    let problem = |problem| SettingsError {
        variable,
        value: value.to_owned(),
        problem,
    };
    let digits: String = value.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(problem("expected a whole number"));
    }
    match digits.parse::<usize>() {
        Ok(0) => Err(problem("must be at least 1")),
        Ok(n) if n > u32::MAX as usize => Err(problem("too large")),
        Ok(n) => Ok(n),
        Err(_) => Err(problem("too large")),
    }
}

/// A size in bytes, with an optional binary unit (`64MiB`, `512 KiB`, `1GiB`).
fn parse_bytes(variable: &'static str, value: &str) -> Result<usize, SettingsError> {
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => {
            return Err(SettingsError {
                variable,
                value: value.to_owned(),
                problem: "expected a number of bytes, optionally with KiB, MiB or GiB",
            });
        }
    };
    let count = parse_count(variable, number).map_err(|e| SettingsError {
        value: value.to_owned(),
        ..e
    })?;
    count.checked_mul(scale).ok_or(SettingsError {
        variable,
        value: value.to_owned(),
        problem: "too large",
    })
}

/// Three quarters of the descriptors the process may open: the rest stays for upstream
/// connections, child processes, the database and the files the router opens itself.
fn default_max_connections(open_files: usize) -> usize {
    (open_files / 4 * 3).max(1)
}

/// The soft limit on open files (`ulimit -n`), from `/proc/self/limits` (no `unsafe` for
/// `getrlimit`); 1024, the usual default, where that cannot be read.
fn open_files_soft_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line["Max open files".len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(vars: &[(&str, &str)]) -> Result<Limits, SettingsError> {
        Limits::from_source(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let l = limits(&[]).unwrap();
        assert_eq!(l.max_batch, 64);
        assert_eq!(l.max_response_bytes, 64 << 20);
        assert_eq!(l.max_sessions, 10_000);
        assert_eq!(l.max_sessions_per_credential, 1_000);
        assert_eq!(l.session_idle, Duration::from_secs(3600));
        assert_eq!(l.header_timeout, Duration::from_secs(10));
        assert_eq!(l.body_timeout, Duration::from_secs(30));
        assert_eq!(l.idle_timeout, Duration::from_secs(60));
        assert_eq!(l.max_connections_per_ip, 512);
        assert_eq!(l.startup_grace, Duration::from_secs(10));
        assert_eq!(
            l.max_connections,
            default_max_connections(open_files_soft_limit())
        );
        assert_eq!(
            limits(&[("MCPR_MAX_BATCH", "  ")]).unwrap(),
            l,
            "blank is unset"
        );
    }

    #[test]
    fn values_are_read() {
        let l = limits(&[
            ("MCPR_MAX_BATCH", "8"),
            ("MCPR_MAX_RESPONSE_BYTES", "2MiB"),
            ("MCPR_MAX_SESSIONS", "10_000"),
            ("MCPR_MAX_SESSIONS_PER_CREDENTIAL", " 3 "),
            ("MCPR_SESSION_IDLE_SECS", "2"),
            ("MCPR_HEADER_TIMEOUT_SECS", "1"),
            ("MCPR_BODY_TIMEOUT_SECS", "4"),
            ("MCPR_IDLE_TIMEOUT_SECS", "5"),
            ("MCPR_MAX_CONNECTIONS_PER_IP", "6"),
            ("MCPR_MAX_CONNECTIONS", "7"),
            ("MCPR_STARTUP_GRACE_SECS", "90"),
        ])
        .unwrap();
        assert_eq!(
            l,
            Limits {
                max_batch: 8,
                max_response_bytes: 2 << 20,
                max_sessions: 10_000,
                max_sessions_per_credential: 3,
                session_idle: Duration::from_secs(2),
                header_timeout: Duration::from_secs(1),
                body_timeout: Duration::from_secs(4),
                idle_timeout: Duration::from_secs(5),
                max_connections_per_ip: 6,
                max_connections: 7,
                startup_grace: Duration::from_secs(90),
            }
        );
        for (text, bytes) in [("1000", 1000), ("512 KiB", 512 << 10), ("1g", 1 << 30)] {
            assert_eq!(
                limits(&[("MCPR_MAX_RESPONSE_BYTES", text)])
                    .unwrap()
                    .max_response_bytes,
                bytes
            );
        }
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (variable, value, problem) in [
            ("MCPR_MAX_BATCH", "0", "must be at least 1"),
            ("MCPR_MAX_BATCH", "-1", "expected a whole number"),
            ("MCPR_MAX_SESSIONS", "lots", "expected a whole number"),
            ("MCPR_SESSION_IDLE_SECS", "1.5", "expected a whole number"),
            ("MCPR_MAX_CONNECTIONS", "99999999999", "too large"),
            (
                "MCPR_MAX_RESPONSE_BYTES",
                "64 MB",
                "expected a number of bytes, optionally with KiB, MiB or GiB",
            ),
            ("MCPR_MAX_RESPONSE_BYTES", "MiB", "expected a whole number"),
        ] {
            let error = limits(&[(variable, value)]).unwrap_err();
            assert_eq!(
                error,
                SettingsError {
                    variable,
                    value: value.to_owned(),
                    problem
                }
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("invalid {variable}="))
            );
        }
    }

    #[test]
    fn connections_default_to_three_quarters_of_the_descriptors() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(20_000), 15_000);
        assert_eq!(default_max_connections(1), 1);
    }
}
