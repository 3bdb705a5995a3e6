// MCP Router admin UI: plain JS over the REST API (/api/v1, see docs/API.md).
// Every string from the API reaches the DOM through textContent or attributes, never HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const STATES = ["pending", "starting", "running", "backoff", "stopped"];
const REFRESH_MS = 2000;
let lastListJson = "";
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

function runtimeSummary(rt) {
  if (!rt) return "";
  if (rt.kind === "remote") return rt.url || "";
  return [rt.command || ""].concat(rt.args || []).map(shellQuote).join(" ");
}

function shorten(s, max) {
  s = String(s || "").replace(/\s+/g, " ").trim();
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

function stateBadge(state, enabled) {
  const known = STATES.includes(state) ? state : "unknown";
  const label = enabled === false && state !== "stopped" ? state + " (disabled)" : state || "unknown";
  return el("span", { class: "badge state-" + known }, label);
}

function showNotice(message, isError) {
  $("notice-text").textContent = message;
  $("notice").className = "notice" + (isError ? " error" : " ok");
  $("notice").hidden = false;
  clearTimeout(noticeTimer);
  if (!isError) noticeTimer = setTimeout(() => { $("notice").hidden = true; }, 4000);
}

// --- server list ---------------------------------------------------------------------

function renderServers() {
  const body = $("servers").querySelector("tbody");
  const rows = servers.map((s) => {
    const st = s.status || {};
    const name = el("button", { type: "button", class: "link name", title: s.description || "", onclick: () => openDetails(s.name) }, s.name);
    const actions = el("td", { class: "actions" },
      el("button", { type: "button", class: "small", onclick: () => act(s.name, s.enabled ? "disable" : "enable") }, s.enabled ? "Disable" : "Enable"),
      el("button", { type: "button", class: "small", onclick: () => act(s.name, "restart") }, "Restart"),
      el("button", { type: "button", class: "small danger", onclick: () => removeServer(s.name) }, "Delete"));
    if (!s.enabled) actions.children[1].disabled = true;
    const runtime = runtimeSummary(s.runtime);
    return el("tr", {},
      el("td", {}, name),
      el("td", {}, stateBadge(st.state, s.enabled)),
      el("td", { class: "num" }, String(st.tool_count ?? "")),
      el("td", { class: "num" }, String(st.restart_count ?? "")),
      el("td", { class: "runtime", title: runtime }, el("span", { class: "kind" }, (s.runtime && s.runtime.kind) || ""), " ", el("code", {}, shorten(runtime, 60))),
      el("td", { class: "error-text", title: st.last_error || "" }, shorten(st.last_error, 80)),
      actions);
  });
  body.replaceChildren(...rows);
  $("empty").hidden = servers.length > 0;
}

async function refresh() {
  if (!loggedIn) return;
  refreshKeys();
  try {
    const list = await api("GET", "/servers");
    $("conn-error").hidden = true;
    const json = JSON.stringify(list);
    if (json !== lastListJson) {
      lastListJson = json;
      servers = Array.isArray(list) ? list : [];
      renderServers();
    }
    $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("conn-error").textContent = e.message;
    $("conn-error").hidden = false;
  }
  if (detailsName !== null) await refreshDetails();
}

// One refresh at a time; a request for one while it runs makes it run once more.
let refreshTimer = null, refreshing = false, again = false;
async function refreshLoop() {
  clearTimeout(refreshTimer);
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    do { again = false; await refresh(); } while (again);
  } finally {
    refreshing = false;
  }
  refreshTimer = setTimeout(refreshLoop, REFRESH_MS);
}

async function act(name, verb) {
  try {
    const s = await api("POST", "/servers/" + enc(name) + "/" + verb);
    const done = { enable: "enabled", disable: "disabled", restart: "restarting" }[verb];
    showNotice(done + ' server "' + name + '" (state: ' + ((s && s.status && s.status.state) || "?") + ")", false);
  } catch (e) {
    showNotice(verb + ' "' + name + '": ' + e.message, true);
  }
  refreshLoop();
}

async function removeServer(name) {
  if (!confirm('Delete server "' + name + '"? Its process is stopped and clients lose its tools.')) return;
  try {
    await api("DELETE", "/servers/" + enc(name));
    showNotice('removed server "' + name + '"', false);
    if (detailsName === name) closeDetails();
  } catch (e) {
    showNotice('delete "' + name + '": ' + e.message, true);
  }
  refreshLoop();
}

// --- details -------------------------------------------------------------------------

function openDetails(name) {
  detailsName = name;
  $("d-title").textContent = name;
  $("d-info").replaceChildren();
  $("d-tools").replaceChildren();
  $("d-logs").textContent = "";
  $("details").hidden = false;
  refreshDetails().then(() => $("details").scrollIntoView({ behavior: "smooth", block: "start" }));
}

function closeDetails() {
  detailsName = null;
  $("details").hidden = true;
}

