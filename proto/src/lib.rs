//! The gRPC wire between control plane, edge gateways and node agents (`proto/mcpr.proto`).
//! Other crates convert to and from the domain types of `mcpr-core` at the boundary.
#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("mcpr.v1");
}
pub use v1::*;

pub mod audit_batch;
pub use audit_batch::AuditBatchBuilder;
