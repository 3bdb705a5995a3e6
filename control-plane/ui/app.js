// MCP Router admin UI: plain JS over the REST API (/api/v1, see docs/API.md).
// Every string from the API reaches the DOM through textContent or attributes, never HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const STATES = ["pending", "starting", "running", "backoff", "stopped"];
// How soon to ask again when the router does not answer the session check.
const RETRY_MS = 2000;
let servers = [];
let detailsName = null;
let noticeTimer = null;
// The session's CSRF token (from GET /api/v1/session), sent on every state-changing call.
let csrf = null;
let loggedIn = false;

// --- helpers -------------------------------------------------------------------------

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c); // strings become text nodes
  return e;
}

class ApiError extends Error {
  constructor(status, field, message) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

function fieldError(field, message) {
  return new ApiError(0, field, message);
}

async function api(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  // Every write says it is JSON, with or without a body: the API refuses any other (a
  // cross-site form could send those).
  if (method !== "GET") {
    opts.headers["Content-Type"] = "application/json";
    if (csrf) opts.headers["X-CSRF-Token"] = csrf;
  }
  if (body !== undefined) opts.body = JSON.stringify(body);
  let res;
  try {
    res = await fetch("/api/v1" + path, opts);
  } catch (e) {
    throw new ApiError(0, null, "cannot reach the router API (" + e.message + ")");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (res.status === 401 && path !== "/login" && path !== "/session") showLogin();
  if (!res.ok) {
    const err = (data && data.error) || {};
    const message = (err.message || (res.statusText || "request failed")) + " (" + res.status + ")";
    throw new ApiError(res.status, err.field || null, message);
  }
  return data;
}

const enc = encodeURIComponent;

// Splits a command line like a POSIX shell (same rules as `mcpr server add --command`).
function splitCommand(line) {
  const words = [];
  let word = "", inWord = false;
  const bad = (m) => fieldError("runtime.command", m);
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (" \t\r\n".includes(c)) {
      if (inWord) { words.push(word); word = ""; inWord = false; }
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw bad("unterminated ' quote");
      word += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= line.length) throw bad('unterminated " quote');
        const d = line[i];
        if (d === '"') break;
        if (d === "\\" && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1])) {
          i++;
          if (line[i] !== "\n") word += line[i];
        } else {
          word += d;
        }
      }
    } else if (c === "\\") {
      if (i + 1 >= line.length) throw bad("a trailing backslash escapes nothing");
      i++;
      if (line[i] !== "\n") { word += line[i]; inWord = true; }
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function shellQuote(w) {
  return w !== "" && /^[A-Za-z0-9_\-./:=@%+,]+$/.test(w) ? w : "'" + w.replace(/'/g, "'\\''") + "'";
}

// "KEY=VALUE" lines (or "Name: value" when sep allows ':') into an object.
function parsePairs(text, sep, field, expected) {
  const out = Object.create(null);
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (!line.trim() || line.trim().startsWith("#")) return;
    const at = line.search(sep);
    const key = at < 0 ? "" : line.slice(0, at).trim();
    if (!key) throw fieldError(field, "line " + (i + 1) + ": expected " + expected);
    let value = line.slice(at + 1);
    if (line[at] === ":") value = value.trimStart();
    out[key] = value;
  });
  return out;
}

// The command line, URL or container a runtime runs, as one line.
function runtimeSummary(rt) {
  if (!rt) return "";
  if (rt.kind === "remote") return rt.url || "";
  const args = (rt.args || []).map(shellQuote);
  if (rt.kind === "docker") {
    const what = rt.image ? ["image", rt.image] : rt.npx ? ["npx", rt.npx] : rt.uvx ? ["uvx", rt.uvx]
      : ["command", rt.command || ""];
    return [what[0], shellQuote(what[1])].concat(args).join(" ");
  }
  return [shellQuote(rt.command || "")].concat(args).join(" ");
}

// Defaults of a docker server's limits (core/src/model.rs DockerLimits).
const DOCKER_DEFAULTS = { memory_mb: 512, millicpus: 1000, pids: 256 };

// "network none · 512 MiB · 1 CPU · 256 pids" for a docker runtime, else "".
function dockerLimits(rt) {
  if (!rt || rt.kind !== "docker") return "";
  const n = (k) => rt[k] ?? DOCKER_DEFAULTS[k];
  return "network " + (rt.network || "none") + " · " + n("memory_mb") + " MiB · " +
    (n("millicpus") / 1000) + " CPU · " + n("pids") + " pids";
}

