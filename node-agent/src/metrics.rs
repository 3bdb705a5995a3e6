//! The node agent's metrics (`--metrics-listen`, or `mcpr up`'s `/metrics`): its servers by
//! state, their live upstream sessions and restarts, the gateways' relay streams and the
//! exchanges in flight on them, and the sandbox's runs and warm pool. Read when scraped.

use mcpr_core::metrics::Exposition;
use mcpr_core::model::ServerState;

use crate::runtime::sandbox::RUN_OUTCOMES;
use crate::supervisor::Agent;

impl Agent {
    /// Appends the agent's families (not the process's: the binary adds those once).
    pub fn render_metrics(&self, out: &mut Exposition) {
        let servers = self.server_metrics();
        out.family(
            "mcpr_agent_servers",
            "gauge",
            "Servers assigned to this agent, by state.",
        );
        for state in ServerState::ALL {
            let count = servers.iter().filter(|s| s.state == state).count();
            out.sample(
                "mcpr_agent_servers",
                &[("state", state.label())],
                count as f64,
            );
        }
        out.family(
            "mcpr_agent_upstream_sessions",
            "gauge",
            "Live upstream MCP sessions (the shared one and per-client ones), by provider and its state.",
        );
        for server in &servers {
            out.sample(
                "mcpr_agent_upstream_sessions",
                &[("provider", &server.name), ("state", server.state.label())],
                server.sessions as f64,
            );
        }
        out.family(
            "mcpr_agent_server_restarts_total",
            "counter",
            "Restarts of each server after a failure since it was assigned here.",
        );
        for server in &servers {
            out.sample(
                "mcpr_agent_server_restarts_total",
                &[("provider", &server.name)],
                f64::from(server.restarts),
            );
        }
        let gauges = [
            (
                "mcpr_agent_relay_streams",
                "Relay streams gateways hold open to this agent.",
                self.relay_streams.get(),
            ),
            (
                "mcpr_agent_relay_in_flight_exchanges",
                "Relayed requests being handled, not answered yet.",
                self.relay_in_flight.get(),
            ),
            (
                "mcpr_agent_sandbox_pool_size",
                "Warm python_sandbox containers waiting for a call.",
                self.sandbox.pool_size() as i64,
            ),
        ];
        for (name, help, value) in gauges {
            out.family(name, "gauge", help);
            out.sample(name, &[], value as f64);
        }
        out.family(
            "mcpr_agent_sandbox_runs_total",
            "counter",
            "python_sandbox calls by outcome (ok, failed, timeout, bad_arguments, unavailable).",
        );
        for (outcome, count) in RUN_OUTCOMES.iter().zip(self.sandbox.runs()) {
            out.sample(
                "mcpr_agent_sandbox_runs_total",
                &[("outcome", outcome)],
                count as f64,
            );
        }
    }
}
