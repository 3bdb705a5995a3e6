"""A per-tool toggle as clients see it, with the official MCP Python SDK.

    tool_toggle_client.py ROUTER_URL PROVIDER TOOL [ADMIN_TOKEN]

Connects to the flat view (/mcp/all), the transparent view (/mcp/p/PROVIDER) and the
hierarchical view (/mcp), in the legacy era (the SDK's `message_handler` hears the
session's GET stream). Then disables TOOL through the REST API, waits for
`notifications/tools/list_changed` on the flat and transparent views, and records what
every view shows and answers: lists, searches and calls, by the flat name, the plain name,
through `call_tool` and by the tool's own name. Enables it again and records the same.
Prints one JSON object; tests/e2e/tests/tools.rs asserts on it.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import Any

sys.dont_write_bytecode = True

import anyio
from mcp import Client

from common import CLIENT_INFO, READ_TIMEOUT_S, Failure, call_ok, call_rpc_error, result_json, run, tool_names

NOTIFICATION_TIMEOUT_S = 15


def toggle(router: str, provider: str, tool: str, verb: str, token: str | None) -> None:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{router}/api/v1/servers/{provider}/tools/{tool}/{verb}", data=b"", headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise Failure(f"{verb} {provider}/{tool}: HTTP {response.status}")


class Heard:
    """The list change notifications one view's session received, as events to wait on."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.count = 0

    async def on_message(self, message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            self.count += 1
            self.event.set()

    def rearm(self) -> None:
        self.event = anyio.Event()


def legacy(url: str, heard: Heard | None = None) -> Client:
    return Client(
        url,
        mode="legacy",
        client_info=CLIENT_INFO,
        read_timeout_seconds=READ_TIMEOUT_S,
        message_handler=heard.on_message if heard else None,
    )


async def observe(flat: Client, transparent: Client, hierarchical: Client, provider: str, tool: str) -> dict[str, Any]:
    """What each view shows and answers for the tool now."""
    out: dict[str, Any] = {
        "flat_tools": await tool_names(flat),
        "transparent_tools": await tool_names(transparent),
    }
    listed = await call_ok(hierarchical, "/mcp", "list_tools", {"provider": provider})
    out["list_tools"] = [t["name"] for t in listed["structuredContent"]["tools"]]
    found = await call_ok(hierarchical, "/mcp", "search_tools", {"query": tool, "limit": 100})
    out["search_tools"] = [f"{r['provider']}/{r['tool']}" for r in found["structuredContent"]["results"]]
    providers = await call_ok(hierarchical, "/mcp", "list_providers", {})
    out["provider_tool_count"] = next(
        p["tools"] for p in providers["structuredContent"]["providers"] if p["name"] == provider
    )
    return out


async def calls(flat: Client, transparent: Client, hierarchical: Client, provider: str, tool: str, ok: bool):
    """Calls the tool through every view, by every name it has there."""
    arguments = {"text": "toggled"}
    attempts = {
        "flat_call": (flat, "/mcp/all", f"{provider}__{tool}", arguments),
        "transparent_call": (transparent, f"/mcp/p/{provider}", tool, arguments),
        "direct_call": (hierarchical, "/mcp", tool, {"provider": provider, **arguments}),
    }
    out: dict[str, Any] = {}
    for key, (c, view, name, args) in attempts.items():
        out[key] = await (call_ok(c, view, name, args) if ok else call_rpc_error(c, view, name, args))
    meta = await hierarchical.call_tool("call_tool", {"provider": provider, "tool": tool, "arguments": arguments})
    out["meta_call"] = result_json(meta)
    return out


async def main(router: str, provider: str, tool: str, token: str | None) -> dict[str, Any]:
    flat_heard, transparent_heard = Heard(), Heard()
    async with (
        legacy(f"{router}/mcp/all", flat_heard) as flat,
        legacy(f"{router}/mcp/p/{provider}", transparent_heard) as transparent,
        legacy(f"{router}/mcp") as hierarchical,
    ):
        out: dict[str, Any] = {"before": await observe(flat, transparent, hierarchical, provider, tool)}
        out["before"].update(await calls(flat, transparent, hierarchical, provider, tool, ok=True))
        for phase, verb, ok in (("disabled", "disable", False), ("enabled", "enable", True)):
            flat_heard.rearm()
            transparent_heard.rearm()
            started = time.monotonic()
            toggle(router, provider, tool, verb, token)
            with anyio.fail_after(NOTIFICATION_TIMEOUT_S):
                await flat_heard.event.wait()
                await transparent_heard.event.wait()
            out[phase] = {"notified_after_s": round(time.monotonic() - started, 2)}
            out[phase].update(await observe(flat, transparent, hierarchical, provider, tool))
            out[phase].update(await calls(flat, transparent, hierarchical, provider, tool, ok=ok))
        out["notifications"] = {"flat": flat_heard.count, "transparent": transparent_heard.count}
        return out


if __name__ == "__main__":
    router_url, provider_name, tool_name = sys.argv[1:4]
    admin_token = sys.argv[4] if len(sys.argv) > 4 else None
    run("tool_toggle_client.py", lambda: main(router_url, provider_name, tool_name, admin_token))