function shorten(s, max) {
  s = String(s || "").replace(/\s+/g, " ").trim();
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

function stateLabel(state, enabled) {
  return enabled === false && state !== "stopped" ? (state || "unknown") + " (disabled)" : state || "unknown";
}

function stateBadge(state, enabled) {
  const known = STATES.includes(state) ? state : "unknown";
  return el("span", { class: "badge state-" + known }, stateLabel(state, enabled));
}

// A server's last error is news only while it is not running: once back to running, the
// old error belongs to its history (the details page shows it as "previous error").
function currentError(s) {
  const st = s.status || {};
  return st.state === "running" ? "" : st.last_error || "";
}

// The notice is fixed to the viewport, so it shows wherever the page is scrolled.
function showNotice(message, isError) {
  $("notice-text").textContent = message;
  $("notice").className = "notice toast" + (isError ? " error" : " ok");
  $("notice").setAttribute("role", isError ? "alert" : "status");
  $("notice").hidden = false;
  clearTimeout(noticeTimer);
  if (!isError) noticeTimer = setTimeout(() => { $("notice").hidden = true; }, 6000);
}

// Sets a node's text only when it differs, so that an update leaves untouched what did not
// change (and the node keeps focus, selection and hover).
function setText(node, text) {
  text = String(text ?? "");
  if (node.textContent !== text) node.textContent = text;
}

function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

// --- server list ---------------------------------------------------------------------

// One row per server, kept across updates and changed in place (server name -> row parts).
const rows = new Map();

function makeRow(name) {
  const r = {};
  r.name = el("button", { type: "button", class: "link name", onclick: () => openDetails(name) }, name);
  r.badge = el("span", { class: "badge" });
  r.tools = el("td", { class: "num", "data-label": "Tools" });
  r.restarts = el("td", { class: "num", "data-label": "Restarts" });
  r.kind = el("span", { class: "kind" });
  r.runtime = el("code", {});
  r.limits = el("small", { class: "limits muted" });
  r.error = el("td", { class: "error-text", "data-label": "Error" });
  r.toggle = el("button", { type: "button", class: "small", "data-action": "toggle" });
  r.toggle.addEventListener("click", () => { const s = servers.find((x) => x.name === name); if (s) act(name, s.enabled ? "disable" : "enable"); });
  r.restart = el("button", { type: "button", class: "small", "data-action": "restart", "aria-label": "Restart server " + name, onclick: () => act(name, "restart") }, "Restart");
  r.remove = el("button", { type: "button", class: "small danger", "data-action": "delete", "aria-label": "Delete server " + name, onclick: () => removeServer(name) }, "Delete");
  r.runtimeCell = el("td", { class: "runtime", "data-label": "Runtime" }, r.kind, " ", r.runtime, r.limits);
  r.tr = el("tr", { "data-server": name },
    el("td", { class: "name-cell" }, r.name),
    el("td", { "data-label": "State" }, r.badge),
    r.tools, r.restarts, r.runtimeCell, r.error,
    el("td", { class: "actions" }, r.toggle, r.restart, r.remove));
  return r;
}

function updateRow(r, s) {
  const st = s.status || {};
  const known = STATES.includes(st.state) ? st.state : "unknown";
  setAttr(r.badge, "class", "badge state-" + known);
  setText(r.badge, stateLabel(st.state, s.enabled));
  setAttr(r.name, "title", s.description || "");
  setText(r.tools, st.tool_count ?? "");
  setText(r.restarts, st.restart_count ?? "");
  const runtime = runtimeSummary(s.runtime);
  setText(r.kind, (s.runtime && s.runtime.kind) || "");
  setText(r.runtime, shorten(runtime, 60));
  setAttr(r.runtimeCell, "title", runtime);
  setText(r.limits, dockerLimits(s.runtime));
  const error = currentError(s);
  setText(r.error, shorten(error, 80));
  setAttr(r.error, "title", error);
  const verb = s.enabled ? "Disable" : "Enable";
  setText(r.toggle, verb);
  setAttr(r.toggle, "aria-label", verb + " server " + s.name);
  r.toggle.disabled = offline;
  r.restart.disabled = offline || !s.enabled;
  r.remove.disabled = offline;
}

function renderServers() {
  renderDashboard();
  renderViews();
  const body = $("servers").querySelector("tbody");
  const seen = new Set();
  servers.forEach((s, i) => {
    let r = rows.get(s.name);
    if (!r) { r = makeRow(s.name); rows.set(s.name, r); }
    updateRow(r, s);
    // Moved only when out of place: moving a row would drop the focus inside it.
    if (body.children[i] !== r.tr) body.insertBefore(r.tr, body.children[i] || null);
    seen.add(s.name);
  });
  for (const [name, r] of rows) if (!seen.has(name)) { r.tr.remove(); rows.delete(name); }
  $("empty").hidden = servers.length > 0;
}

// The router cannot be reached: every action is disabled until it answers again.
let offline = false;
function setOffline(message) {
  const was = offline;
  offline = message !== null;
  document.body.classList.toggle("offline", offline);
  if (offline) {
    $("conn-error").textContent = message + " — showing the last known state; actions are disabled until it answers";
    $("refreshed").textContent = "offline";
  }
  $("conn-error").hidden = !offline;
  if (was !== offline) {
    for (const b of document.querySelectorAll("main button:not(#notice-close), main input[type=submit]")) {
      if (b.closest("#login")) continue;
      if (offline) { b.dataset.wasDisabled = b.disabled ? "1" : ""; b.disabled = true; }
      else { b.disabled = b.dataset.wasDisabled === "1"; delete b.dataset.wasDisabled; }
    }
    renderServers();
  }
}

// --- live feed -----------------------------------------------------------------------

// The page follows GET /api/v1/events (server-sent events): a snapshot first, then each
// change as it happens, applied in place. EventSource reconnects by itself and sends
// Last-Event-ID, so the feed resumes where it stopped (or starts over from a snapshot).
let feed = null;

function follow() {
  if (feed) feed.close();
  feed = new EventSource("/api/v1/events");
  const on = (kind, handler) => feed.addEventListener(kind, (ev) => {
    let data;
    try { data = JSON.parse(ev.data); } catch (_) { return; }
    handler(data);
  });
  feed.onopen = () => setOffline(null);
  feed.onerror = () => {
    if (!feed || feed.readyState === EventSource.CLOSED) {
      // Refused (the session ended, a 401) rather than cut: ask whether to log in again.
      feed = null;
      checkSession();
    } else {
      setOffline("cannot reach the router");
    }
  };
  on("snapshot", (d) => {
    setOffline(null);
    servers = Array.isArray(d.servers) ? d.servers : [];
    renderServers();
    renderKeys(d.keys || []);
    snapshotSeen = true;
    if (currentPage === "tools") loadAllTools();
    if (currentPage === "logs") logBook.open();
    if (detailsName !== null) {
      if (servers.some((x) => x.name === detailsName)) renderInfo(); else detailsGone(detailsName);
    }
    stamp();
  });
  on("server", (view) => {
    const at = servers.findIndex((x) => x.id === view.id);
    if (at < 0) servers.push(view); else servers[at] = view;
    renderServers();
    if (detailsName === view.name) renderInfo();
    stamp();
  });
  on("server_removed", (d) => {
    servers = servers.filter((x) => x.name !== d.name);
    renderServers();
    if (detailsName === d.name) detailsGone(d.name);
    stamp();
  });
  on("tools", (d) => {
    toolsByServer.set(d.server, d.tools);
    toolsChanged(d.server);
  });
  on("keys", (list) => renderKeys(list));
  on("log", (d) => {
    if (detailsName === d.server) appendLog(d);
    logBook.add(d);
  });
  on("audit", (r) => activityPage.add(r));
}

function stamp() {
  $("refreshed").textContent = "live · updated " + new Date().toLocaleTimeString();
}

function stopFollowing() {
  if (feed) { feed.close(); feed = null; }
}

async function act(name, verb) {
  try {
    const s = await api("POST", "/servers/" + enc(name) + "/" + verb);
    const done = { enable: "enabled", disable: "disabled", restart: "restarting" }[verb];
    showNotice(done + ' server "' + name + '" (state: ' + ((s && s.status && s.status.state) || "?") + ")", false);
  } catch (e) {
    showNotice(verb + ' "' + name + '": ' + e.message, true);
  }
}

async function removeServer(name) {
  if (!confirm('Delete server "' + name + '"? Its process is stopped and clients lose its tools.')) return;
  try {
    await api("DELETE", "/servers/" + enc(name));
    if (detailsName === name) closeDetails();
    showNotice('removed server "' + name + '"', false);
  } catch (e) {
    showNotice('delete "' + name + '": ' + e.message, true);
  }
}

// --- details -------------------------------------------------------------------------

// The name button and links go through the address (#/servers/NAME), so every view can be
// bookmarked and the back button works; route() then calls showDetails.
function openDetails(name) {
  location.hash = "#/servers/" + enc(name);
}

function showDetails(name) {
  if (detailsName === name && !$("details").hidden) return;
  detailsName = name;
  $("edit-form").hidden = true;
  $("d-title").textContent = name;
  $("d-info").replaceChildren();
  $("d-tools").replaceChildren();
  detailRows.clear();
  $("d-logs").textContent = "";
  $("details").hidden = false;
  renderInfo();
  loadDetails();
}

function closeDetails() {
  detailsName = null;
  $("details").hidden = true;
  if (location.hash.startsWith("#/servers/")) location.hash = "#/servers";
}

// The open server was deleted elsewhere (another admin, the CLI): close, and say so.
function detailsGone(name) {
  closeDetails();
  showNotice('server "' + name + '" no longer exists (deleted elsewhere)', true);
}

// Tools and recent logs, fetched once when the details open; the feed brings the rest.
async function loadDetails() {
  const name = detailsName;
  const path = "/servers/" + enc(name);
  const [tools, logs] = await Promise.allSettled([api("GET", path + "/tools"), api("GET", path + "/logs?tail=100")]);
  if (name !== detailsName) return;
  if ([tools, logs].some((r) => r.status === "rejected" && r.reason.status === 404)) {
    detailsGone(name);
    return;
  }
  if (tools.status === "fulfilled") {
    if (Array.isArray(tools.value)) toolsByServer.set(name, tools.value);
    renderTools(tools.value);
  }
  else { renderTools([]); setText($("d-tools-note"), tools.reason.message); }
  const pre = $("d-logs");
  if (logs.status === "fulfilled") {
    pre.textContent = (logs.value || []).map(logLine).join("\n");
    pre.dataset.empty = pre.textContent ? "" : "1";
    if (!pre.textContent) pre.textContent = "(no log lines yet)";
  } else {
    pre.textContent = logs.reason.message;
  }
  pre.scrollTop = pre.scrollHeight;
}

function renderInfo() {
  const s = servers.find((x) => x.name === detailsName);
  if (!s) return;
  const rt = s.runtime || {};
  const st = s.status || {};
  const keys = (o) => Object.keys(o || {}).join(", ");
  const info = [["Description", s.description], ["State", stateBadge(st.state, s.enabled)], ["Kind", rt.kind]];
  if (rt.kind === "remote") info.push(["URL", rt.url], ["Headers", keys(rt.headers)]);
  else if (rt.kind === "docker") {
    info.push(rt.image ? ["Image", rt.image] : rt.npx ? ["npx package", rt.npx] : rt.uvx ? ["uvx package", rt.uvx] : ["Command", rt.command],
      ["Arguments", (rt.args || []).map(shellQuote).join(" ")], ["Environment", keys(rt.env)],
      ["Network", rt.network || "none"], ["Limits", dockerLimits(rt).replace(/^network \w+ · /, "")]);
  } else info.push(["Command", runtimeSummary(rt)], ["Environment", keys(rt.env)], ["Working dir", rt.cwd]);
  if (st.progress) info.push(["Progress", st.progress]);
  info.push(["Session mode", s.session_mode], ["Agent", st.agent_id], ["Restarts", String(st.restart_count ?? "")],
    [st.state === "running" ? "Previous error" : "Last error", st.last_error],
    ["MCP URL", location.origin + "/mcp/p/" + enc(s.name)], ["Id", s.id]);
  $("d-info").replaceChildren(...info.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v || "—")]));
}

