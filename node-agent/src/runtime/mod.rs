//! Runtimes that isolate what they run: `docker` (one locked-down container per server, via
//! the Docker Engine API) and the images it needs. The `process` and `remote` runtimes are
//! plain upstream sessions (`crate::upstream`); `repo_build` builds a server's image from a
//! repository's Dockerfile. The `sandbox` (python_sandbox's warm pool)
//! sits beside the docker runtime whose containers it uses. Below the supervisor: nothing
//! here imports it.

pub mod docker;
pub mod images;
pub mod repo_build;
pub mod sandbox;

pub use docker::{DockerRuntime, DockerSettings};

/// Command-line flags and variables of the `docker` runtime and the sandbox, shared by
/// `mcpr-node-agent` and `mcpr up`.
#[derive(Debug, Clone, clap::Args)]
pub struct DockerArgs {
    /// Base image of `uvx` and `command` servers and of the python sandbox, pulled on first
    /// use (without a registry: `scripts/docker-images python` builds mcpr/python:bookworm,
    /// used when the default cannot be pulled).
    #[arg(long, env = "MCPR_PYTHON_IMAGE", default_value = images::DEFAULT_PYTHON_IMAGE)]
    pub python_image: String,
    /// Base image of `npx` servers, pulled on first use (without a registry:
    /// `scripts/docker-images node` builds mcpr/node:bookworm).
    #[arg(long, env = "MCPR_NODE_IMAGE", default_value = images::DEFAULT_NODE_IMAGE)]
    pub node_image: String,
    /// Warm containers kept for python_sandbox (0: a cold container per call).
    #[arg(long, env = "MCPR_SANDBOX_POOL", default_value_t = 2)]
    pub sandbox_pool: usize,
    /// Python sandbox calls running at once on this agent; more wait their turn.
    #[arg(long, env = "MCPR_SANDBOX_CONCURRENCY", default_value_t = 16)]
    pub sandbox_concurrency: usize,
    /// Label value that marks this agent's containers; it reaps them on start and stop
    /// (default: derived from the agent id and its control plane, or `mcpr up`'s data).
    #[arg(long, env = "MCPR_DOCKER_OWNER")]
    pub docker_owner: Option<String>,
}

impl DockerArgs {
    /// The runtime's settings; `owner` is left for `lib::start` (or the caller) to fill.
    pub fn settings(&self) -> DockerSettings {
        DockerSettings {
            python_image: self.python_image.clone(),
            node_image: self.node_image.clone(),
            sandbox_pool: self.sandbox_pool,
            owner: self.docker_owner.clone().unwrap_or_default(),
            ..Default::default()
        }
    }

    pub fn sandbox_limits(&self) -> sandbox::SandboxLimits {
        sandbox::SandboxLimits {
            concurrent: self.sandbox_concurrency.max(1),
            ..Default::default()
        }
    }
}
