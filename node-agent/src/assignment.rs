//! A server as the control plane assigns it to this agent, validated once on receipt
//! (`TryFrom<pb::Assignment>`): what the supervisor reconciles and the runtimes start. Below
//! both, so a runtime never imports the supervisor.

use mcpr_core::model::{RuntimeSpec, SessionMode};
use mcpr_proto as pb;

/// A server as assigned by the control plane, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub id: String,
    pub name: String,
    pub spec: RuntimeSpec,
    pub session_mode: SessionMode,
    pub restart_generation: u64,
}

impl TryFrom<pb::Assignment> for Assignment {
    type Error = String;
    fn try_from(a: pb::Assignment) -> Result<Self, String> {
        let spec = a.spec.ok_or("assignment without a runtime spec")?;
        let spec = RuntimeSpec::try_from(spec).map_err(|e| format!("server {}: {e}", a.name))?;
        Ok(Assignment {
            id: a.id,
            name: a.name,
            spec,
            session_mode: SessionMode::from_proto(a.session_mode),
            restart_generation: a.restart_generation,
        })
    }
}
