"""mcp-clock: an MCP server written with the official MCP Python SDK 2.x (`MCPServer`), on
stdio. CLOCK_LABEL (optional) names the clock in its answers."""

import os
from datetime import datetime, timedelta, timezone

from mcp.server.mcpserver import MCPServer

server = MCPServer("mcp-clock", version="0.1.0")


@server.tool(description="The time at a fixed UTC offset (hours), for a given UNIX time")
def time_at(unix_seconds: int, offset_hours: int) -> str:
    zone = timezone(timedelta(hours=offset_hours))
    when = datetime.fromtimestamp(unix_seconds, zone)
    label = os.environ.get("CLOCK_LABEL", "clock")
    return f"{label}: {when.isoformat()}"


@server.tool(description="Add two integers")
def add(a: int, b: int) -> int:
    return a + b


def main() -> None:
    server.run("stdio")
