pub mod rmcp_client;
