/* Allele dashboard: every page reads the JSON API under /api/ and renders with DOM text nodes
   (never innerHTML with data) and Plotly (every string escaped first). A page's state lives in
   its URL query, so every view is a permalink. */
"use strict";

const CONFIG = JSON.parse(document.getElementById("page-config").textContent);

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

/* Plotly parses a little HTML in its strings: escape user text so it stays text. */
function esc(s) {
  return String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function num(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const m = Math.abs(v);
  if (m !== 0 && (m >= 1e5 || m < 1e-3)) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

function pct(ratio) {
  if (ratio === null || ratio === undefined) return "–";
  const d = (ratio - 1) * 100;
  return (d >= 0 ? "+" : "") + d.toFixed(1) + "%";
}

/* A time in the browser's time zone, as the charts draw theirs: "2026-09-21 18:13:20". */
function when(ts) {
  if (!ts) return "–";
  const d = new Date(ts * 1000), two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function showError(text) {
  const box = document.getElementById("error");
  if (!text) { box.hidden = true; return; }
  box.textContent = text;
  box.hidden = false;
}

async function api(path, params, init) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const resp = await fetch(url, Object.assign({ credentials: "same-origin" }, init || {}));
  const body = await resp.json().catch(() => ({ detail: resp.statusText }));
  if (!resp.ok) {
    const err = new Error(body.detail || resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return body;
}

async function post(path, body, method = "POST") {
  return api(path, {}, { method, headers: { "Content-Type": "application/json" },
                        body: body === undefined ? undefined : JSON.stringify(body) });
}

function query() { return Object.fromEntries(new URLSearchParams(window.location.search)); }

function setQuery(values) {
  const p = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(values)) {
    if (v === null || v === undefined || v === "") p.delete(k); else p.set(k, v);
  }
  const q = p.toString();
  window.history.replaceState(null, "", window.location.pathname + (q ? "?" + q : ""));
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function fillForm(form, values) {
  for (const [k, v] of Object.entries(values)) {
    const field = form.elements.namedItem(k);
    if (field && v !== undefined) field.value = v;
  }
}

function table(headers, rows, opts = {}) {
  const t = el("table", { class: opts.class || "" });
  t.appendChild(el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))));
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", { class: r.onclick ? "clickable" : (r.class || "") });
    if (r.onclick) tr.addEventListener("click", r.onclick);
    for (const c of r.cells) {
      if (c instanceof Node) tr.appendChild(el("td", {}, c));
      else if (typeof c === "object" && c !== null) tr.appendChild(el("td", { class: c.class || "", text: c.text, title: c.title || null }));
      else tr.appendChild(el("td", { text: c }));
    }
    body.appendChild(tr);
  }
  t.appendChild(body);
  return t;
}

// The legend sits above the plot, under its title: below it, a horizontal legend covered the
// second line of the time axis' labels (the date) and, with many series, the axis itself.
const LAYOUT = { margin: { l: 60, r: 20, t: 64, b: 50 }, font: { size: 12 },
                 legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom" },
                 paper_bgcolor: "#fff", plot_bgcolor: "#fff" };
const PLOT_CONFIG = { displaylogo: false, responsive: true };

// A series joined over several runs has gaps (minutes between runs): a null at each gap longer
// than 10 median steps keeps a line from being drawn across it.
function gapped(t, v) {
  const steps = t.slice(1).map((x, i) => x - t[i]).sort((a, b) => a - b);
  const limit = 10 * (steps[Math.floor(steps.length / 2)] || Infinity);
  const x = [], y = [];
  t.forEach((ti, i) => {
    if (i > 0 && ti - t[i - 1] > limit) { x.push(null); y.push(null); }
    x.push(ti); y.push(v[i]);
  });
  return { x, y };
}

