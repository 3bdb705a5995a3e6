"""An MCP server written with the official MCP Python SDK 2.x (`MCPServer`) whose tool list
changes while it runs, over stdio.

    changing_server.py

  grow(name)   adds a tool `name` (it answers "I am NAME") and tells the client
               (`notifications/tools/list_changed`), as a server that loads tools later does
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("changing-tools", version="1.0.0")


@server.tool(description="Add a tool named `name` to this server")
async def grow(name: str, ctx: Context) -> str:
    def grown() -> str:
        return f"I am {name}"

    server.add_tool(grown, name=name, description=f"A tool added at run time: {name}")
    await ctx.session.send_tool_list_changed()
    return f"added {name}"


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    server.run("stdio")
