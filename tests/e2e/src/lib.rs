pub mod browser;
pub mod harness;
pub mod rmcp_client;