async function refreshDetails() {
  const name = detailsName;
  const path = "/servers/" + enc(name);
  const [tools, logs] = await Promise.allSettled([api("GET", path + "/tools"), api("GET", path + "/logs?tail=100")]);
  if (name !== detailsName) return;
  const s = servers.find((x) => x.name === name);
  const info = [];
  if (s) {
    const rt = s.runtime || {};
    const st = s.status || {};
    const keys = (o) => Object.keys(o || {}).join(", ");
    info.push(["Description", s.description], ["State", stateBadge(st.state, s.enabled)],
      ["Kind", rt.kind], [rt.kind === "remote" ? "URL" : "Command", runtimeSummary(rt)]);
    if (rt.kind === "remote") info.push(["Headers", keys(rt.headers)]);
    else info.push(["Environment", keys(rt.env)], ["Working dir", rt.cwd]);
    info.push(["Session mode", s.session_mode], ["Agent", st.agent_id], ["Restarts", String(st.restart_count ?? "")],
      ["Last error", st.last_error], ["MCP URL", location.origin + "/mcp/p/" + enc(name)], ["Id", s.id]);
  }
  $("d-info").replaceChildren(...info.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v || "—")]));

  if (tools.status === "fulfilled") {
    const list = Array.isArray(tools.value) ? tools.value : [];
    const json = JSON.stringify(list);
    if ($("d-tools").dataset.json !== json) {
      $("d-tools").dataset.json = json;
      $("d-tools").replaceChildren(...list.map((t) => el("li", {},
        el("code", {}, String(t.name || "")), el("span", { class: "muted" }, String(t.description || "")))));
    }
    $("d-tools-note").textContent = list.length ? "" : "No tools reported (yet).";
  } else {
    $("d-tools").replaceChildren();
    $("d-tools").dataset.json = "";
    $("d-tools-note").textContent = tools.reason.message;
  }
  $("d-tools-note").hidden = !$("d-tools-note").textContent;

  const pre = $("d-logs");
  const text = logs.status === "fulfilled"
    ? (logs.value || []).map((l) => new Date(l.at_ms).toLocaleTimeString([], { hour12: false }) + " " + (l.stream || "") + "  " + l.line).join("\n") || "(no log lines yet)"
    : logs.reason.message;
  if (pre.textContent !== text) {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.textContent = text;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
}

// --- add form ------------------------------------------------------------------------

const ERROR_SLOTS = [
  ["name", "e-name", "f-name"], ["description", "e-description", "f-description"],
  ["session_mode", "e-session", "f-session"], ["runtime.command", "e-command", "f-command"],
  ["runtime.args", "e-command", "f-command"], ["runtime.env", "e-env", "f-env"], ["runtime.cwd", "e-cwd", "f-cwd"],
  ["runtime.url", "e-url", "f-url"], ["runtime.headers", "e-headers", "f-headers"],
];

function clearErrors() {
  for (const e of document.querySelectorAll(".field-error")) e.textContent = "";
  for (const e of document.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
}

function showFieldError(field, message) {
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
  for (const e of document.querySelectorAll(".only-process")) e.hidden = kind !== "process";
  for (const e of document.querySelectorAll(".only-remote")) e.hidden = kind !== "remote";
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
    refreshLoop();
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
    refreshLoop();
  } catch (e) {
    if (e.status !== 401) {
      $("conn-error").textContent = e.message;
      $("conn-error").hidden = false;
      setTimeout(checkSession, REFRESH_MS);
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
  showLogin();
}

let lastKeysJson = "";
async function refreshKeys() {
  let keys;
  try { keys = await api("GET", "/keys"); } catch (_) { return; }
  const json = JSON.stringify(keys);
  if (json === lastKeysJson) return;
  lastKeysJson = json;
  const tbody = $("keys-table").querySelector("tbody");
  tbody.replaceChildren();
  $("keys-empty").hidden = keys.length > 0;
  for (const k of keys) {
    const revoke = k.state === "revoked" ? null :
      el("button", { type: "button", class: "small danger", onclick: () => revokeKey(k) }, "Revoke");
    tbody.append(el("tr", {},
      el("td", {}, k.name),
      el("td", {}, el("code", {}, k.prefix + "…")),
      el("td", {}, (k.scopes || []).join(", ")),
      el("td", {}, k.state),
      el("td", {}, k.expires_at || "never"),
      el("td", {}, k.last_used_at || "never"),
      el("td", { class: "actions" }, revoke)));
  }
}

async function revokeKey(k) {
  if (!confirm('Revoke API key "' + k.name + '"? Clients using it are refused from now on.')) return;
  try {
    await api("POST", "/keys/" + enc(k.id) + "/revoke");
    showNotice('revoked API key "' + k.name + '"', false);
  } catch (e) {
    showNotice('revoke "' + k.name + '": ' + e.message, true);
  }
  lastKeysJson = "";
  refreshKeys();
}

async function submitKey(ev) {
  ev.preventDefault();
  for (const id of ["e-k-name", "e-k-scopes", "e-k-expires", "e-k-form"]) $(id).textContent = "";
  const body = { name: $("k-name").value.trim() };
  const scopes = $("k-scopes").value.split(",").map((s) => s.trim()).filter((s) => s);
  if (scopes.length) body.scopes = scopes;
  const days = parseInt($("k-days").value, 10);
  if (days > 0) body.expires_in_secs = days * 86400;
  $("k-submit").disabled = true;
  try {
    const created = await api("POST", "/keys", body);
    $("new-key-value").textContent = created.key;
    $("new-key").hidden = false;
    $("key-form").reset();
    lastKeysJson = "";
    refreshKeys();
  } catch (e) {
    const target = { name: "e-k-name", scopes: "e-k-scopes", expires_in_secs: "e-k-expires" }[e.field] || "e-k-form";
    $(target).textContent = e.message;
  } finally {
    $("k-submit").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", submitLogin);
  $("logout").addEventListener("click", logout);
  $("key-form").addEventListener("submit", submitKey);
  $("mcp-url").textContent = location.origin + "/mcp";
  $("mcp-url-all").textContent = location.origin + "/mcp/all";
  $("mcp-url-one").textContent = location.origin + "/mcp/p/NAME";
  $("copy-url").addEventListener("click", copyUrl);
  $("notice-close").addEventListener("click", () => { $("notice").hidden = true; });
  $("d-close").addEventListener("click", closeDetails);
  $("add-form").addEventListener("submit", submitAdd);
  for (const r of document.querySelectorAll('input[name="kind"]')) r.addEventListener("change", updateKind);
  updateKind();
  checkSession();
});
