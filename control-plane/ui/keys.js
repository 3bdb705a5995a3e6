// The API keys page (#/keys): keys with their scopes and expiry, created with a one-time
// secret and a copy button, revoked and removed; then the OAuth clients the built-in
// authorization server registered and the consents given, each revocable
// (GET /api/v1/oauth/clients, /consents; docs/API.md). Uses app.js's helpers (el, api,
// setText, showNotice, copyText).
"use strict";

let lastKeysJson = "";

// A table cell that narrow screens show as a labelled line of a card (style.css, .cards).
function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

function renderKeys(keys) {
  keys = Array.isArray(keys) ? keys : [];
  allKeys = keys;
  renderKeyChoices();
  renderDashboard();
  const json = JSON.stringify(keys);
  if (json === lastKeysJson) return;
  lastKeysJson = json;
  const tbody = $("keys-table").querySelector("tbody");
  // The focused button's row is rebuilt: focus goes back to the same action of the same key.
  const focused = document.activeElement && document.activeElement.closest("#keys-table") ? document.activeElement.dataset.focusKey : null;
  tbody.replaceChildren();
  $("keys-empty").hidden = keys.length > 0;
  for (const k of keys) {
    const revoke = k.state === "revoked" ? null :
      el("button", { type: "button", class: "small danger", "data-focus-key": "revoke " + k.id, "aria-label": "Revoke API key " + k.name, onclick: () => revokeKey(k) }, "Revoke");
    // Only what no longer works is removed from the list; an active key is revoked first.
    const remove = k.state === "active" ? null :
      el("button", { type: "button", class: "small danger", "data-focus-key": "remove " + k.id, "aria-label": "Remove API key " + k.name, onclick: () => removeKey(k) }, "Remove");
    for (const b of [revoke, remove]) if (b) b.disabled = offline;
    tbody.append(el("tr", { "data-key": k.id },
      el("td", { class: "name-cell" }, el("strong", {}, k.name)),
      cell("Prefix", el("code", {}, k.prefix + "…")),
      cell("Scopes", (k.scopes || []).join(", ")),
      cell("State", el("span", { class: "key-state key-" + k.state }, k.state)),
      cell("Expires", k.expires_at || "never"),
      cell("Last used", k.last_used_at || "never"),
      el("td", { class: "actions" }, revoke, remove)));
  }
  if (focused) {
    const again = tbody.querySelector('[data-focus-key="' + CSS.escape(focused) + '"]');
    (again || $("k-name")).focus();
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
}

async function removeKey(k) {
  if (!confirm('Remove API key "' + k.name + '" from the list for good? The audit log keeps its history.')) return;
  try {
    await api("POST", "/keys/" + enc(k.id) + "/remove");
    showNotice('removed API key "' + k.name + '"', false);
  } catch (e) {
    showNotice('remove "' + k.name + '": ' + e.message, true);
  }
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
    secrets.set(created.id, created.key);
    chooseKey = created.id;
    renderKeyChoices();
    $("new-key-value").textContent = created.key;
    $("new-key-label").textContent = 'New key "' + created.name + '" (shown only this once, copy it now): ';
    $("new-key").hidden = false;
    $("copy-key").textContent = "Copy";
    $("key-form").reset();
    // Focus goes into what opened: the copy button beside the secret.
    $("copy-key").focus();
  } catch (e) {
    const target = { name: "e-k-name", scopes: "e-k-scopes", expires_in_secs: "e-k-expires" }[e.field] || "e-k-form";
    $(target).textContent = e.message;
    const input = { "e-k-name": "k-name", "e-k-scopes": "k-scopes", "e-k-expires": "k-days" }[target];
    if (input) $(input).focus();
  } finally {
    $("k-submit").disabled = false;
  }
}

function closeNewKey() {
  $("new-key").hidden = true;
  $("new-key-value").textContent = "";
  $("k-name").focus();
}

// --- OAuth clients and consents -------------------------------------------------------

