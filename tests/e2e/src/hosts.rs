//! Simulated hosts for fault tests (issue 15): each host is a Linux network namespace with
//! an address of its own on a bridge of the test's making (a veth pair per host), so that a
//! test can kill a host's processes, cut the host off (its traffic dropped by iptables in
//! its namespace) and restore it, while every process still runs the real binaries.
//! Needs root (CI runs as root); [`Network::available`] says why not otherwise. Everything
//! made is removed on drop, also when the test fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Proc, wait_for};

/// Runs `ip`/`iptables` and panics with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A bridge with hosts on one /24 of 10.0.0.0/8 that no other test uses at the time.
pub struct Network {
    bridge: String,
    /// `10.A.B`: the hosts are `10.A.B.2` and up; the test process (the bridge) is `.1`.
    prefix: String,
    tag: u32,
    hosts: Vec<String>,
}

/// A network namespace on a [`Network`].
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub namespace: String,
    /// The host's address, reachable from the test process.
    pub ip: String,
}

impl Network {
    /// `Err(why)` when network namespaces cannot be made here (not root, no `ip`).
    pub fn available() -> Result<(), String> {
        let probe = format!("mcprprobe{}", std::process::id());
        let made = Command::new("ip")
            .args(["netns", "add", &probe])
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
        if !made.status.success() {
            return Err(format!(
                "ip netns add failed (root is needed): {}",
                String::from_utf8_lossy(&made.stderr).trim()
            ));
        }
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
        Command::new("iptables")
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run iptables: {e}"))?;
        Ok(())
    }

    /// Makes a new bridge on a free /24. The tag in its name claims the subnet: creating a bridge
    /// whose name exists fails, so two tests never share one.
    pub fn create() -> Network {
        let seed = std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos());
        for attempt in 0..200u32 {
            let tag = (seed.wrapping_add(attempt.wrapping_mul(7919))) % 8000;
            let bridge = format!("mcprb{tag}");
            let made = Command::new("ip")
                .args(["link", "add", &bridge, "type", "bridge"])
                .stderr(Stdio::null())
                .status()
                .expect("ip");
            if !made.success() {
                continue;
            }
            let prefix = format!("10.{}.{}", 100 + tag / 250, tag % 250);
            run(
                "ip",
                &["addr", "add", &format!("{prefix}.1/24"), "dev", &bridge],
            );
            run("ip", &["link", "set", &bridge, "up"]);
            // Docker's FORWARD policy (DROP) also filters bridged frames when
            // br_netfilter is loaded: let the test's hosts reach each other.
            let _ = Command::new("iptables")
                .args([
                    "-w", "-I", "FORWARD", "1", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
                ])
                .status();
            return Network {
                bridge,
                prefix,
                tag,
                hosts: Vec::new(),
            };
        }
        panic!("no free test subnet after 200 attempts");
    }

    /// A new host on the network: its namespace, a veth pair to the bridge, an address.
    pub fn host(&mut self, name: &str) -> Host {
        let index = self.hosts.len() + 2;
        let namespace = format!("mcpr{}h{index}", self.tag);
        let outer = format!("mcprv{}h{index}", self.tag);
        let ip = format!("{}.{index}", self.prefix);
        run("ip", &["netns", "add", &namespace]);
        self.hosts.push(namespace.clone());
        run(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &namespace,
            ],
        );
        run("ip", &["link", "set", &outer, "master", &self.bridge]);
        run("ip", &["link", "set", &outer, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &namespace, "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        inside(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["link", "set", "lo", "up"]);
        Host {
            name: name.to_owned(),
            namespace,
            ip,
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Processes in the namespaces are the test's `Proc`s, killed before this drops
        // (declared after the network) or by their own drop.
        for namespace in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        let _ = Command::new("iptables")
            .args([
                "-w",
                "-D",
                "FORWARD",
                "-i",
                &self.bridge,
                "-o",
                &self.bridge,
                "-j",
                "ACCEPT",
            ])
            .status();
    }
}

impl Host {
    /// `program` to be started on this host (`ip netns exec`, which execs it: the child's
    /// pid is the program's).
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace])
            .arg(program);
        command
    }

    fn iptables(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.namespace, "iptables", "-w"];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Drops all of the host's traffic, both ways (its loopback stays up): to its peers it
    /// is as if its cable were pulled.
    pub fn cut_off(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            let interface = if chain == "INPUT" { "-i" } else { "-o" };
            self.iptables(&["-I", chain, "1", interface, "eth0", "-j", "DROP"]);
        }
    }

    /// Undoes [`Host::cut_off`].
    pub fn restore(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            let interface = if chain == "INPUT" { "-i" } else { "-o" };
            self.iptables(&["-D", chain, interface, "eth0", "-j", "DROP"]);
        }
    }

    /// Drops the traffic between this host and `peer`, both ways; the rest flows.
    pub fn cut_off_from(&self, peer: &Host) {
        self.iptables(&["-I", "INPUT", "1", "-s", &peer.ip, "-j", "DROP"]);
        self.iptables(&["-I", "OUTPUT", "1", "-d", &peer.ip, "-j", "DROP"]);
    }

    /// Undoes [`Host::cut_off_from`].
    pub fn restore_to(&self, peer: &Host) {
        self.iptables(&["-D", "INPUT", "-s", &peer.ip, "-j", "DROP"]);
        self.iptables(&["-D", "OUTPUT", "-d", &peer.ip, "-j", "DROP"]);
    }
}

