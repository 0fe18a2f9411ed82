// cxstream wallboard: polls /api/board and draws tiles, sparklines, the desk
// heat table and firing alerts. Plain JavaScript and SVG, no dependencies.
// Every number on the page carries data-metric / data-window / data-value
// (the unrounded value) so tests and scripts can read what is shown.
"use strict";

const params = new URLSearchParams(location.search);
const POLL_MS = Number(params.get("poll") || 5000);
const ROTATE_MS = params.get("rotate") === "0" ? 0 : Number(params.get("rotate") || 12000);
const SVG = "http://www.w3.org/2000/svg";

const METRICS = {
  nps: { title: "NPS", tab: "NPS", good: (v) => v >= 30, bad: (v) => v < 0,
    fmt: (v) => (v > 0 ? "+" : "") + v.toFixed(0), lo: -100, hi: 100 },
  csat: { title: "CSAT", tab: "CSAT", good: (v) => v >= 0.8, bad: (v) => v < 0.7,
    fmt: (v) => (100 * v).toFixed(1), unit: "%", lo: 0.5, hi: 1 },
  ces: { title: "CES", tab: "CES", good: (v) => v >= 5, bad: (v) => v < 4,
    fmt: (v) => v.toFixed(2), unit: "/7", lo: 3, hi: 7 },
  fcr: { title: "FCR", tab: "FCR", good: (v) => v >= 0.7, bad: (v) => v < 0.5,
    fmt: (v) => (100 * v).toFixed(0), unit: "%", lo: 0.3, hi: 1 },
  frt_p90: { title: "First response p90", tab: "1st reply", good: (v) => v <= 3600, bad: (v) => v > 14400,
    fmt: duration, lo: 14400, hi: 0 },
};

let state = { doc: null, heatMetric: params.get("metric") || "nps", primary: params.get("window") };

