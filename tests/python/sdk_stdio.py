"""Drives `mcpr stdio` with the official MCP Python SDK's stdio client.

    sdk_stdio.py MCPR_BIN DATA_DIR PORT PROVIDER

The SDK starts `MCPR_BIN stdio --port PORT --data-dir DATA_DIR` itself, as a desktop client
would, and talks MCP over its stdin/stdout: the hierarchical view. DATA_DIR is shared with a
running `mcpr up` in which PROVIDER (the fixture server) was registered; `mcpr stdio` reads the
same registry and starts the provider on its own, so the first call is retried until the
provider answers. Prints one JSON object with what it observed (see common.py); exits 1 on a
failure.
"""

from __future__ import annotations

import sys
from typing import Any

# No __pycache__ for common.py next to the sources (the repository does not ignore it).
sys.dont_write_bytecode = True

from common import call_ok, client, exercise_hierarchical, run, until_ok
from mcp import StdioServerParameters


async def main() -> dict[str, Any]:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mcpr, data_dir, port, provider = sys.argv[1:]
    server = StdioServerParameters(
        command=mcpr,
        args=["stdio", "--port", port, "--data-dir", data_dir],
        # The SDK passes only a safe subset of the environment; the router's logs go to stderr.
        env={"RUST_LOG": "warn"},
    )
    view = "mcpr stdio"
    async with client(server) as c:
        whoami, attempts = await until_ok(
            f"{provider} answering through {view}",
            20,
            lambda: call_ok(c, view, "call_tool", {"provider": provider, "tool": "whoami"}),
        )
        out = await exercise_hierarchical(c, view, provider)
        out["whoami"] = whoami
        out["ready_after_attempts"] = attempts
    return {"stdio": out}


if __name__ == "__main__":
    run("sdk_stdio.py", main)
