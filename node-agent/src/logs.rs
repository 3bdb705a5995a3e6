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
    /// Where the current step of a long start (an image build) is shown in status.
    progress: Option<Arc<dyn Fn(String) + Send + Sync>>,
    /// While set, the server's stderr lines are its progress too, after this prefix: what
    /// an installer (`uvx`, `npx`) prints while it resolves, builds and installs.
    stderr_progress: Arc<Mutex<Option<String>>>,
}

/// The longest stderr line shown as progress (status travels on every report).
const MAX_PROGRESS_CHARS: usize = 200;

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
            progress: None,
            stderr_progress: Arc::new(Mutex::new(None)),
        }
    }

    /// A sink whose [`LogSink::progress`] lines also go to `report`.
    pub fn with_progress(mut self, report: impl Fn(String) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// Logs `line` and shows it as the server's current progress in its status.
    pub fn progress(&self, line: String) {
        if let Some(report) = &self.progress {
            report(line.clone());
        }
        self.line("agent", line);
    }

    /// Shows the stderr lines that follow as progress after `prefix` (`None`: no longer).
    pub fn stderr_progress(&self, prefix: Option<String>) {
        *self.stderr_progress.lock().unwrap() = prefix;
    }

    pub fn line(&self, stream: &str, line: String) {
        if stream == "stderr"
            && let Some(report) = &self.progress
            && let Some(prefix) = self.stderr_progress.lock().unwrap().clone()
            && !line.trim().is_empty()
        {
            let shown: String = line.trim().chars().take(MAX_PROGRESS_CHARS).collect();
            report(format!("{prefix}: {shown}"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_reach_status_and_the_log() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink::new(
            "s1".into(),
            buffer.clone(),
            Arc::new(tokio::sync::Notify::new()),
        )
        .with_progress({
            let seen = seen.clone();
            move |line| seen.lock().unwrap().push(line)
        });
        sink.progress("building image x: Step 2/5 : RUN pip install".into());
        sink.line("stderr", "not progress".into());
        assert_eq!(
            *seen.lock().unwrap(),
            ["building image x: Step 2/5 : RUN pip install"]
        );
        let lines: Vec<String> = buffer
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.line.clone())
            .collect();
        assert_eq!(
            lines,
            [
                "building image x: Step 2/5 : RUN pip install",
                "not progress"
            ]
        );
    }
}
