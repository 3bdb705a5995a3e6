//! The attacks of issue 11, one test per attack, each asserting the exact refusal and that
//! the router keeps serving legitimate clients meanwhile. Grouped by what is attacked.

mod grpc;
mod limits;
mod upstream;
mod web;
