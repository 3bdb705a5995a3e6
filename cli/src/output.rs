//! Formatting for people: plain-text tables, shortening, shell-style quoting and making
//! strings that came from the network safe to put on a terminal.

/// A left-aligned text table: columns separated by two spaces, no trailing padding.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; every cell is [`clean`]ed so it stays on one line and holds no escapes.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = line.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                if i + 1 < columns {
                    text.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned (for `server show`).
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(format!("{label:width$}  {}", clean(value)).trim_end());
        out.push('\n');
    }
    out
}

/// Replaces control characters (newlines, escape sequences, …) with visible escapes, so a
/// hostile or multi-line string cannot rewrite the terminal or break a table.
pub fn clean(s: &str) -> String {
    clean_keeping(s, &[])
}

/// [`clean`], but tabs survive (for log lines).
pub fn clean_line(s: &str) -> String {
    clean_keeping(s, &['\t'])
}

fn clean_keeping(s: &str, keep: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            c if keep.contains(&c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, ending in `…` when cut; newlines become spaces first.
pub fn shorten(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Joins a command line so that it splits back the same way ([`crate::flags::split_command`]).
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c) || !c.is_ascii());
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
pub fn clock_utc(ms: i64) -> String {
    let day_ms = ms.rem_euclid(86_400_000);
    let (h, m, s, milli) = (
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000,
    );
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
pub fn datetime_utc(ms: i64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {}", clock_utc(ms))
}

/// Prints a JSON document for scripts (`--json`), pretty.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The string at a path of object keys, or "" (numbers and booleans are shown too).
pub fn str_at(value: &serde_json::Value, path: &[&str]) -> String {
    let mut v = value;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_trims() {
        let mut t = Table::new(&["NAME", "STATE", "LAST ERROR"]);
        t.row(vec!["time".into(), "running".into(), "".into()]);
        t.row(vec![
            "a-much-longer-name".into(),
            "backoff".into(),
            "exit 1".into(),
        ]);
        assert_eq!(
            t.render(),
            "NAME                STATE    LAST ERROR\n\
             time                running\n\
             a-much-longer-name  backoff  exit 1\n"
        );
    }

    #[test]
    fn clean_neutralises_escapes() {
        assert_eq!(clean("a\nb\x1b[31mc"), "a\\nb\\u{1b}[31mc");
        assert_eq!(clean_line("a\tb\r"), "a\tb\\r");
        assert_eq!(clean("\u{202e}x"), "\\u{202e}x");
    }

    #[test]
    fn shorten_cuts_with_ellipsis() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("line one\nline two", 100), "line one line two");
        assert_eq!(shorten("abcdefghij", 5), "abcd…");
    }

    #[test]
    fn shell_join_quotes_when_needed() {
        assert_eq!(
            shell_join(&["uvx", "mcp-server-time", "--tz=Europe/Paris"]),
            "uvx mcp-server-time --tz=Europe/Paris"
        );
        assert_eq!(
            shell_join(&["echo", "a b", "it's", ""]),
            "echo 'a b' 'it'\\''s' ''"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(datetime_utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(datetime_utc(1_767_225_600_123), "2026-01-01 00:00:00.123");
        assert_eq!(datetime_utc(951_782_400_000), "2000-02-29 00:00:00.000");
    }

    #[test]
    fn clock() {
        assert_eq!(clock_utc(1_764_000_000_123), "16:00:00.123");
    }
}
