// The official TypeScript SDK's `Client` in the interop matrix (tests/e2e/tests/interop.rs):
// one path, every upstream. The same cells as tests/python/interop_client.py (see there).
//
//   node client.mjs CONFIG PATH
//
// PATH: call_tool, direct, all, transparent (streamable HTTP with the test router's API
// key), stdio (`StdioClientTransport` spawning `mcpr stdio`), bridge (spawning
// `mcpr --url URL stdio` with MCPR_API_KEY). Prints {"cells": {UPSTREAM: "ok" | why not}}.

import { readFileSync } from "node:fs";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ProgressNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const CONNECT_TIMEOUT_MS = 30_000;
const CELL_TIMEOUT_MS = 45_000;
const REQUEST_TIMEOUT_MS = 40_000;
const HIERARCHICAL_PATHS = ["call_tool", "direct", "stdio", "bridge"];
const META_TOOLS = ["call_tool", "list_providers", "list_tools", "search_tools"];

class Failure extends Error {}

function require(what, condition, detail) {
  if (!condition) throw new Failure(`${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
}

function short(value, limit = 200) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length <= limit ? text : `${text.slice(0, limit)}…`;
}

function textsOf(blocks) {
  return (blocks ?? []).filter((b) => typeof b?.text === "string").map((b) => b.text);
}

function withTimeout(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what}: timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function transportFor(config, path, urlPath) {
  if (path === "stdio" || path === "bridge") {
    const env = { RUST_LOG: "warn" };
    let args;
    if (path === "stdio") {
      Object.assign(env, config.stdio_env);
      // Port 0: the API and UI this router serves on the side take any free port.
      args = ["stdio", "--port", "0", "--data-dir", config.data_dir];
    } else {
      env.MCPR_API_KEY = config.api_key;
      args = ["--url", config.base_url, "stdio"];
    }
    return new StdioClientTransport({ command: config.mcpr, args, env, stderr: "inherit" });
  }
  return new StreamableHTTPClientTransport(new URL(`${config.base_url}${urlPath}`), {
    requestInit: { headers: { Authorization: `Bearer ${config.api_key}` } },
  });
}

function toolCall(path, upstream, tool, args) {
  if (path === "direct") return [tool, { ...args, provider: upstream }];
  if (path === "all") return [`${upstream}__${tool}`, args];
  if (path === "transparent") return [tool, args];
  return ["call_tool", { provider: upstream, tool, arguments: args }];
}

async function allTools(client) {
  const names = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const result = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: REQUEST_TIMEOUT_MS });
    names.push(...result.tools.map((t) => t.name));
    cursor = result.nextCursor;
    if (cursor === undefined) return names;
  }
  throw new Failure("tools/list: more than 100 pages");
}

// Every progress notification the client received. The SDK's own routing to `onprogress`
// runs a microtask after the message is read, but forgets the request's handler as soon as
// its answer is read: progress read in the same chunk as the answer (over stdio it is, often)
// never reaches `onprogress`. Counting here sees what the router delivered.
const progressSeen = [];

async function call(client, name, args, withProgress) {
  const options = { timeout: REQUEST_TIMEOUT_MS };
  // onprogress makes the SDK send a progressToken; the notifications are counted above.
  if (withProgress) options.onprogress = () => {};
  const result = await client.callTool({ name, arguments: args }, undefined, options);
  return { isError: Boolean(result.isError), text: textsOf(result.content).join("\n"), structured: result.structuredContent ?? null };
}

async function listedTools(client, path, upstream, viewTools) {
  if (path === "all") {
    const prefix = `${upstream}__`;
    return viewTools.filter((t) => t.startsWith(prefix)).map((t) => t.slice(prefix.length));
  }
  if (path === "transparent") return viewTools;
  const listed = await call(client, "list_tools", { provider: upstream });
  require("list_tools", !listed.isError, listed.text);
  const body = listed.structured ?? JSON.parse(listed.text);
  // The router's word on a provider still starting belongs in the failure, not a bare [].
  require("list_tools", body.starting_providers === undefined, body.note ?? "");
  return (body.tools ?? []).map((t) => t.name);
}

async function runCell(client, path, spec, viewTools) {
  const upstream = spec.name;
  const tools = await listedTools(client, path, upstream, viewTools);
  const missing = spec.tools.filter((t) => !tools.includes(t));
  require("tools listed", missing.length === 0, `${JSON.stringify(missing)} missing from ${JSON.stringify(tools)}`);

  const calls = spec.calls.map((c) => [c, false]);
  if (spec.progress) calls.push([spec.progress, true]);
  for (const [c, withProgress] of calls) {
    const progressBefore = progressSeen.length;
    const [name, args] = toolCall(path, upstream, c.tool, c.arguments);
    const result = await call(client, name, args, withProgress);
    const observed = `${result.text}\n${JSON.stringify(result.structured)}`;
    const what = `${c.tool} ${JSON.stringify(c.arguments)}`;
    require(what, !result.isError, `isError: ${short(result.text)}`);
    require(what, observed.includes(c.expect), `${JSON.stringify(c.expect)} not in ${short(observed)}`);
    if ("structured" in c) {
      require(what, JSON.stringify(result.structured) === JSON.stringify(c.structured), `structuredContent ${short(result.structured)}`);
    }
    if (withProgress) require(what, progressSeen.length > progressBefore, "no progress notification reached the client");
  }

  if (path !== "transparent") return;
  for (const resource of spec.resources ?? []) {
    const uris = (await client.listResources({}, { timeout: REQUEST_TIMEOUT_MS })).resources.map((r) => r.uri);
    require("resources/list", uris.includes(resource.uri), `${resource.uri} not in ${JSON.stringify(uris)}`);
    const read = await client.readResource({ uri: resource.uri }, { timeout: REQUEST_TIMEOUT_MS });
    const text = textsOf(read.contents).join("\n");
    require(`resources/read ${resource.uri}`, text.includes(resource.expect), short(text));
  }
  for (const prompt of spec.prompts ?? []) {
    const names = (await client.listPrompts({}, { timeout: REQUEST_TIMEOUT_MS })).prompts.map((p) => p.name);
    require("prompts/list", names.includes(prompt.name), `${prompt.name} not in ${JSON.stringify(names)}`);
    const got = await client.getPrompt({ name: prompt.name, arguments: prompt.arguments }, { timeout: REQUEST_TIMEOUT_MS });
    const text = textsOf(got.messages.map((m) => m.content)).join("\n");
    require(`prompts/get ${prompt.name}`, text.includes(prompt.expect), short(text));
  }
}

function describe(error) {
  return `${error?.constructor?.name ?? "Error"}: ${error?.message ?? String(error)}`.replace(/\n/g, " ");
}

async function cellsOnOneConnection(config, path, urlPath, upstreams) {
  const cells = {};
  const client = new Client({ name: "mcpr-interop", version: "1.0.0" });
  client.setNotificationHandler(ProgressNotificationSchema, (notification) => progressSeen.push(notification.params));
  try {
    await withTimeout(CONNECT_TIMEOUT_MS, "connect", client.connect(transportFor(config, path, urlPath), { timeout: CONNECT_TIMEOUT_MS }));
    const viewTools = await allTools(client);
    if (HIERARCHICAL_PATHS.includes(path)) {
      const missing = META_TOOLS.filter((t) => !viewTools.includes(t));
      require("the view's tools/list", missing.length === 0, `meta-tools ${JSON.stringify(missing)} missing from ${JSON.stringify(viewTools)}`);
    }
    for (const spec of upstreams) {
      try {
        await withTimeout(CELL_TIMEOUT_MS, spec.name, runCell(client, path, spec, viewTools));
        cells[spec.name] = "ok";
      } catch (error) {
        console.error(`client.mjs [${path}] ${spec.name}:`, error);
        cells[spec.name] = describe(error);
      }
    }
  } catch (error) {
    console.error(`client.mjs [${path}] connection:`, error);
    for (const spec of upstreams) cells[spec.name] ??= `connection: ${describe(error)}`;
  } finally {
    await client.close().catch(() => {});
  }
  return cells;
}

const [configPath, path] = process.argv.slice(2);
if (!configPath || !path) {
  console.error("usage: node client.mjs CONFIG PATH");
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, "utf8"));
let cells = {};
if (path === "transparent") {
  for (const spec of config.upstreams) {
    Object.assign(cells, await cellsOnOneConnection(config, path, `/mcp/p/${spec.name}`, [spec]));
  }
} else {
  const urlPath = { call_tool: "/mcp", direct: "/mcp", all: "/mcp/all" }[path] ?? "";
  cells = await cellsOnOneConnection(config, path, urlPath, config.upstreams);
}
const sdk = JSON.parse(readFileSync(new URL("./node_modules/@modelcontextprotocol/sdk/package.json", import.meta.url), "utf8"));
process.stdout.write(`${JSON.stringify({ client: "typescript-sdk", path, library: `${sdk.name} ${sdk.version}`, cells })}\n`);
// Transports may keep handles open (the stdio child, keep-alive sockets).
process.exit(0);
