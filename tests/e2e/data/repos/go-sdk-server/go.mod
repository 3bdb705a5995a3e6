module github.com/example/weather-mcp

go 1.23

require github.com/modelcontextprotocol/go-sdk v0.4.0
