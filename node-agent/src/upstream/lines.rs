//! MCP's stdio transport over any pair of byte pipes: one JSON-RPC message per line. The
//! `process` runtime wires a child's stdin/stdout here and the `docker` runtime a container's
//! attach stream, so both speak the protocol through the same code; both read the server's
//! stderr with [`read_log`].
//!
//! A server's output is untrusted bytes. A line that is not UTF-8, not JSON-RPC or too long
//! is skipped and logged, and reading goes on: tokio-util's `FramedRead` ends its stream for
//! good after the first decode error (and `LinesCodec` has one for invalid UTF-8 and for
//! over-long lines), which left a pending call hanging and the server dying of a broken pipe
//! on its next write. Notices of skipped lines are cut to a preview and rate-limited, so a
//! noisy server cannot flood its log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use mcpr_core::jsonrpc::Message;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, FramedRead};

use super::{Connection, Outbound, UpstreamEvent};
use crate::logs::LogSink;

/// The longest line (one JSON-RPC message) accepted from a server.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// The longest stderr line kept whole in the log; longer ones are cut.
const MAX_LOG_LINE_BYTES: usize = 64 * 1024;
/// How much of a skipped line its notice shows.
const PREVIEW_BYTES: usize = 200;
/// Notices of skipped lines logged per stream and window; the rest are counted.
const NOTICES_PER_WINDOW: u32 = 20;
const NOTICE_WINDOW: Duration = Duration::from_secs(10);

/// A [`Connection`] whose messages go to `stdin` and come from `stdout`, one per line. Lines
/// on `stdout` that are not JSON-RPC are kept as the server's log. The caller closes the
/// connection when the other end goes away (exit status, container gone).
pub fn connect<W, R>(
    stdin: W,
    stdout: R,
    logs: LogSink,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    request_timeout: Duration,
) -> Arc<Connection>
where
    W: AsyncWrite + Send + Unpin + 'static,
    R: AsyncRead + Send + Unpin + 'static,
{
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(256);
    let conn = Connection::new(Outbound::Lines(out_tx), events, request_timeout);
    tokio::spawn(write_lines(out_rx, stdin));
    tokio::spawn(read_lines(conn.clone(), stdout, logs));
    conn
}