/// A PostgreSQL server of the test's own on `host` (port 5432, trust authentication for
/// the test network, data in a temporary directory), so that a test may restart it.
pub struct Postgres {
    pub proc: Option<Proc>,
    host: Host,
    data: tempfile::TempDir,
    bindir: std::path::PathBuf,
}

impl Postgres {
    /// The server binaries (Debian's `postgresql`, as `scripts/postgres` installs it).
    fn bindir() -> Option<std::path::PathBuf> {
        let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|d| d.join("postgres").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    pub async fn start(host: &Host) -> Postgres {
        let bindir = Postgres::bindir().expect("PostgreSQL server binaries (scripts/postgres)");
        let data = tempfile::tempdir().unwrap();
        run("chown", &["postgres", &data.path().display().to_string()]);
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bindir.join("initdb"))
            .args(["-D"])
            .arg(data.path().join("pg"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        std::fs::write(
            data.path().join("pg/pg_hba.conf"),
            "local all all trust\nhost all all 10.0.0.0/8 trust\n",
        )
        .unwrap();
        let mut postgres = Postgres {
            proc: None,
            host: host.clone(),
            data,
            bindir,
        };
        postgres.run().await;
        postgres
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@{}:5432/postgres", self.host.ip)
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Runs one SQL statement with `psql`, as an operator at the database would.
    pub fn sql(&self, statement: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .arg(self.url())
            .args(["-c", statement])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql -c {statement:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts the server (again) and waits until it accepts connections. Commits are
    /// synchronous (the default): an acknowledged write survives a crash of the server.
    async fn run(&mut self) {
        // setpriv execs (runuser would fork): the process's pid is the postmaster's.
        let mut command = self.host.command(Path::new("setpriv"));
        command
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(self.bindir.join("postgres"))
            .arg("-D")
            .arg(self.data.path().join("pg"))
            .args(["-h", &self.host.ip, "-p", "5432", "-k", ""])
            .args(["-c", "fsync=off", "-c", "max_connections=200"]);
        self.proc = Some(Proc::spawn("postgres", command));
        wait_for(
            "the test's Postgres to accept connections",
            Duration::from_secs(30),
            || {
                let ready = Command::new(self.bindir.join("pg_isready"))
                    .args(["-q", "-h", &self.host.ip, "-p", "5432", "-U", "postgres"])
                    .status()
                    .is_ok_and(|s| s.success());
                async move { ready.then_some(()) }
            },
        )
        .await;
    }

    /// Crashes the server (SIGQUIT: immediate shutdown, no checkpoint, recovery from the
    /// log at the next start) and starts it again after `down`.
    pub async fn restart(&mut self, down: Duration) {
        if let Some(proc) = &self.proc {
            let _ = Command::new("kill")
                .args(["-QUIT", &proc.pid().to_string()])
                .status();
        }
        if let Some(mut proc) = self.proc.take() {
            proc.wait_exit(Duration::from_secs(20)).await;
        }
        tokio::time::sleep(down).await;
        self.run().await;
    }
}

/// Pids of the processes whose parent is `parent` and whose command line holds `needle`.
pub fn children_with(parent: u32, needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name in parentheses may hold spaces: fields count from its end.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is the state; a zombie has exited already.
        if fields.first() == Some(&"Z") || fields.get(1) != Some(&parent.to_string().as_str()) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(pid);
        }
    }
    found
}
