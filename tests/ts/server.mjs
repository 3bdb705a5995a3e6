// An MCP server written with the official TypeScript SDK (`McpServer`), the upstreams
// "ts-stdio" and "ts-http" of the interop matrix (tests/e2e/tests/interop.rs).
//
//   node server.mjs                  over stdio
//   node server.mjs --http PORT      over streamable HTTP at http://127.0.0.1:PORT/mcp
//                                    (a session per client, as the SDK's examples do)
//
// What a client meets in servers of this SDK:
//   add(a, b)        structured output {sum} with its outputSchema, and the sum as text
//   count(steps)     progress once per step, then "counted N"
//   interop://about  a text resource
//   greet(name)      a prompt
//
// The SDK comes from ../shared/tools/ts-sdk (the npm registry is not reachable here): the
// test puts this file in a temporary directory beside a node_modules link to it.

import { randomUUID } from "node:crypto";
import { createServer } from "node:http";

import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

function buildServer(name) {
  const server = new McpServer({ name, version: "1.0.0" });
  server.registerTool(
    "add",
    {
      description: "Add two integers and return their sum",
      inputSchema: { a: z.number().int(), b: z.number().int() },
      outputSchema: { sum: z.number().int().describe("a + b") },
    },
    async ({ a, b }) => ({
      content: [{ type: "text", text: String(a + b) }],
      structuredContent: { sum: a + b },
    }),
  );
  server.registerTool(
    "count",
    {
      description: "Count to `steps`, reporting progress at each step",
      inputSchema: { steps: z.number().int().min(1).max(100) },
    },
    async ({ steps }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let step = 1; step <= steps; step++) {
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken, progress: step, total: steps, message: `step ${step} of ${steps}` },
          });
        }
      }
      return { content: [{ type: "text", text: `counted ${steps}` }] };
    },
  );
  server.registerResource(
    "about",
    "interop://about",
    { description: "What this server is", mimeType: "text/plain" },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: "text/plain", text: "an MCP server written with the TypeScript SDK McpServer" }],
    }),
  );
  server.registerPrompt(
    "greet",
    { description: "Greet someone by name", argsSchema: { name: z.string() } },
    ({ name: who }) => ({
      messages: [{ role: "user", content: { type: "text", text: `Say hello to ${who}, from the TypeScript SDK server.` } }],
    }),
  );
  return server;
}

function refuse(res, status, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message } }));
}

async function serveHttp(port) {
  const transports = new Map();
  const http = createServer(async (req, res) => {
    try {
      if (new URL(req.url, "http://localhost").pathname !== "/mcp") {
        return refuse(res, 404, "not found: the MCP endpoint is /mcp");
      }
      const sessionId = req.headers["mcp-session-id"];
      let transport = sessionId === undefined ? undefined : transports.get(sessionId);
      if (transport === undefined) {
        if (sessionId !== undefined) return refuse(res, 404, "unknown session");
        if (req.method !== "POST") return refuse(res, 400, "no session: POST initialize first");
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => transports.set(id, transport),
        });
        transport.onclose = () => transports.delete(transport.sessionId);
        await buildServer("interop-ts-http").connect(transport);
      }
      await transport.handleRequest(req, res);
    } catch (error) {
      console.error("server.mjs: request failed:", error);
      if (!res.headersSent) refuse(res, 500, String(error));
    }
  });
  await new Promise((resolve) => http.listen(port, "127.0.0.1", resolve));
  console.error(`server.mjs: listening on http://127.0.0.1:${port}/mcp`);
}

const httpAt = process.argv.indexOf("--http");
if (httpAt >= 0) {
  const port = Number(process.argv[httpAt + 1]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error(`server.mjs: --http needs a port, got ${process.argv[httpAt + 1]}`);
    process.exit(2);
  }
  await serveHttp(port);
} else {
  await buildServer("interop-ts-stdio").connect(new StdioServerTransport());
}