function duration(s) {
  if (s < 60) return s.toFixed(0) + "s";
  if (s < 3600) return Math.round(s / 60) + "m";
  const m = Math.round(s / 60);
  return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
}

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.setAttribute("class", v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function level(metric, v) {
  if (v === null || v === undefined) return "";
  const m = METRICS[metric];
  return m.bad(v) ? "bad" : m.good(v) ? "good" : "warn";
}

function valueSpan(metric, windowName, entry, cls) {
  const v = entry ? entry.value : null;
  const span = el("span", {
    class: `${cls} value ${level(metric, v)}-text`,
    "data-metric": metric, "data-window": windowName,
    "data-value": v === null || v === undefined ? "" : String(v),
    "data-n": entry ? String(entry.n) : "0",
    text: v === null || v === undefined ? "–" : METRICS[metric].fmt(v),
  });
  return span;
}

function signed(metric, v) {
  // A real minus sign, so the interval reads like typeset text.
  return METRICS[metric].fmt(v).replace("-", "\u2212");
}

function ciLine(metric, windowName, entry, confidence) {
  const known = entry.lower !== null && entry.lower !== undefined;
  const pct = (100 * (confidence || 0.95)).toFixed(0);
  const unit = METRICS[metric].unit || "";
  return el("div", {
    class: "ci", "data-metric": metric, "data-window": windowName,
    "data-lower": known ? String(entry.lower) : "", "data-upper": known ? String(entry.upper) : "",
    text: known ? `${pct} % CI ${signed(metric, entry.lower)}${unit} \u2026 ${signed(metric, entry.upper)}${unit}` : "",
  });
}

function sparkline(points, metric, mini) {
  const svg = el("svg:svg", { class: "spark" + (mini ? " mini" : ""), viewBox: "0 0 100 30",
    preserveAspectRatio: "none", "data-metric": metric, "data-points": String(points.length) });
  const vals = points.map((p) => p[1]).filter((v) => v !== null);
  if (vals.length < 2) return svg;
  // NPS and CSAT points carry [t, value, lower, upper]: the big sparkline
  // draws the interval as a band, scaled with the line.
  const banded = !mini && points.some((p) => p.length > 3 && p[2] !== null);
  const span = banded ? vals.concat(points.flatMap((p) => (p[2] === null || p[2] === undefined ? [] : [p[2], p[3]]))) : vals;
  let lo = Math.min(...span), hi = Math.max(...span);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const x = (t) => (100 * (t - t0)) / Math.max(t1 - t0, 1);
  const higherIsBetter = METRICS[metric].hi > METRICS[metric].lo;
  const y = (v) => 28 - (26 * (v - lo)) / (hi - lo);
  const color = { good: "var(--good)", warn: "var(--warn)", bad: "var(--bad)", "": "var(--accent)" }[
    level(metric, vals[vals.length - 1])];
  if (banded) {
    const inBand = points.filter((p) => p[2] !== null && p[2] !== undefined);
    if (inBand.length > 1) {
      const upper = inBand.map((p) => `${x(p[0]).toFixed(2)},${y(p[3]).toFixed(2)}`);
      const lower = inBand.slice().reverse().map((p) => `${x(p[0]).toFixed(2)},${y(p[2]).toFixed(2)}`);
      svg.append(el("svg:polygon", { class: "band", points: upper.concat(lower).join(" ") }));
      svg.setAttribute("data-band", String(inBand.length));
    }
  }
  let run = [];
  const runs = [];
  for (const [t, v] of points) {
    if (v === null) { if (run.length) runs.push(run); run = []; } else run.push([x(t), y(v)]);
  }
  if (run.length) runs.push(run);
  for (const r of runs) {
    const pts = r.map(([a, b]) => `${a.toFixed(2)},${b.toFixed(2)}`).join(" ");
    if (r.length > 1) {
      svg.append(el("svg:path", { d: `M${r[0][0]},30 L${pts.replaceAll(" ", " L")} L${r[r.length - 1][0]},30 Z`,
        fill: color }));
    }
    svg.append(el("svg:polyline", { points: pts, stroke: color }));
  }
  svg.setAttribute("data-direction", higherIsBetter ? "up" : "down");
  return svg;
}

function renderTiles(doc) {
  const box = document.getElementById("tiles");
  box.replaceChildren();
  const windows = doc.windows;
  const primary = windows.includes(state.primary) ? state.primary : windows.includes("24h") ? "24h" : windows[0];
  for (const metric of doc.metrics) {
    const entry = (w) => (doc.tiles[w] || {})[metric];
    const trend = (w) => ((doc.trends[w] || {})[metric]) || [];
    const main = entry(primary);
    const tile = el("section", { class: `tile ${level(metric, main ? main.value : null)}`, "data-tile": metric },
      el("h2", {}, el("span", { text: METRICS[metric].title }), el("span", { class: "wlabel", text: primary || "" })));
    const big = el("div", { class: "primary" }, valueSpan(metric, primary, main, "big"));
    if (METRICS[metric].unit && main && main.value !== null) big.append(el("span", { class: "unit", text: METRICS[metric].unit }));
    big.append(el("span", { class: "n", text: main ? `n=${Math.round(main.n)}` : "" }));
    tile.append(big);
    if (main && "lower" in main) tile.append(ciLine(metric, primary, main, doc.confidence));
    tile.append(sparkline(trend(primary), metric, false));
    const others = el("div", { class: "others" });
    for (const w of windows.filter((w) => w !== primary)) {
      others.append(el("div", { class: "mini" }, el("span", { class: "wlabel", text: w }),
        valueSpan(metric, w, entry(w), ""), sparkline(trend(w), metric, true)));
    }
    tile.append(others);
    box.append(tile);
  }
}

function renderSla(doc) {
  const box = document.getElementById("sla");
  const sla = doc.sla;
  box.hidden = !sla;
  box.parentElement.classList.toggle("with-sla", Boolean(sla));
  if (!sla) return;
  const body = document.getElementById("sla-body");
  body.replaceChildren();
  const item = (label, value, text, cls, attrs = {}) => el("div", { class: "sla-item " + (cls || "") },
    el("span", { class: "label", text: label }),
    el("span", { class: "figure", "data-sla": attrs.key, "data-value": value === null ? "" : String(value), text }));
  const p = sla.pending;
  body.append(
    item("on track", p.on_track, String(Math.round(p.on_track)), "", { key: "on_track" }),
    item("at risk", p.at_risk, String(Math.round(p.at_risk)), p.at_risk > 0 ? "warn-text" : "", { key: "at_risk" }),
    item("breached, pending", p.breached, String(Math.round(p.breached)), p.breached > 0 ? "bad-text" : "", { key: "breached" }));
  for (const [target, v] of Object.entries(sla.breaches).sort()) {
    body.append(item(`${target.replace("_", " ")} breaches (total)`, v, v === null ? "–" : String(Math.round(v)),
      v > 0 ? "bad-text" : "", { key: `breaches:${target}` }));
  }
  for (const [target, v] of Object.entries(sla.achieved_24h_lowest).sort()) {
    body.append(item(`${target.replace("_", " ")} achieved 24h (lowest desk)`, v,
      v === null ? "–" : (100 * v).toFixed(1) + "%", v === null ? "" : v < 0.8 ? "bad-text" : v < 0.95 ? "warn-text" : "good-text",
      { key: `achieved:${target}` }));
  }
}

function heatColor(metric, v) {
  const m = METRICS[metric];
  let f = (v - m.lo) / (m.hi - m.lo);
  f = Math.max(0, Math.min(1, f));
  // red (0) -> amber -> green (120)
  return `hsl(${(f * 130).toFixed(0)}, 70%, ${(48 + 8 * Math.abs(f - 0.5)).toFixed(0)}%)`;
}

function renderHeat(doc) {
  const tabs = document.getElementById("heat-tabs");
  tabs.replaceChildren();
  for (const metric of doc.metrics) {
    const b = el("button", { class: metric === state.heatMetric ? "active" : "", text: METRICS[metric].tab, "data-metric": metric });
    b.addEventListener("click", () => { state.heatMetric = metric; render(); });
    tabs.append(b);
  }
  const metric = state.heatMetric;
  const windows = doc.windows;
  const win = windows.includes(state.primary) ? state.primary : windows.includes("24h") ? "24h" : windows[0];
  document.getElementById("heat-title").textContent = `· ${METRICS[metric].title} · ${win || ""}`;
  const table = document.getElementById("heat");
  table.replaceChildren();
  const { channels, teams, cells, by_channel } = doc.desks;
  const head = el("tr", {}, el("th", {}));
  for (const t of teams) head.append(el("th", { text: t }));
  head.append(el("th", { text: "all teams" }));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  const find = (c, t) => cells.find((x) => x.channel === c && x.team === t);
  for (const c of channels) {
    const row = el("tr", {}, el("th", { class: "row", text: c }));
    const cellFor = (entry, team, cls) => {
      const v = entry ? entry.value : null;
      const td = el("td", { class: v === null || v === undefined ? "empty" : cls,
        "data-channel": c, "data-team": team, "data-metric": metric, "data-window": win,
        "data-value": v === null || v === undefined ? "" : String(v), "data-n": entry ? String(entry.n) : "0",
        "data-lower": entry && entry.lower !== null && entry.lower !== undefined ? String(entry.lower) : null,
        "data-upper": entry && entry.upper !== null && entry.upper !== undefined ? String(entry.upper) : null });
      if (entry && entry.lower !== null && entry.lower !== undefined) {
        td.title = `${(100 * (doc.confidence || 0.95)).toFixed(0)} % CI ${signed(metric, entry.lower)} \u2026 ${signed(metric, entry.upper)}`;
      }
      td.append(document.createTextNode(v === null || v === undefined ? "–" : METRICS[metric].fmt(v)));
      if (entry && v !== null) td.append(el("span", { class: "sub", text: `n=${Math.round(entry.n)}` }));
      if (v !== null && v !== undefined && cls !== "total") td.style.background = heatColor(metric, v);
      return td;
    };
    for (const t of teams) {
      const cell = find(c, t);
      row.append(cellFor(cell && cell.windows[win] ? cell.windows[win][metric] : null, t, "cell"));
    }
    const total = (by_channel[c] || {})[win];
    row.append(cellFor(total ? total[metric] : null, "*", "total"));
    body.append(row);
  }
  table.append(body);
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return "for " + duration(s);
}

function renderAlerts(doc) {
  const list = document.getElementById("alerts");
  list.replaceChildren();
  const count = document.getElementById("alert-count");
  count.textContent = String(doc.alerts.length);
  count.className = "count" + (doc.alerts.length ? " hot" : "");
  if (!doc.alerts.length) list.append(el("li", { class: "clear", text: "All clear" }));
  for (const a of doc.alerts.slice(0, 8)) {
    const desk = [a.channel, a.team].filter(Boolean).join(" / ");
    list.append(el("li", { class: a.severity, "data-alertname": a.alertname, "data-channel": a.channel || "", "data-team": a.team || "" },
      el("div", { class: "title" },
        el("span", {}, el("span", { text: a.alertname + " " }), el("span", { class: "desk", text: desk })),
        el("span", { class: "since", text: `${a.severity} · ${ago(a.since)}` })),
      el("div", { class: "summary", text: a.summary })));
  }
  if (doc.alerts.length > 8) list.append(el("li", { text: `+ ${doc.alerts.length - 8} more` }));
  const engine = (doc.pipeline.engine_alerts || []).map((e) => `${e.alertname} ${e.firing}`).join(" · ");
  document.getElementById("engine").textContent = engine ? `cxstream's own evaluator: ${engine}` : "";
}

function renderStatus(doc) {
  const p = doc.pipeline;
  const up = p.targets.filter((t) => t.up).length;
  const w = document.getElementById("workers");
  w.textContent = `workers ${up}/${p.targets.length} up`;
  w.className = "pill " + (p.targets.length && up === p.targets.length ? "ok" : "bad");
  w.setAttribute("data-up", String(up));
  document.getElementById("rate").textContent = `${p.events_per_s.toFixed(1)} events/s`;
  const src = document.getElementById("source");
  src.textContent = "Prometheus ok";
  src.className = "pill ok";
  const ev = p.events || {};
  const total = Object.values(ev).reduce((a, b) => a + b, 0);
  const events = document.getElementById("events");
  events.textContent = `${Math.round(total).toLocaleString("en")} events processed · ` +
    Object.entries(ev).map(([k, v]) => `${k} ${Math.round(v).toLocaleString("en")}`).join(" · ");
  events.setAttribute("data-value", String(total));
  document.getElementById("updated").textContent = `updated ${new Date(doc.generated_at * 1000).toLocaleTimeString("en-GB")} from ${doc.prometheus}`;
}

function render() {
  const doc = state.doc;
  if (!doc) return;
  renderTiles(doc);
  renderSla(doc);
  renderHeat(doc);
  renderAlerts(doc);
  renderStatus(doc);
  document.body.setAttribute("data-ready", "1");
  document.body.setAttribute("data-generated", String(doc.generated_at));
}

async function poll() {
  const banner = document.getElementById("banner");
  try {
    const resp = await fetch("/api/board", { cache: "no-store" });
    const doc = await resp.json();
    if (!resp.ok || doc.error) throw new Error(doc.error || resp.statusText);
    state.doc = doc;
    banner.hidden = true;
    render();
  } catch (err) {
    banner.hidden = false;
    banner.textContent = `Cannot read metrics: ${err.message}`;
    const src = document.getElementById("source");
    src.textContent = "Prometheus unreachable";
    src.className = "pill bad";
  }
}

function tickClock() {
  document.getElementById("clock").textContent = new Date().toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
}

tickClock();
setInterval(tickClock, 10000);
poll();
setInterval(poll, POLL_MS);
if (ROTATE_MS > 0) {
  setInterval(() => {
    if (!state.doc) return;
    const ms = state.doc.metrics;
    state.heatMetric = ms[(ms.indexOf(state.heatMetric) + 1) % ms.length];
    renderHeat(state.doc);
  }, ROTATE_MS);
}
