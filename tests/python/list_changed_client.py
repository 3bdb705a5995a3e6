"""Receives MCP Router's list change notifications with the official MCP Python SDK.

    list_changed_client.py MODE VIEW_URL API_URL SERVER_JSON

Connects to a view (MODE `legacy`: the initialize handshake, notifications through the
SDK's `message_handler`, which reads the session's GET stream; MODE `auto`: the SDK picks
2026-07-28 and opens a `subscriptions/listen` stream), then registers the server
SERVER_JSON (a `POST /api/v1/servers` body) through the REST API at API_URL, waits for
`notifications/tools/list_changed` and lists the view's tools again. Prints one JSON
object: the tools before and after, and how long the notification took.
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
from mcp.client.subscriptions import ToolsListChanged

from common import CLIENT_INFO, READ_TIMEOUT_S, Failure, run, tool_names

NOTIFICATION_TIMEOUT_S = 25


def add_server(api: str, server: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{api}/api/v1/servers",
        data=json.dumps(server).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 201:
            raise Failure(f"adding the server: HTTP {response.status}")


async def legacy(url: str, api: str, server: dict[str, Any]) -> dict[str, Any]:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with Client(
        url, mode="legacy", client_info=CLIENT_INFO, read_timeout_seconds=READ_TIMEOUT_S, message_handler=on_message
    ) as c:
        out: dict[str, Any] = {"protocol_version": c.protocol_version, "before": await tool_names(c)}
        started = time.monotonic()
        add_server(api, server)
        with anyio.fail_after(NOTIFICATION_TIMEOUT_S):
            await changed.wait()
        out["notified_after_s"] = round(time.monotonic() - started, 2)
        out["after"] = await tool_names(c)
        return out


async def modern(url: str, api: str, server: dict[str, Any]) -> dict[str, Any]:
    async with Client(url, client_info=CLIENT_INFO, read_timeout_seconds=READ_TIMEOUT_S) as c:
        out: dict[str, Any] = {"protocol_version": c.protocol_version, "before": await tool_names(c)}
        async with c.listen(tools_list_changed=True) as subscription:
            started = time.monotonic()
            add_server(api, server)
            with anyio.fail_after(NOTIFICATION_TIMEOUT_S):
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        break
            out["notified_after_s"] = round(time.monotonic() - started, 2)
        # Through the hierarchical view the new provider's tools are behind list_tools.
        provider = server["name"]
        result = await c.call_tool("list_tools", {"provider": provider})
        out["after"] = await tool_names(c)
        out["provider_tools"] = [t["name"] for t in (result.structured_content or {}).get("tools", [])]
        return out


if __name__ == "__main__":
    mode, view_url, api_url, server_json = sys.argv[1:5]
    server = json.loads(server_json)
    main = legacy if mode == "legacy" else modern
    run("list_changed_client.py", lambda: main(view_url, api_url, server))
