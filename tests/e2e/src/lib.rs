pub mod harness;
pub mod rmcp_client;
