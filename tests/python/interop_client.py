"""One client of the interop matrix (tests/e2e/tests/interop.rs) on one path, every upstream.

    interop_client.py CONFIG CLIENT PATH

CLIENT is a client nobody here wrote:
  python-sdk-legacy, python-sdk-auto, python-sdk-2026-07-28
      the official MCP Python SDK 2.x `Client`, in that `mode`
  fastmcp
      FastMCP's `Client`, with `BearerAuth` over HTTP (as the original MCP Router's README)
PATH is how it reaches the router (CONFIG, a JSON file the test writes, says where):
  call_tool    /mcp, each tool through the `call_tool` meta-tool
  direct       /mcp, each tool by its own name with a `provider` argument
  all          /mcp/all, each tool as PROVIDER__TOOL
  transparent  /mcp/p/PROVIDER, each provider as it is (its resources and prompts too)
  stdio        `mcpr stdio` started by the client (the router in-process, on the test
               router's data dir), hierarchical
  bridge       `mcpr --url URL stdio` started by the client (MCPR_API_KEY in its env), to
               the test router, hierarchical
Over HTTP the client presents the test router's API key. For each upstream of CONFIG the
script lists its tools, makes its calls (checking each result's text and structured content),
follows a call's progress where the upstream reports some, and on the transparent path reads
its resources and gets its prompts. An upstream's "elicit" calls ask the client something
mid-call (the Python SDK clients only): when CONFIG has an "elicitation" answer the client
declares the capability and gives it, and the result must hold "expect"; without one the
client declares none, and the call must come back (not hang) with an error naming
elicitation. It prints one JSON object, {"library": "NAME VERSION",
"cells": {UPSTREAM: "ok" | why not}}, and exits 0 whatever the cells say (the test decides);
1 only when it could not run at all.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any, Protocol

# No __pycache__ next to the sources (the repository does not ignore it).
sys.dont_write_bytecode = True

import anyio

from common import _leaves

CLIENT_NAME = "mcpr-interop"
# Bounds on connecting (a stdio path starts a router), one cell and one request.
CONNECT_TIMEOUT_S = 30
CELL_TIMEOUT_S = 45
REQUEST_TIMEOUT_S = 40
HIERARCHICAL_PATHS = ("call_tool", "direct", "stdio", "bridge")
META_TOOLS = ("call_tool", "list_providers", "list_tools", "search_tools")


class Failure(Exception):
    """An observation that is not what the cell needs."""


def texts_of(blocks: Any) -> list[str]:
    return [block.text for block in blocks or [] if getattr(block, "text", None) is not None]


class Session(Protocol):
    """The few operations a cell needs, over either client library."""

    async def tools(self) -> list[str]: ...

    async def call(
        self, name: str, arguments: dict[str, Any], on_progress: Callable[..., Awaitable[None]] | None
    ) -> dict[str, Any]:
        """{"isError", "text", "structured"} of a tools/call."""
        ...

    async def resources(self) -> list[str]: ...

    async def read(self, uri: str) -> str: ...

    async def prompts(self) -> list[str]: ...

    async def prompt(self, name: str, arguments: dict[str, str]) -> str: ...


class SdkSession:
    def __init__(self, client: Any) -> None:
        self.client = client

    async def tools(self) -> list[str]:
        names: list[str] = []
        cursor = None
        for _ in range(100):
            page = await self.client.list_tools(cursor=cursor)
            names.extend(tool.name for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return names
        raise Failure("tools/list: more than 100 pages")

    async def call(self, name, arguments, on_progress):
        result = await self.client.call_tool(name, arguments, progress_callback=on_progress)
        return {"isError": bool(result.is_error), "text": "\n".join(texts_of(result.content)), "structured": result.structured_content}

    async def resources(self):
        return [str(r.uri) for r in (await self.client.list_resources()).resources]

    async def read(self, uri):
        return "\n".join(texts_of((await self.client.read_resource(uri)).contents))

    async def prompts(self):
        return [p.name for p in (await self.client.list_prompts()).prompts]

    async def prompt(self, name, arguments):
        result = await self.client.get_prompt(name, arguments)
        return "\n".join(texts_of([m.content for m in result.messages]))


class FastMcpSession:
    def __init__(self, client: Any) -> None:
        self.client = client

    async def tools(self):
        return [tool.name for tool in await self.client.list_tools()]

    async def call(self, name, arguments, on_progress):
        result = await self.client.call_tool(name, arguments, progress_handler=on_progress, raise_on_error=False)
        return {"isError": bool(result.is_error), "text": "\n".join(texts_of(result.content)), "structured": result.structured_content}

    async def resources(self):
        return [str(r.uri) for r in await self.client.list_resources()]

    async def read(self, uri):
        return "\n".join(texts_of(await self.client.read_resource(uri)))

    async def prompts(self):
        return [p.name for p in await self.client.list_prompts()]

    async def prompt(self, name, arguments):
        result = await self.client.get_prompt(name, arguments)
        return "\n".join(texts_of([m.content for m in result.messages]))


def stdio_command(config: dict[str, Any], path: str) -> tuple[str, list[str], dict[str, str]]:
    """What the client starts for the stdio paths: the command, its args, its environment."""
    env = {"RUST_LOG": "warn"}
    if path == "stdio":
        env.update(config["stdio_env"])
        # Port 0: the API and UI this router serves on the side take any free port.
        return config["mcpr"], ["stdio", "--port", "0", "--data-dir", config["data_dir"]], env
    env["MCPR_API_KEY"] = config["api_key"]
    return config["mcpr"], ["--url", config["base_url"], "stdio"], env


@asynccontextmanager
async def connect(config: dict[str, Any], client: str, path: str, url_path: str) -> AsyncIterator[Session]:
    """A connected session of CLIENT to the router by PATH (`url_path` for the HTTP ones)."""
    url = f"{config['base_url']}{url_path}"
    key = config["api_key"]
    if client == "fastmcp":
        from fastmcp import Client
        from fastmcp.client.auth import BearerAuth
        from fastmcp.client.transports import StdioTransport

        if path in ("stdio", "bridge"):
            command, args, env = stdio_command(config, path)
            target: Any = StdioTransport(command=command, args=args, env=env)
            c = Client(target, timeout=REQUEST_TIMEOUT_S, init_timeout=CONNECT_TIMEOUT_S)
        else:
            c = Client(url, auth=BearerAuth(token=key), timeout=REQUEST_TIMEOUT_S, init_timeout=CONNECT_TIMEOUT_S)
        async with c:
            yield FastMcpSession(c)
        return

    from mcp import Client, Implementation, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    mode = client.removeprefix("python-sdk-")
    info = Implementation(name=CLIENT_NAME, version="1.0.0")
    options: dict[str, Any] = {}
    if config.get("elicitation") is not None:
        from mcp.types import ElicitResult

        answer = config["elicitation"]

        async def on_elicit(context: Any, params: Any) -> Any:
            return ElicitResult(action="accept", content=answer)

        options["elicitation_callback"] = on_elicit
    if path in ("stdio", "bridge"):
        command, args, env = stdio_command(config, path)
        async with Client(
            StdioServerParameters(command=command, args=args, env=env),
            mode=mode,
            client_info=info,
            read_timeout_seconds=REQUEST_TIMEOUT_S,
            **options,
        ) as c:
            yield SdkSession(c)
        return
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as http:
        async with Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            client_info=info,
            read_timeout_seconds=REQUEST_TIMEOUT_S,
            **options,
        ) as c:
            yield SdkSession(c)


def tool_call(path: str, upstream: str, tool: str, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The name and arguments that call `tool` of `upstream` on PATH."""
    if path == "direct":
        return tool, {**arguments, "provider": upstream}
    if path == "all":
        return f"{upstream}__{tool}", arguments
    if path == "transparent":
        return tool, arguments
    return "call_tool", {"provider": upstream, "tool": tool, "arguments": arguments}