const oauthPage = {
  async open() {
    const [clients, consents] = await Promise.allSettled([api("GET", "/oauth/clients"), api("GET", "/oauth/consents")]);
    const off = [clients, consents].find((r) => r.status === "rejected");
    $("oauth-tables").hidden = !!off;
    if (off) {
      setText($("oauth-note"), off.reason.status === 404
        ? "The built-in OAuth server is off (MCP_OAUTH_ENABLED=true starts it): no clients, no consents."
        : "OAuth: " + off.reason.message);
      return;
    }
    setText($("oauth-note"), "");
    this.render(clients.value || [], consents.value || []);
  },
  render(clients, consents) {
    const focused = document.activeElement && document.activeElement.closest("#oauth-tables") ? document.activeElement.dataset.focusKey : null;
    const revoke = (label, key, what, onclick) => {
      const b = el("button", { type: "button", class: "small danger", "data-focus-key": key, "aria-label": label, onclick }, "Revoke");
      b.disabled = offline;
      return b;
    };
    $("oauth-clients").querySelector("tbody").replaceChildren(...clients.map((c) => el("tr", { "data-client": c.client_id },
      el("td", { class: "name-cell" }, el("strong", {}, c.client_name || "(unnamed)"), " ", el("code", {}, c.client_id)),
      cell("Redirect URIs", (c.redirect_uris || []).join(" ")),
      cell("Registered", c.registered_at || ""),
      cell("Last used", c.last_used_at || "never"),
      cell("State", el("span", { class: "key-state key-" + c.state }, c.state)),
      el("td", { class: "actions" }, c.state === "active"
        ? revoke("Revoke OAuth client " + (c.client_name || c.client_id), "client " + c.client_id, c, () => this.revokeClient(c)) : null))));
    $("oauth-clients-empty").hidden = clients.length > 0;
    $("oauth-consents").querySelector("tbody").replaceChildren(...consents.map((g) => el("tr", { "data-consent": g.id },
      el("td", { class: "name-cell" }, el("strong", {}, g.client_name || g.client_id)),
      cell("Subject", g.subject),
      cell("Scopes", (g.scopes || []).join(" ")),
      cell("Granted", g.granted_at),
      cell("Last used", g.last_used_at || "never"),
      cell("State", el("span", { class: "key-state key-" + g.state }, g.state)),
      el("td", { class: "actions" }, g.state === "active"
        ? revoke("Revoke the consent of " + (g.client_name || g.client_id) + " granted " + g.granted_at, "consent " + g.id, g, () => this.revokeConsent(g)) : null))));
    $("oauth-consents-empty").hidden = consents.length > 0;
    if (focused) {
      const again = document.querySelector('#oauth-tables [data-focus-key="' + CSS.escape(focused) + '"]');
      (again || $("oauth-heading")).focus();
    }
  },
  async revokeClient(c) {
    const name = c.client_name || c.client_id;
    if (!confirm('Revoke OAuth client "' + name + '"? Its tokens stop working and it must register again.')) return;
    await this.revoke("/oauth/clients/" + enc(c.client_id) + "/revoke", 'OAuth client "' + name + '"');
  },
  async revokeConsent(g) {
    const name = g.client_name || g.client_id;
    if (!confirm('Revoke the consent given to "' + name + '"? Its tokens stop working; the client must ask again.')) return;
    await this.revoke("/oauth/consents/" + enc(g.id) + "/revoke", 'the consent of "' + name + '"');
  },
  async revoke(path, what) {
    try {
      await api("POST", path);
      showNotice("revoked " + what, false);
    } catch (e) {
      showNotice("revoke " + what + ": " + e.message, true);
    }
    await this.open();
  },
};

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", submitKey);
  $("copy-key").addEventListener("click", () => copyText($("new-key-value").textContent, $("copy-key"), $("new-key-value")));
  $("new-key-close").addEventListener("click", closeNewKey);
  $("new-key").addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeNewKey(); });
});
