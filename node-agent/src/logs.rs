//! Server log lines (stderr, stray stdout, lifecycle events) on their way to the control
//! plane, where `mcpr server logs` reads them.

use std::sync::{Arc, Mutex};

use mcpr_proto as pb;

/// Where one server's log lines go; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    server_id: String,
    buffer: Arc<Mutex<Vec<pb::LogLine>>>,
    wake: Arc<tokio::sync::Notify>,
}

/// Lines buffered before the oldest are dropped (the control plane is unreachable).
const MAX_BUFFERED: usize = 10_000;

impl LogSink {
    pub fn new(
        server_id: String,
        buffer: Arc<Mutex<Vec<pb::LogLine>>>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        LogSink {
            server_id,
            buffer,
            wake,
        }
    }

    pub fn line(&self, stream: &str, line: String) {
        tracing::debug!(server = %self.server_id, stream, "{line}");
        let mut buffer = self.buffer.lock().unwrap();
        if buffer.len() >= MAX_BUFFERED {
            buffer.remove(0);
        }
        buffer.push(pb::LogLine {
            server_id: self.server_id.clone(),
            at_ms: mcpr_core::now_ms(),
            stream: stream.to_owned(),
            line,
        });
        drop(buffer);
        self.wake.notify_one();
    }
}
