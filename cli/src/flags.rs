//! Values of command-line flags that several command groups take: a `--command` line split
//! like a shell would, `--env KEY=VALUE` and `--header NAME=VALUE` pairs.

use anyhow::bail;

/// Splits a command line with POSIX-shell-like rules: whitespace separates words, `'…'` is
/// literal, `"…"` allows `\"`, `\\`, `\$` and `` \` ``, and a backslash outside quotes
/// escapes the next character.
pub fn split_command(line: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => bail!("unterminated ' quote in {line:?}"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => bail!("unterminated \" quote in {line:?}"),
                        },
                        Some(c) => word.push(c),
                        None => bail!("unterminated \" quote in {line:?}"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => bail!("a trailing backslash in {line:?} escapes nothing"),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `KEY=VALUE` for `--env`: split at the first `=`; the key must not be empty.
pub fn parse_env(item: &str) -> anyhow::Result<(String, String)> {
    match item.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        Some(_) => bail!("--env {item:?}: the name before '=' is empty (expected KEY=VALUE)"),
        None => bail!("--env {item:?}: missing '=' (expected KEY=VALUE)"),
    }
}

/// `Name=value` or `Name: value` for `--header` (header names contain neither `=` nor `:`).
pub fn parse_header(item: &str) -> anyhow::Result<(String, String)> {
    let Some(at) = item.find(['=', ':']) else {
        bail!("--header {item:?}: missing '=' (expected NAME=VALUE)");
    };
    let (key, value) = (item[..at].trim(), &item[at + 1..]);
    if key.is_empty() {
        bail!("--header {item:?}: the name before '=' is empty (expected NAME=VALUE)");
    }
    let value = if item.as_bytes()[at] == b':' {
        value.trim_start()
    } else {
        value
    };
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::shell_join;

    #[test]
    fn splits_commands_like_a_shell() {
        assert_eq!(
            split_command("uvx mcp-server-time").unwrap(),
            ["uvx", "mcp-server-time"]
        );
        assert_eq!(
            split_command("  npx -y   @scope/pkg  ").unwrap(),
            ["npx", "-y", "@scope/pkg"]
        );
        assert_eq!(
            split_command(r#"run "a b" 'c "d"' e\ f"#).unwrap(),
            ["run", "a b", "c \"d\"", "e f"]
        );
        assert_eq!(
            split_command(r#"x "q\"uote" "back\\slash" "keep\n""#).unwrap(),
            ["x", "q\"uote", "back\\slash", "keep\\n"]
        );
        assert_eq!(split_command(r#"x '' """#).unwrap(), ["x", "", ""]);
        assert_eq!(split_command("a'b'\"c\"d").unwrap(), ["abcd"]);
        assert!(split_command("").unwrap().is_empty());
        assert!(
            split_command("x 'open")
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
        assert!(
            split_command("x \"open")
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
        assert!(split_command("x \\").is_err());
    }

    #[test]
    fn split_and_join_round_trip() {
        let words = ["cmd", "a b", "it's", "", "$HOME", "x\"y"];
        assert_eq!(split_command(&shell_join(&words)).unwrap(), words);
    }

    #[test]
    fn parses_env_pairs() {
        assert_eq!(parse_env("TZ=UTC").unwrap(), ("TZ".into(), "UTC".into()));
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("EMPTY=").unwrap(), ("EMPTY".into(), "".into()));
        let missing = parse_env("TZ").unwrap_err().to_string();
        assert!(
            missing.contains("missing '='") && missing.contains("TZ"),
            "{missing}"
        );
        assert!(parse_env("=x").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn parses_headers_with_equals_or_colon() {
        assert_eq!(
            parse_header("Authorization=Bearer a=b").unwrap(),
            ("Authorization".into(), "Bearer a=b".into())
        );
        assert_eq!(
            parse_header("Authorization: Bearer x").unwrap(),
            ("Authorization".into(), "Bearer x".into())
        );
        assert!(
            parse_header("NoSeparator")
                .unwrap_err()
                .to_string()
                .contains("missing '='")
        );
    }
}