// Parameters and cell keys as people write them (`population_size=50, selection=rank`), not JSON.
function paramsText(params) {
  return Object.entries(params || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
}

function keyText(key) {
  const bar = key.indexOf("|");
  if (bar < 0) return key;
  try { return `${key.slice(0, bar)} ${paramsText(JSON.parse(key.slice(bar + 1)))}`.trim(); } catch { return key; }
}

// A legend above the plot takes the rows its entries need, at most LEGEND_ROWS: past them it
// scrolls (legend.maxheight), and the chart grows so that the plot area keeps MIN_PLOT_PX. A
// legend sized by its entries alone (one row per entry on a phone) squeezed the plot to nothing,
// its y labels on top of each other.
const LEGEND_ROWS = 4, LEGEND_ROW_PX = 19, MIN_PLOT_PX = 160;

// Rows of a horizontal legend: Plotly packs its entries left to right, each about 40 px of symbol
// and padding plus its text (12 px font).
function legendRows(names, width) {
  let rows = 1, x = 0;
  for (const n of names) {
    const w = 40 + 6.6 * String(n).replace(/&[a-z#0-9]+;/g, "x").length;
    if (x > 0 && x + w > width) { rows += 1; x = 0; }
    x += w;
  }
  return rows;
}

function plot(id, traces, layout) {
  const node = typeof id === "string" ? document.getElementById(id) : id;
  const lay = Object.assign({}, LAYOUT, layout || {});
  // a legend of many series above the plot takes several rows: make room for them under the title
  const named = traces.filter((t) => t.name && t.showlegend !== false).map((t) => t.name);
  if (lay.showlegend !== false && named.length > 1 && !(layout && (layout.legend || layout.margin))) {
    const width = (node.clientWidth || 600) - LAYOUT.margin.l - LAYOUT.margin.r;
    const rows = Math.min(LEGEND_ROWS, legendRows(named, width));
    lay.margin = Object.assign({}, LAYOUT.margin, { t: 52 + LEGEND_ROW_PX * rows });
    lay.legend = Object.assign({}, LAYOUT.legend, { maxheight: LEGEND_ROW_PX * rows + 10, tracegroupgap: 0 });
    if (!lay.height) lay.height = Math.max(parseFloat(getComputedStyle(node).minHeight) || 280, lay.margin.t + lay.margin.b + MIN_PLOT_PX);
    if (lay.title) lay.title = Object.assign({ y: 1, yref: "container", yanchor: "top", pad: { t: 10 } }, lay.title);
  }
  return Plotly.react(node, traces, lay, PLOT_CONFIG);
}

// Fills run pickers with the newest runs and picks `selected` (ids, names or "latest"). A run
// asked for but not among them is looked up: an older run is added, and an unknown one is left
// unpicked (another run standing in for it looked like an answer) and its error ("no run 'x' in
// the store") returned, with the others, for the page to show.
async function runOptions(selects, selected) {
  const data = await api("/api/runs", { limit: 200 });
  const runs = data.runs.slice(), found = new Map(), errors = [];
  for (const ref of new Set(selected.filter(Boolean))) {
    const listed = runs.find((r) => r.id === ref || r.name === ref);
    if (listed) { found.set(ref, listed); continue; }
    try {
      const run = (await api("/api/runs/" + encodeURIComponent(ref))).run;
      if (!runs.some((r) => r.id === run.id)) runs.push(run);
      found.set(ref, run);
    } catch (e) {
      if (e.status !== 404) throw e;
      errors.push(e.message);
    }
  }
  for (const [i, sel] of selects.entries()) {
    clear(sel);
    for (const r of runs) sel.appendChild(el("option", { value: r.id, text: `${r.name} (${r.status})` }));
    const ref = selected[i];
    const fallback = runs[Math.min(i === 0 && runs.length > 1 ? 1 : 0, runs.length - 1)];
    const want = ref ? (found.get(ref) || {}).id : (fallback || {}).id;
    if (want) sel.value = want; else sel.selectedIndex = -1;
  }
  return errors;
}

function guard(fn) {
  return async (...args) => {
    try { showError(""); await fn(...args); } catch (e) { showError(e.message || String(e)); }
  };
}

// ---------------------------------------------------------------- Live

const LIVE_GROUPS = [
  { title: "Best fitness per generation", metrics: ["allele_evolution_best_fitness"] },
  { title: "Kraken steps per second", metrics: ["allele_kraken_steps_per_second"] },
  { title: "Agent latency (s) and tokens per second", metrics: ["allele_agent_request_seconds", "allele_agent_tokens_per_second"] },
  { title: "CPU (% of a core)", metrics: ["allele_bench_worker_cpu_percent", "allele_process_cpu_percent"] },
  { title: "Resident memory (bytes)", metrics: ["allele_bench_worker_rss_bytes", "allele_process_rss_bytes"] },
  { title: "Samples of running cells (wall_s)", metrics: ["sample:wall_s"] },
  { title: "User metrics", user: true },
];
const WINDOW = 300;

const live = {
  runs: new Map(), series: new Map(), progress: new Map(), lastEventId: 0, dirty: false,
  drawn: [], tailed: { events: 0, points: 0, viewers: 0 },
};

function seriesKey(s) { return `${s.metric}|${s.component}|${s.labels || ""}`; }

function addPoints(key, meta, ts, vs) {
  let s = live.series.get(key);
  if (!s) {
    s = { metric: meta.metric, component: meta.component, labels: meta.labels, t: [], v: [] };
    live.series.set(key, s);
  }
  for (let i = 0; i < ts.length; i++) { s.t.push(ts[i]); s.v.push(vs[i]); }
  if (s.t.length > WINDOW) { s.t.splice(0, s.t.length - WINDOW); s.v.splice(0, s.v.length - WINDOW); }
}

function applySnapshot(snap) {
  live.runs = new Map(snap.runs.map((r) => [r.run_id, r]));
  live.series.clear();
  for (const s of snap.series) addPoints(seriesKey(s), s, s.t, s.v);
  live.lastEventId = Math.max(live.lastEventId, snap.last_event_id || 0);
  for (const r of snap.runs) {  // the run's progress curve as the server folded it
    if (r.curve && r.curve.t.length) {
      live.progress.set(r.run_id, { name: r.name, t: r.curve.t.slice(), v: r.curve.v.slice(), resumes: (r.resumes || []).slice() });
    }
  }
  live.tailed = { events: snap.hub.events, points: snap.hub.points, viewers: snap.hub.subscribers };
  showTailed();
  live.dirty = true;
}

function run(id) {
  let r = live.runs.get(id);
  if (!r) {
    r = { run_id: id, name: id, status: "running", planned: 0, done: 0, failed: 0, samples: 0,
          tasks: null, tasks_done: 0, tasks_skipped: 0,
          running: [], recent: [], failures: [], started_at: 0, eta_s: null };
    live.runs.set(id, r);
  }
  return r;
}

// A run's samples per round of a cell so far (a Map made on first use), and the event's key in it.
function roundSamples(r, d) {
  return [(r.roundSamples ??= new Map()), `${d.key}|${d.round ?? 0}`];
}

function applyEvent(e) {
  live.lastEventId = Math.max(live.lastEventId, e.id);
  if (!e.run_id) return;
  const r = run(e.run_id), d = e.data;
  r.updated_at = e.ts;
  if (e.kind === "run_started") {
    Object.assign(r, { name: d.name, spec: d.spec, planned: d.cells, done: d.skipped || 0, skipped: d.skipped || 0,
                       failed: 0, status: "running", started_at: e.ts, running: [],
                       tasks: d.tasks_total ?? null, tasks_done: d.tasks_skipped || 0, tasks_skipped: d.tasks_skipped || 0 });
    const kept = r.tasks !== null ? r.tasks_done : r.done;
    const p = live.progress.get(e.run_id);
    const before = p ? p.v.filter((v) => v !== null && v !== undefined).pop() : undefined;
    if (before !== undefined) {  // a resume: it keeps the tasks of the stored cells, the curve goes on from them
      p.t.push(e.ts); p.v.push(null);  // a break, not a line down from what the interrupted invocation had done
      p.resumes = (p.resumes || []).concat([{ at: e.ts, before, kept }]);
    }
    progressPoint(e, r, kept, false);  // the curve starts
  } else if (e.kind === "cell_started") {
    r.running = r.running.filter((c) => c.key !== d.key).concat([{ key: d.key, benchmark: d.benchmark, params: d.params, started_at: e.ts }]);
    // a round that runs again replaces its earlier attempt's samples (as bench/livestate.py's RoundSamples)
    const [rounds, k] = roundSamples(r, d);
    r.samples -= rounds.get(k) || 0;
    rounds.delete(k);
  } else if (e.kind === "samples") {
    const n = d.n ?? Math.max(0, ...Object.values(d.values || {}).map((v) => v.length));
    const [rounds, k] = roundSamples(r, d);
    r.samples += n;
    rounds.set(k, (rounds.get(k) || 0) + n);
    for (const [metric, vals] of Object.entries(d.values || {})) {
      addPoints(`sample:${metric}|${d.key}|${e.run_id}`, { metric: "sample:" + metric, component: d.key, labels: e.run_id },
                vals.map(() => e.ts), vals);
    }
  } else if (e.kind === "cell_stored") {
    r.running = r.running.filter((c) => c.key !== d.key);
    for (const k of [...(r.roundSamples || new Map()).keys()]) if (k.startsWith(d.key + "|")) r.roundSamples.delete(k);
    r.done = d.done ?? r.done + 1;
    if (d.failed !== null && d.failed !== undefined) r.failed = d.failed;
    // a cell stored again (its instruction counts) replaces its entry, as the server's LiveState does
    const others = d.again ? r.recent.filter((c) => c.key !== d.key) : r.recent;
    r.recent = [{ key: d.key, status: d.status, at: e.ts, error: d.error }].concat(others).slice(0, 50);
    if (r.tasks === null) progressPoint(e, r, r.done);  // a runner that does not count tasks
  } else if (e.kind === "cell_finished") {
    r.running = r.running.filter((c) => c.key !== d.key);
    if (r.tasks !== null) { r.tasks_done = d.tasks_done ?? r.tasks_done + 1; progressPoint(e, r, r.tasks_done); }
  } else if (e.kind === "run_finished" || e.kind === "run_status") {  // run_status: the dashboard found the runner gone
    r.status = d.status; r.finished_at = e.ts; r.running = [];
  }
}

// progress is counted in tasks (a round of a cell), the units the runner completes
function units(r) {
  return r.tasks !== null && r.tasks !== undefined ? [r.tasks, r.tasks_done, r.tasks_skipped || 0] : [r.planned, r.done, r.skipped || 0];
}

function progressPoint(e, r, value, counted = true) {
  let p = live.progress.get(e.run_id);
  if (!p) { p = { name: r.name, t: [], v: [], resumes: [] }; live.progress.set(e.run_id, p); }
  p.t.push(e.ts); p.v.push(value);
  if (!counted) return;
  const chart = document.getElementById("chart-progress");
  chart.dataset.points = String(Number(chart.dataset.points) + 1);
  chart.dataset.lastEventId = String(e.id);
  chart.dataset.lastEventTs = String(e.ts);
  live.drawn.push(e.ts);
}

function showTailed() {
  const t = live.tailed;
  document.getElementById("hub-stats").textContent =
    `the dashboard has tailed ${t.events} events and ${t.points} points from the store; ${t.viewers} viewers`;
}

function applyBatch(msg) {
  live.tailed.events += msg.events.length;
  live.tailed.points += msg.points_total || msg.points.length;
  showTailed();
  for (const e of msg.events) applyEvent(e);
  for (const p of msg.points) addPoints(seriesKey(p), p, [p.t], [p.v]);
  live.dirty = true;
}

function eta(r, now) {
  const [planned, done, skipped] = units(r);
  const fresh = done - skipped;
  if (r.status !== "running" || fresh <= 0 || !r.started_at) return null;
  return (planned - done) / (fresh / Math.max(1e-9, now - r.started_at));
}

function renderRuns() {
  const box = clear(document.getElementById("runs"));
  const all = [...live.runs.values()].sort((a, b) => (b.started_at || 0) - (a.started_at || 0));
  const runs = all.filter((r) => r.status === "running").concat(all.filter((r) => r.status !== "running").slice(0, 4)).slice(0, 8);
  if (!runs.length) { box.appendChild(el("p", { class: "muted", text: "No run in the store yet." })); return; }
  const now = Date.now() / 1000;
  for (const r of runs) {
    const [planned, done] = units(r);
    const frac = planned ? Math.min(1, done / planned) : 0;
    const tasks = r.tasks !== null && r.tasks !== undefined ? `${r.tasks_done}/${r.tasks} tasks, ` : "";
    const card = el("div", { class: "card", "data-run": r.run_id },
      el("h3", {}, el("a", { href: "/runs?run=" + encodeURIComponent(r.run_id), text: r.name || r.run_id })),
      el("div", { class: "muted", text: `${r.spec || ""} · ${r.status}` }),
      el("div", { class: "bar" }, el("span", { style: `width:${(frac * 100).toFixed(1)}%` })),
      el("div", { class: "cell-count", text: `${tasks}${r.done}/${r.planned} cells done, ${r.failed} failed, ${r.samples} samples live` +
                  (r.status === "running" ? ` · ETA ${duration(eta(r, now))}` : "") }),
    );
    if (r.running.length) {
      card.appendChild(el("div", { class: "muted", text: "running:" }));
      card.appendChild(el("ul", {}, r.running.slice(0, 6).map((c) => el("li", { text: `${c.benchmark || ""} ${paramsText(c.params)}` }))));
    }
    if (r.recent.length) {
      card.appendChild(el("div", { class: "muted", text: "last finished:" }));
      card.appendChild(el("ul", { class: "recent" }, r.recent.slice(0, 4).map((c) =>
        el("li", { class: c.status === "ok" ? "" : "v-regressed", text: `${c.status} ${keyText(c.key)}` }))));
    }
    box.appendChild(card);
  }
}

// A chart of many series (one per worker process: every run with process workers adds its
// own; one per run on the progress chart) keeps a legend it can show: the `keep` series updated
// last, and the pinned ones (the runner, the running runs), have their own entry and colour;
// the others are drawn thin and grey under one entry ("12 older workers", a click hides them),
// each named in its hover.
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const OLDER = "#c4c4c4";

function capLegend(items, keep, what) {
  const ranked = items.map((it, i) => ({ pin: !!it.pin, last: it.last || 0, i }))
    .sort((a, b) => (Number(b.pin) - Number(a.pin)) || (b.last - a.last) || (b.i - a.i));  // a tie: the one seen last
  const own = new Set((items.length <= keep + 1 ? ranked : ranked.slice(0, keep)).map((it) => it.i));
  const older = items.filter((_, i) => !own.has(i));
  const out = older.map((it, j) => Object.assign(it.trace, {
    name: `${older.length} older ${what}`, legendgroup: "older", showlegend: j === 0, legendrank: 2000,
    hovertemplate: `%{x}<br>%{y}<extra>${it.trace.name}</extra>`,
    line: { color: OLDER, width: 1 }, marker: { color: OLDER, size: 2 } }));
  // the pinned ones first, then in the order they came; the older ones drawn under them, listed last
  const mine = items.filter((_, i) => own.has(i));
  for (const [k, it] of mine.filter((it) => it.pin).concat(mine.filter((it) => !it.pin)).entries()) {
    const color = COLORS[k % COLORS.length];
    out.push(Object.assign(it.trace, { line: { color }, marker: Object.assign({}, it.trace.marker, { color }) }));
  }
  return out;
}

// entries of a legend a chart of this width shows before older series are folded into one
function legendKeep(node) { return (node.clientWidth || 600) < 500 ? 3 : 6; }

const LIVE_TRACES = 40;  // series drawn per chart at most (the ones updated last)

function renderCharts() {
  const progress = document.getElementById("chart-progress");
  const runs = [...live.progress.entries()].map(([id, p]) => ({
    pin: (live.runs.get(id) || {}).status === "running", last: p.t[p.t.length - 1], resumes: p.resumes || [],
    trace: { x: p.t.map((t) => new Date(t * 1000)), y: p.v, name: esc(p.name || id), mode: "lines+markers", type: "scatter", connectgaps: false } }));
  const traces = capLegend(runs, legendKeep(progress), "runs");
  // where a resume went on from the tasks its run kept (the stored cells'; the rounds of the others run again)
  const resumes = runs.filter((it) => it.trace.legendgroup !== "older").flatMap((it) => it.resumes).sort((a, b) => a.at - b.at);
  const annotations = resumes.map((m, j) => ({
    x: new Date(m.at * 1000), y: m.kept, text: `resumed: kept ${m.kept}/${m.before}`, showarrow: true, arrowhead: 0,
    ax: 0, ay: j % 2 ? -40 : -22, font: { size: 10, color: "#555" }, bgcolor: "rgba(255,255,255,0.8)",
    hovertext: `resumed: ${m.kept} of the ${m.before} tasks done before were kept (the stored cells'); the rounds of the cells not stored run again` }));
  plot(progress, traces, { title: { text: "tasks done (a task is one round of a cell)" }, yaxis: { rangemode: "tozero" }, annotations });
  const box = document.getElementById("charts");
  for (const [i, g] of LIVE_GROUPS.entries()) {
    const picked = [...live.series.values()].filter((s) => g.user
      ? !s.metric.startsWith("allele_") && !s.metric.startsWith("sample:")
      : g.metrics.some((m) => s.metric === m));
    let node = document.getElementById("live-chart-" + i);
    if (!picked.length) { if (node) node.remove(); continue; }
    if (!node) { node = el("div", { id: "live-chart-" + i, class: "chart" }); box.appendChild(node); }
    const one = new Set(picked.map((s) => s.metric)).size === 1;  // the title names it: the legend need not
    const last = (s) => s.t[s.t.length - 1] || 0;
    const drawn = picked.length > LIVE_TRACES ? picked.slice().sort((a, b) => last(b) - last(a)).slice(0, LIVE_TRACES) : picked;
    const items = drawn.map((s) => {
      const { x, y } = gapped(s.t.map((t) => new Date(t * 1000)), s.v);  // no line across the time between runs
      const what = s.metric.startsWith("sample:") ? keyText(s.component) : `${s.component}${s.labels ? " " + s.labels : ""}`;  // a cell, as people write it
      const name = `${one ? "" : s.metric.replace(/^allele_/, "") + " "}${what}`;
      return { pin: s.labels === "worker=runner", last: last(s),
               trace: { x, y, type: "scatter", mode: "lines+markers", marker: { size: 3 }, connectgaps: false, name: esc(name.length > 60 ? name.slice(0, 59) + "…" : name) } };
    });
    const what = g.metrics && g.metrics[0].startsWith("allele_bench_worker") ? "workers" : "series";
    plot(node, capLegend(items, legendKeep(node), what), { title: { text: esc(g.title) }, showlegend: true,
                                                            yaxis: { automargin: true } });
  }
}

function startLive() {
  const conn = document.getElementById("conn");
  const source = new EventSource("/api/stream");
  source.addEventListener("snapshot", (ev) => applySnapshot(JSON.parse(ev.data)));
  source.addEventListener("batch", (ev) => applyBatch(JSON.parse(ev.data)));
  source.onopen = () => conn.classList.add("on");
  source.onerror = () => conn.classList.remove("on");
  setInterval(() => {
    if (!live.dirty) return;
    live.dirty = false;
    renderRuns();
    renderCharts();
    // seconds from each event (as its producer stamped it) to its point on the chart
    const now = Date.now() / 1000;
    window.alleleLatencies = (window.alleleLatencies || []).concat(live.drawn.map((t) => now - t)).slice(-1000);
    live.drawn = [];
  }, 250);
}

// ---------------------------------------------------------------- Runs

async function loadRunList() {
  const f = document.getElementById("run-filters");
  const v = formValues(f);
  const data = await api("/api/runs", { status: v.status, spec: v.spec, q: v.q, limit: 100 });
  const box = clear(document.getElementById("run-list"));
  box.appendChild(el("p", { class: "muted", text: `${data.total} runs` }));
  box.appendChild(table(["name", "id", "spec", "status", "created", "cells", "failed", "commit"],
    data.runs.map((r) => ({ onclick: () => { setQuery({ run: r.id, cell: null }); showRun(r.id); },
      cells: [r.name, r.id, r.spec, r.status, when(r.created_at), { text: r.cells, class: "num" },
              { text: r.failed, class: "num" }, r.commit || ""] }))));
}

async function showRun(id) {
  const data = await api("/api/runs/" + encodeURIComponent(id));
  const box = clear(document.getElementById("run-detail"));
  clear(document.getElementById("cell-detail"));
  box.appendChild(el("h2", { text: `Run ${data.run.name}` }));
  box.appendChild(el("p", { class: "muted", text: `${data.run.id} · ${data.run.spec} · ${data.run.status} · ${when(data.run.created_at)} · ${data.run.cells} cells, ${data.run.failed} failed` }));
  const q = query();
  for (const [ti, t] of data.targets.entries()) {
    const metric = (ti === 0 && q.metric && t.metrics.includes(q.metric)) ? q.metric : (t.metrics.includes("wall_s") ? "wall_s" : t.metrics[0]);
    const sec = el("section", { class: "target" });
    sec.appendChild(el("h3", { text: `${t.target} (${t.cells} cells)` }));
    const pick = el("select", { name: "metric" }, t.metrics.map((m) => el("option", { value: m, text: m })));
    pick.value = metric;
    sec.appendChild(el("div", { class: "controls" }, el("label", {}, "metric", pick)));
    const heat = el("div", { class: "chart" }), scale = el("div", { class: "chart" });
    sec.appendChild(el("div", { class: "grid" }, heat, scale));
    const cellsBox = el("div");
    sec.appendChild(cellsBox);
    box.appendChild(sec);
    const draw = guard(async () => {
      const m = pick.value;
      if (ti === 0) setQuery({ metric: m });
      if (t.varying.length >= 2) {
        const h = await api(`/api/runs/${encodeURIComponent(id)}/heatmap`, { metric: m, x: t.varying[0], y: t.varying[1], target: t.target });
        plot(heat, [{ type: "heatmap", x: h.xs.map(esc), y: h.ys.map(esc), z: h.z, colorscale: "Viridis",
                      colorbar: { title: { text: esc(h.unit || "") } } }],
             { title: { text: esc(`median ${m}${h.unit ? " (" + h.unit + ")" : ""}`) }, xaxis: { title: { text: esc(h.x) }, type: "category" },
               yaxis: { title: { text: esc(h.y) }, type: "category", automargin: true } });  // "tournament" was cut to "urnament"
      } else {
        const ok = data.cells.filter((c) => c.target === t.target && c.medians[m] !== undefined && c.medians[m] !== null);
        plot(heat, [{ type: "bar", x: ok.map((c) => esc(paramsText(c.params))), y: ok.map((c) => c.medians[m]) }],
             { title: { text: esc(`median ${m} per cell`) }, xaxis: { type: "category" } });
      }
      if (t.size_param) {
        const s = await api(`/api/runs/${encodeURIComponent(id)}/scaling`, { metric: m, target: t.target });
        plot(scale, s.series.map((c) => ({ x: c.sizes, y: c.values, mode: "lines+markers", name: esc(c.label) + (c.slope === null ? "" : ` (slope ${c.slope.toFixed(2)})`) })),
             // the legend carries each curve's log-log slope: shown even for a single curve
             { title: { text: esc(`${m} over ${s.size}`) }, showlegend: true,
               legend: { orientation: "v", x: 0.02, y: 0.98, bgcolor: "rgba(255,255,255,0.8)" },
               // ticks at the sizes measured, written out (a log axis labelled 50 as a small "5")
               xaxis: { type: "log", title: { text: esc(s.size) }, tickvals: [...new Set(s.series.flatMap((c) => c.sizes))],
                        ticktext: [...new Set(s.series.flatMap((c) => c.sizes))].map(String) }, yaxis: { type: "log" } });
      } else { clear(scale); }
      const cells = data.cells.filter((c) => c.target === t.target);
      clear(cellsBox).appendChild(table(["params", "status", `median ${m}`, "samples", "error"],
        cells.map((c) => ({ onclick: () => { setQuery({ cell: c.key }); showCell(id, c.key); },
          // the parameters that vary among the target's cells (the fixed ones repeated on every row)
          cells: [paramsText(t.varying.length ? Object.fromEntries(Object.entries(c.params).filter(([k]) => t.varying.includes(k))) : c.params),
                  { text: c.status, class: c.status === "ok" ? "" : "v-regressed" },
                  { text: (c.median_texts && c.median_texts[m]) || num(c.medians[m]), class: "num" }, { text: c.n_samples, class: "num" }, c.error || ""] }))));
    });
    pick.addEventListener("change", draw);
    await draw();
  }
  if (q.cell) await showCell(id, q.cell);
}

async function showCell(runId, key) {
  const c = await api("/api/cell", { run: runId, key });
  const box = clear(document.getElementById("cell-detail"));
  box.appendChild(el("h2", { text: `Cell ${c.target} ${paramsText(c.params)}` }));
  box.appendChild(el("p", { class: "muted", text: `${c.status} · ${duration(c.finished_at - c.started_at)}` }));
  if (c.error) box.appendChild(el("pre", { text: c.error }));
  const metrics = Object.keys(c.samples).sort();
  const chart = el("div", { class: "chart" });
  box.appendChild(chart);
  // one panel per metric, each on its own linear scale: on one log axis instructions (1e7) sat
  // beside cpu_sys_s (0, which a log axis cannot show) and every box flattened into a line
  const cols = Math.min(4, Math.max(1, metrics.length)), rows = Math.ceil(metrics.length / cols);
  const axes = {};
  metrics.forEach((m, i) => { axes[`yaxis${i ? i + 1 : ""}`] = { automargin: true }; });
  plot(chart, metrics.map((m, i) => ({ type: "box", y: c.samples[m].value, name: esc(m), boxpoints: "all", jitter: 0.4,
                                       xaxis: `x${i ? i + 1 : ""}`, yaxis: `y${i ? i + 1 : ""}`, showlegend: false })),
       { title: { text: "raw samples (one scale per metric)" }, showlegend: false, height: 60 + 230 * rows,
         grid: { rows, columns: cols, pattern: "independent", ygap: 0.35, xgap: 0.25 }, ...axes });
  box.scrollIntoView({ block: "start" });  // the detail opens below the fold: a click seemed to do nothing
  box.appendChild(el("p", {}, "History of this cell: ",
    metrics.map((m) => el("a", { href: `/history?key=${encodeURIComponent(key)}&metric=${encodeURIComponent(m)}`, text: m, style: "margin-right:.6rem" }))));
  if (c.profile) { box.appendChild(el("h3", { text: "profile (cProfile, top functions)" })); box.appendChild(el("pre", { text: c.profile })); }
}

async function startRuns() {
  const f = document.getElementById("run-filters");
  fillForm(f, query());
  f.addEventListener("submit", guard(async (ev) => { ev.preventDefault(); setQuery(formValues(f)); await loadRunList(); }));
  await guard(loadRunList)();
  const q = query();
  if (q.run) await guard(showRun)(q.run);
}

// ---------------------------------------------------------------- History

async function startHistory() {
  const q = query();
  const keySel = document.getElementById("history-key"), metricSel = document.getElementById("history-metric");
  // the cells of the recent runs with cells (up to 20 per spec, of up to 5 specs): a run in
  // progress without cells yet, or a run of another spec, does not empty the list, and after a
  // `--filter` run of a few cells the other cells of the spec's earlier runs are still offered
  const recent = await api("/api/runs", { limit: 100 });
  const perSpec = new Map();
  for (const r of recent.runs) {
    if (!r.cells) continue;
    if (!perSpec.has(r.spec)) {
      if (perSpec.size >= 5) continue;
      perSpec.set(r.spec, []);
    }
    if (perSpec.get(r.spec).length < 20) perSpec.get(r.spec).push(r.id);
  }
  const overviews = await Promise.all([...perSpec.values()].flat().map((id) => api("/api/runs/" + encodeURIComponent(id))));
  const cells = overviews.flatMap((o) => o.cells);
  const keys = [...new Set(cells.map((c) => c.key).concat(q.key ? [q.key] : []))].sort();
  for (const k of keys) keySel.appendChild(el("option", { value: k, text: keyText(k) }));
  const metricsFor = (key) => [...new Set(cells.filter((x) => x.key === key).flatMap((x) => Object.keys(x.medians)))].sort();
  const fillMetrics = () => {
    clear(metricSel);
    const ms = metricsFor(keySel.value);
    const all = q.metric && !ms.includes(q.metric) ? ms.concat([q.metric]) : ms;
    for (const m of all) metricSel.appendChild(el("option", { value: m, text: m }));
  };
  if (q.key) keySel.value = q.key;
  fillMetrics();
  if (q.metric) metricSel.value = q.metric;
  else if ([...metricSel.options].some((o) => o.value === "wall_s")) metricSel.value = "wall_s";
  keySel.addEventListener("change", fillMetrics);
  const show = guard(async () => {
    setQuery({ key: keySel.value, metric: metricSel.value });
    const h = await api("/api/history", { key: keySel.value, metric: metricSel.value });
    const x = h.runs.map((r) => esc(r.name));
    const traces = [
      { x, y: h.q75, mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip" },
      { x, y: h.q25, mode: "lines", fill: "tonexty", fillcolor: "rgba(9,105,218,0.15)", line: { width: 0 }, name: "interquartile range" },
      { x, y: h.median, mode: "lines+markers", name: "median", line: { color: "#0969da" } },
    ];
    const shapes = [];
    for (const s of h.segments) {
      shapes.push({ type: "rect", xref: "x", yref: "y", x0: s.start - 0.5, x1: s.end - 0.5, y0: s.low, y1: s.high,
                    fillcolor: "rgba(154,103,0,0.10)", line: { width: 0 } });
      shapes.push({ type: "line", xref: "x", yref: "y", x0: s.start - 0.5, x1: s.end - 0.5, y0: s.mean, y1: s.mean,
                    line: { color: "#9a6700", dash: "dot" } });
    }
    for (const c of h.change_points) {
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: c.index - 0.5, x1: c.index - 0.5, y0: 0, y1: 1, line: { color: "#cf222e", width: 2 } });
    }
    plot("history-chart", traces, { title: { text: esc(`${h.metric} of ${h.target} ${paramsText(h.params)}`) }, shapes,
                                    xaxis: { type: "category", title: { text: "run" } } });
    const box = clear(document.getElementById("history-table"));
    box.appendChild(el("p", { class: "muted", text: `${h.runs.length} runs; ${h.change_points.length} change points; noise band: segment mean ± 2 sd of the run medians` }));
    if (h.change_points.length)  // no table of headers alone
      box.appendChild(table(["first affected run", "change", "p"], h.change_points.map((c) => ({
        cells: [c.run, { text: c.magnitude === null ? "∞" : (c.magnitude * 100).toFixed(1) + "%", class: "num" }, { text: num(c.p_value, 2), class: "num" }] }))));
  });
  document.getElementById("history-form").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  if (keySel.value && metricSel.value) await show();
}

// ---------------------------------------------------------------- Compare

async function startCompare() {
  const q = query();
  const f = document.getElementById("compare-form");
  // without both runs in the URL: the newest finished run and the finished run before it of its spec
  const d = q.base && q.head ? null : await api("/api/compare/defaults");
  const pick = (ref, run) => ref || (run ? run.id : undefined);
  const unknown = await runOptions([document.getElementById("compare-base"), document.getElementById("compare-head")],
                                   [pick(q.base, d && d.base), pick(q.head, d && d.head)]);
  fillForm(f, { q: q.q, floor: q.floor });
  const sum = document.getElementById("compare-summary");
  const defaultNote = (v) => {  // why the page opened on these runs, while they are still chosen
    if (d && d.note && (!d.head || v.head === d.head.id) && (!d.base || v.base === d.base.id)) {
      sum.appendChild(el("p", { class: "muted", id: "compare-default-note", text: d.note }));
    }
  };
  defaultNote(formValues(f));
  const show = guard(async () => {
    const v = formValues(f);
    setQuery(v);
    const c = await api("/api/compare", v);
    clear(sum);
    defaultNote(v);
    const nb = c.only_in_base.length, nh = c.only_in_head.length;
    if (!c.rows.length && !c.failures.length) {
      sum.appendChild(el("p", { id: "compare-only" }, el("strong", { text: `${c.base.name} → ${c.head.name}: ` }),
        `no cell in common, nothing was compared (${nb} cells only in ${c.base.name}, ${nh} only in ${c.head.name})`));
      const forest = document.getElementById("forest");
      Plotly.purge(forest);
      forest.hidden = true;
      clear(document.getElementById("verdicts")); clear(document.getElementById("fdr"));
      return;
    }
    sum.appendChild(el("p", {}, el("strong", { text: `${c.base.name} → ${c.head.name}: ` }),
      Object.entries(c.counts).map(([k, n]) => el("span", { class: "v-" + k, text: `${n} ${k}  ` }))));
    if (nb || nh) sum.appendChild(el("p", { id: "compare-only", class: "muted", text: `${nb} cells only in ${c.base.name}, ${nh} only in ${c.head.name} (not compared)` }));
    for (const w of c.warnings.concat(c.noise_note ? [c.noise_note] : [])) sum.appendChild(el("p", { class: "muted", text: "note: " + w }));
    document.getElementById("forest").hidden = false;
    // by verdict (as `allele bench compare` lists them), then cell and metric
    const rank = { regressed: 0, improved: 1, inconclusive: 2, unchanged: 3 };
    const rows = c.rows.filter((r) => r.ratio !== null && r.ratio > 0).sort((a, b) =>
      (rank[a.verdict] - rank[b.verdict]) || a.key.localeCompare(b.key) || a.metric.localeCompare(b.metric));
    const color = { regressed: "#cf222e", improved: "#1a7f37", inconclusive: "#9a6700", unchanged: "#8c959f" };
    const labels = forestLabels(rows, c.varying);
    // Drawn on the log-ratio scale (the interval is a t interval on the log-ratio: a halving sits as
    // far from 0 as a doubling), ticks labelled as changes. The axis holds every point but far
    // outliers (one x67 row among changes of a few percent would flatten the rest; at most a fifth
    // of the rows are cut), and the intervals up to twice the farthest kept point: one interval of
    // a metric near 0 can reach +4,000,000 %. Points and intervals beyond the axis end at its edge
    // with an arrow; their values are in the hover and the table (as in the HTML report).
    const ln = (x) => (x > 0 ? Math.log(x) : -Infinity);
    const xs = rows.map((r) => ln(r.ratio));
    const dist = xs.map(Math.abs).sort((a, b) => b - a);
    const floorDist = Math.log1p(c.floor);
    let keep = dist[0];
    for (let i = 0; i < (dist.length > 1 ? Math.max(1, Math.floor(dist.length / 5)) : 0); i++) {
      if (dist[i] <= 5 * Math.max(dist[i + 1], floorDist)) break;
      keep = dist[i + 1];
    }
    const kept = xs.filter((x) => Math.abs(x) <= keep);
    const reach = 2 * Math.max(keep, floorDist) + 0.1;
    const ends = rows.flatMap((r) => [ln(r.ci_low), ln(r.ci_high)]).filter(Number.isFinite);
    let lo = Math.min(Math.max(Math.min(...kept, ...ends), -reach), Math.log(1 - c.floor));
    let hi = Math.max(Math.min(Math.max(...kept, ...ends), reach), Math.log1p(c.floor));
    const pad = 0.05 * (hi - lo); lo -= pad; hi += pad;
    const tickText = (t) => (t >= 3 ? `×${t}` : t === 1 ? "0%" : `${t > 1 ? "+" : ""}${Math.round((t - 1) * 1000) / 10}%`);
    const ticks = [];
    for (const t of [1, 2, 0.5, 1.1, 0.9, 10, 0.1, 1.25, 0.8, 1.05, 0.95, 5, 0.2, 1.5, 0.75, 1.02, 0.98, 100, 0.01, 20, 0.05, 50, 0.02, 1.01, 0.99, 3, 1000, 0.001]) {
      const v = Math.log(t);
      if (v >= lo && v <= hi && ticks.every((u) => Math.abs(v - Math.log(u)) >= (hi - lo) / 10)) ticks.push(t);
      if (ticks.length === 9) break;
    }
    ticks.sort((a, b) => a - b);
    const clip = (x) => Math.min(hi, Math.max(lo, x));
    const pts = rows.map((r, i) => ({ r, label: labels[i], x: ln(r.ratio), low: ln(r.ci_low), high: ln(r.ci_high) }));
    const cut = pts.filter((p) => p.low < lo || p.high > hi || p.x < lo || p.x > hi).length;
    const hover = (p) => esc(`${p.r.metric} · ${p.r.target} ${p.r.params_text}<br>${p.r.verdict}: ${pct(p.r.ratio)} [${pct(p.r.ci_low)}, ${pct(p.r.ci_high)}]<br>${p.r.reason}`);
    // one trace per verdict: Plotly takes one colour per trace for markers' error bars
    const traces = Object.keys(rank).map((v) => pts.filter((p) => p.r.verdict === v)).filter((ps) => ps.length).map((ps) => ({
      type: "scatter", mode: "markers", name: ps[0].r.verdict, x: ps.map((p) => clip(p.x)), y: ps.map((p) => p.label),
      marker: { color: color[ps[0].r.verdict], size: 8,
                symbol: ps.map((p) => (p.x > hi ? "triangle-right" : p.x < lo ? "triangle-left" : "circle")) },
      error_x: { type: "data", symmetric: false, color: color[ps[0].r.verdict], thickness: 1.5,
                 array: ps.map((p) => clip(p.high) - clip(p.x)), arrayminus: ps.map((p) => clip(p.x) - clip(p.low)) },
      text: ps.map(hover), hoverinfo: "text" }));
    const edges = pts.filter((p) => p.high > hi || p.low < lo).map((p) => ({
      x: p.high > hi ? hi : lo, y: p.label, text: p.high > hi ? "▶" : "◀", showarrow: false,
      font: { color: color[p.r.verdict], size: 11 }, xanchor: p.high > hi ? "right" : "left" }));
    plot("forest", traces,
      { title: { text: "change of HEAD against BASE with 95% intervals (log scale)" }, height: Math.max(420, 22 * rows.length + 140), showlegend: true,
        legend: { orientation: "h", y: 1.0, yanchor: "bottom", x: 0 },
        margin: { l: 20, r: 20, t: 70, b: 60 }, annotations: edges,
        xaxis: { zeroline: true, range: [lo, hi], automargin: true,
                 tickvals: ticks.map(Math.log), ticktext: ticks.map(tickText),
                 title: { text: cut ? `change: ${cut} row${cut > 1 ? "s run" : " runs"} past the axis (▶ ◀; hover for values)` : "change" } },
        yaxis: { range: [labels.length - 0.5, -0.5], type: "category", categoryorder: "array", categoryarray: labels, automargin: true },
        shapes: [-1, 1].map((s) => ({ type: "line", xref: "x", yref: "paper", x0: Math.log1p(s * c.floor), x1: Math.log1p(s * c.floor), y0: 0, y1: 1, line: { dash: "dash", color: "#8c959f" } })) });
    clear(document.getElementById("verdicts")).appendChild(table(
      ["target", "params", "metric", "base", "head", "change", "95% CI", "q", "verdict", "reason"],
      c.rows.map((r) => ({ cells: [r.target, r.params_text, r.metric + (r.direction_guessed ? " (direction guessed)" : ""), { text: r.base_text || num(r.base), class: "num" }, { text: r.head_text || num(r.head), class: "num" },
        { text: pct(r.ratio), class: "num" }, { text: `[${pct(r.ci_low)}, ${pct(r.ci_high)}]`, class: "num" }, { text: num(r.q_value, 2), class: "num" },
        { text: r.verdict, class: "v-" + r.verdict }, r.reason] }))));
    clear(document.getElementById("fdr")).appendChild(table(["rank", "cell", "metric", "p", "BH threshold", "q", "verdict"],
      c.fdr.map((r) => ({ cells: [{ text: r.rank, class: "num" }, r.params_text, r.metric, { text: num(r.p_value, 3), class: "num" },
        { text: num(r.threshold, 3), class: "num" }, { text: num(r.q_value, 3), class: "num" }, { text: r.verdict, class: "v-" + r.verdict }] }))));
  });
  f.addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  if (unknown.length) throw new Error(unknown.join("; "));  // a run of the URL is not in the store
  const base = document.getElementById("compare-base").value, head = document.getElementById("compare-head").value;
  // the same run twice is compared too: the API's one-line answer says why nothing is shown
  if (base && head && !(d && !d.base)) await show();
}

// A forest plot's row labels: the metric first, then the target and only the parameters that vary
// among its cells (`varying`, per target, from the server; the fixed ones repeat on every row and
// pushed the metric out of view), cut at 60 characters; numbered, so that equal labels stay
// distinct rows.
function forestLabels(rows, varying) {
  const label = (r, target) => {
    const params = paramsText(Object.fromEntries((varying[r.target] || []).filter((k) => k in r.params).map((k) => [k, r.params[k]])));
    return `${r.metric} · ${target}${params ? " " + params : ""}`;
  };
  // when a label would be cut, every target loses its module path first, not its parameters
  const long = rows.some((r) => label(r, r.target).length > 60);
  return rows.map((r, i) => {
    const text = label(r, long ? r.target.split(/[:.]/).pop() : r.target);
    return esc(`${i + 1}. ${text.length > 60 ? text.slice(0, 59) + "…" : text}`);
  });
}

// ---------------------------------------------------------------- Alerts

const silenceChoice = new Map();  // group id -> the "silence for" duration picked on the Alerts page

async function loadAlerts() {
  const f = document.getElementById("alert-filters");
  const v = formValues(f);
  setQuery(v);
  const data = await api("/api/alerts", v);
  const counts = clear(document.getElementById("alert-counts"));
  for (const [k, n] of Object.entries(data.counts)) counts.appendChild(el("span", { class: "s-" + k, text: `${n} ${k}` }));
  const byFp = new Map(data.alerts.map((a) => [a.fingerprint, a]));
  const box = clear(document.getElementById("alert-groups"));
  if (!data.groups.length) box.appendChild(el("p", { class: "muted", text: "No alert." }));
  for (const g of data.groups) {
    const members = g.alerts.map((fp) => byFp.get(fp)).filter(Boolean);
    // the group is headed by its most severe alert, whose severity the header shows (it showed the
    // first alert's name beside another one's severity)
    const rankOf = { critical: 0, error: 1, warning: 2, info: 3 };
    const first = members.slice().sort((a, b) => (rankOf[a.severity] ?? 4) - (rankOf[b.severity] ?? 4))[0];
    const ack = el("button", { text: g.acknowledged ? "acknowledged" : "acknowledge", disabled: g.acknowledged ? "disabled" : null,
      onclick: guard(async () => { await post("/api/alerts/ack", { group_id: first.group_id || undefined, fingerprints: first.group_id ? [] : [first.fingerprint] }); await loadAlerts(); }) });
    const dur = el("select", { "aria-label": "silence for" }, [["1h", 3600], ["4h", 14400], ["1d", 86400], ["7d", 604800]].map(([t, s]) => el("option", { value: s, text: t })));
    // the page redraws every few seconds: keep the duration the user picked for this group
    if (silenceChoice.has(g.id)) dur.value = silenceChoice.get(g.id);
    dur.addEventListener("change", () => silenceChoice.set(g.id, dur.value));
    // every alert of the group as listed, each by its own label set (the server matches them literally)
    const silence = el("button", { text: "silence", onclick: guard(async () => {
      await post("/api/alerts/silence", { fingerprints: members.map((a) => a.fingerprint), duration_s: Number(dur.value),
                                          comment: `${[...new Set(members.map((a) => a.name))].join(", ")} (group ${g.id}), from the dashboard` });
      await loadAlerts(); }) });
    const div = el("div", { class: "group", "data-group": g.id },
      el("div", {}, el("strong", { text: `${first.name}` }), ` · ${members.length} alert${members.length === 1 ? "" : "s"} · ${g.severity} `,
        el("span", { class: "tag", text: g.id }), ack, " ", silence, " for ", dur));
    div.appendChild(table(["state", "summary", "verdict / value", "root cause", "labels", "since"], members.map((a) => ({
      cells: [{ text: a.silenced ? "silenced" : a.stale ? `resolved (no evaluation since ${when(a.updated_at)})`
                : a.state === "resolved" && a.annotations.resolved_reason ? `resolved (${a.annotations.resolved_reason})` : a.state,
                class: a.silenced ? "muted" : "s-" + a.state, title: a.stale ? "the process that evaluated this rule stopped reporting; it is shown resolved when it last reported" : null },
        a.annotations.summary || a.name,
        a.annotations.verdict || num(a.value), a.annotations.root_cause || "",
        Object.entries(a.labels).map(([k, val]) => `${k}=${val}`).join(", "), when(a.starts_at)] }))));
    box.appendChild(div);
  }
  const sil = clear(document.getElementById("silences"));
  sil.appendChild(table(["id", "matchers", "until", "comment", ""], data.silences.map((s) => ({
    cells: [s.id, Object.entries(s.matchers).map(([k, v]) => `${k}=${v}`).join(", "), when(s.ends_at), s.comment,
      el("button", { text: "expire", onclick: guard(async () => { await post("/api/silences/" + encodeURIComponent(s.id), undefined, "DELETE"); await loadAlerts(); }) })] }))));
  const o = data.outbox;
  clear(document.getElementById("outbox")).appendChild(el("p", { text:
    `channels: ${data.channels.join(", ") || "none configured"} · ${o.pending} pending, ${o.delivered} delivered, ${o.dead} given up, ${o.refused} refused by a full outbox` }));
}

async function startAlerts() {
  const f = document.getElementById("alert-filters");
  fillForm(f, query());
  f.addEventListener("submit", (ev) => { ev.preventDefault(); guard(loadAlerts)(); });
  await guard(loadAlerts)();
  setInterval(guard(loadAlerts), 5000);
}

// ---------------------------------------------------------------- Analytics

async function startAnalytics() {
  const q = query();
  const pick = document.getElementById("series-pick");
  const tele = await api("/api/telemetry");
  for (const s of tele.series) pick.appendChild(el("option", { value: `${s.metric}|${s.component}`, text: `${s.metric} · ${s.component} (${s.points})` }));
  const f = document.getElementById("series-form");
  fillForm(f, { method: q.method, model: q.model, horizon: q.horizon, labels: q.labels, learn: q.learn, period: q.period });
  if (q.metric) pick.value = `${q.metric}|${q.component || ""}`;
  if (q.metric && !pick.value)  // a link to a series the store does not hold: say so (the page stayed blank)
    f.after(el("p", { class: "v-regressed", id: "series-missing",
                      text: `no series ${q.metric}${q.component ? " · " + q.component : ""} in the store; showing the longest one instead` }));
  if (!pick.value && tele.series.length) {  // open on the longest series: the first one listed may be too short to learn from
    const longest = tele.series.reduce((a, b) => (b.points > a.points ? b : a));
    pick.value = `${longest.metric}|${longest.component}`;
  }
  // anomaly scores and the forecast are asked for apart: either may fail (a series too short to
  // learn from can still be forecast), and each says why in its own panel
  const panel = async (name, fn) => {
    const box = document.getElementById(name + "-error"), chart = document.getElementById(name + "-chart");
    try {
      box.hidden = true; chart.hidden = false;
      await fn();
    } catch (e) {
      box.textContent = `${name === "anomaly" ? "anomaly scores" : "forecast"}: ${e.message || e}`;
      box.hidden = false;
      Plotly.purge(chart); chart.hidden = true;
    }
  };
  const analyse = guard(async () => {
    const v = formValues(f);
    const [metric, component] = v.series.split("|");
    const labels = v.labels.trim(), learn = v.learn.trim(), period = v.period.trim();
    setQuery({ metric, component, labels, method: v.method, learn, model: v.model, horizon: v.horizon, period });
    await panel("anomaly", async () => {
      const a = await api("/api/analytics/anomalies", { metric, component, labels, method: v.method, learn });
      const t = a.series.t.map((x) => new Date(x * 1000));
      const flagged = a.anomalies.map((r) => r.index);
      plot("anomaly-chart", [
        { ...gapped(t, a.series.v), mode: "lines", name: esc(metric) },
        { x: flagged.map((i) => t[i]), y: flagged.map((i) => a.series.v[i]), mode: "markers", name: "anomaly", marker: { color: "#cf222e", size: 9 } },
        { ...gapped(t, a.scores), mode: "lines", name: "score", yaxis: "y2", line: { color: "#9a6700" } }],
        { title: { text: esc(`${metric} · ${component}${labels ? " " + labels : ""}: ${flagged.length} anomalies (${a.method}, learning period ${a.learn} points)`) },
          yaxis: { domain: [0.35, 1] }, yaxis2: { domain: [0, 0.28], title: { text: "score" } } });
    });
    const ul = clear(document.getElementById("findings"));
    await panel("forecast", async () => {
      const fc = await api("/api/analytics/forecast", { metric, component, labels, model: v.model, horizon: v.horizon, period });
      const t = fc.series.t.map((x) => new Date(x * 1000));
      const ft = (fc.forecast.timestamps || []).map((x) => new Date(x * 1000));
      plot("forecast-chart", [
        { ...gapped(t, fc.series.v), mode: "lines", name: "observed" },
        { x: ft, y: fc.forecast.upper, mode: "lines", line: { width: 0 }, showlegend: false },
        { x: ft, y: fc.forecast.lower, mode: "lines", fill: "tonexty", fillcolor: "rgba(9,105,218,0.15)", line: { width: 0 }, name: `${Math.round(fc.forecast.level * 100)}% interval` },
        { x: ft, y: fc.forecast.mean, mode: "lines", name: esc(`forecast (${fc.forecast.model})`) }],
        { title: { text: esc(`forecast of ${metric} · ${component}${labels ? " " + labels : ""}`) } });
      for (const s of fc.findings) ul.appendChild(el("li", { text: s }));
    });
  });
  f.addEventListener("submit", (ev) => { ev.preventDefault(); analyse(); });
  if (pick.value) await analyse();
  const runSelects = [...document.querySelectorAll(".run-pick")];
  const d = await api("/api/compare/defaults");  // finished runs, as Compare opens on
  const id = (r) => (r ? r.id : undefined);
  const unknown = await runOptions(runSelects, [q.base || id(d.base), q.head || id(d.head), q.run || id(d.head)]);
  const rca = document.getElementById("rca-form");
  rca.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const v = formValues(rca);
    setQuery({ base: v.base, head: v.head });
    const r = await api("/api/analytics/root-causes", v);
    const rcaBox = clear(document.getElementById("rca"));
    if (r.message) rcaBox.appendChild(el("p", { text: r.message }));
    rcaBox.appendChild(table(["kind", "cause", "score", "evidence"],  // strongest first, as the headline
      r.causes.slice().sort((a, b) => (b.score ?? -1) - (a.score ?? -1))
        .map((c) => ({ cells: [c.kind, c.name, { text: num(c.score, 3), class: "num" }, c.evidence] }))));
  }));
  const rec = document.getElementById("rec-form");
  // the metric inputs offer the picked runs' metrics; quality opens on the run's own
  // higher-is-better metric (best_fitness is only the evolution target's)
  const offer = async (form, runName, fields, firstQuality) => {
    const runId = form.querySelector(`[name=${runName}]`).value;
    if (!runId) return;
    const o = await api("/api/runs/" + encodeURIComponent(runId));
    const metrics = [...new Set(o.targets.flatMap((t) => t.metrics))].sort();
    const quality = o.targets.flatMap((t) => t.quality || []);
    for (const name of fields) {
      const input = form.querySelector(`[name=${name}]`);
      const list = clear(document.getElementById(input.getAttribute("list")));
      for (const m of metrics) list.appendChild(el("option", { value: m }));
      if (name === "quality" && firstQuality && !metrics.includes(input.value) && quality.length) input.value = quality[0];
    }
  };
  const offerRec = guard(() => offer(rec, "run", ["quality", "cost"], true));
  const offerRca = guard(() => offer(rca, "head", ["metric"], false));
  rec.querySelector("[name=run]").addEventListener("change", offerRec);
  rca.querySelector("[name=head]").addEventListener("change", offerRca);
  await offerRec();
  await offerRca();
  rec.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const v = formValues(rec);
    setQuery({ run: v.run });
    const r = await api("/api/analytics/recommendations", v);
    const box = clear(document.getElementById("recs"));
    for (const [comp, adv] of Object.entries(r.components)) {
      box.appendChild(el("h3", { text: comp }));
      if (adv.message) box.appendChild(el("p", { text: adv.message }));
      if (adv.recommendations.length) box.appendChild(table(["configuration", "quality", "cost", "confidence", "why"], adv.recommendations.map((x) => ({
        cells: [JSON.stringify(x.params), { text: num(x.quality), class: "num" }, { text: num(x.cost), class: "num" },
                { text: num(x.confidence, 2), class: "num" }, x.text] }))));
    }
  }));
  if (unknown.length) throw new Error(unknown.join("; "));  // a run of the URL is not in the store
}

// ---------------------------------------------------------------- boot

const PAGES = { live: startLive, runs: startRuns, history: startHistory, compare: startCompare,
                alerts: startAlerts, analytics: startAnalytics };
const start = PAGES[CONFIG.page];
if (start) guard(start)();
