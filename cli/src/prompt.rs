//! Questions to the person at the terminal: a line, or a secret typed without echo. Only
//! asked when stdin is a terminal (`is_interactive`); scripts get flags instead.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

/// Whether there is a person to ask: stdin is a terminal.
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks `question` on stderr and reads one line (without its line end). End of input is an
/// error: a closed terminal must not read as an empty answer.
pub fn line(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the answer")?;
    if read == 0 {
        bail!("no answer to {:?}: stdin was closed", question.trim());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Like [`line`], with the typing hidden (`stty -echo`) when stdin is a terminal, so a
/// secret never shows on screen.
pub fn secret(question: &str) -> anyhow::Result<String> {
    let echo = |on: bool| {
        std::process::Command::new("stty")
            .arg(if on { "echo" } else { "-echo" })
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let echo_off = is_interactive() && echo(false);
    let answer = line(question);
    if echo_off {
        echo(true);
        // The Enter the person typed was not echoed either.
        eprintln!();
    }
    answer
}
