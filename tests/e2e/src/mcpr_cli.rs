//! Running `mcpr` against a router as a script does: the command, its output when it must
//! succeed, its one-line error when it must fail.

use std::process::{Command, Output};

use crate::harness::{Router, bin};

/// `mcpr --url ROUTER ARGS…`, with no `MCPR_URL` from the environment.
pub fn mcpr(router: &Router, args: &[&str]) -> Output {
    Command::new(bin("mcpr"))
        .arg("--url")
        .arg(router.url())
        .args(args)
        .env_remove("MCPR_URL")
        .output()
        .expect("run mcpr")
}

pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "mcpr failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The one-line error of a refused command.
pub fn fails(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "mcpr should have failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "an error is one line: {stderr}"
    );
    stderr
}
