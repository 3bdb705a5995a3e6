// "Try a tool" on the Tools page (#/tools): a form made from a tool's input schema, or raw
// JSON arguments, or Python code for python_sandbox, sent THROUGH THE GATEWAY as an MCP
// client would send it (streamable HTTP JSON-RPC: initialize, notifications/initialized,
// tools/call), and the answer shown as a client gets it: text, structured content, images,
// resource links and embedded resources, isError results, JSON-RPC errors, the duration.
//
// The gateway authenticates MCP clients itself; the admin's cookie is not an MCP
// credential. So the page asks the API for a short-lived admin MCP token
// (POST /api/v1/session/mcp-token, docs/AUTH.md) and sends it as a bearer token, also where
// the router needs none. Every string from a server (names, descriptions, schemas, results)
// is untrusted: the DOM is built with el() and textContent, never HTML.
"use strict";

const tryTool = (() => {
  const PROTOCOL = "2025-06-18";
  const SANDBOX = { server: null, path: "/mcp", tool: "python_sandbox" };
  // The current admin MCP token, and the MCP sessions opened with it (path -> session).
  let token = null;
  let tokenExpires = 0;
  const sessions = new Map();
  // What the panel is open for: { server, path, tool, schema, label } or null.
  let current = null;
  let opener = null;
  let raw = false;
  let nextId = 1;
  // A call is under way: Call does nothing more (it stays enabled, so that focus stays on it).
  let busy = false;

  async function credential(fresh) {
    if (fresh || !token || Date.now() > tokenExpires - 60000) {
      const minted = await api("POST", "/session/mcp-token");
      token = minted.token;
      tokenExpires = minted.expires_at_ms;
      sessions.clear();
    }
    return token;
  }

  // The JSON-RPC messages of a response: a JSON body (one message or a batch) or an SSE
  // stream's `data:` events.
  function messagesOf(contentType, text) {
    if (!text.trim()) return [];
    if ((contentType || "").includes("text/event-stream")) {
      const out = [];
      for (const event of text.split(/\r?\n\r?\n/)) {
        const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (!data) continue;
        try { out.push(JSON.parse(data)); } catch (_) { /* not JSON: skipped, as a client would */ }
      }
      return out;
    }
    const parsed = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : [parsed];
  }

  class McpFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function post(path, message, session) {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      Authorization: "Bearer " + token,
    };
    if (session) {
      headers["Mcp-Session-Id"] = session.id;
      headers["MCP-Protocol-Version"] = session.version;
    }
    let res;
    try {
      res = await fetch(location.origin + path, { method: "POST", headers, body: JSON.stringify(message), credentials: "omit" });
    } catch (e) {
      throw new McpFailure(0, "cannot reach the gateway (" + e.message + ")");
    }
    const text = await res.text();
    let messages = [];
    try { messages = messagesOf(res.headers.get("content-type"), text); } catch (_) { messages = []; }
    return { status: res.status, headers: res.headers, messages, text };
  }

  function answerTo(reply, id) {
    return reply.messages.find((m) => m && m.id === id && ("result" in m || "error" in m));
  }

  function refusal(reply) {
    const m = reply.messages.find((x) => x && x.error);
    const why = m ? m.error.message : reply.text.slice(0, 300) || "no answer";
    return new McpFailure(reply.status, "HTTP " + reply.status + ": " + why);
  }

  async function open(path) {
    const id = nextId++;
    const reply = await post(path, { jsonrpc: "2.0", id, method: "initialize", params: {
      protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "mcp-router-admin-ui", version: "1" } } });
    const answer = answerTo(reply, id);
    if (reply.status !== 200 || !answer || answer.error) {
      if (answer && answer.error) throw new McpFailure(reply.status, "initialize: " + answer.error.message);
      throw refusal(reply);
    }
    const session = { id: reply.headers.get("mcp-session-id") || "", version: answer.result.protocolVersion || PROTOCOL };
    await post(path, { jsonrpc: "2.0", method: "notifications/initialized" }, session);
    sessions.set(path, session);
    return session;
  }

  // tools/call through the gateway: { answer, ms } where answer is the JSON-RPC response.
  // A refused token or a forgotten session is replaced once.
  async function call(path, name, args) {
    for (let attempt = 0; ; attempt++) {
      await credential(attempt > 0);
      let session = sessions.get(path);
      try {
        if (!session) session = await open(path);
      } catch (e) {
        if (e.status === 401 && attempt === 0) continue;
        throw e;
      }
      const id = nextId++;
      const started = performance.now();
      const reply = await post(path, { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }, session);
      const ms = performance.now() - started;
      if ((reply.status === 401 || reply.status === 404) && attempt === 0) {
        sessions.delete(path);
        continue;
      }
      const answer = answerTo(reply, id);
      if (!answer) throw refusal(reply);
      return { answer, ms, status: reply.status };
    }
  }

  // --- the form -----------------------------------------------------------------------

  function typeOf(schema) {
    if (!schema || typeof schema !== "object") return "json";
    if (Array.isArray(schema.enum) && schema.enum.length && schema.enum.every((v) => ["string", "number", "boolean"].includes(typeof v))) return "enum";
    const t = Array.isArray(schema.type) ? schema.type.filter((x) => x !== "null") : [schema.type];
    if (t.length !== 1) return "json";
    return ["string", "number", "integer", "boolean"].includes(t[0]) ? t[0] : "json";
  }

  function fieldId(name) {
    return "try-arg-" + Array.from(name).map((c) => /[A-Za-z0-9_-]/.test(c) ? c : "_" + c.codePointAt(0).toString(16)).join("");
  }

  function properties() {
    const schema = current.schema || {};
    const props = schema.properties && typeof schema.properties === "object" ? schema.properties : {};
    const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : []);
    return Object.entries(props).map(([name, s]) => ({ name, schema: s || {}, kind: typeOf(s), required: required.has(name) }));
  }

  function control(p) {
    const label = p.name + (p.required ? " (required)" : "") + ", argument of " + current.label;
    const common = { id: fieldId(p.name), "data-arg": p.name, "aria-label": label };
    if (p.required) common["aria-required"] = "true";
    if (p.kind === "enum" || p.kind === "boolean") {
      const values = p.kind === "enum" ? p.schema.enum : [true, false];
      const select = el("select", common, el("option", { value: "" }, p.required ? "choose…" : "(not set)"),
        ...values.map((v, i) => el("option", { value: String(i) }, String(v))));
      select.dataset.values = JSON.stringify(values);
      return select;
    }
    if (p.kind === "number" || p.kind === "integer") {
      return el("input", Object.assign({ type: "number", step: p.kind === "integer" ? "1" : "any", inputmode: p.kind === "integer" ? "numeric" : "decimal" }, common));
    }
    if (p.kind === "string") return el("input", Object.assign({ type: "text", autocomplete: "off", spellcheck: "false" }, common));
    const kind = p.schema.type === "array" ? "array" : p.schema.type === "object" ? "object" : "value";
    return el("textarea", Object.assign({ rows: "3", spellcheck: "false", placeholder: kind === "array" ? "[ … ] as JSON" : kind === "object" ? "{ … } as JSON" : "JSON" }, common));
  }

  function renderFields() {
    const props = properties();
    const rows = props.map((p) => {
      const input = control(p);
      const desc = p.schema.description ? String(p.schema.description) : "";
      const type = p.kind === "json" ? (Array.isArray(p.schema.type) ? p.schema.type.join(" | ") : p.schema.type || "any") + ", as JSON" : p.kind === "enum" ? "one of " + p.schema.enum.length : p.kind;
      return el("label", { class: "field", for: input.id },
        el("span", {}, el("code", {}, p.name), " ", el("span", { class: "hint" }, type), p.required ? el("span", { class: "mark mark-required" }, "required") : null),
        desc ? el("span", { class: "hint" }, desc) : null,
        input,
        el("small", { class: "field-error", id: "e-" + input.id, "aria-live": "polite" }));
    });
    $("try-fields").replaceChildren(...rows);
    $("try-no-fields").hidden = props.length > 0;
  }

  function showFieldError(input, message) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "e-" + input.id);
    $("e-" + input.id).textContent = message;
  }

  function clearErrors() {
    for (const n of $("try-form").querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
    for (const n of $("try-form").querySelectorAll(".field-error")) n.textContent = "";
  }

  // The arguments the form says; null (with the errors shown) when something is wrong.
  // `strict`: required fields must be filled (not when switching to raw JSON).
  function formArguments(strict) {
    const args = {};
    let ok = true;
    for (const p of properties()) {
      const input = $(fieldId(p.name));
      const value = input.value;
      if (value === "") {
        if (p.required && strict) { showFieldError(input, "required"); ok = false; }
        continue;
      }
      if (input.tagName === "SELECT") {
        args[p.name] = JSON.parse(input.dataset.values)[Number(value)];
      } else if (p.kind === "number" || p.kind === "integer") {
        const n = Number(value);
        if (!Number.isFinite(n) || (p.kind === "integer" && !Number.isInteger(n))) { showFieldError(input, p.kind === "integer" ? "must be a whole number" : "must be a number"); ok = false; continue; }
        args[p.name] = n;
      } else if (p.kind === "string") {
        args[p.name] = value;
      } else {
        try { args[p.name] = JSON.parse(value); } catch (e) { showFieldError(input, "not JSON: " + e.message); ok = false; }
      }
    }
    return ok ? args : null;
  }

  // Fills the form from an arguments object (leaving raw mode); what has no field stays in
  // raw mode's text only.
  function fillForm(args) {
    for (const p of properties()) {
      const input = $(fieldId(p.name));
      const has = Object.prototype.hasOwnProperty.call(args, p.name);
      const v = args[p.name];
      if (input.tagName === "SELECT") {
        const i = has ? JSON.parse(input.dataset.values).findIndex((x) => x === v) : -1;
        input.value = i >= 0 ? String(i) : "";
      } else if (!has) input.value = "";
      else if (p.kind === "string" && typeof v === "string") input.value = v;
      else if ((p.kind === "number" || p.kind === "integer") && typeof v === "number") input.value = String(v);
      else input.value = JSON.stringify(v);
    }
  }

  function setRaw(on) {
    clearErrors();
    if (on) {
      const args = current.sandbox ? sandboxArguments(false) : formArguments(false);
      if (args === null) { $("try-raw").checked = false; return; }
      $("try-json").value = JSON.stringify(args, null, 2);
    } else {
      let args;
      try { args = JSON.parse($("try-json").value || "{}"); } catch (e) { showFieldError($("try-json"), "not JSON: " + e.message); $("try-raw").checked = true; return; }
      if (!args || typeof args !== "object" || Array.isArray(args)) { showFieldError($("try-json"), "the arguments must be a JSON object"); $("try-raw").checked = true; return; }
      if (current.sandbox) fillSandbox(args); else fillForm(args);
    }
    raw = on;
    $("try-raw").checked = on;
    $("try-raw-box").hidden = !on;
    $("try-fields").hidden = on || !!current.sandbox;
    $("try-sandbox").hidden = on || !current.sandbox;
    $("try-no-fields").hidden = on || !!current.sandbox || properties().length > 0;
    (on ? $("try-json") : firstControl()).focus();
  }

  function sandboxArguments(strict) {
    const code = $("try-code").value;
    if (!code.trim() && strict) { showFieldError($("try-code"), "required"); return null; }
    const args = { code };
    const timeout = $("try-timeout").value;
    if (timeout !== "") {
      const n = Number(timeout);
      if (!Number.isFinite(n) || n <= 0) { showFieldError($("try-timeout"), "must be a number of seconds above 0"); return null; }
      args.timeout = n;
    }
    return args;
  }

  function fillSandbox(args) {
    $("try-code").value = typeof args.code === "string" ? args.code : "";
    $("try-timeout").value = typeof args.timeout === "number" ? String(args.timeout) : "";
  }

  function firstControl() {
    if (current.sandbox) return $("try-code");
    const first = $("try-fields").querySelector("input, select, textarea");
    return first || $("try-submit");
  }

  function labelControls() {
    const name = current.label;
    $("try-title").textContent = current.sandbox ? "Run Python (python_sandbox)" : "Try " + name;
    $("try-where").textContent = "Called through the gateway at " + current.path + ", as the logged-in admin.";
    $("try-form").setAttribute("aria-label", "Arguments of " + name);
    $("try-raw").setAttribute("aria-label", "Raw JSON arguments of " + name);
    $("try-json").setAttribute("aria-label", "Arguments of " + name + " as a JSON object");
    $("try-submit").setAttribute("aria-label", "Call " + name);
    $("try-close").setAttribute("aria-label", "Close the try form of " + name);
    $("try-code").setAttribute("aria-label", "Python code to run with " + name);
    $("try-timeout").setAttribute("aria-label", "Timeout in seconds for " + name);
    $("try-result").setAttribute("aria-label", "Result of " + name);
  }

  // Opens the panel for tool `t` of server `server` (or the sandbox: `t` null), with focus
  // on its first field; `from` gets the focus back when it closes.
  function show(server, t, from) {
    if (t) {
      const shown = (t.mcpr && t.mcpr.name) || t.name;
      current = { server, path: "/mcp/p/" + enc(server), tool: String(shown), schema: t.inputSchema || {}, label: server + "__" + shown };
    } else {
      current = Object.assign({ sandbox: true, label: "python_sandbox", schema: {} }, SANDBOX);
    }
    opener = from || null;
    raw = false;
    $("try-raw").checked = false;
    $("try-raw-box").hidden = true;
    $("try-json").value = "";
    $("try-result").replaceChildren();
    $("try-status").textContent = "";
    renderFields();
    $("try-fields").hidden = !!current.sandbox;
    $("try-sandbox").hidden = !current.sandbox;
    if (current.sandbox) $("try-no-fields").hidden = true;
    labelControls();
    clearErrors();
    $("try-panel").hidden = false;
    $("try-panel").scrollIntoView({ block: "nearest" });
    firstControl().focus();
  }

  function close() {
    $("try-panel").hidden = true;
    current = null;
    if (opener && opener.isConnected) opener.focus();
    opener = null;
  }

  async function submit(ev) {
    ev.preventDefault();
    if (!current) return;
    clearErrors();
    let args;
    if (raw) {
      try { args = JSON.parse($("try-json").value || "{}"); } catch (e) { showFieldError($("try-json"), "not JSON: " + e.message); return; }
      if (!args || typeof args !== "object" || Array.isArray(args)) { showFieldError($("try-json"), "the arguments must be a JSON object"); return; }
    } else {
      args = current.sandbox ? sandboxArguments(true) : formArguments(true);
      if (args === null) return;
    }
    if (busy) return;
    const target = current;
    busy = true;
    $("try-submit").setAttribute("aria-disabled", "true");
    $("try-status").textContent = "calling " + target.tool + "…";
    try {
      const { answer, ms } = await call(target.path, target.tool, args);
      if (current !== target) return;
      renderAnswer(answer, ms, target);
    } catch (e) {
      if (current !== target) return;
      $("try-status").textContent = "";
      $("try-result").replaceChildren(el("div", { class: "try-outcome try-bad" }, el("strong", {}, "Not called"), " ", el("span", {}, e.message)));
    } finally {
      busy = false;
      $("try-submit").removeAttribute("aria-disabled");
    }
  }

  // --- the answer ---------------------------------------------------------------------

  function duration(ms) {
    return ms < 10 ? ms.toFixed(1) + " ms" : ms < 10000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function pre(text, cls) {
    return el("pre", { class: "try-pre" + (cls ? " " + cls : "") }, text);
  }

  const BASE64 = /^[A-Za-z0-9+/=\s]*$/;
  const IMAGE_TYPE = /^image\/[A-Za-z0-9.+-]+$/;

  function image(data, mimeType, what) {
    if (typeof data !== "string" || !BASE64.test(data) || !IMAGE_TYPE.test(String(mimeType || ""))) {
      return el("p", { class: "muted" }, what + ": not shown (" + String(mimeType || "no type") + ", data is not base64 image data)");
    }
    return el("img", { class: "try-image", src: "data:" + mimeType + ";base64," + data.replace(/\s/g, ""), alt: what + " (" + mimeType + ") returned by " + current.label });
  }

  function block(c, i) {
    const kind = c && typeof c === "object" ? String(c.type || "") : "";
    const head = (label) => el("h4", {}, "Content " + (i + 1) + ": " + label);
    switch (kind) {
      case "text":
        return el("div", { class: "try-block", "data-content": "text" }, head("text"), pre(String(c.text ?? "")));
      case "image":
        return el("div", { class: "try-block", "data-content": "image" }, head("image, " + String(c.mimeType || "")), image(c.data, c.mimeType, "image"));
      case "audio":
        return el("div", { class: "try-block", "data-content": "audio" }, head("audio, " + String(c.mimeType || "")),
          el("p", { class: "muted" }, "audio data, " + Math.floor(String(c.data || "").length * 3 / 4) + " bytes (not played here)"));
      case "resource_link":
        return el("div", { class: "try-block", "data-content": "resource_link" }, head("resource link"),
          el("dl", { class: "info" },
            el("dt", {}, "URI"), el("dd", {}, el("code", {}, String(c.uri || ""))),
            el("dt", {}, "Name"), el("dd", {}, String(c.name || c.title || "—")),
            el("dt", {}, "Type"), el("dd", {}, String(c.mimeType || "—")),
            c.description ? el("dt", {}, "Description") : null, c.description ? el("dd", {}, String(c.description)) : null));
      case "resource": {
        const r = c.resource || {};
        const body = typeof r.text === "string" ? pre(r.text)
          : typeof r.blob === "string" && IMAGE_TYPE.test(String(r.mimeType || "")) ? image(r.blob, r.mimeType, "embedded image")
          : typeof r.blob === "string" ? el("p", { class: "muted" }, "binary, " + Math.floor(r.blob.length * 3 / 4) + " bytes") : pre(JSON.stringify(r, null, 2));
        return el("div", { class: "try-block", "data-content": "resource" }, head("embedded resource"),
          el("p", {}, el("code", {}, String(r.uri || "")), " ", el("span", { class: "muted" }, String(r.mimeType || ""))), body);
      }
      default:
        return el("div", { class: "try-block", "data-content": "other" }, head(kind || "unknown"), pre(JSON.stringify(c, null, 2)));
    }
  }

  // What python_sandbox reports in its structured content: exit code, stdout, stderr and
  // the limits it hit (node-agent/src/runtime/sandbox.rs, RunOutcome).
  function sandboxOutcome(s) {
    const limits = [];
    if (s.timed_out) limits.push("killed: wall time limit reached");
    if (s.oom_killed) limits.push("killed: out of memory");
    if (s.stdout_truncated) limits.push("stdout cut at the output limit");
    if (s.stderr_truncated) limits.push("stderr cut at the output limit");
    return el("div", { class: "try-sandbox-run" },
      el("dl", { class: "info" },
        el("dt", {}, "Exit code"), el("dd", { id: "try-exit-code", class: s.exit_code === 0 ? "" : "error-text" }, s.exit_code === null || s.exit_code === undefined ? "none" : String(s.exit_code)),
        el("dt", {}, "Ran for"), el("dd", {}, typeof s.duration_ms === "number" ? s.duration_ms + " ms in the sandbox" : "—"),
        el("dt", {}, "Limits hit"), el("dd", { id: "try-limits", class: limits.length ? "error-text" : "" }, limits.length ? limits.join("; ") : "none")),
      el("h4", {}, "stdout"), output(s.stdout, "try-stdout"),
      el("h4", {}, "stderr"), output(s.stderr, "try-stderr"));
  }

  // A stream's text, or a note that it was empty (an empty box reads as a glitch).
  function output(text, cls) {
    const shown = String(text ?? "");
    return shown ? pre(shown, cls) : el("p", { class: "muted " + cls }, "(empty)");
  }

  function renderAnswer(answer, ms, target) {
    const took = "took " + duration(ms);
    const parts = [];
    if (answer.error) {
      const e = answer.error;
      parts.push(el("div", { class: "try-outcome try-bad", "data-outcome": "rpc-error" },
        el("strong", {}, "JSON-RPC error " + String(e.code)), " ", el("span", {}, String(e.message || "")), " ", el("span", { class: "muted try-took" }, took)));
      if (e.data !== undefined) parts.push(el("h4", {}, "Error data"), pre(JSON.stringify(e.data, null, 2)));
      $("try-status").textContent = "JSON-RPC error " + e.code + ", " + took;
    } else {
      const r = answer.result || {};
      const isError = r.isError === true;
      parts.push(el("div", { class: "try-outcome " + (isError ? "try-bad" : "try-good"), "data-outcome": isError ? "tool-error" : "ok" },
        el("strong", {}, isError ? "Tool error (isError: true)" : "Result"), " ", el("span", { class: "muted try-took" }, took)));
      const s = r.structuredContent;
      const content = Array.isArray(r.content) ? r.content : [];
      const reported = content.map(block);
      if (s !== undefined) reported.push(el("div", { class: "try-block", "data-content": "structured" }, el("h4", {}, "Structured content"), pre(JSON.stringify(s, null, 2))));
      if (!reported.length) reported.push(el("p", { class: "muted" }, "no content"));
      if (target.sandbox && s && typeof s === "object") {
        // The run as the sandbox reports it; its text and structured content say the same.
        parts.push(sandboxOutcome(s), el("details", { class: "try-raw-answer" }, el("summary", {}, "Content and structured content"), ...reported));
      } else parts.push(...reported);
      $("try-status").textContent = (isError ? "tool error, " : "done, ") + took;
    }
    parts.push(el("details", { class: "try-raw-answer" }, el("summary", {}, "The JSON-RPC answer"), pre(JSON.stringify(answer, null, 2))));
    $("try-result").replaceChildren(...parts);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("try-form").addEventListener("submit", submit);
    $("try-close").addEventListener("click", close);
    $("try-raw").addEventListener("change", () => setRaw($("try-raw").checked));
    $("try-sandbox-open").addEventListener("click", (ev) => show(null, null, ev.currentTarget));
    // Escape closes the form, from inside it (or with focus nowhere, after a click on the
    // page's background).
    document.addEventListener("keydown", (ev) => {
      if (ev.key !== "Escape" || $("try-panel").hidden || currentPage !== "tools") return;
      const inside = $("try-panel").contains(document.activeElement);
      if (inside || document.activeElement === document.body) { ev.stopPropagation(); close(); }
    });
    // Ctrl+Enter (or Cmd+Enter) calls from the code and JSON text areas.
    for (const id of ["try-code", "try-json"]) {
      $(id).addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("try-form").requestSubmit(); }
      });
    }
  });

  // The admin logged out: forget the token (the router has ended it).
  function forget() {
    token = null;
    tokenExpires = 0;
    sessions.clear();
  }

  return { show, close, forget, isOpenFor: (label) => !!current && current.label === label };
})();
