"""What one MCP client sees of one tool through MCP Router, with the official MCP Python SDK.

    tool_seen.py URL TOOL ARGUMENTS_JSON

Connects to URL (a view of the router, e.g. /mcp/all), lists the tools, calls TOOL with the
arguments, and prints one JSON object: the listed tools (name and description) and the
call's outcome, a result (`{"result": {isError, texts, ...}}`) or a JSON-RPC error
(`{"error": {code, message, data}}`). tests/e2e/tests/ui_tools.rs asserts on it after each
change made in the web UI.
"""

from __future__ import annotations

import json
import sys
from typing import Any

sys.dont_write_bytecode = True

from mcp import Client, MCPError

from common import CLIENT_INFO, READ_TIMEOUT_S, list_tools, result_json, run


async def main() -> dict[str, Any]:
    url, tool, arguments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    async with Client(url, mode="legacy", client_info=CLIENT_INFO, read_timeout_seconds=READ_TIMEOUT_S) as client:
        tools = [{"name": t["name"], "description": t.get("description")} for t in await list_tools(client)]
        try:
            call: dict[str, Any] = {"result": result_json(await client.call_tool(tool, arguments))}
        except MCPError as e:
            call = {"error": {"code": e.code, "message": e.message, "data": e.data}}
        return {"tools": tools, "call": call}


if __name__ == "__main__":
    run("tool_seen.py", main)
