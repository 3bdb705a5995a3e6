"""An MCP server written with the official MCP Python SDK 2.x (`MCPServer`), over stdio.

    interop_server.py

The upstream "python-sdk" of the interop matrix (tests/e2e/tests/interop.rs), built the way
the SDK's documentation shows, with what a client meets in servers of this SDK:
  add(a, b)        structured output: {"sum": a + b} with its outputSchema, and the sum as text
  count(steps)     reports progress once per step, then answers "counted N"
  confirm(question) asks the client (elicitation) and answers with what it said
  interop://about  a text resource
  greet(name)      a prompt
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

server = MCPServer("interop-python-sdk", version="1.0.0")


class Sum(BaseModel):
    sum: int = Field(description="a + b")


@server.tool(description="Add two integers and return their sum")
def add(a: int, b: int) -> Sum:
    return Sum(sum=a + b)


@server.tool(description="Count to `steps`, reporting progress at each step")
async def count(steps: int, ctx: Context) -> str:
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step} of {steps}")
    return f"counted {steps}"


class Answer(BaseModel):
    answer: str = Field(description="the answer to the question")


@server.tool(description="Ask the client `question` (elicitation) and answer with its reply")
async def confirm(question: str, ctx: Context) -> str:
    reply = await ctx.elicit(question, Answer)
    if reply.action != "accept" or reply.data is None:
        return f"not answered: {reply.action}"
    return f"the client answered {reply.data.answer}"


@server.resource("interop://about", name="about", mime_type="text/plain", description="What this server is")
def about() -> str:
    return "an MCP server written with the Python SDK MCPServer"


@server.prompt(description="Greet someone by name")
def greet(name: str) -> str:
    return f"Say hello to {name}, from the Python SDK server."


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    server.run("stdio")
