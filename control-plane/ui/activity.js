// The Activity page (#/activity): per server, calls per second, error rate and p50/p99
// latency over the last hour (GET /api/v1/activity, 10 s buckets the control plane keeps
// from the audit records it stores), drawn as plain SVG; and the audit log
// (GET /api/v1/audit) with its filters, live: new records arrive on the admin feed's
// `audit` events (app.js follow()), which also refresh the charts, at most every 3 s.
// Uses app.js's helpers ($, el, api); every string from the API goes through textContent.
"use strict";

const activityPage = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 3000;
  const MAX_ROWS = 500;
  let open = false;
  let rows = [];
  let nextCursor = null;
  let refreshTimer = null;
  let lastRefresh = 0;

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) if (c) e.append(c);
    return e;
  }

  function filters() {
    const q = new URLSearchParams();
    for (const [param, id] of [["who", "a-who"], ["provider", "a-provider"], ["tool", "a-tool"], ["outcome", "a-outcome"], ["since", "a-since"]]) {
      const v = $(id).value.trim();
      if (v) q.set(param, v);
    }
    return q;
  }

  // The live feed's records are filtered here as the API filters (the time range aside:
  // a new record is newer than any `since`).
  function matches(r) {
    const q = filters();
    const who = q.get("who");
    if (who && ![r.who_id, r.who_name, r.who_kind].includes(who)) return false;
    if (q.get("provider") && r.provider !== q.get("provider")) return false;
    if (q.get("tool") && r.target !== q.get("tool")) return false;
    if (q.get("outcome") && r.outcome !== q.get("outcome")) return false;
    return true;
  }

  function whoText(r) {
    if (r.who_kind === "api_key") return "key " + (r.who_name || r.who_id);
    if (r.who_kind === "oauth") return "oauth " + r.who_id + (r.who_client ? " (" + r.who_client + ")" : "");
    if (r.who_kind === "admin") return "admin" + (r.who_name ? " (" + r.who_name + ")" : "");
    return r.who_kind;
  }

  function outcomeText(r) {
    if (r.outcome === "refused") return "refused" + (r.reason ? ": " + r.reason : "");
    if (r.outcome === "error") return "error" + (r.error_code ? " " + r.error_code : "") + (r.reason ? ": " + r.reason : "");
    return r.outcome;
  }

  function timeText(ms) {
    const d = new Date(ms);
    return d.toISOString().replace("T", " ").replace("Z", "").slice(0, 23);
  }

  function recordRow(r) {
    const tr = el("tr", { "data-id": r.id, class: "outcome-" + r.outcome },
      el("td", { class: "num" }, timeText(r.at_ms)),
      el("td", {}, whoText(r)),
      el("td", {}, r.method),
      el("td", {}, r.provider),
      el("td", { class: "target" }, shorten(r.target, 80)),
      el("td", { class: "outcome" }, outcomeText(r)),
      el("td", { class: "num" }, (r.duration_us / 1000).toFixed(1)));
    tr.title = r.view ? "view " + r.view + ", from " + r.source : "from " + r.source;
    return tr;
  }

  function renderLog() {
    const body = $("a-log").querySelector("tbody");
    body.replaceChildren(...rows.map(recordRow));
    $("a-empty").hidden = rows.length > 0;
    $("a-more").hidden = !nextCursor;
    const q = filters();
    for (const [id, format] of [["a-csv", "csv"], ["a-jsonl", "jsonl"]]) {
      q.set("format", format);
      $(id).href = "/api/v1/audit?" + q.toString();
    }
  }

  async function loadLog(more) {
    const q = filters();
    q.set("limit", "100");
    if (more && nextCursor) q.set("cursor", nextCursor);
    try {
      const page = await api("GET", "/audit?" + q.toString());
      const got = page.records || [];
      rows = more ? rows.concat(got) : got;
      nextCursor = page.next_cursor || null;
      $("a-status").textContent = "";
      renderLog();
    } catch (e) {
      $("a-status").textContent = e.message;
    }
  }

  // One chart: a series per line over the last hour, its newest value in the title.
  function chart(title, unit, lines, now, format) {
    const W = 360, H = 90, PAD = 4;
    const start = now - 3600 * 1000;
    let max = 0;
    for (const l of lines) for (const p of l.points) if (p.v !== null) max = Math.max(max, p.v);
    if (max === 0) max = 1;
    const x = (at) => PAD + ((at - start) / (3600 * 1000)) * (W - 2 * PAD);
    const y = (v) => H - PAD - (v / max) * (H - 2 * PAD);
    const plot = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img" });
    plot.append(svg("line", { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, class: "axis" }));
    const legend = [];
    for (const l of lines) {
      const pts = l.points.filter((p) => p.v !== null);
      if (pts.length === 0) continue;
      const d = pts.map((p, i) => (i ? "L" : "M") + x(p.at).toFixed(1) + " " + y(p.v).toFixed(1)).join(" ");
      plot.append(svg("path", { d, class: "series " + l.cls }));
      for (const p of pts) plot.append(svg("circle", { cx: x(p.at).toFixed(1), cy: y(p.v).toFixed(1), r: 1.8, class: "dot " + l.cls }));
      legend.push(l.name + " " + format(pts[pts.length - 1].v) + unit);
    }
    const label = title + ": " + (legend.join(", ") || "no calls") + " (scale to " + format(max) + unit + ")";
    plot.append(svg("title", {}, document.createTextNode(label)));
    return el("figure", { class: "chart-box" },
      el("figcaption", {}, title, el("span", { class: "muted" }, " " + (legend.join(" · ") || "no calls"))),
      plot);
  }

  function renderCharts(report) {
    const box = $("a-charts");
    const servers = report.servers || [];
    $("a-no-calls").hidden = servers.length > 0;
    const now = report.now_ms;
    const half = (report.bucket_seconds || 10) * 500;
    box.replaceChildren(...servers.map((s) => {
      const at = (p) => p.at_ms + half;
      const t = s.total;
      return el("div", { class: "server-activity", "data-provider": s.provider },
        el("h3", {}, s.provider, el("span", { class: "muted" },
          "  last hour: " + t.calls + " calls, " + (t.error_rate * 100).toFixed(1) + "% errors, p50 " +
          (t.p50_ms === null ? "–" : t.p50_ms.toFixed(1)) + " ms, p99 " + (t.p99_ms === null ? "–" : t.p99_ms.toFixed(1)) + " ms")),
        el("div", { class: "charts" },
          chart("Calls per second", "/s", [{ name: "calls", cls: "s-calls", points: s.points.map((p) => ({ at: at(p), v: p.calls_per_second })) }], now, (v) => v.toFixed(2)),
          chart("Error rate", "%", [{ name: "errors", cls: "s-errors", points: s.points.map((p) => ({ at: at(p), v: p.error_rate * 100 })) }], now, (v) => v.toFixed(1)),
          chart("Latency", " ms", [
            { name: "p50", cls: "s-p50", points: s.points.map((p) => ({ at: at(p), v: p.p50_ms })) },
            { name: "p99", cls: "s-p99", points: s.points.map((p) => ({ at: at(p), v: p.p99_ms })) },
          ], now, (v) => v.toFixed(1))));
    }));
  }

  async function refreshCharts() {
    refreshTimer = null;
    lastRefresh = Date.now();
    try {
      renderCharts(await api("GET", "/activity"));
    } catch (e) {
      $("a-status").textContent = e.message;
    }
  }

  // Driven by the feed: at most one refresh per REFRESH_MS, the last record always counted.
  function scheduleCharts() {
    if (!open || refreshTimer) return;
    const wait = Math.max(0, lastRefresh + REFRESH_MS - Date.now());
    refreshTimer = setTimeout(refreshCharts, wait);
  }

  return {
    open() {
      open = true;
      loadLog(false);
      refreshCharts();
    },
    close() {
      open = false;
    },
    // One record from the live feed.
    add(r) {
      if (!open) return;
      scheduleCharts();
      if (!matches(r) || rows.some((x) => x.id === r.id)) return;
      rows.unshift(r);
      if (rows.length > MAX_ROWS) rows.length = MAX_ROWS;
      renderLog();
    },
    init() {
      for (const id of ["a-who", "a-provider", "a-tool", "a-since"]) $(id).addEventListener("change", () => loadLog(false));
      $("a-outcome").addEventListener("change", () => loadLog(false));
      $("a-more").addEventListener("click", () => loadLog(true));
    },
  };
})();

document.addEventListener("DOMContentLoaded", () => activityPage.init());
