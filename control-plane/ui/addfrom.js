// "Add from URL" and the MCP Registry search, on the Add server page (#/add, #/add/url,
// #/add/registry): a repository is analyzed by the router (POST /api/v1/analyze, never
// run), or a registry entry read (GET /api/v1/registry/servers…); the proposal shows with
// its reasons, confidence, warnings and what was looked at, as an editable form; saving
// creates the server (POST /api/v1/servers) with its `source`, and the page moves to the
// server's details, where its state and progress follow the live feed.
// READMEs, registry descriptions and Claude's answers are untrusted: every string reaches
// the DOM through textContent or an input's value (app.js `el`), never as HTML.
// Uses app.js's helpers ($, el, api, enc, splitCommand, shellQuote, parsePairs, showNotice).
"use strict";

const addFrom = (() => {
  let mounted = false;
  // The analysis (or registry entry) being reviewed, and the proposal picked from it.
  let proposals = [];
  let picked = null;

  const field = (label, input, hint, errorId) => el("label", { class: "field" }, el("span", {}, label), input,
    hint ? el("small", { class: "hint" }, hint) : null, errorId ? el("small", { class: "field-error", id: errorId }) : null);

  function mount() {
    if (mounted) return;
    mounted = true;
    const analyzeForm = el("form", { id: "u-form", novalidate: "", autocomplete: "off" },
      el("div", { class: "grid" },
        field("Repository URL", el("input", { id: "u-url", required: "", spellcheck: "false", placeholder: "https://github.com/OWNER/REPO" }),
          "GitHub (…/tree/REF/PATH into a monorepo), any git URL, or a local path: read, never run."),
        el("div", { class: "grid u-narrow" },
          field("Ref (optional)", el("input", { id: "u-ref", spellcheck: "false", placeholder: "main" })),
          field("Path (optional)", el("input", { id: "u-path", spellcheck: "false", placeholder: "src/time" })))),
      el("div", { class: "form-actions" },
        el("button", { type: "submit", id: "u-analyze", class: "primary" }, "Analyze"),
        el("span", { id: "u-status", class: "muted", role: "status" })));
    analyzeForm.addEventListener("submit", analyze);
    const searchForm = el("form", { id: "r-form", autocomplete: "off" },
      el("div", { class: "form-actions" },
        el("label", { class: "inline" }, "Search the MCP Registry",
          el("input", { id: "r-query", type: "search", placeholder: "weather, github, time…" })),
        el("button", { type: "submit", id: "r-search" }, "Search"),
        el("span", { id: "r-status", class: "muted", role: "status" })),
      el("ul", { id: "r-results", class: "r-results" }));
    searchForm.addEventListener("submit", search);
    const box = el("div", { id: "add-from" },
      el("h3", { id: "add-from-url" }, "From a repository"), analyzeForm,
      el("h3", { id: "add-from-registry" }, "From the MCP Registry"), searchForm,
      el("div", { id: "u-error", class: "notice error", role: "alert", hidden: "" }),
      el("div", { id: "u-review", hidden: "" }));
    const add = $("add");
    add.insertBefore(box, add.querySelector("h2").nextSibling);
  }

  function open(sub) {
    mount();
    const target = sub === "url" ? $("u-url") : sub === "registry" ? $("r-query") : null;
    if (target) setTimeout(() => target.focus(), 0);
  }

  function clearResult() {
    $("u-error").hidden = true;
    $("u-error").replaceChildren();
    $("u-review").hidden = true;
    $("u-review").replaceChildren();
    proposals = [];
    picked = null;
  }

  function showError(title, lines) {
    $("u-error").replaceChildren(el("strong", {}, title),
      lines && lines.length ? el("ul", { class: "u-looked" }, ...lines.map((l) => el("li", {}, l))) : null);
    $("u-error").hidden = false;
  }

  // --- analysis --------------------------------------------------------------------

  async function analyze(ev) {
    ev.preventDefault();
    clearResult();
    const url = $("u-url").value.trim();
    if (!url) { showError("enter a repository URL or path"); $("u-url").focus(); return; }
    const body = { url };
    const ref = $("u-ref").value.trim(), path = $("u-path").value.trim();
    if (ref) body.ref = ref;
    if (path) body.path = path;
    $("u-analyze").disabled = true;
    $("u-status").textContent = "analyzing: fetching and reading the repository…";
    try {
      const analysis = await api("POST", "/analyze", body);
      $("u-status").textContent = "";
      review(analysis);
    } catch (e) {
      $("u-status").textContent = "";
      showError("cannot analyze " + url + ": " + e.message);
    } finally {
      $("u-analyze").disabled = false;
    }
  }

  function lookedAt(analysis) {
    return (analysis.looked_at || []).map((l) => String(l.file || "") + ": " + String(l.finding || ""));
  }

  function review(analysis) {
    proposals = Array.isArray(analysis.proposals) ? analysis.proposals : [];
    const looked = lookedAt(analysis);
    if (!proposals.length) {
      // "found no way to run this", with each file and what came of it.
      const message = String(analysis.message || "found no way to run this");
      showError(message.split(": looked at ")[0] + ". What was looked at:", looked);
      return;
    }
    const parts = [];
    if (analysis.claude) {
      const c = analysis.claude;
      parts.push(el("p", { class: "u-claude" }, "Claude (" + String(c.model || "") + ") was asked: " +
        (c.accepted || 0) + " accepted, " + ((c.rejected || []).length) + " rejected."));
    }
    if (proposals.length > 1) {
      parts.push(el("p", {}, "The repository holds " + proposals.length + " servers: pick one."));
      const list = el("div", { id: "u-picks", class: "u-picks", role: "radiogroup", "aria-label": "Servers found" });
      proposals.forEach((p, i) => {
        const radio = el("input", { type: "radio", name: "u-pick", value: String(i) });
        radio.addEventListener("change", () => pick(i));
        list.append(el("label", { class: "u-pick" }, radio,
          el("strong", {}, String(p.name || "")), " ",
          el("span", { class: "muted" }, String(p.file || "") + " · " + confidence(p))));
      });
      parts.push(list);
    }
    parts.push(el("div", { id: "u-proposal" }));
    if (looked.length) {
      parts.push(el("details", { id: "u-looked" }, el("summary", {}, "What was looked at (" + looked.length + " files)"),
        el("ul", { class: "u-looked" }, ...looked.map((l) => el("li", {}, l)))));
    }
    $("u-review").replaceChildren(...parts);
    $("u-review").hidden = false;
    if (proposals.length === 1) pick(0);
  }

  function confidence(p) {
    return "confidence " + Math.round((Number(p.confidence) || 0) * 100) + "%";
  }

  // --- the registry ------------------------------------------------------------------

  async function search(ev) {
    ev.preventDefault();
    const q = $("r-query").value.trim();
    $("r-status").textContent = "searching…";
    $("r-results").replaceChildren();
    try {
      const found = await api("GET", "/registry/servers?search=" + enc(q));
      const servers = (found && found.servers) || [];
      $("r-status").textContent = servers.length ? servers.length + " found in " + String(found.registry || "the registry")
        : "nothing found for " + JSON.stringify(q);
      $("r-results").replaceChildren(...servers.map((s) => {
        const use = el("button", { type: "button", class: "small", "data-use": String(s.name || ""),
          "aria-label": "Review " + String(s.name || "") }, "Review");
        use.addEventListener("click", () => useEntry(s.name, s.version));
        return el("li", { "data-entry": String(s.name || "") },
          el("div", { class: "section-head" }, el("strong", {}, String(s.title || s.name || "")),
            el("span", { class: "muted" }, s.version ? "v" + String(s.version) : ""), use),
          s.title ? el("div", { class: "muted" }, String(s.name || "")) : null,
          el("div", {}, String(s.description || "")),
          el("div", { class: "r-runs" }, ...(s.runs || []).map((r) => el("code", {}, String(r)))));
      }));
    } catch (e) {
      $("r-status").textContent = "";
      showError("cannot search the registry: " + e.message);
    }
  }

  async function useEntry(name, version) {
    clearResult();
    const path = String(name || "").split("/").map(enc).join("/");
    try {
      const found = await api("GET", "/registry/servers/" + path + (version ? "?version=" + enc(version) : ""));
      review({ proposals: [found.proposal], looked_at: [] });
      $("u-review").scrollIntoView({ block: "start" });
    } catch (e) {
      showError("cannot read " + name + " from the registry: " + e.message);
    }
  }

  // --- the proposal as a form ----------------------------------------------------------

  function pick(i) {
    picked = proposals[i];
    for (const r of document.querySelectorAll('input[name="u-pick"]')) r.checked = r.value === String(i);
    $("u-proposal").replaceChildren(proposalForm(picked));
    $("p-name").focus({ preventScroll: true });
  }

  const KINDS = [["process", "a local process (stdio)"], ["docker", "a container (docker)"], ["remote", "a remote server (HTTP)"]];
  const SOURCES = [["image", "an image"], ["npx", "an npm package (npx)"], ["uvx", "a PyPI package (uvx)"], ["command", "a command"]];

  function select(id, options, value) {
    const s = el("select", { id }, ...options.map(([v, label]) => el("option", { value: v }, label)));
    s.value = value;
    return s;
  }

  function proposalForm(p) {
    const rt = p.runtime || {};
    const vars = Array.isArray(p.variables) ? p.variables : [];
    const varNames = new Set(vars.map((v) => v.name));
    const env = rt.kind === "remote" ? rt.headers || {} : rt.env || {};
    const otherEnv = Object.entries(env).filter(([k]) => !varNames.has(k))
      .map(([k, v]) => rt.kind === "remote" ? k + ": " + v : k + "=" + v).join("\n");
    const docker = rt.kind === "docker" ? rt : {};
    const source = docker.image ? "image" : docker.npx ? "npx" : docker.uvx ? "uvx" : "command";
    const summary = el("p", { id: "p-summary" },
      el("strong", {}, String(p.name || "")), " from ", el("code", {}, String(p.file || "")),
      " (" + String(p.evidence || "") + ", " + confidence(p) + ")");
    const form = el("form", { id: "p-form", novalidate: "", autocomplete: "off" },
      summary,
      p.untrusted ? el("p", { class: "u-untrusted", role: "note" },
        "Proposed by Claude, not read from the repository's files: check every field before saving.") : null,
      p.runnable === false ? el("p", { class: "u-warn" }, "Not runnable as proposed: see the warnings.") : null,
      rt.kind === "docker" && rt.build ? el("p", { id: "p-build", class: "u-warn" },
        "Saving builds the image " + String(rt.image || "") + " from the repository's " + String(rt.build.dockerfile || "Dockerfile") +
        " on the agent, when the server first starts: its steps run in Docker's builder then, not before.") : null,
      (p.warnings || []).length ? el("ul", { id: "p-warnings", class: "u-warnings" },
        ...p.warnings.map((w) => el("li", {}, String(w)))) : null,
      (p.reasons || []).length ? el("details", { id: "p-reasons", open: "" }, el("summary", {}, "Why"),
        el("ul", {}, ...p.reasons.map((r) => el("li", {}, String(r))))) : null,
      el("div", { class: "grid" },
        field("Name", el("input", { id: "p-name", maxlength: "64", required: "" }), null, "pe-name"),
        field("Description", el("input", { id: "p-description" }))),
      field("Runs as", select("p-kind", KINDS, rt.kind || "process")),
      el("div", { class: "p-only-process" },
        field("Command line", el("input", { id: "p-command", spellcheck: "false" }), "Split like a shell would.", "pe-command"),
        field("Working directory (optional, absolute)", el("input", { id: "p-cwd", spellcheck: "false" }))),
      el("div", { class: "p-only-docker" },
        el("div", { class: "grid" },
          field("Runs", select("p-d-source", SOURCES, source)),
          field("Image, package or command", el("input", { id: "p-d-what", spellcheck: "false" }), null, "pe-d-what")),
        el("div", { class: "grid" },
          field("Arguments (split like a shell)", el("input", { id: "p-d-args", spellcheck: "false" })),
          field("Network", select("p-d-network", [["none", "none (loopback only)"], ["egress", "egress"]], docker.network || "none")))),
      el("div", { class: "p-only-remote" },
        field("URL", el("input", { id: "p-url", type: "url", spellcheck: "false" }), null, "pe-url")),
      vars.length ? el("fieldset", { id: "p-vars", class: "p-vars" }, el("legend", {}, "Values it needs"),
        ...vars.map(variableField)) : null,
      field(rt.kind === "remote" ? "Other headers (one \"Name: value\" per line)" : "Other environment (one KEY=VALUE per line)",
        el("textarea", { id: "p-env", rows: "2", spellcheck: "false" }), null, "pe-env"),
      el("label", { class: "check" }, el("input", { type: "checkbox", id: "p-enabled", checked: "" }), " Start it now"),
      el("div", { class: "form-actions" },
        el("button", { type: "submit", id: "p-save", class: "primary" }, "Add server"),
        el("small", { class: "field-error", id: "pe-form" })));
    // Values go in as values (never markup), once the inputs exist.
    const set = (id, v) => { form.querySelector("#" + id).value = v == null ? "" : String(v); };
    set("p-name", p.name);
    set("p-description", p.description);
    set("p-command", [rt.command || ""].concat(rt.args || []).filter((w, i) => i > 0 || w).map(shellQuote).join(" "));
    set("p-cwd", rt.cwd);
    set("p-d-what", docker[source] || "");
    set("p-d-args", (docker.args || []).map(shellQuote).join(" "));
    set("p-url", rt.url);
    set("p-env", otherEnv);
    for (const v of vars) {
      const input = form.querySelector('input[data-var="' + CSS.escape(String(v.name)) + '"]');
      const given = env[v.name];
      // A secret's value is never prefilled from what the files say.
      if (input && !v.secret) input.value = given != null ? given : v.default != null ? v.default : "";
    }
    const kind = form.querySelector("#p-kind");
    const showKind = () => {
      for (const k of ["process", "docker", "remote"]) {
        for (const e of form.querySelectorAll(".p-only-" + k)) e.hidden = kind.value !== k;
      }
    };
    kind.addEventListener("change", showKind);
    showKind();
    form.addEventListener("submit", save);
    return form;
  }

  function variableField(v) {
    const name = String(v.name || "");
    const marks = [];
    if (v.target === "header") marks.push("header");
    if (v.required) marks.push("required");
    if (v.secret) marks.push("secret");
    const input = el("input", { "data-var": name, type: v.secret ? "password" : "text", spellcheck: "false",
      autocomplete: v.secret ? "new-password" : "off", "aria-label": name });
    if (v.required) input.setAttribute("aria-required", "true");
    const found = (v.found_in || []).join(", ");
    return el("label", { class: "field p-var", "data-variable": name },
      el("span", {}, el("code", {}, name), " ", ...marks.map((m) => el("span", { class: "mark mark-" + m }, m))),
      input,
      v.description || found ? el("small", { class: "hint" }, String(v.description || "") + (found ? " (from " + found + ")" : "")) : null,
      el("small", { class: "field-error", "data-var-error": name }));
  }

  // A header's template (`Bearer {token}`) with its placeholder replaced by the value.
  function templated(template, value) {
    if (!template) return value;
    const open = template.indexOf("{"), close = template.indexOf("}");
    return open >= 0 && close > open ? template.slice(0, open) + value + template.slice(close + 1) : value;
  }

  class FormError extends Error {
    constructor(slot, message) { super(message); this.slot = slot; }
  }

  function runtimeFrom(p) {
    const kind = $("p-kind").value;
    const vars = Array.isArray(p.variables) ? p.variables : [];
    const values = {};
    for (const v of vars) {
      const input = document.querySelector('input[data-var="' + CSS.escape(String(v.name)) + '"]');
      const value = input ? input.value : "";
      if (!value) {
        if (v.required && v.default == null) throw new FormError(input, v.name + " is required");
        continue;
      }
      values[v.name] = v.target === "header" ? templated(v.template, value) : value;
    }
    let extra;
    try {
      extra = kind === "remote" ? parsePairs($("p-env").value, /[=:]/, "env", "Name: value")
        : parsePairs($("p-env").value, /=/, "env", "KEY=VALUE");
    } catch (e) { throw new FormError($("p-env"), e.message); }
    const was = p.runtime || {};
    if (kind === "remote") {
      const url = $("p-url").value.trim();
      if (!url) throw new FormError($("p-url"), "enter the server's URL");
      return { kind, url, headers: Object.assign(extra, values) };
    }
    const env = Object.assign(extra, values);
    if (kind === "docker") {
      const source = $("p-d-source").value, what = $("p-d-what").value.trim();
      if (!what) throw new FormError($("p-d-what"), "enter the " + source);
      let args;
      try { args = splitCommand($("p-d-args").value); } catch (e) { throw new FormError($("p-d-args"), e.message); }
      const rt = { kind, args, env, network: $("p-d-network").value };
      rt[source] = what;
      for (const k of ["memory_mb", "millicpus", "pids"]) if (was.kind === "docker" && was[k] != null) rt[k] = was[k];
      // The image the agent builds from the repository's Dockerfile, while it is the one proposed.
      if (was.kind === "docker" && was.build && source === "image" && what === was.image) rt.build = was.build;
      return rt;
    }
    let words;
    try { words = splitCommand($("p-command").value); } catch (e) { throw new FormError($("p-command"), e.message); }
    if (!words.length) throw new FormError($("p-command"), "enter the command to run");
    const rt = { kind: "process", command: words[0], args: words.slice(1), env };
    const cwd = $("p-cwd").value.trim();
    if (cwd) rt.cwd = cwd;
    return rt;
  }

  function clearFormErrors() {
    for (const e of $("p-form").querySelectorAll(".field-error")) e.textContent = "";
    for (const e of $("p-form").querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
  }

  // The error next to its input (the next .field-error in its label), else under the form.
  function showAt(input, message) {
    const slot = input && input.closest("label") && input.closest("label").querySelector(".field-error");
    if (slot) {
      slot.textContent = message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else {
      $("pe-form").textContent = message;
    }
  }

  // The input an API error's field names (`name`, `runtime.env.KEY`, `runtime.url`, …).
  function inputOf(fieldName) {
    if (!fieldName) return null;
    if (fieldName === "name") return $("p-name");
    const m = /^runtime\.(env|headers)\.(.+)$/.exec(fieldName);
    if (m) return document.querySelector('input[data-var="' + CSS.escape(m[2]) + '"]') || $("p-env");
    if (/^runtime\.(command|args|cwd)/.test(fieldName)) return $("p-kind").value === "docker" ? $("p-d-args") : $("p-command");
    if (/^runtime\.(image|npx|uvx)/.test(fieldName)) return $("p-d-what");
    if (fieldName === "runtime.url") return $("p-url");
    return null;
  }

  async function save(ev) {
    ev.preventDefault();
    clearFormErrors();
    const p = picked;
    const name = $("p-name").value.trim();
    if (!name) { showAt($("p-name"), "enter a name"); return; }
    let runtime;
    try { runtime = runtimeFrom(p); } catch (e) { showAt(e.slot, e.message); return; }
    const body = { name, runtime, enabled: $("p-enabled").checked };
    const description = $("p-description").value.trim();
    if (description) body.description = description;
    if (p.source) body.source = p.source;
    $("p-save").disabled = true;
    try {
      await api("POST", "/servers", body);
      showNotice('added server "' + name + '"' + (body.enabled ? "; it starts in the background: its progress shows here" : " (disabled)"), false);
      clearResult();
      location.hash = "#/servers/" + enc(name);
    } catch (e) {
      showAt(inputOf(e.field), e.message);
    } finally {
      if ($("p-save")) $("p-save").disabled = false;
    }
  }

  return { open, mount };
})();

document.addEventListener("DOMContentLoaded", () => addFrom.mount());
