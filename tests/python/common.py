"""Shared helpers of the MCP Python SDK clients in this folder (sdk_http.py, sdk_stdio.py).

Each client drives MCP Router with the official MCP Python SDK (`mcp` 2.x, its high-level
`mcp.Client`), records what it observed as plain JSON (tool names, texts of results,
structured content, JSON-RPC errors, the SDK's own warnings) and prints one JSON object on
stdout. The Rust tests in tests/e2e/tests/python_sdk.rs assert on that object.

A call whose outcome has the wrong shape (a JSON-RPC error where a result was expected,
`isError` where success was expected, ...) fails the script at once with a message naming
the view, the tool and the arguments; the Rust side then checks the values precisely.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import anyio
from mcp import Client, Implementation, MCPError
from mcp.types import CallToolResult, TextContent

CLIENT_INFO = Implementation(name="mcpr-e2e-python-sdk", version="1.0.0")

# The meta-tools of the hierarchical view.
META_TOOLS = ["call_tool", "list_providers", "list_tools", "python_sandbox", "search_tools"]

# How long a whole script may run (the Rust harness kills it after 60 s) and one request.
SCRIPT_TIMEOUT_S = 50
READ_TIMEOUT_S = 20


class Failure(Exception):
    """An observation that is not what the script needs in order to go on."""


class _WarningLog(logging.Handler):
    """Keeps the warnings and errors the SDK logs: they are part of what the client observed.

    (The SDK's loggers are not all under `mcp.`: the client session logs as `client`.)
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}")


_warnings = _WarningLog()


def sdk_warnings() -> list[str]:
    """The warnings logged so far (by the SDK and the HTTP library under it)."""
    return list(_warnings.records)


def client(target: Any) -> Client:
    """An SDK client with this suite's client info and request timeout."""
    return Client(target, client_info=CLIENT_INFO, read_timeout_seconds=READ_TIMEOUT_S)


def session_info(c: Client) -> dict[str, Any]:
    info = c.server_info
    return {
        "protocol_version": c.protocol_version,
        "server_info": info.model_dump(mode="json", by_alias=True, exclude_none=True) if info else None,
    }


def result_json(result: CallToolResult) -> dict[str, Any]:
    """A tool result as plain JSON: isError, the texts of its text blocks, structuredContent."""
    return {
        "isError": bool(result.is_error),
        "texts": [block.text for block in result.content if isinstance(block, TextContent)],
        "content_types": [block.type for block in result.content],
        "structuredContent": result.structured_content,
    }


def _describe(view: str, name: str, arguments: dict[str, Any]) -> str:
    return f"[{view}] tools/call {name} {json.dumps(arguments)}"


