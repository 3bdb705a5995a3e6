//! The gateway's metrics as `/metrics` shows them (`mcpr_tls::metrics` serves the route):
//! the call metrics of every finished request (`observe/metrics.rs`), and what is read when
//! scraped — client sessions, the snapshot's version and how long it took to arrive, the
//! relay streams to remote agents and the exchanges in flight on them.

use mcpr_core::metrics::Exposition;

use crate::Gateway;

impl Gateway {
    /// Appends the gateway's families (not the process's: the binary adds those once).
    pub fn render_metrics(&self, out: &mut Exposition) {
        self.observer.metrics.render(out);
        let snapshot = self.snapshot.load();
        let gauges: [(&str, &str, f64); 5] = [
            (
                "mcpr_gateway_client_sessions",
                "Client sessions (legacy era) this gateway holds.",
                self.sessions.len() as f64,
            ),
            (
                "mcpr_gateway_config_version",
                "Version of the configuration snapshot being served (0 before the first).",
                snapshot.version as f64,
            ),
            (
                "mcpr_gateway_snapshot_propagation_delay_seconds",
                "Time from the control plane's building the current snapshot to its arrival here.",
                snapshot.propagation_delay.as_secs_f64(),
            ),
            (
                "mcpr_gateway_relay_streams",
                "Relay streams open to remote node agents.",
                self.relays.streams_and_in_flight().0 as f64,
            ),
            (
                "mcpr_gateway_relay_in_flight_exchanges",
                "Requests relayed to remote node agents and not answered yet.",
                self.relays.streams_and_in_flight().1 as f64,
            ),
        ];
        for (name, help, value) in gauges {
            out.family(name, "gauge", help);
            out.sample(name, &[], value);
        }
        out.family(
            "mcpr_gateway_audit_records_queued",
            "gauge",
            "Audit records waiting to be shipped to the control plane.",
        );
        out.sample(
            "mcpr_gateway_audit_records_queued",
            &[],
            self.audit.queued() as f64,
        );
        out.family(
            "mcpr_gateway_audit_records_dropped_total",
            "counter",
            "Audit records this gateway lost: its queue was full (the control planes slow or unreachable).",
        );
        out.sample(
            "mcpr_gateway_audit_records_dropped_total",
            &[],
            self.audit.lost() as f64,
        );
    }
}
