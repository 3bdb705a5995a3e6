pub mod rmcp_client;
pub mod harness;