async def call_ok(c: Client, view: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must succeed (a result with isError false)."""
    try:
        result = await c.call_tool(name, arguments)
    except MCPError as e:
        raise Failure(f"{_describe(view, name, arguments)}: JSON-RPC error {e.code}: {e.message}") from e
    observed = result_json(result)
    if observed["isError"]:
        raise Failure(f"{_describe(view, name, arguments)}: isError result: {observed['texts']}")
    return observed


async def call_tool_error(c: Client, view: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must answer with a tool error (a result with isError true)."""
    try:
        result = await c.call_tool(name, arguments)
    except MCPError as e:
        raise Failure(
            f"{_describe(view, name, arguments)}: expected a result with isError true, "
            f"got JSON-RPC error {e.code}: {e.message}"
        ) from e
    observed = result_json(result)
    if not observed["isError"]:
        raise Failure(f"{_describe(view, name, arguments)}: expected isError true, got success: {observed}")
    return observed


async def call_rpc_error(c: Client, view: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must be refused with a JSON-RPC error; returns {code, message, data}."""
    try:
        result = await c.call_tool(name, arguments)
    except MCPError as e:
        return {"code": e.code, "message": e.message, "data": e.data}
    raise Failure(f"{_describe(view, name, arguments)}: expected a JSON-RPC error, got a result: {result_json(result)}")


async def tool_names(c: Client) -> list[str]:
    """tools/list, every page, names in the order the server gave them."""
    return [tool["name"] for tool in await list_tools(c)]


async def list_tools(c: Client) -> list[dict[str, Any]]:
    """tools/list, every page, each tool as the JSON the server sent (without nulls)."""
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        page = await c.list_tools(cursor=cursor)
        tools.extend(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return tools
    raise Failure("tools/list: more than 100 pages")


async def until_ok(
    what: str, timeout_s: float, attempt: Callable[[], Awaitable[dict[str, Any]]]
) -> tuple[dict[str, Any], int]:
    """Retries `attempt` (a call_ok) every 100 ms until it succeeds; returns (result, attempts)."""
    deadline = time.monotonic() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return await attempt(), attempts
        except Failure as e:
            if time.monotonic() > deadline:
                raise Failure(f"{what}: still failing after {timeout_s} s and {attempts} attempts: {e}") from e
        await anyio.sleep(0.1)


async def exercise_hierarchical(c: Client, view: str, provider: str) -> dict[str, Any]:
    """The hierarchical view (/mcp over HTTP, `mcpr stdio`): meta-tools, direct calls, errors.

    The provider must already answer (callers wait for it).
    """
    out: dict[str, Any] = session_info(c)
    out["tools"] = await tool_names(c)
    out["list_providers"] = await call_ok(c, view, "list_providers", {})
    out["list_tools"] = await call_ok(c, view, "list_tools", {"provider": provider})
    out["search_tools"] = await call_ok(c, view, "search_tools", {"query": "add two numbers"})
    out["call_tool_echo"] = await call_ok(
        c, view, "call_tool", {"provider": provider, "tool": "echo", "arguments": {"text": "hello from the python sdk"}}
    )
    out["call_tool_add"] = await call_ok(
        c, view, "call_tool", {"provider": provider, "tool": "add", "arguments": {"a": 2, "b": 3}}
    )
    # A provider's tool called by its own name, with the provider as an extra argument.
    out["direct_echo"] = await call_ok(c, view, "echo", {"provider": provider, "text": "called directly"})
    out["unknown_provider"] = await call_tool_error(
        c, view, "call_tool", {"provider": "no-such-provider", "tool": "echo", "arguments": {"text": "x"}}
    )
    # A provider's tool name without the provider argument is not a tool of this view.
    out["unknown_tool"] = await call_rpc_error(c, view, "echo", {"text": "no provider given"})
    return out


def run(script: str, main: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """Runs `main` under a time limit; prints its JSON (plus `sdk` facts) or fails clearly."""
    # Warnings go to stderr, for whoever reads a failing test's output, and into the JSON.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=f"{script}: %(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(_warnings)

    async def timed() -> dict[str, Any]:
        with anyio.fail_after(SCRIPT_TIMEOUT_S):
            return await main()

    try:
        observed = anyio.run(timed)
    except TimeoutError:
        print(f"{script}: FAILED: did not finish within {SCRIPT_TIMEOUT_S} s", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.exit(1)
    except BaseException as e:  # noqa: BLE001 - any failure ends the script with its reason
        if isinstance(e, SystemExit):
            raise
        leaves = list(_leaves(e))
        print(f"{script}: FAILED: " + "; ".join(f"{type(x).__name__}: {x}" for x in leaves), file=sys.stderr)
        for leaf in leaves:
            traceback.print_exception(type(leaf), leaf, leaf.__traceback__, file=sys.stderr)
        sys.exit(1)
    observed["sdk"] = {"package": "mcp", "version": version("mcp"), "warnings": sdk_warnings()}
    json.dump(observed, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


def _leaves(e: BaseException):
    """The exceptions at the bottom of (nested) exception groups."""
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            yield from _leaves(inner)
    else:
        yield e