def require(what: str, condition: bool, detail: Any) -> None:
    if not condition:
        raise Failure(f"{what}: {detail}")


def short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "…"


async def listed_tools(session: Session, path: str, upstream: str, view_tools: list[str]) -> list[str]:
    """The upstream's tool names as PATH shows them (`view_tools`: the view's own tools/list)."""
    if path == "all":
        prefix = f"{upstream}__"
        return [t.removeprefix(prefix) for t in view_tools if t.startswith(prefix)]
    if path == "transparent":
        return view_tools
    listed = await session.call("list_tools", {"provider": upstream}, None)
    require("list_tools", not listed["isError"], listed["text"])
    body = listed["structured"] or json.loads(listed["text"])
    # The router's word on a provider still starting belongs in the failure, not a bare [].
    require("list_tools", "starting_providers" not in body, body.get("note", ""))
    return [t["name"] for t in body.get("tools", [])]


async def run_cell(
    session: Session, path: str, spec: dict[str, Any], view_tools: list[str], config_elicitation: Any = None
) -> None:
    upstream = spec["name"]
    tools = await listed_tools(session, path, upstream, view_tools)
    missing = [t for t in spec["tools"] if t not in tools]
    require("tools listed", not missing, f"{missing} missing from {tools}")

    calls = [(call, False) for call in spec["calls"]]
    if spec.get("progress"):
        calls.append((spec["progress"], True))
    for call, with_progress in calls:
        progress: list[float] = []

        async def on_progress(value: float, total: float | None = None, message: str | None = None) -> None:
            progress.append(value)

        name, arguments = tool_call(path, upstream, call["tool"], call["arguments"])
        result = await session.call(name, arguments, on_progress if with_progress else None)
        observed = result["text"] + "\n" + json.dumps(result["structured"])
        what = f"{call['tool']} {json.dumps(call['arguments'])}"
        require(what, not result["isError"], f"isError: {short(result['text'])}")
        require(what, call["expect"] in observed, f"{call['expect']!r} not in {short(observed)}")
        if "structured" in call:
            require(what, result["structured"] == call["structured"], f"structuredContent {short(result['structured'])}")
        if with_progress:
            require(what, len(progress) > 0, "no progress notification reached the client")

    for call in spec.get("elicit", []):
        name, arguments = tool_call(path, upstream, call["tool"], call["arguments"])
        what = f"{call['tool']} {json.dumps(call['arguments'])}"
        try:
            result = await session.call(name, arguments, None)
            failed, observed = result["isError"], result["text"]
        except Exception as e:  # noqa: BLE001 - a refusal may come as a JSON-RPC error
            failed, observed = True, describe(e)
        if config_elicitation is not None:
            require(what, not failed, f"isError: {short(observed)}")
            require(what, call["expect"] in observed, f"{call['expect']!r} not in {short(observed)}")
        else:
            require(what, failed and "elicitation" in observed.lower(), f"no refusal naming elicitation: {short(observed)}")

    if path != "transparent":
        return
    if spec.get("resources"):
        uris = await session.resources()
        for resource in spec["resources"]:
            require("resources/list", resource["uri"] in uris, f"{resource['uri']} not in {uris}")
            text = await session.read(resource["uri"])
            require(f"resources/read {resource['uri']}", resource["expect"] in text, short(text))
    if spec.get("prompts"):
        names = await session.prompts()
        for prompt in spec["prompts"]:
            require("prompts/list", prompt["name"] in names, f"{prompt['name']} not in {names}")
            text = await session.prompt(prompt["name"], prompt["arguments"])
            require(f"prompts/get {prompt['name']}", prompt["expect"] in text, short(text))


