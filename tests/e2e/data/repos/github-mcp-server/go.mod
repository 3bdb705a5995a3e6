module github.com/github/github-mcp-server

go 1.24.0

require (
	github.com/google/go-github/v74 v74.0.0
	github.com/mark3labs/mcp-go v0.36.0
	github.com/spf13/cobra v1.9.1
	github.com/spf13/viper v1.20.1
)
