// The admin's cluster page: draws the rows and charts from the state JSON, polled every 2 s.
// Text from the nodes goes in through textContent only, never as HTML.
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const CHART_W = 160;
  const CHART_H = 40;
  const LOCAL_POINTS = 60; // without Redis: the points this page has seen, newest last

  const root = document.getElementById("content-main");
  const stateUrl = root.dataset.stateUrl;
  const drainUrl = root.dataset.drainUrl;
  const pollMs = Number(root.dataset.pollMs) || 2000;
  const body = document.querySelector("#cluster-nodes tbody");
  const totalsBox = document.getElementById("cluster-totals");
  const updated = document.getElementById("cluster-updated");

  const lastSeen = new Map(); // name -> {row, at}: rows kept as unreachable when they vanish
  const localHistory = new Map(); // name -> [[ms, usage, connections]] when the JSON has none

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(1) + " %";
  }

  function seconds(value) {
    return value === null || value === undefined ? "–" : value.toFixed(1) + " s";
  }

  function polyline(points, cls) {
    return svg("polyline", {class: cls, points: points.map((p) => p.join(",")).join(" ")});
  }

  // Usage (0..1, or up to the peak above 1) and connections (0..their peak or the limit).
  function chart(row, history) {
    const box = svg("svg", {class: "cluster-chart", width: CHART_W, height: CHART_H,
                           viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: "img"});
    const title = svg("title", {});
    title.textContent = `${row.name}: network usage (blue) and connections (green)`;
    box.append(title);
    if (!history || history.length < 2) {
      const text = svg("text", {x: 4, y: CHART_H / 2 + 4, class: "cluster-chart-empty"});
      text.textContent = "collecting…";
      box.append(text);
      return box;
    }
    const t0 = history[0][0];
    const span = Math.max(1, history[history.length - 1][0] - t0);
    const x = (ms) => ((ms - t0) / span) * (CHART_W - 2) + 1;
    const usageTop = Math.max(1, ...history.map((h) => h[1] || 0));
    const connTop = Math.max(1, row.max_connections || 0, ...history.map((h) => h[2]));
    const y = (value, top) => CHART_H - 1 - (value / top) * (CHART_H - 2);
    if (row.threshold) {
      const ty = y(row.threshold, usageTop);
      box.append(svg("line", {class: "cluster-threshold", x1: 0, x2: CHART_W, y1: ty, y2: ty}));
    }
    if (row.recovery_level) {
      const ry = y(row.recovery_level, usageTop);
      box.append(svg("line", {class: "cluster-recovery", x1: 0, x2: CHART_W, y1: ry, y2: ry}));
    }
    const usage = history.filter((h) => h[1] !== null).map((h) => [x(h[0]), y(h[1], usageTop)]);
    if (usage.length) box.append(polyline(usage, "chart-usage"));
    box.append(polyline(history.map((h) => [x(h[0]), y(h[2], connTop)]), "chart-connections"));
    return box;
  }

  function drainLink(name, undo) {
    const query = new URLSearchParams({node: name, action: undo ? "undo" : "drain"});
    return el("a", {class: "button " + (undo ? "cluster-undo" : "cluster-drain"),
                    href: `${drainUrl}?${query}`}, undo ? "Undo drain" : "Drain");
  }

  function historyOf(row) {
    if (row.history) return row.history;
    // No history in Redis (a single node without it): keep what this page has polled.
    const points = localHistory.get(row.name) || [];
    points.push([Date.now(), row.usage, row.connections]);
    localHistory.set(row.name, points.slice(-LOCAL_POINTS));
    return localHistory.get(row.name);
  }

  function rowElement(row, history, gone) {
    const state = gone ? "unreachable" : row.state;
    const reason = gone
      ? `gone from the cluster state since ${gone.toLocaleTimeString()}`
      : row.reason;
    const conns = row.max_connections === null
      ? String(row.connections) : `${row.connections} / ${row.max_connections}`;
    const reported = row.reported_at_ms
      ? new Date(row.reported_at_ms).toISOString().replace("T", " ").slice(0, 19) + " UTC"
      : "now";
    return el("tr", {class: `cluster-row state-${state}`, "data-node": row.name,
                     "data-state": state},
      el("th", {scope: "row"}, el("span", {class: "cluster-name"}, row.name),
         el("div", {class: "cluster-version"}, row.version ? `version ${row.version}` : "")),
      el("td", {}, el("span", {class: `cluster-state state-${state}`}, state),
         el("div", {class: "cluster-reason"}, reason)),
      el("td", {class: "cluster-connections"}, conns),
      el("td", {class: "cluster-usage"}, percent(row.usage),
         el("div", {class: "cluster-limits"},
            `threshold ${percent(row.threshold)}, recovery ${percent(row.recovery_level)}`)),
      el("td", {}, chart(row, history)),
      el("td", {}, seconds(row.sampler_age)),
      el("td", {}, row.redis || "–"),
      el("td", {title: reported}, gone ? reported : `${seconds(row.age)} ago`),
      el("td", {}, gone ? "" : drainLink(row.name, row.draining)));
  }

  function renderTotals(totals, source) {
    const byState = Object.entries(totals.by_state).map(([s, n]) => `${n} ${s}`).join(", ");
    const limit = totals.max_connections === null ? "" : ` of ${totals.max_connections}`;
    totalsBox.replaceChildren(
      el("span", {class: "cluster-total-nodes"}, `${totals.nodes} node(s)`),
      el("span", {}, byState || "no node"),
      el("span", {class: "cluster-total-connections"},
         `${totals.connections}${limit} connections`),
      el("span", {}, `${totals.accepting} accepting`),
      el("span", {}, source === "redis" ? "from Redis" : "this node, no Redis"));
  }

  function render(data) {
    const now = new Date();
    const rows = [];
    const present = new Set();
    for (const row of data.nodes) {
      present.add(row.name);
      lastSeen.set(row.name, {row, gone: null});
      rows.push(rowElement(row, historyOf(row), null));
    }
    for (const [name, seen] of lastSeen) {
      if (present.has(name)) continue;
      seen.gone = seen.gone || now;
      rows.push(rowElement(seen.row, seen.row.history || localHistory.get(name), seen.gone));
    }
    rows.sort((a, b) => a.dataset.node.localeCompare(b.dataset.node));
    body.replaceChildren(...rows);
    renderTotals(data.totals, data.source);
    updated.textContent = `updated ${now.toLocaleTimeString()}`;
    updated.classList.remove("cluster-error");
  }

  async function poll() {
    try {
      const response = await fetch(stateUrl, {headers: {Accept: "application/json"},
                                              credentials: "same-origin"});
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
      render(data);
    } catch (error) {
      updated.textContent = `not updated: ${error.message}`;
      updated.classList.add("cluster-error");
    } finally {
      setTimeout(poll, pollMs);
    }
  }

  window.wstimeCluster = {chart, render};
  poll();
})();
