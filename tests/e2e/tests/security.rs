//! The attacks of issue 11, one test per attack, each asserting the exact refusal and that
//! the router keeps serving legitimate clients meanwhile. Grouped by what is attacked.

#[path = "security/grpc.rs"]
mod grpc;
#[path = "security/limits.rs"]
mod limits;
#[path = "security/upstream.rs"]
mod upstream;
#[path = "security/web.rs"]
mod web;
