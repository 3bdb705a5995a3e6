"""Drives MCP Router over streamable HTTP with the official MCP Python SDK.

    sdk_http.py BASE_URL PROVIDER      (BASE_URL like http://127.0.0.1:8000)

Connects to all three views of a running router in which PROVIDER (the fixture server,
tests/fixture-server) is registered and running:
  /mcp              hierarchical: the meta-tools, a direct call with `provider`, errors
  /mcp/all          flat: PROVIDER__echo, PROVIDER__add (structured content), an unknown tool
  /mcp/p/PROVIDER   transparent: the provider's own tools, whoami, add
and prints one JSON object with what it observed (see common.py); exits 1 on a failure.
"""

from __future__ import annotations

import sys
from typing import Any

# No __pycache__ for common.py next to the sources (the repository does not ignore it).
sys.dont_write_bytecode = True

from common import (
    call_ok,
    call_rpc_error,
    call_tool_error,
    client,
    exercise_hierarchical,
    list_tools,
    run,
    session_info,
    tool_names,
    until_ok,
)


async def hierarchical(base: str, provider: str) -> dict[str, Any]:
    view = "/mcp"
    async with client(f"{base}/mcp") as c:
        # The router reports the provider running before this starts; a short grace all the same.
        _, attempts = await until_ok(
            f"{provider} answering through {view}",
            15,
            lambda: call_ok(c, view, "call_tool", {"provider": provider, "tool": "whoami"}),
        )
        out = await exercise_hierarchical(c, view, provider)
        out["ready_after_attempts"] = attempts
        return out


async def flat(base: str, provider: str) -> dict[str, Any]:
    view = "/mcp/all"
    async with client(f"{base}/mcp/all") as c:
        out = session_info(c)
        tools = await list_tools(c)
        out["tools"] = [t["name"] for t in tools]
        add = next((t for t in tools if t["name"] == f"{provider}__add"), None)
        out["add_tool"] = add
        out["echo"] = await call_ok(c, view, f"{provider}__echo", {"text": "flat hello"})
        # The SDK checks structuredContent against the outputSchema the view listed for the tool.
        out["add"] = await call_ok(c, view, f"{provider}__add", {"a": 2, "b": 3})
        out["add_float"] = await call_ok(c, view, f"{provider}__add", {"a": 1.25, "b": 2})
        out["unknown_tool"] = await call_rpc_error(c, view, f"{provider}__no_such_tool", {})
        return out


async def transparent(base: str, provider: str) -> dict[str, Any]:
    view = f"/mcp/p/{provider}"
    async with client(f"{base}{view}") as c:
        out = session_info(c)
        out["tools"] = await list_tools(c)
        out["whoami"] = await call_ok(c, view, "whoami", {})
        out["echo"] = await call_ok(c, view, "echo", {"text": "transparent hello"})
        out["add"] = await call_ok(c, view, "add", {"a": 40, "b": 2})
        # A tool error of the provider passes through unchanged.
        out["fail"] = await call_tool_error(c, view, "fail", {"message": "deliberate failure"})
        out["unknown_tool"] = await call_rpc_error(c, view, "no_such_tool", {})
        # A second listing in the same session: the SDK's cached view must not differ.
        out["tools_again"] = await tool_names(c)
        return out


async def main() -> dict[str, Any]:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base, provider = sys.argv[1].rstrip("/"), sys.argv[2]
    return {
        "hierarchical": await hierarchical(base, provider),
        "flat": await flat(base, provider),
        "transparent": await transparent(base, provider),
    }


if __name__ == "__main__":
    run("sdk_http.py", main)
