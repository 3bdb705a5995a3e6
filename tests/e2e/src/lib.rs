pub mod browser;
pub mod harness;
pub mod hosts;
pub mod mcpr_cli;
pub mod repos;
pub mod rmcp_client;
