//! The benchmark at a small scale (3 agents, 2 gateways, 10 servers, 5 added): it runs
//! against the real control plane and Postgres, and every gateway's snapshot ends with every
//! server callable. No figure is checked (times go to docs/BENCHMARKS.md, not to tests).

use std::process::Command;

#[test]
fn every_gateway_sees_every_server() {
    let Ok(database_url) = std::env::var("MCPR_TEST_DATABASE_URL") else {
        if std::env::var("MCPR_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("MCPR_REQUIRE_POSTGRES=1 but MCPR_TEST_DATABASE_URL is not set");
        }
        eprintln!(
            "\n!!! SKIPPING the cluster benchmark smoke test: set MCPR_TEST_DATABASE_URL=postgres://… (scripts/test does) !!!\n"
        );
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let control_plane = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .join("mcpr-control-plane");
    assert!(
        control_plane.exists(),
        "{} not found: build the binaries first (cargo build --workspace --bins, as scripts/test does)",
        control_plane.display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mcpr-cluster-bench"))
        .args(["--agents", "3", "--gateways", "2", "--servers", "10"])
        .args(["--tools", "3", "--samples", "5", "--timeout-secs", "30"])
        .arg("--control-plane")
        .arg(&control_plane)
        .arg("--database-url")
        .arg(&database_url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the benchmark failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("10 servers (30 tools) imported and callable on every gateway"),
        "{stdout}"
    );
    assert!(stdout.contains("(0 timed out"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| callable on all 2 gateways |"))
        .unwrap_or_else(|| panic!("no row for the gateways:\n{stdout}"));
    assert!(
        row.starts_with("| callable on all 2 gateways | 5 |"),
        "{row}"
    );
}
