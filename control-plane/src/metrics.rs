//! The control plane's metrics (`/metrics` on its HTTP listener, or `mcpr up`'s): the
//! configuration version gateways follow, the agents registered, and the servers by the
//! state their agents report, with the restarts they count. Read when scraped.

use mcpr_core::metrics::Exposition;
use mcpr_core::model::ServerState;

use crate::ControlPlane;

impl ControlPlane {
    /// Appends the control plane's families (not the process's: the binary adds those).
    pub fn render_metrics(&self, out: &mut Exposition) {
        let fleet = &self.registry.fleet;
        out.family(
            "mcpr_control_plane_config_version",
            "gauge",
            "Version of the configuration the control plane serves to gateways and agents.",
        );
        out.sample(
            "mcpr_control_plane_config_version",
            &[],
            fleet.version() as f64,
        );
        out.family(
            "mcpr_control_plane_agents",
            "gauge",
            "Node agents registered and not expired.",
        );
        out.sample(
            "mcpr_control_plane_agents",
            &[],
            fleet.agents().len() as f64,
        );
        let servers = self.registry.servers();
        let statuses: Vec<_> = servers.iter().map(|s| (s, fleet.status(&s.id))).collect();
        out.family(
            "mcpr_control_plane_servers",
            "gauge",
            "Registered servers by the state their agent reports (disabled ones are stopped).",
        );
        for state in ServerState::ALL {
            let count = statuses.iter().filter(|(_, s)| s.state == state).count();
            out.sample(
                "mcpr_control_plane_servers",
                &[("state", state.label())],
                count as f64,
            );
        }
        out.family(
            "mcpr_control_plane_server_restarts",
            "gauge",
            "Restarts of each server since it was last placed, as its agent reports.",
        );
        for (server, status) in &statuses {
            out.sample(
                "mcpr_control_plane_server_restarts",
                &[("provider", &server.name)],
                f64::from(status.restart_count),
            );
        }
        let audit = self.audit.stats();
        out.family(
            "mcpr_audit_records_written_total",
            "counter",
            "Audit records this control plane stored since it started.",
        );
        out.sample(
            "mcpr_audit_records_written_total",
            &[],
            audit.written as f64,
        );
        out.family(
            "mcpr_audit_records_queued",
            "gauge",
            "Audit records waiting for this control plane's writer.",
        );
        out.sample("mcpr_audit_records_queued", &[], audit.queued as f64);
        out.family(
            "mcpr_audit_records_dropped_total",
            "counter",
            "Audit records lost, by where: a gateway's queue was full (as gateways report), or this control plane's (full, malformed, or the insert failed).",
        );
        out.sample(
            "mcpr_audit_records_dropped_total",
            &[("where", "gateway")],
            audit.dropped_by_gateways as f64,
        );
        out.sample(
            "mcpr_audit_records_dropped_total",
            &[("where", "control_plane")],
            audit.dropped_by_control_plane as f64,
        );
    }
}