// The details page's tools: one row per tool, kept across updates (changed in place, so
// focus and an open overrides form stay).
const detailRows = new Map();

function renderTools(list) {
  list = Array.isArray(list) ? list : [];
  const ul = $("d-tools");
  const seen = new Set();
  list.forEach((t, i) => {
    const upstream = String(t.name || "");
    const key = detailsName + "\n" + upstream;
    let r = detailRows.get(key);
    if (!r) {
      const c = makeToolControls(detailsName, upstream);
      r = { c, code: el("code", {}), desc: el("span", { class: "muted tool-desc" }) };
      r.li = el("li", { "data-tool-key": detailsName + "/" + upstream },
        el("div", { class: "tool-line" }, el("span", { class: "tool-text" }, r.code, " ", c.badge, " ", c.shownAs, " ", r.desc),
          el("span", { class: "tool-actions" }, c.toggle, c.edit)), c.form);
      detailRows.set(key, r);
    }
    updateToolControls(r.c, t);
    setText(r.code, shownName(t));
    setText(r.desc, shownDescription(t));
    r.li.classList.toggle("tool-disabled", !toolSettings(t).enabled);
    if (ul.children[i] !== r.li) ul.insertBefore(r.li, ul.children[i] || null);
    seen.add(key);
  });
  for (const [key, r] of detailRows) if (!seen.has(key)) { r.li.remove(); detailRows.delete(key); }
  setText($("d-tools-note"), list.length ? "" : "No tools reported (yet).");
  $("d-tools-note").hidden = !$("d-tools-note").textContent;
}

function logLine(l) {
  return new Date(l.at_ms).toLocaleTimeString([], { hour12: false }) + " " + (l.stream || "") + "  " + l.line;
}

