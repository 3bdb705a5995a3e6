"""An upstream MCP server (the official Python SDK's MCPServer over streamable HTTP) whose
one tool, `seen_headers`, answers the HTTP request headers the server received, so the
OAuth tests can check what the router forwards upstream (never the client's token).

    oauth_upstream.py PORT

Prints `listening on http://127.0.0.1:PORT/mcp` once the server is about to start.
"""

from __future__ import annotations

import json
import sys

sys.dont_write_bytecode = True

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("headers")


@server.tool()
def seen_headers(ctx: Context) -> str:
    """The HTTP request headers of this call, lower-cased, as a JSON object."""
    request = ctx.request_context.request
    return json.dumps({k.lower(): v for k, v in request.headers.items()}, sort_keys=True)


if __name__ == "__main__":
    port = int(sys.argv[1])
    print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)
    server.run("streamable-http", host="127.0.0.1", port=port, stateless_http=True, json_response=True)