/// One message per line; batches whatever is queued before flushing.
async fn write_lines<W: AsyncWrite + Unpin>(mut out_rx: mpsc::Receiver<Vec<u8>>, mut stdin: W) {
    while let Some(mut bytes) = out_rx.recv().await {
        bytes.push(b'\n');
        if stdin.write_all(&bytes).await.is_err() {
            return;
        }
        while let Ok(mut more) = out_rx.try_recv() {
            more.push(b'\n');
            if stdin.write_all(&more).await.is_err() {
                return;
            }
        }
        if stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Responses complete waiting requests; upstream requests get answers.
async fn read_lines<R: AsyncRead + Unpin>(conn: Arc<Connection>, stdout: R, logs: LogSink) {
    let mut lines = FramedRead::new(stdout, LineCodec::new(MAX_MESSAGE_BYTES));
    let mut notices = Notices::new(logs, "stdout");
    while let Some(line) = lines.next().await {
        // Only an I/O error ends the stream: the pipe is gone.
        let Ok(line) = line else { break };
        let line = match line {
            Line::Whole(line) => line,
            Line::TooLong { head, len } => {
                notices.log(too_long(&head, len, MAX_MESSAGE_BYTES));
                continue;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // Parsing first keeps the common case to one pass (serde_json checks the UTF-8).
        match Message::parse(&line) {
            Ok(msg) => {
                if let Some(answer) = conn.on_message(msg, None) {
                    let _ = conn.notify(answer).await;
                }
            }
            // Servers that print to stdout break the protocol; keep the line as a log so
            // the admin can see why.
            Err(_) => match std::str::from_utf8(&line) {
                Ok(text) => notices.log(cut(text, MAX_LOG_LINE_BYTES)),
                Err(_) => notices.log(not_utf8(&line)),
            },
        }
    }
    notices.flush();
}

/// A server's stderr, line by line, into its log. Lines that are not UTF-8 are skipped with a
/// notice; over-long ones are cut.
pub async fn read_log<R: AsyncRead + Unpin>(stderr: R, logs: LogSink) {
    let mut lines = FramedRead::new(stderr, LineCodec::new(MAX_LOG_LINE_BYTES));
    let mut notices = Notices::new(logs.clone(), "stderr");
    while let Some(Ok(line)) = lines.next().await {
        match line {
            Line::Whole(line) => match std::str::from_utf8(&line) {
                Ok(text) => logs.line("stderr", text.to_owned()),
                Err(_) => notices.log(not_utf8(&line)),
            },
            Line::TooLong { head, len } => notices.log(too_long(&head, len, MAX_LOG_LINE_BYTES)),
        }
    }
    notices.flush();
}

fn not_utf8(line: &[u8]) -> String {
    format!(
        "skipped a line that is not UTF-8 ({}): {}",
        byte_count(line.len()),
        preview(line)
    )
}

fn too_long(head: &[u8], len: usize, max: usize) -> String {
    format!(
        "skipped a line of {} (more than {max}): {}…",
        byte_count(len),
        preview(head)
    )
}

/// `text`, or its first `max` bytes (on a character boundary) with its length.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} in all)", &text[..end], byte_count(text.len()))
}

/// The first bytes of a line, printable ASCII as is and everything else escaped, so a notice
/// can neither be long nor carry control characters into a terminal.
fn preview(line: &[u8]) -> String {
    let shown = &line[..line.len().min(PREVIEW_BYTES)];
    let mut text = shown.escape_ascii().to_string();
    if shown.len() < line.len() {
        text.push('…');
    }
    text
}

fn byte_count(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

/// Logs notices of skipped lines, at most [`NOTICES_PER_WINDOW`] per [`NOTICE_WINDOW`]; the
/// rest are counted and summed up once the window is over.
struct Notices {
    logs: LogSink,
    stream: &'static str,
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl Notices {
    fn new(logs: LogSink, stream: &'static str) -> Notices {
        Notices {
            logs,
            stream,
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }

    fn log(&mut self, notice: String) {
        if self.window_start.elapsed() >= NOTICE_WINDOW {
            self.flush();
            self.window_start = Instant::now();
            self.logged = 0;
        }
        if self.logged < NOTICES_PER_WINDOW {
            self.logged += 1;
            self.logs.line(self.stream, notice);
        } else {
            self.suppressed += 1;
        }
    }

    fn flush(&mut self) {
        if self.suppressed > 0 {
            self.logs.line(
                self.stream,
                format!(
                    "{} more unreadable lines skipped (at most {NOTICES_PER_WINDOW} are logged every {} s)",
                    self.suppressed,
                    NOTICE_WINDOW.as_secs()
                ),
            );
            self.suppressed = 0;
        }
    }
}

/// One line of a server's output.
#[derive(Debug, PartialEq)]
enum Line {
    /// The bytes before the newline (a trailing `\r` removed), not checked in any way.
    Whole(BytesMut),
    /// A line longer than the codec's limit: dropped as it arrived, but for its first bytes.
    TooLong { head: Vec<u8>, len: usize },
}

/// Splits bytes into [`Line`]s. Unlike `LinesCodec` it has no error of its own: content is
/// judged by the reader, so a bad line costs that line and nothing more.
struct LineCodec {
    max_length: usize,
    /// Bytes at the front of the buffer already searched for a newline.
    searched: usize,
    /// The line being dropped for its length: its first bytes and its length so far.
    dropping: Option<(Vec<u8>, usize)>,
}

impl LineCodec {
    fn new(max_length: usize) -> LineCodec {
        LineCodec {
            max_length,
            searched: 0,
            dropping: None,
        }
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Line>> {
        let newline = buf[self.searched..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| self.searched + i);
        self.searched = 0;
        if let Some((_, len)) = self.dropping.as_mut() {
            let Some(at) = newline else {
                *len += buf.len();
                buf.clear();
                return Ok(None);
            };
            *len += at;
            buf.advance(at + 1);
            let (head, len) = self.dropping.take().expect("dropping a line");
            return Ok(Some(Line::TooLong { head, len }));
        }
        match newline {
            Some(at) if at > self.max_length => {
                let head = buf[..PREVIEW_BYTES.min(at)].to_vec();
                buf.advance(at + 1);
                Ok(Some(Line::TooLong { head, len: at }))
            }
            Some(at) => {
                let mut line = buf.split_to(at + 1);
                line.truncate(if line[..at].ends_with(b"\r") {
                    at - 1
                } else {
                    at
                });
                Ok(Some(Line::Whole(line)))
            }
            None if buf.len() > self.max_length => {
                self.dropping = Some((buf[..PREVIEW_BYTES.min(buf.len())].to_vec(), buf.len()));
                buf.clear();
                Ok(None)
            }
            None => {
                self.searched = buf.len();
                Ok(None)
            }
        }
    }

    /// The last line may lack its newline.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Line>> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if let Some((head, len)) = self.dropping.take() {
            return Ok(Some(Line::TooLong { head, len }));
        }
        self.searched = 0;
        if buf.is_empty() {
            return Ok(None);
        }
        let line = buf.split();
        Ok(Some(Line::Whole(line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]], max: usize) -> Vec<Line> {
        let mut codec = LineCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in input {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            out.push(line);
        }
        out
    }

    fn whole(bytes: &[u8]) -> Line {
        Line::Whole(BytesMut::from(bytes))
    }

    #[test]
    fn bad_bytes_cost_their_line_only() {
        assert_eq!(
            lines(
                &[b"\xff\nnot json\r\n{\"a\":1}\n", b"\xfe\xfe", b"\ntail"],
                1024
            ),
            [
                whole(b"\xff"),
                whole(b"not json"),
                whole(b"{\"a\":1}"),
                whole(b"\xfe\xfe"),
                whole(b"tail")
            ]
        );
    }

    #[test]
    fn long_lines_are_dropped_in_pieces_and_reading_goes_on() {
        let long = vec![b'x'; 300];
        let got = lines(&[&long, &long, b"y\nok\n", &long, b"\nlast"], 256);
        assert_eq!(
            got,
            [
                Line::TooLong {
                    head: long[..PREVIEW_BYTES].to_vec(),
                    len: 601
                },
                whole(b"ok"),
                Line::TooLong {
                    head: long[..PREVIEW_BYTES].to_vec(),
                    len: 300
                },
                whole(b"last"),
            ]
        );
        let in_one_piece = [&long[..], b"\nok"].concat();
        assert_eq!(
            lines(&[&in_one_piece], 256),
            [
                Line::TooLong {
                    head: long[..PREVIEW_BYTES].to_vec(),
                    len: 300
                },
                whole(b"ok"),
            ]
        );
    }

    #[test]
    fn notices_are_escaped_cut_and_rate_limited() {
        assert_eq!(
            not_utf8(b"\xff"),
            "skipped a line that is not UTF-8 (1 byte): \\xff"
        );
        assert_eq!(
            not_utf8(b"ok \x1b[2J\xc3"),
            "skipped a line that is not UTF-8 (8 bytes): ok \\x1b[2J\\xc3"
        );
        assert!(preview(&[b'a'; 1000]).ends_with("a…"));
        assert_eq!(cut("héllo", 2), "h… (6 bytes in all)");

        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = LogSink::new(
            "s".into(),
            buffer.clone(),
            Arc::new(tokio::sync::Notify::new()),
        );
        let mut notices = Notices::new(sink, "stdout");
        for i in 0..100 {
            notices.log(format!("notice {i}"));
        }
        notices.flush();
        let logged: Vec<String> = buffer
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.line.clone())
            .collect();
        assert_eq!(logged.len(), NOTICES_PER_WINDOW as usize + 1);
        assert_eq!(
            logged.last().unwrap(),
            "80 more unreadable lines skipped (at most 20 are logged every 10 s)"
        );
    }
}
