//! The one `text/event-stream` parser of the router: the agent reading its upstreams' answer
//! streams, the gateway's stdio front door reading its own answers, and the CLI reading the
//! router's. Bytes in, each complete event's `data` out; it keeps the last event id and the
//! `retry` a server sent, to resume a stream (SEP-1699).

use std::time::Duration;

#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    data: Vec<String>,
    /// The last `id:` seen (an id holding NUL is ignored, as the SSE specification says).
    pub last_id: Option<String>,
    /// The last `retry:` seen.
    pub retry: Option<Duration>,
}

impl SseParser {
    /// Feeds a chunk; returns the data of every event it completed (multi-line data
    /// joined with `\n`). Lines may end in `\n`, `\r\n`; a UTF-8 character may be split
    /// between chunks.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = memchr::memchr(b'\n', &self.pending[start..]) {
            let end = start + offset;
            let raw = &self.pending[start..end];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = String::from_utf8_lossy(raw).into_owned();
            self.line(&line, &mut events);
            start = end + 1;
        }
        self.pending.drain(..start);
        events
    }

    /// The last event when the stream ends without a blank line.
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let line = String::from_utf8_lossy(&rest).into_owned();
            self.line(line.strip_suffix('\r').unwrap_or(&line), &mut events);
        }
        self.line("", &mut events);
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<String>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(std::mem::take(&mut self.data).join("\n"));
            }
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => self.data.push(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            // `event:` and `:comments` carry nothing the router needs.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;
    use std::time::Duration;

    #[test]
    fn events_across_chunks() {
        let mut p = SseParser::default();
        assert!(
            p.push(b"event: message\r\nid: 1\r\ndata: {\"a\":")
                .is_empty()
        );
        assert_eq!(
            p.push(b"1}\r\n\r\n: keep-alive\n\ndata:x\ndata: y\n\n"),
            ["{\"a\":1}", "x\ny"]
        );
        assert_eq!(p.last_id.as_deref(), Some("1"));
        assert!(p.push(b"data: tail").is_empty());
        assert_eq!(p.finish(), ["tail"]);
    }

    #[test]
    fn a_character_split_between_chunks_survives() {
        let mut p = SseParser::default();
        let bytes = "data: é\n\n".as_bytes();
        assert!(p.push(&bytes[..7]).is_empty());
        assert_eq!(p.push(&bytes[7..]), ["é"]);
    }

    #[test]
    fn priming_events_set_the_id_and_retry() {
        let mut p = SseParser::default();
        assert_eq!(p.push(b"id: 7\nretry: 1500\ndata:\n\n"), [""]);
        assert_eq!(
            (p.last_id.as_deref(), p.retry),
            (Some("7"), Some(Duration::from_millis(1500)))
        );
        p.push(b"id: a\0b\nretry: soon\n\n");
        assert_eq!(
            (p.last_id.as_deref(), p.retry),
            (Some("7"), Some(Duration::from_millis(1500)))
        );
    }
}
