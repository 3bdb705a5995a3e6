"""One tool call through MCP Router with the official MCP Python SDK.

    call_tool.py URL TOOL ARGUMENTS_JSON

Connects to URL (a view of the router, e.g. /mcp/p/NAME), lists the tools, calls TOOL with
the arguments, and prints one JSON object: the tool names and the call's observed result.
tests/e2e/tests/ui_add_from.rs asserts on it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

sys.dont_write_bytecode = True

from mcp import Client

from common import CLIENT_INFO, READ_TIMEOUT_S, call_ok, run, tool_names


async def main() -> dict[str, Any]:
    url, tool, arguments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    async with Client(url, mode="legacy", client_info=CLIENT_INFO, read_timeout_seconds=READ_TIMEOUT_S) as client:
        return {"tools": await tool_names(client), "call": await call_ok(client, url, tool, arguments)}


if __name__ == "__main__":
    run("call_tool.py", main)