// Appends one live line, keeping the view at the bottom when it was there.
function appendLog(l) {
  const pre = $("d-logs");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  if (pre.dataset.empty === "1") { pre.textContent = ""; pre.dataset.empty = ""; }
  pre.append((pre.textContent ? "\n" : "") + logLine(l));
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

// --- add form ------------------------------------------------------------------------

const ERROR_SLOTS = [
  ["name", "e-name", "f-name"], ["description", "e-description", "f-description"],
  ["session_mode", "e-session", "f-session"], ["runtime.command", "e-command", "f-command"],
  ["runtime.args", "e-command", "f-command"], ["runtime.env", "e-env", "f-env"], ["runtime.cwd", "e-cwd", "f-cwd"],
  ["runtime.url", "e-url", "f-url"], ["runtime.headers", "e-headers", "f-headers"],
  ["runtime.image", "e-d-what", "f-d-what"], ["runtime.npx", "e-d-what", "f-d-what"], ["runtime.uvx", "e-d-what", "f-d-what"],
  ["runtime.d-args", "e-d-args", "f-d-args"], ["runtime.d-env", "e-d-env", "f-d-env"],
  ["runtime.memory_mb", "e-d-memory", "f-d-memory"], ["runtime.millicpus", "e-d-cpus", "f-d-cpus"], ["runtime.pids", "e-d-pids", "f-d-pids"],
];

function clearErrors() {
  for (const e of document.querySelectorAll(".field-error")) e.textContent = "";
  for (const e of document.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
}

function showFieldError(field, message) {
  if (currentKind() === "docker" && field) {
    field = field.replace(/^runtime\.(command)$/, "runtime.image").replace(/^runtime\.args/, "runtime.d-args").replace(/^runtime\.env/, "runtime.d-env");
  }
  const slot = field && ERROR_SLOTS.find(([f]) => field === f || field.startsWith(f + "."));
  if (slot) {
    $(slot[1]).textContent = message;
    $(slot[2]).setAttribute("aria-invalid", "true");
    $(slot[2]).focus();
  } else {
    $("e-form").textContent = message;
  }
}

function currentKind() {
  return document.querySelector('input[name="kind"]:checked').value;
}

function updateKind() {
  const kind = currentKind();
  for (const k of ["process", "remote", "docker"]) {
    for (const e of document.querySelectorAll(".only-" + k)) e.hidden = kind !== k;
  }
  const source = $("f-d-source").value;
  $("f-d-what-label").textContent = { image: "Image", npx: "npm package", uvx: "PyPI package", command: "Command" }[source];
  $("f-d-what").placeholder = { image: "mcp/time:latest", npx: "@modelcontextprotocol/server-everything", uvx: "mcp-server-time", command: "python -m my_server" }[source];
}

// A number field of the docker form, or undefined when empty.
function numberField(id, field, scale) {
  const raw = $(id).value.trim();
  if (!raw) return undefined;
  const n = Number(raw) * (scale || 1);
  if (!Number.isFinite(n) || n <= 0) throw fieldError(field, "enter a positive number");
  return Math.round(n);
}

function buildBody() {
  const body = {
    name: $("f-name").value.trim(),
    description: $("f-description").value.trim(),
    enabled: $("f-enabled").checked,
    session_mode: $("f-session").value,
  };
  if (!body.name) throw fieldError("name", "enter a name");
  if (currentKind() === "process") {
    const words = splitCommand($("f-command").value);
    if (!words.length) throw fieldError("runtime.command", "enter the command to run");
    body.runtime = { kind: "process", command: words[0], args: words.slice(1),
      env: parsePairs($("f-env").value, /=/, "runtime.env", "KEY=VALUE") };
    const cwd = $("f-cwd").value.trim();
    if (cwd) body.runtime.cwd = cwd;
  } else if (currentKind() === "docker") {
    const source = $("f-d-source").value;
    const what = $("f-d-what").value.trim();
    if (!what) throw fieldError("runtime." + source, "enter the " + $("f-d-what-label").textContent.toLowerCase());
    body.runtime = { kind: "docker", args: splitCommand($("f-d-args").value),
      env: parsePairs($("f-d-env").value, /=/, "runtime.env", "KEY=VALUE"), network: $("f-d-network").value };
    body.runtime[source] = what;
    const limits = { memory_mb: numberField("f-d-memory", "runtime.memory_mb"),
      millicpus: numberField("f-d-cpus", "runtime.millicpus", 1000), pids: numberField("f-d-pids", "runtime.pids") };
    for (const [k, v] of Object.entries(limits)) if (v !== undefined) body.runtime[k] = v;
  } else {
    const url = $("f-url").value.trim();
    if (!url) throw fieldError("runtime.url", "enter the server's URL");
    body.runtime = { kind: "remote", url, headers: parsePairs($("f-headers").value, /[=:]/, "runtime.headers", "Name: value") };
  }
  return body;
}

async function submitAdd(ev) {
  ev.preventDefault();
  clearErrors();
  let body;
  try { body = buildBody(); } catch (e) { showFieldError(e.field, e.message); return; }
  $("f-submit").disabled = true;
  try {
    await api("POST", "/servers", body);
    $("add-form").reset();
    updateKind();
    showNotice('added server "' + body.name + '"' + (body.enabled ? "; it starts in the background" : " (disabled)"), false);
  } catch (e) {
    showFieldError(e.field, e.message);
  } finally {
    $("f-submit").disabled = false;
  }
}

// --- start ---------------------------------------------------------------------------

function copyUrl() {
  const url = $("mcp-url").textContent;
  const done = () => { $("copy-url").textContent = "Copied"; setTimeout(() => { $("copy-url").textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(url).then(done, () => selectText($("mcp-url")));
  } else {
    selectText($("mcp-url"));
  }
}

function selectText(node) {
  const range = document.createRange();
  range.selectNodeContents(node);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

// --- login and API keys ------------------------------------------------------------

function showLogin() {
  loggedIn = false;
  csrf = null;
  $("logout").hidden = true;
  stopFollowing();
  document.body.classList.add("locked");
  $("login").hidden = false;
  $("l-passcode").focus();
}

async function checkSession() {
  try {
    const s = await api("GET", "/session");
    csrf = (s && s.csrf) || null;
    loggedIn = true;
    $("logout").hidden = !(s && s.auth);
    document.body.classList.remove("locked");
    $("login").hidden = true;
    follow();
  } catch (e) {
    // 401: a passcode is set and this browser has no session (yet): ask for it.
    if (e.status === 401) {
      showLogin();
    } else {
      $("conn-error").textContent = e.message;
      $("conn-error").hidden = false;
      setTimeout(checkSession, RETRY_MS);
    }
  }
}

async function submitLogin(ev) {
  ev.preventDefault();
  $("e-login").textContent = "";
  $("l-submit").disabled = true;
  try {
    await api("POST", "/login", { passcode: $("l-passcode").value, cookie: true });
    $("l-passcode").value = "";
    await checkSession();
  } catch (e) {
    $("e-login").textContent = e.message;
  } finally {
    $("l-submit").disabled = false;
  }
}

async function logout() {
  try { await api("POST", "/logout"); } catch (_) { /* the session is gone either way */ }
  tryTool.forget();
  showLogin();
}

// The keys page (renderKeys, creation, revoke, remove, OAuth) is in keys.js.

// --- pages ---------------------------------------------------------------------------

// #/ dashboard, #/servers, #/servers/NAME, #/add, #/tools, #/logs, #/activity (activity.js),
// #/keys, #/connect.
// null until the first route(), so that the first page shown gets focus like any other.
let currentPage = null;
// Where focus goes once the page that Escape closed is gone (set by the Escape handlers).
let returnFocus = null;
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let page = parts[0] || "dashboard";
  if (page === "servers" && parts[1]) page = "server";
  if (!["dashboard", "servers", "server", "add", "tools", "logs", "activity", "keys", "connect"].includes(page)) page = "dashboard";
  const changed = page !== currentPage;
  currentPage = page;
  for (const sec of document.querySelectorAll("[data-page]")) {
    // A server's details show under the list of servers.
    sec.hidden = !(sec.dataset.page === page || (page === "server" && sec.dataset.page === "servers"));
  }
  for (const a of document.querySelectorAll("[data-nav]")) {
    const active = a.dataset.nav === page || (page === "server" && a.dataset.nav === "servers") || (page === "add" && a.dataset.nav === "servers");
    if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (page === "server") showDetails(parts.slice(1).join("/"));
  else { detailsName = null; $("details").hidden = true; }
  if (page === "tools") loadAllTools();
  if (page === "connect") renderSnippets();
  if (page === "logs") logBook.open();
  if (page === "activity") activityPage.open(); else activityPage.close();
  if (page === "add") addFrom.open(parts[1]);
  if (page === "keys") oauthPage.open();
  // Focus moves into what opened (its heading), for keyboard and screen reader users; back
  // to what opened it when Escape closed something.
  if (changed && returnFocus) {
    returnFocus.focus();
    returnFocus = null;
  } else if (changed) {
    const target = page === "server" ? $("details") : document.querySelector('[data-page="' + page + '"]');
    const heading = target && target.querySelector("h2");
    if (heading) heading.focus({ preventScroll: false });
  }
}

// --- dashboard -----------------------------------------------------------------------

function renderDashboard() {
  const st = (s) => (s.status || {}).state;
  const problems = servers.filter((s) => s.enabled && (st(s) === "backoff" || currentError(s)));
  const tools = servers.reduce((n, s) => n + ((s.status || {}).tool_count || 0), 0);
  const counts = [
    ["Servers", servers.length, "#/servers"],
    ["Running", servers.filter((s) => st(s) === "running").length, "#/servers"],
    ["Problems", problems.length, "#/servers"],
    ["Disabled", servers.filter((s) => !s.enabled).length, "#/servers"],
    ["Tools", tools, "#/tools"],
    ["Active API keys", allKeys.filter((k) => k.state === "active").length, "#/keys"],
  ];
  $("counts").replaceChildren(...counts.map(([label, n, href]) =>
    el("a", { class: "count" + (label === "Problems" && n ? " bad" : ""), href, "data-count": label }, el("strong", {}, String(n)), el("span", {}, label))));
  $("problems").replaceChildren(...problems.map((s) => el("li", {},
    el("a", { href: "#/servers/" + enc(s.name) }, s.name), " ", stateBadge(st(s), s.enabled), " ",
    el("span", { class: "error-text" }, currentError(s) || "restarting"))));
  $("no-problems").hidden = problems.length > 0;
}

// --- tools explorer ------------------------------------------------------------------

// Tool lists by server name, fetched when the Tools page opens, kept by `tools` events.
const toolsByServer = new Map();

async function loadAllTools() {
  const running = servers.filter((s) => (s.status || {}).tool_count > 0);
  await Promise.all(running.filter((s) => !toolsByServer.has(s.name)).map(async (s) => {
    try { toolsByServer.set(s.name, await api("GET", "/servers/" + enc(s.name) + "/tools")); } catch (_) { /* shown as missing */ }
  }));
  renderExplorer();
}

// One card per tool (server and upstream name -> its parts), kept across updates and
// changed in place: a `tools` event keeps open cards open and focus where it is.
const toolCards = new Map();

function makeToolCard(server, upstream) {
  const k = { c: makeToolControls(server, upstream), schemas: null };
  k.code = el("code", {});
  k.summaryDesc = el("span", { class: "muted" });
  k.desc = el("p", {});
  k.body = el("div", {});
  k.details = el("details", { class: "tool" },
    el("summary", {}, k.code, " ", k.c.badge, " ", k.c.shownAs, " ", k.summaryDesc), k.desc, k.body);
  k.try = el("button", { type: "button", class: "small try-open" }, "Try");
  k.try.addEventListener("click", () => tryTool.show(server, k.c.t, k.try));
  // The buttons sit beside the card, not in it: controls in a closed <details> are out of
  // the Tab order.
  k.card = el("div", { class: "tool-card", "data-tool-key": server + "/" + upstream },
    k.details, k.c.toggle, k.c.edit, k.try, k.c.form);
  return k;
}

function updateToolCard(k, s, t) {
  updateToolControls(k.c, t);
  const m = toolSettings(t);
  const full = s.name + "__" + shownName(t);
  setAttr(k.card, "data-try", full);
  setAttr(k.details, "data-tool", full);
  k.card.classList.toggle("tool-disabled", !m.enabled);
  setText(k.code, full);
  setText(k.summaryDesc, shorten(shownDescription(t), 120));
  setText(k.desc, shownDescription(t));
  setAttr(k.try, "aria-label", "Try the tool " + full);
  k.try.disabled = offline || !m.enabled;
  setAttr(k.try, "title", m.enabled ? "" : "enable the tool to try it");
  // The schemas only change with the upstream's list (not with the admin's settings).
  const upstream = Object.assign({}, t);
  delete upstream.mcpr;
  const json = JSON.stringify(upstream);
  if (k.schemas !== json) {
    k.schemas = json;
    const ann = t.annotations ? Object.entries(t.annotations).map(([a, v]) => a + ": " + JSON.stringify(v)).join(", ") : "";
    k.body.replaceChildren(...[
      ann ? el("p", { class: "muted" }, "Annotations: " + ann) : null,
      el("h4", {}, "Input schema"), el("pre", { class: "schema" }, JSON.stringify(t.inputSchema || {}, null, 2)),
      t.outputSchema ? el("h4", {}, "Output schema") : null,
      t.outputSchema ? el("pre", { class: "schema" }, JSON.stringify(t.outputSchema, null, 2)) : null,
    ].filter(Boolean));
  }
}

function renderExplorer() {
  if (currentPage !== "tools") return;
  const filter = $("t-filter").value.trim().toLowerCase();
  const list = $("t-list");
  const seen = new Set();
  const shown = [];
  let total = 0;
  for (const s of servers) {
    for (const t of toolsByServer.get(s.name) || []) {
      total++;
      const upstream = String(t.name || "");
      const key = s.name + "\n" + upstream;
      let k = toolCards.get(key);
      if (!k) { k = makeToolCard(s.name, upstream); toolCards.set(key, k); }
      updateToolCard(k, s, t);
      seen.add(key);
      const text = (s.name + "__" + shownName(t) + " " + upstream + " " + shownDescription(t)).toLowerCase();
      if (filter && !text.includes(filter)) continue;
      shown.push(k.card);
    }
  }
  for (const [key, k] of toolCards) if (!seen.has(key)) { k.card.remove(); toolCards.delete(key); }
  // Moved only when out of place: moving a card would drop the focus inside it.
  shown.forEach((card, i) => { if (list.children[i] !== card) list.insertBefore(card, list.children[i] || null); });
  while (list.children.length > shown.length) list.lastChild.remove();
  $("t-note").textContent = total ? shown.length + " of " + total + " tools (as /mcp/all names them)" : "No tools reported yet.";
}

// --- per-tool settings -----------------------------------------------------------------

// A tool's admin controls (Disable/Enable, Edit and its overrides form, the "disabled"
// badge), made once per server and upstream tool name and changed in place on updates, so
// that a `tools` event leaves focus, an open form and what is typed in it alone.
function makeToolControls(server, upstream) {
  const c = { server, upstream, t: null };
  const what = "tool " + upstream + " of server " + server;
  c.badge = el("span", { class: "badge tool-off", hidden: "" }, "disabled");
  c.shownAs = el("span", { class: "muted tool-upstream", hidden: "" });
  c.toggle = el("button", { type: "button", class: "small", "data-action": "tool-toggle" });
  c.toggle.addEventListener("click", () => toggleTool(c));
  c.edit = el("button", { type: "button", class: "small", "data-action": "tool-edit", "aria-expanded": "false",
    "aria-label": "Edit name and description of " + what }, "Edit");
  c.edit.addEventListener("click", () => (c.form.hidden ? openToolEdit(c) : closeToolEdit(c, true)));
  c.name = el("input", { type: "text", name: "name", autocomplete: "off", spellcheck: "false", maxlength: "128" });
  c.description = el("textarea", { name: "description", rows: "2" });
  c.error = el("span", { class: "field-error", role: "alert" });
  c.form = el("form", { class: "tool-edit", hidden: "", "aria-label": "Overrides of " + what },
    el("label", { class: "field" }, el("span", {}, "Name clients see ", el("span", { class: "hint" }, "(empty: " + upstream + ")")), c.name),
    el("label", { class: "field" }, el("span", {}, "Description ", el("span", { class: "hint" }, "(empty: the upstream's)")), c.description),
    c.error,
    el("div", { class: "form-actions" },
      el("button", { type: "submit", class: "small primary" }, "Save"),
      el("button", { type: "button", class: "small", "data-action": "tool-edit-cancel", onclick: () => closeToolEdit(c, true) }, "Cancel")));
  c.form.addEventListener("submit", (ev) => { ev.preventDefault(); saveToolEdit(c); });
  c.form.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    ev.stopPropagation();
    closeToolEdit(c, true);
  });
  for (const f of [c.name, c.description]) f.addEventListener("input", () => { c.error.textContent = ""; f.removeAttribute("aria-invalid"); });
  return c;
}

function toolSettings(t) {
  const m = (t && t.mcpr) || {};
  return { enabled: m.enabled !== false, name: m.name || null, description: m.description ?? null };
}

function updateToolControls(c, t) {
  c.t = t;
  const m = toolSettings(t);
  const what = "tool " + c.upstream + " of server " + c.server;
  c.badge.hidden = m.enabled;
  const verb = m.enabled ? "Disable" : "Enable";
  setText(c.toggle, verb);
  setAttr(c.toggle, "aria-label", verb + " " + what);
  setAttr(c.toggle, "aria-pressed", m.enabled ? "false" : "true");
  c.toggle.disabled = offline;
  c.edit.disabled = offline;
  setText(c.shownAs, m.name ? "(upstream: " + c.upstream + ")" : "");
  c.shownAs.hidden = !m.name;
  c.description.placeholder = shorten(t.description, 200);
}

async function toggleTool(c) {
  const verb = toolSettings(c.t).enabled ? "disable" : "enable";
  try {
    const r = await api("POST", "/servers/" + enc(c.server) + "/tools/" + enc(c.upstream) + "/" + verb);
    applyToolSettings(c.server, c.upstream, r);
    showNotice(verb + 'd tool "' + c.upstream + '" of server "' + c.server + '"', false);
  } catch (e) {
    showNotice(verb + ' tool "' + c.upstream + '" of "' + c.server + '": ' + e.message, true);
  }
}

function openToolEdit(c) {
  const m = toolSettings(c.t);
  c.name.value = m.name || "";
  c.description.value = m.description || "";
  c.error.textContent = "";
  c.name.removeAttribute("aria-invalid");
  c.form.hidden = false;
  setAttr(c.edit, "aria-expanded", "true");
  c.name.focus();
}

function closeToolEdit(c, refocus) {
  c.form.hidden = true;
  setAttr(c.edit, "aria-expanded", "false");
  if (refocus) c.edit.focus();
}

// "" restores the upstream's name or description (PATCH /servers/{name}/tools/{tool}).
async function saveToolEdit(c) {
  const body = { name: c.name.value.trim(), description: c.description.value };
  try {
    const r = await api("PATCH", "/servers/" + enc(c.server) + "/tools/" + enc(c.upstream), body);
    applyToolSettings(c.server, c.upstream, r);
    closeToolEdit(c, true);
    showNotice('saved tool "' + c.upstream + '" of server "' + c.server + '"' + (r && r.name ? ' (clients see "' + r.name + '")' : ""), false);
  } catch (e) {
    c.error.textContent = e.message;
    const field = e.field === "description" ? c.description : c.name;
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

// An answer of the tool settings API, applied at once (the feed's `tools` event follows).
function applyToolSettings(server, upstream, r) {
  const list = toolsByServer.get(server);
  const t = list && list.find((x) => x.name === upstream);
  if (!t || !r) return;
  t.mcpr = { enabled: r.enabled, name: r.name ?? null, description: r.description ?? null };
  toolsChanged(server);
}

function toolsChanged(server) {
  if (detailsName === server) renderTools(toolsByServer.get(server));
  renderExplorer();
}

// The name and description clients see (the overrides, else the upstream's).
function shownName(t) {
  return toolSettings(t).name || String(t.name || "");
}

function shownDescription(t) {
  const d = toolSettings(t).description;
  return d !== null && d !== "" ? d : t.description || "";
}

// --- logs page -----------------------------------------------------------------------

// Every server's recent lines (loaded when the page first opens), then the feed's `log`
// events; the view shows them filtered by server, stream and text, and stands still while
// paused (lines still arrive and show on resume).
const LOG_LINES_SHOWN = 5000;
// Whether the feed's first snapshot came (the servers whose logs to load are known).
let snapshotSeen = false;
const logBook = {
  lines: [],
  loaded: false,
  paused: false,
  missed: 0,
  add(l) {
    if (!this.loaded) return;
    this.lines.push(l);
    if (this.lines.length > LOG_LINES_SHOWN) this.lines.splice(0, this.lines.length - LOG_LINES_SHOWN);
    if (currentPage !== "logs") return;
    if (this.paused) { this.missed++; this.status(); return; }
    if (this.matches(l)) {
      const pre = $("g-lines");
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.append((pre.textContent ? "\n" : "") + this.format(l));
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      this.shown++;
      this.status();
    }
  },
  async open() {
    const select = $("g-server");
    const keep = select.value;
    select.replaceChildren(el("option", { value: "" }, "all servers"), ...servers.map((s) => el("option", { value: s.name }, s.name)));
    select.value = servers.some((s) => s.name === keep) ? keep : "";
    if (!this.loaded && snapshotSeen) {
      this.loaded = true;
      const all = await Promise.all(servers.map((s) => api("GET", "/servers/" + enc(s.name) + "/logs?tail=500")
        .then((ls) => ls.map((l) => Object.assign({ server: s.name }, l)), () => [])));
      // Lines the feed brought while these loaded are in both: keep one of each.
      const seen = new Set(this.lines.map((l) => l.server + l.at_ms + l.line));
      this.lines = all.flat().filter((l) => !seen.has(l.server + l.at_ms + l.line)).concat(this.lines)
        .sort((a, b) => a.at_ms - b.at_ms).slice(-LOG_LINES_SHOWN);
    }
    this.render();
  },
  matches(l) {
    const server = $("g-server").value, stream = $("g-stream").value, text = $("g-text").value.toLowerCase();
    return (!server || l.server === server) && (!stream || l.stream === stream) && (!text || l.line.toLowerCase().includes(text));
  },
  format(l) {
    return new Date(l.at_ms).toLocaleTimeString([], { hour12: false }) + " " + l.server + " " + (l.stream || "") + "  " + l.line;
  },
  visible() {
    return this.lines.filter((l) => this.matches(l));
  },
  render() {
    const shown = this.visible();
    this.shown = shown.length;
    this.missed = 0;
    const pre = $("g-lines");
    pre.textContent = shown.map((l) => this.format(l)).join("\n");
    pre.scrollTop = pre.scrollHeight;
    this.status();
  },
  status() {
    $("g-status").textContent = this.paused
      ? "paused" + (this.missed ? ": " + this.missed + " new lines" : "")
      : "following · " + this.shown + " of " + this.lines.length + " lines";
  },
  pause() {
    this.paused = !this.paused;
    $("g-pause").textContent = this.paused ? "Resume" : "Pause";
    $("g-pause").setAttribute("aria-pressed", String(this.paused));
    if (!this.paused) this.render(); else this.status();
  },
  download() {
    const text = this.visible().map((l) => new Date(l.at_ms).toISOString() + " " + l.server + " " + l.stream + " " + l.line).join("\n") + "\n";
    $("g-download").href = "data:text/plain;charset=utf-8," + encodeURIComponent(text);
  },
};

// --- edit and import -----------------------------------------------------------------

function openEdit() {
  const s = servers.find((x) => x.name === detailsName);
  if (!s) return;
  $("x-description").value = s.description || "";
  $("x-runtime").value = JSON.stringify(s.runtime, null, 2);
  $("x-session").value = s.session_mode || "shared";
  $("e-x-runtime").textContent = ""; $("e-x-form").textContent = "";
  $("edit-form").hidden = false;
  $("x-description").focus();
}

async function submitEdit(ev) {
  ev.preventDefault();
  $("e-x-runtime").textContent = ""; $("e-x-form").textContent = "";
  const name = detailsName;
  let runtime;
  try { runtime = JSON.parse($("x-runtime").value); } catch (e) { $("e-x-runtime").textContent = "not JSON: " + e.message; $("x-runtime").focus(); return; }
  $("x-submit").disabled = true;
  try {
    await api("PATCH", "/servers/" + enc(name), { description: $("x-description").value.trim(), runtime, session_mode: $("x-session").value });
    $("edit-form").hidden = true;
    showNotice('saved server "' + name + '"; it restarts with the new settings', false);
  } catch (e) {
    $(e.field && e.field.startsWith("runtime") ? "e-x-runtime" : "e-x-form").textContent = e.message;
  } finally {
    $("x-submit").disabled = offline;
  }
}

async function submitImport(ev) {
  ev.preventDefault();
  $("e-import").textContent = "";
  let doc;
  try { doc = JSON.parse($("i-json").value); } catch (e) { $("e-import").textContent = "not JSON: " + e.message; return; }
  try {
    const r = await api("POST", "/import", doc);
    const skipped = (r.skipped || []).map((x) => x.name + " (" + x.reason + ")");
    showNotice("imported " + (r.created.length ? r.created.join(", ") : "nothing") + (skipped.length ? "; skipped " + skipped.join(", ") : ""), false);
    $("i-json").value = "";
  } catch (e) {
    $("e-import").textContent = e.message;
  }
}

// --- connect -------------------------------------------------------------------------

let allKeys = [];
// Secrets of the keys created in this tab: shown once by the API, kept here for the snippets.
const secrets = new Map();
// The key just created: the connect page fills it in once the key list has it.
let chooseKey = null;

function renderViews() {
  const select = $("c-view");
  const want = [["/mcp", "hierarchical (/mcp): meta-tools to find and call any tool"], ["/mcp/all", "flat (/mcp/all): every tool as server__tool"]]
    .concat(servers.map((s) => ["/mcp/p/" + enc(s.name), "one server (/mcp/p/" + s.name + ")"]));
  const json = JSON.stringify(want);
  if (select.dataset.json === json) return;
  select.dataset.json = json;
  const keep = select.value;
  select.replaceChildren(...want.map(([v, label]) => el("option", { value: v }, label)));
  if (want.some(([v]) => v === keep)) select.value = keep;
  renderSnippets();
}

function renderKeyChoices() {
  const select = $("c-key");
  const keep = select.value;
  const options = [el("option", { value: "" }, "no key (a router without keys)")];
  for (const k of allKeys.filter((k) => k.state === "active")) {
    options.push(el("option", { value: k.id }, k.name + " (" + k.prefix + "…)" + (secrets.has(k.id) ? "" : ": paste its secret")));
  }
  select.replaceChildren(...options);
  const has = (id) => [...select.options].some((o) => o.value === id);
  if (chooseKey && has(chooseKey)) { select.value = chooseKey; chooseKey = null; }
  else if (has(keep)) select.value = keep;
  renderSnippets();
}

// The snippets of every client for the chosen view and key.
function snippets(url, key) {
  const auth = key ? { Authorization: "Bearer " + key } : null;
  const j = (o) => JSON.stringify(o, null, 2);
  const bridgeArgs = ["--url", url, "stdio"];
  const desktop = { mcpServers: { "mcp-router": Object.assign({ command: "mcpr", args: bridgeArgs }, key ? { env: { MCPR_API_KEY: key } } : {}) } };
  const header = key ? " --header " + shellQuote("Authorization: Bearer " + key) : "";
  const py = [
    "import asyncio",
    "from mcp import ClientSession",
    "from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client",
    "",
    "async def main():",
    "    async with create_mcp_http_client(" + (auth ? "headers=" + JSON.stringify(auth) : "") + ") as http:",
    "        async with streamable_http_client(" + JSON.stringify(url) + ", http_client=http) as (read, write):",
    "            async with ClientSession(read, write) as session:",
    "                await session.initialize()",
    "                tools = await session.list_tools()",
    "                print([t.name for t in tools.tools])",
    "",
    "asyncio.run(main())",
  ].join("\n");
  const ts = [
    'import { Client } from "@modelcontextprotocol/sdk/client/index.js";',
    'import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";',
    "",
    "const transport = new StreamableHTTPClientTransport(new URL(" + JSON.stringify(url) + ")" +
      (auth ? ", {\n  requestInit: { headers: " + JSON.stringify(auth) + " },\n}" : "") + ");",
    'const client = new Client({ name: "my-app", version: "1.0.0" });',
    "await client.connect(transport);",
    "console.log((await client.listTools()).tools.map((t) => t.name));",
  ].join("\n");
  return [
    ["claude-desktop", "Claude Desktop, through mcpr to this router (claude_desktop_config.json)", j(desktop)],
    ["claude-desktop-local", "Claude Desktop, with a router of its own in the process (mcpr stdio)", j({ mcpServers: { "mcp-router": { command: "mcpr", args: ["stdio", "--data-dir", "/ABSOLUTE/PATH/TO/mcpr-data"] } } })],
    ["claude-code", "Claude Code", "claude mcp add --transport http mcp-router " + shellQuote(url) + header],
    ["cursor", "Cursor (~/.cursor/mcp.json)", j({ mcpServers: { "mcp-router": Object.assign({ url }, auth ? { headers: auth } : {}) } })],
    ["vscode", "VS Code (.vscode/mcp.json)", j({ servers: { "mcp-router": Object.assign({ type: "http", url }, auth ? { headers: auth } : {}) } })],
    ["python", "Python SDK 2.x (pip install 'mcp>=2')", py],
    ["typescript", "TypeScript SDK (npm install @modelcontextprotocol/sdk)", ts],
  ];
}

function renderSnippets() {
  if (currentPage !== "connect") return;
  const url = location.origin + ($("c-view").value || "/mcp");
  const id = $("c-key").value;
  const k = allKeys.find((x) => x.id === id);
  const key = id ? secrets.get(id) || "PASTE_THE_SECRET_OF_" + (k ? k.prefix : "THE_KEY") : null;
  $("c-key-note").textContent = id && !secrets.has(id)
    ? "A key's secret is shown only when it is created: paste it in place of the placeholder, or create a new key on the API keys page."
    : !id && allKeys.some((x) => x.state === "active") ? "This router has API keys: clients need one." : "";
  const list = snippets(url, key);
  $("snippets").replaceChildren(...list.map(([slug, title, text]) => {
    const pre = el("pre", { class: "snippet", id: "snippet-" + slug }, text);
    const copy = el("button", { type: "button", class: "small", "aria-label": "Copy the " + title + " snippet" }, "Copy");
    copy.addEventListener("click", () => copyText(text, copy, pre));
    return el("div", { class: "snippet-box" }, el("div", { class: "section-head" }, el("h3", {}, title), copy), pre);
  }));
  $("c-download").href = "data:application/json;charset=utf-8," + encodeURIComponent(list[0][2] + "\n");
}

// Copies to the clipboard where the browser allows it, else selects the text for Ctrl+C;
// the button says which happened.
function copyText(text, button, node) {
  const was = button.dataset.label || (button.dataset.label = button.textContent);
  const said = (what) => { button.textContent = what; setTimeout(() => { button.textContent = was; }, 1500); };
  const select = () => { selectText(node); said("Selected: press Ctrl+C"); };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(() => said("Copied"), select);
  else select();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", submitLogin);
  $("logout").addEventListener("click", logout);
  $("mcp-url").textContent = location.origin + "/mcp";
  $("mcp-url-all").textContent = location.origin + "/mcp/all";
  $("mcp-url-one").textContent = location.origin + "/mcp/p/NAME";
  $("copy-url").addEventListener("click", copyUrl);
  $("notice-close").addEventListener("click", () => { $("notice").hidden = true; });
  $("d-close").addEventListener("click", closeDetails);
  // Escape closes the edit form (focus back on Edit), else the details (focus back on the
  // server's name in the list).
  $("details").addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape") return;
    if (!$("edit-form").hidden) { $("edit-form").hidden = true; $("d-edit-open").focus(); return; }
    const r = rows.get(detailsName);
    returnFocus = r ? r.name : null;
    closeDetails();
  });
  $("add-form").addEventListener("submit", submitAdd);
  for (const r of document.querySelectorAll('input[name="kind"]')) r.addEventListener("change", updateKind);
  // A field's error goes as soon as the field is edited.
  for (const [, slot, input] of ERROR_SLOTS) {
    $(input).addEventListener("input", () => { $(slot).textContent = ""; $(input).removeAttribute("aria-invalid"); $("e-form").textContent = ""; });
  }
  $("f-d-source").addEventListener("change", updateKind);
  $("d-edit-open").addEventListener("click", openEdit);
  $("x-cancel").addEventListener("click", () => { $("edit-form").hidden = true; });
  $("edit-form").addEventListener("submit", submitEdit);
  $("import-form").addEventListener("submit", submitImport);
  $("t-filter").addEventListener("input", renderExplorer);
  $("c-view").addEventListener("change", renderSnippets);
  $("c-key").addEventListener("change", renderSnippets);
  for (const id of ["g-server", "g-stream"]) $(id).addEventListener("change", () => logBook.render());
  $("g-text").addEventListener("input", () => logBook.render());
  $("g-pause").addEventListener("click", () => logBook.pause());
  // The file is made from what the filters show at the moment it is asked for.
  $("g-download").addEventListener("click", () => logBook.download());
  window.addEventListener("hashchange", route);
  updateKind();
  renderViews();
  renderKeyChoices();
  route();
  checkSession();
});