def describe(e: BaseException) -> str:
    """One line naming what failed, as a user of the client would see it."""
    leaves = list(_leaves(e))
    return "; ".join(f"{type(x).__name__}: {x}" if str(x) else type(x).__name__ for x in leaves).replace("\n", " ")


async def cells_on_one_connection(config, client, path, url_path, upstreams) -> dict[str, str]:
    """Runs every upstream's cell on one connection; a failure to connect fails them all."""
    cells: dict[str, str] = {}
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S + CELL_TIMEOUT_S * len(upstreams)):
            async with connect(config, client, path, url_path) as session:
                view_tools = await session.tools()
                if path in HIERARCHICAL_PATHS:
                    missing = [t for t in META_TOOLS if t not in view_tools]
                    require("the view's tools/list", not missing, f"meta-tools {missing} missing from {view_tools}")
                for spec in upstreams:
                    try:
                        with anyio.fail_after(CELL_TIMEOUT_S):
                            await run_cell(session, path, spec, view_tools, config.get("elicitation"))
                        cells[spec["name"]] = "ok"
                    except Exception as e:  # noqa: BLE001 - the cell records why it failed
                        cells[spec["name"]] = "timed out" if isinstance(e, TimeoutError) else describe(e)
                        traceback.print_exception(e, file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 - connecting (or closing) failed: every cell says why
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        traceback.print_exception(e, file=sys.stderr)
        why = "timed out" if isinstance(e, TimeoutError) else describe(e)
        for spec in upstreams:
            cells.setdefault(spec["name"], f"connection: {why}")
    return cells


async def main(config_path: str, client: str, path: str) -> dict[str, Any]:
    with open(config_path) as f:
        config = json.load(f)
    upstreams = config["upstreams"]
    cells: dict[str, str] = {}
    if path == "transparent":
        for spec in upstreams:
            cells.update(await cells_on_one_connection(config, client, path, f"/mcp/p/{spec['name']}", [spec]))
    else:
        url_path = {"call_tool": "/mcp", "direct": "/mcp", "all": "/mcp/all"}.get(path, "")
        cells.update(await cells_on_one_connection(config, client, path, url_path, upstreams))
    library = "fastmcp" if client == "fastmcp" else "mcp"
    return {"client": client, "path": path, "library": f"{library} {version(library)}", "cells": cells}


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    observed = anyio.run(main, *sys.argv[1:])
    json.dump(observed, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
