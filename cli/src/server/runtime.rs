//! The `runtime` JSON of a server from the flags of `mcpr server add` and `update`: a
//! process, a remote server or a container (docs/DOCKER.md).

use anyhow::{anyhow, bail};
use serde_json::{Map, Value, json};

use crate::flags::{parse_env, parse_header, split_command};

/// `server add` options of the `docker` runtime (docs/DOCKER.md).
#[derive(clap::Args, Debug, Default)]
pub struct DockerOptions {
    /// Run this image in a container (--command then overrides its entrypoint)
    #[arg(long)]
    image: Option<String>,
    /// Run this npm package in a container (an image built once from MCPR_NODE_IMAGE)
    #[arg(long)]
    npx: Option<String>,
    /// Run this PyPI package in a container (an image built once from MCPR_PYTHON_IMAGE)
    #[arg(long)]
    uvx: Option<String>,
    /// Run --command in a container of the python base image instead of on the host
    #[arg(long, requires = "command")]
    docker: bool,
    /// Argument for the container's program (repeatable)
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Container network: none (default) or egress
    #[arg(long, value_parser = ["none", "egress"])]
    network: Option<String>,
    /// Container memory limit in MiB (default 512)
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Container CPU limit, e.g. 0.5 (default 1)
    #[arg(long)]
    cpus: Option<f64>,
    /// Most processes in the container (default 256)
    #[arg(long)]
    pids: Option<u64>,
}

impl DockerOptions {
    fn wanted(&self) -> bool {
        self.image.is_some() || self.npx.is_some() || self.uvx.is_some() || self.docker
    }

    /// Whether any container flag was given (`--from` takes the proposed runtime instead).
    pub fn any_set(&self) -> bool {
        self.wanted()
            || !self.args.is_empty()
            || self.network.is_some()
            || self.memory_mb.is_some()
            || self.cpus.is_some()
            || self.pids.is_some()
    }

    /// The `docker` runtime JSON; `command` (already split) overrides the entrypoint.
    fn runtime(&self, command: Option<Vec<String>>) -> anyhow::Result<Value> {
        let mut runtime = json!({"kind": "docker"});
        for (key, value) in [
            ("image", &self.image),
            ("npx", &self.npx),
            ("uvx", &self.uvx),
        ] {
            if let Some(value) = value {
                runtime[key] = json!(value);
            }
        }
        let mut args = Vec::new();
        if let Some(mut words) = command {
            if words.is_empty() {
                bail!("--command is empty");
            }
            runtime["command"] = json!(words.remove(0));
            args = words;
        }
        args.extend(self.args.iter().cloned());
        runtime["args"] = json!(args);
        if let Some(network) = &self.network {
            runtime["network"] = json!(network);
        }
        if let Some(memory) = self.memory_mb {
            runtime["memory_mb"] = json!(memory);
        }
        if let Some(cpus) = self.cpus {
            if !(cpus > 0.0 && cpus.is_finite()) {
                bail!("--cpus must be a positive number, got {cpus}");
            }
            runtime["millicpus"] = json!((cpus * 1000.0).round() as u64);
        }
        if let Some(pids) = self.pids {
            runtime["pids"] = json!(pids);
        }
        Ok(runtime)
    }
}

/// The runtime as `GET` showed it, with `env` or `header` pairs set. Its other secrets are
/// still the redacted placeholder, which the API reads as "unchanged".
pub fn edited_runtime(runtime: &Value, env: &[String], header: &[String]) -> anyhow::Result<Value> {
    let mut runtime = runtime.clone();
    let remote = runtime["kind"] == "remote";
    let (field, pairs): (_, anyhow::Result<Vec<(String, String)>>) =
        match (remote, env.is_empty(), header.is_empty()) {
            (false, _, true) => ("env", env.iter().map(|i| parse_env(i)).collect()),
            (true, true, _) => ("headers", header.iter().map(|i| parse_header(i)).collect()),
            (false, _, false) => {
                bail!("--header is for remote servers; a process or container takes --env")
            }
            (true, false, _) => {
                bail!("--env is for processes and containers; a remote server takes --header")
            }
        };
    let pairs = pairs?;
    let Some(object) = runtime.as_object_mut() else {
        bail!("the router showed no runtime for this server");
    };
    let map = object
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    for (key, value) in pairs {
        map[key] = Value::String(value);
    }
    Ok(runtime)
}

/// The runtime of `mcpr server add` from its flags: a container when a docker flag is given,
/// else a process (`--command`) or a remote server (`--remote`).
pub fn added_runtime(
    command: Option<String>,
    env: &[String],
    cwd: Option<String>,
    remote: Option<String>,
    header: &[String],
    docker: &DockerOptions,
) -> anyhow::Result<Value> {
    let env_map = || -> anyhow::Result<Option<Value>> {
        if env.is_empty() {
            return Ok(None);
        }
        let mut map = Map::new();
        for item in env {
            let (k, v) = parse_env(item)?;
            map.insert(k, Value::String(v));
        }
        Ok(Some(Value::Object(map)))
    };
    let runtime = match (command, remote) {
        (command, None) if docker.wanted() => {
            if cwd.is_some() {
                bail!("--cwd is for processes on the host; a container starts in /tmp");
            }
            let words = command
                .map(|line| split_command(&line).map_err(|e| anyhow!("--command: {e}")))
                .transpose()?;
            let mut runtime = docker.runtime(words)?;
            if let Some(env) = env_map()? {
                runtime["env"] = env;
            }
            runtime
        }
        (_, Some(_)) if docker.wanted() => {
            bail!("--remote cannot run in a container: drop --image/--npx/--uvx/--docker")
        }
        (_, Some(_)) if !env.is_empty() => {
            bail!("--env is for processes and containers; a remote server takes --header")
        }
        (Some(line), None) => {
            let mut words = split_command(&line)
                .map_err(|e| anyhow!("--command: {e}"))?
                .into_iter();
            let command = words.next().ok_or_else(|| anyhow!("--command is empty"))?;
            let mut runtime =
                json!({"kind": "process", "command": command, "args": words.collect::<Vec<_>>()});
            if let Some(env) = env_map()? {
                runtime["env"] = env;
            }
            if let Some(cwd) = cwd {
                runtime["cwd"] = Value::String(cwd);
            }
            runtime
        }
        (None, Some(remote)) => {
            let mut runtime = json!({"kind": "remote", "url": remote});
            if !header.is_empty() {
                let mut map = Map::new();
                for item in header {
                    let (k, v) = parse_header(item)?;
                    map.insert(k, Value::String(v));
                }
                runtime["headers"] = Value::Object(map);
            }
            runtime
        }
        _ => bail!("give exactly one of --command or --remote"),
    };
    Ok(runtime)
}
