//! The `python_sandbox` meta-tool of the hierarchical view. The gateway runs no code: it
//! relays the call to a node agent as a `tools/call` for the reserved provider name
//! [`PROVIDER`] (provider names cannot start with '_'), where `node-agent/src/sandbox.rs`
//! runs it in a fresh locked-down container. Agents are tried in turn, starting from a
//! rotating one; an agent without a sandbox (no Docker, no python image) answers
//! "unavailable" and the next one is tried, so the caller gets an error only when none has
//! one, and then with the reason.

use std::sync::atomic::{AtomicUsize, Ordering};

use mcpr_core::jsonrpc::{self, Message, RpcError, code};
use serde_json::{Map, Value, json};

use crate::Gateway;

/// The provider name agents answer sandbox calls under.
pub const PROVIDER: &str = "_sandbox";
/// The meta-tool's name.
pub const TOOL: &str = "python_sandbox";

/// Spreads calls over the agents.
static NEXT_AGENT: AtomicUsize = AtomicUsize::new(0);

/// The meta-tool as listed in `tools/list`.
pub fn tool() -> Value {
    json!({
        "name": TOOL,
        "title": "Run Python in a sandbox",
        "description": "Run a Python 3 program in a fresh, isolated container with no network access and return its stdout, stderr and exit code. PyPI packages listed in libraries are installed first (wheels only; the first call with a given set builds an image, later calls reuse it). Limits: wall time (timeout, default 30 s), 256 MB of memory, 64 processes, 64 KB of output per stream. Only /tmp is writable; nothing persists between calls.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "The Python program to run"},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "description": "Wall time limit in seconds (default 30)"},
                "libraries": {
                    "type": "array",
                    "maxItems": 20,
                    "items": {"type": "string", "pattern": "^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(==[A-Za-z0-9][A-Za-z0-9.!+_-]*)?$"},
                    "description": "PyPI packages the program imports, as NAME or NAME==VERSION (e.g. [\"numpy\", \"six==1.17.0\"])"
                }
            },
            "required": ["code"]
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "exit_code": {"type": ["integer", "null"]},
                "duration_ms": {"type": "integer"},
                "timed_out": {"type": "boolean"},
                "oom_killed": {"type": "boolean"},
                "stdout_truncated": {"type": "boolean"},
                "stderr_truncated": {"type": "boolean"}
            },
            "required": ["stdout", "stderr", "exit_code", "duration_ms", "timed_out", "oom_killed"]
        },
        "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false}
    })
}

impl Gateway {
    /// Runs `python_sandbox` on some agent; the answer to the client's `tools/call` `id`.
    pub(crate) async fn python_sandbox(
        &self,
        id: Value,
        session: &str,
        arguments: Map<String, Value>,
    ) -> Message {
        if !matches!(arguments.get("code"), Some(Value::String(_))) {
            return Message::result(id, tool_error("python_sandbox: \"code\" must be a string"));
        }
        let snapshot = self.snapshot.load_full();
        let mut agents: Vec<&String> = snapshot.agents.values().collect();
        agents.sort();
        agents.dedup();
        if agents.is_empty() {
            return Message::result(
                id,
                tool_error("python_sandbox is unavailable: no node agent is connected"),
            );
        }
        let first = NEXT_AGENT.fetch_add(1, Ordering::Relaxed);
        let mut reasons = Vec::new();
        for i in 0..agents.len() {
            let relay_url = agents[(first + i) % agents.len()];
            let call = Message::request(
                id.clone(),
                "tools/call",
                Some(json!({"name": TOOL, "arguments": arguments})),
            );
            match self
                .relays
                .request(relay_url, PROVIDER, session, call)
                .await
            {
                Ok(mut response) => match unavailable(&response) {
                    Some(reason) => reasons.push(reason),
                    None => {
                        response.id = Some(id);
                        return response;
                    }
                },
                Err(error) if error.code == code::UPSTREAM_UNAVAILABLE => {
                    reasons.push(error.message)
                }
                Err(error) => return Message::error(id, &error),
            }
        }
        reasons.dedup();
        Message::result(id, tool_error(&reasons.join("; ")))
    }
}

/// The reason when an agent answered that it has no sandbox.
fn unavailable(response: &Message) -> Option<String> {
    let error = response.error.as_ref()?;
    let error: RpcError = serde_json::from_str(error.get()).ok()?;
    (error.code == code::UPSTREAM_UNAVAILABLE).then_some(error.message)
}

fn tool_error(text: &str) -> Box<serde_json::value::RawValue> {
    jsonrpc::to_raw(&json!({"content": [{"type": "text", "text": text}], "isError": true}))
}
