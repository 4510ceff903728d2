/* lrun's live web UI: one server-sent event stream, tables and uPlot charts. No framework, no CDN. */
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const PHASES = [["DNS", "dns_ms", "#7c3aed"], ["connect", "connect_ms", "#d97706"], ["TLS", "tls_ms", "#db2777"],
  ["send", "send_ms", "#64748b"], ["TTFB", "ttfb_ms", "#2563eb"], ["receive", "receive_ms", "#059669"]];
const COLS = ["t", "users", "rps", "failures_per_s", "p50_ms", "p95_ms", "p99_ms", "avg_ms", ...PHASES.map(p => p[1])];
const C = Object.fromEntries(COLS.map((k, i) => [k, i]));

const ui = {
  info: null, snap: null, runId: null, runEnded: false, selected: null, sort: { key: "name", dir: 1 },
  series: { total: [], entry: [], resources: [] }, charts: {}, tab: "stats", loadingSeries: false, resLayout: null,
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}
const ms = v => (v === null || v === undefined ? "–" : v >= 100 ? Math.round(v).toString() : v.toFixed(1));
const num = (v, d = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const bytes = v => {
  if (v === null || v === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
};
const rate = v => (v === null || v === undefined ? "–" : `${bytes(v)}/s`);
const clock = t => (t ? new Date(t * 1000).toLocaleTimeString() : "–");
const duration = s => {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? `${h}h` : "") + (h || m ? `${m}m` : "") + `${r}s`;
};

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}
function row(cells, cls = []) {
  return el("tr", {}, ...cells.map((c, i) => {
    const td = el("td", cls[i] ? { class: cls[i] } : {});
    if (c instanceof Node) td.append(c); else td.textContent = c ?? "";
    return td;
  }));
}

/* ------------------------------------------------------------------------------------------ requests */

async function post(path, form) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  let body = {};
  try { body = await response.json(); } catch (e) { body = { message: response.statusText }; }
  return { ok: response.ok, body };
}

function showErrors(form, errors, message) {
  $$(".error", form).forEach(span => { span.textContent = ""; });
  $$("input", form).forEach(input => input.classList.remove("invalid"));
  for (const [field, text] of Object.entries(errors || {})) {
    const span = $(`.error[data-for="${CSS.escape(field)}"]`, form) || $('.error[data-for="form"]', form);
    if (span) span.textContent = text;
    const input = $(`input[name="${CSS.escape(field)}"]`, form);
    if (input) input.classList.add("invalid");
  }
  if (message && !Object.keys(errors || {}).length) $('.error[data-for="form"]', form).textContent = message;
}

/* ------------------------------------------------------------------------------------------ the form */

function buildForm(info) {
  const form = $("#start-form");
  const d = info.defaults;
  form.user_count.value = d.user_count;
  form.spawn_rate.value = d.spawn_rate;
  form.host.value = d.host;
  form.run_time.value = d.run_time;
  form.tags.value = d.tags;
  const box = $("#user-types");
  for (const type of info.user_types) {
    const name = `weight.${type.name}`;
    const label = el("label", {}, `${type.name} (${type.fixed_count !== null ? "count" : "weight"})`);
    label.append(el("input", { name, value: type.fixed_count !== null ? type.fixed_count : type.weight, inputmode: "numeric" }));
    label.append(el("span", { class: "error", "data-for": name }));
    box.append(label);
  }
  if (!info.user_types.length) box.hidden = true;
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const { ok, body } = await post("/swarm", new FormData(form));
    showErrors(form, ok ? {} : body.errors, ok ? "" : body.message);
    if (ok) { ui.showForm = false; ui.runId = null; refreshSoon(); }
  });
  const change = $("#change-form");
  change.addEventListener("submit", async event => {
    event.preventDefault();
    const { ok, body } = await post("/swarm", new FormData(change));
    showErrors(change, ok ? {} : body.errors, ok ? "" : body.message);
  });
}

/* ------------------------------------------------------------------------------------------ charts */

function chartWidth(id) {
  const node = document.getElementById(id);
  return Math.max(320, (node.clientWidth || node.parentElement.clientWidth || 600) - 4);
}

function makeChart(id, title, lines, opts = {}) {
  const target = document.getElementById(id);
  target.replaceChildren();
  const series = [{}, ...lines.map(([label, stroke, extra]) => ({ label, stroke, width: 2, spanGaps: false, ...(extra || {}) }))];
  const chart = new uPlot({
    title, width: chartWidth(id), height: 240, series,
    scales: { x: { time: opts.time !== false } },
    axes: [{ label: opts.xLabel }, { label: opts.yLabel, size: opts.yValues ? 80 : 60, ...(opts.yValues ? { values: opts.yValues } : {}) }],
    legend: { live: true },
    plugins: opts.plugins || [],
  }, [[], ...lines.map(() => [])], target);
  ui.charts[id] = chart;
  return chart;
}

/* A band where a live SLO window was (or is) breached: run.windows[].breaches, epoch seconds like the x axis. */
function sloBands() {
  return { hooks: { drawClear: [u => {
    const run = ui.snap && ui.snap.run;
    if (!run || !run.windows) return;
    const { left, top, width, height } = u.bbox;
    u.ctx.save();
    u.ctx.fillStyle = "rgba(217, 83, 79, 0.16)";
    for (const w of run.windows) for (const b of w.breaches) {
      const x0 = Math.max(u.valToPos(b.start, "x", true), left);
      const x1 = Math.min(u.valToPos(b.end ?? (run.ended || ui.snap.now), "x", true), left + width);
      if (x1 > x0) u.ctx.fillRect(x0, top, x1 - x0, height);
    }
    u.ctx.restore();
  }] } };
}

function setupCharts() {
  makeChart("chart-rps", "Total requests/s and failures/s", [["requests/s", "#2563eb"], ["failures/s", "#c62828"]], { yLabel: "per second", plugins: [sloBands()] });
  makeChart("chart-rt", "Response times (ms)", [["p50", "#059669"], ["p95", "#d97706"], ["p99", "#c026d3"]], { yLabel: "ms", plugins: [sloBands()] });
  makeChart("chart-users", "Users", [["users", "#64748b"]], { yLabel: "users" });
  makeChart("chart-rt-users", "Response time against users", [["p95 ms", "#d97706", { points: { show: true, size: 6 } }], ["p50 ms", "#059669", { points: { show: true, size: 6 } }]], { time: false, xLabel: "users", yLabel: "ms" });
  makeChart("chart-phases", "Where the time went (average ms per phase)", PHASES.map(([label, , colour]) => [label, colour]), { yLabel: "ms", plugins: [sloBands()] });
  makeChart("chart-entry-rt", "Selected: response times (ms)", [["p50", "#059669"], ["p95", "#d97706"], ["p99", "#c026d3"]], { yLabel: "ms" });
  makeChart("chart-entry-rps", "Selected: requests/s and failures/s", [["requests/s", "#2563eb"], ["failures/s", "#c62828"]], { yLabel: "per second" });
  makeChart("chart-entry-phases", "Selected: where the time went (average ms per phase)", PHASES.map(([label, , colour]) => [label, colour]), { yLabel: "ms" });
  window.addEventListener("resize", () => {
    for (const [id, chart] of Object.entries(ui.charts)) chart.setSize({ width: chartWidth(id), height: 240 });
  });
}

const column = (points, key) => points.map(p => p[C[key]]);

function drawCharts() {
  if (!window.uPlot || ui.tab !== "charts") return;
  const total = ui.series.total;
  const t = column(total, "t");
  ui.charts["chart-rps"].setData([t, column(total, "rps"), column(total, "failures_per_s")]);
  ui.charts["chart-rt"].setData([t, column(total, "p50_ms"), column(total, "p95_ms"), column(total, "p99_ms")]);
  ui.charts["chart-users"].setData([t, column(total, "users")]);
  ui.charts["chart-phases"].setData([t, ...PHASES.map(([, key]) => column(total, key))]);
  const byUsers = new Map();
  for (const p of total) {
    if (p[C.p95_ms] === null) continue;
    const acc = byUsers.get(p[C.users]) || { n: 0, p95: 0, p50: 0 };
    acc.n += 1; acc.p95 += p[C.p95_ms]; acc.p50 += p[C.p50_ms];
    byUsers.set(p[C.users], acc);
  }
  const users = Array.from(byUsers.keys()).sort((a, b) => a - b);
  ui.charts["chart-rt-users"].setData([users, users.map(u => byUsers.get(u).p95 / byUsers.get(u).n), users.map(u => byUsers.get(u).p50 / byUsers.get(u).n)]);
  const entry = ui.series.entry;
  const et = column(entry, "t");
  ui.charts["chart-entry-rt"].setData([et, column(entry, "p50_ms"), column(entry, "p95_ms"), column(entry, "p99_ms")]);
  ui.charts["chart-entry-rps"].setData([et, column(entry, "rps"), column(entry, "failures_per_s")]);
  ui.charts["chart-entry-phases"].setData([et, ...PHASES.map(([, key]) => column(entry, key))]);
}

/* Resources: local samples and the remote values of the same moment, on the request charts' time axis. */

const PALETTE = ["#2563eb", "#d97706", "#059669", "#c026d3", "#c62828", "#0891b2", "#65a30d", "#7c3aed"];
const color = i => PALETTE[i % PALETTE.length];
const hostValue = (name, key) => p => ((p.hosts || {})[name] || {})[key] ?? null;
const targetValue = (spec, key) => p => ((p.targets || {})[spec] || {})[key] ?? null;
const byteAxis = (u, values) => values.map(v => bytes(v));

function resourceLayout(point) {
  const targets = Object.keys(point.targets || {}), hosts = Object.keys(point.hosts || {}), queries = Object.keys(point.queries || {});
  const processes = [["lrun", p => p.process_cpu_percent, p => p.process_rss_bytes],
    ...targets.map(spec => [`process ${spec}`, targetValue(spec, "cpu_percent"), targetValue(spec, "rss_bytes")])];
  const machines = [["this machine", p => p.system_cpu_percent, p => p.system_memory_used_bytes],
    ...hosts.map(name => [name, hostValue(name, "cpu_percent"), hostValue(name, "memory_used_bytes")])];
  const charts = [
    { id: "chart-res-cpu", title: "CPU of processes (% of one core)", lines: processes.map(([label, cpu], i) => [label, color(i), cpu]) },
    { id: "chart-res-memory", title: "Memory of processes (resident)", bytes: true, lines: processes.map(([label, , memory], i) => [label, color(i), memory]) },
    { id: "chart-machine-cpu", title: "Machines: CPU (% of all cores)", lines: machines.map(([label, cpu], i) => [label, color(i), cpu]) },
    { id: "chart-machine-memory", title: "Machines: memory used", bytes: true, lines: machines.map(([label, , memory], i) => [label, color(i), memory]) },
  ];
  const both = (what, inKey, outKey) => hosts.flatMap((name, i) => [[`${name} ${what[0]}`, color(i + 1), hostValue(name, inKey)],
    [`${name} ${what[1]}`, color(i + 1), hostValue(name, outKey), { dash: [6, 4] }]]);
  if (hosts.length) {
    charts.push(
      { id: "chart-host-load", title: "Monitored hosts: load (1 min)", lines: hosts.map((name, i) => [name, color(i + 1), hostValue(name, "load1")]) },
      { id: "chart-host-network", title: "Monitored hosts: network (per second)", bytes: true, lines: both(["in", "out"], "network_rx_bytes_per_s", "network_tx_bytes_per_s") },
      { id: "chart-host-disk", title: "Monitored hosts: disk (per second)", bytes: true, lines: both(["read", "written"], "disk_read_bytes_per_s", "disk_write_bytes_per_s") });
  }
  if (queries.length) charts.push({ id: "chart-queries", title: "Prometheus queries", lines: queries.map((name, i) => [name, color(i), p => (p.queries || {})[name] ?? null]) });
  return { key: JSON.stringify([targets, hosts, queries]), charts };
}

function drawResources() {
  const points = ui.series.resources;
  if (!window.uPlot || ui.tab !== "resources" || !points.length) return;
  const layout = resourceLayout(points[points.length - 1]);
  if (!ui.resLayout || ui.resLayout.key !== layout.key) {  // lines are fixed when a chart is made
    for (const chart of ui.resLayout ? ui.resLayout.charts : []) { ui.charts[chart.id].destroy(); delete ui.charts[chart.id]; }
    $("#resource-charts").replaceChildren(...layout.charts.map(c => el("div", { id: c.id, class: "chart" })));
    for (const c of layout.charts) {
      makeChart(c.id, c.title, c.lines.map(([label, stroke, , extra]) => [label, stroke, extra]), c.bytes ? { yValues: byteAxis } : {});
    }
    ui.resLayout = layout;
  }
  const t = points.map(p => p.t);
  for (const c of ui.resLayout.charts) ui.charts[c.id].setData([t, ...c.lines.map(([, , value]) => points.map(value))]);
}

function resourcePoint(run) {
  if (!run.resources) return null;
  const remote = run.remote || {};
  return { ...run.resources, hosts: remote.hosts || {}, queries: remote.queries || {} };
}

function appendByTime(points, point) {
  if (point && (!points.length || point.t > points[points.length - 1].t)) points.push(point);
}

async function fetchSeries(key) {
  const response = await fetch(`/api/series?key=${encodeURIComponent(key)}`);
  if (!response.ok) return [];
  return (await response.json()).points;
}

async function loadSeries() {
  ui.loadingSeries = true;
  try {
    ui.series.total = await fetchSeries("total");
    ui.series.entry = ui.selected ? await fetchSeries(ui.selected) : [];
    ui.series.resources = await fetchSeries("resources");
  } finally {
    ui.loadingSeries = false;
  }
  drawCharts();
  drawResources();
}

function append(points, point) {
  if (!point) return;
  const last = points[points.length - 1];
  if (last && last[0] === point[0]) points[points.length - 1] = point;
  else if (!last || point[0] > last[0]) points.push(point);
}

/* ------------------------------------------------------------------------------------------ rendering */

function sortRows(rows) {
  const { key, dir } = ui.sort;
  return rows.slice().sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (typeof x === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
  });
}

function statsCells(r) {
  return [r.type === "transaction" ? "transaction" : r.method, r.name, r.requests, r.failures, ms(r.p50_ms), ms(r.p95_ms),
    ms(r.p99_ms), ms(r.avg_ms), ms(r.min_ms), ms(r.max_ms), ms(r.ttfb_avg_ms), ms(r.connect_avg_ms), num(r.current_rps, 1),
    num(r.current_failures_per_s, 1)];
}
const STATS_CLS = ["", "", "num", "num", "num", "num", "num", "num", "num", "num", "num", "num", "num", "num"];

function renderStats(run) {
  const tbody = $("#stats-table tbody");
  const rows = sortRows([...run.requests, ...run.transactions]).map(r => {
    const tr = row(statsCells(r), STATS_CLS);
    tr.dataset.key = r.key;
    if (r.key === ui.selected) tr.classList.add("selected");
    return tr;
  });
  fillRows(tbody, rows);
  const foot = row(statsCells({ ...run.total, method: "", name: "Aggregated" }), STATS_CLS);
  foot.dataset.key = "total";
  $("#stats-table tfoot").replaceChildren(foot);
  fillRows($("#thresholds tbody"), run.thresholds.map(v => row(
    [v.expression, v.request || "all requests", v.actual === null || v.actual === undefined ? "no data yet" : (v.detail || v.actual),
      v.actual === null || v.actual === undefined ? "–" : el("span", { class: v.passed ? "pass" : "fail", text: v.passed ? "passing" : "failing" })])));
  fillRows($("#warnings"), run.warnings.map(w => el("li", { text: w })));
}

function renderDetails(run) {
  const failures = run.errors.reduce((n, e) => n + e.count, 0);
  $("#failure-count").textContent = failures ? `(${failures})` : "";
  fillRows($("#errors tbody"), run.errors.map(e => row([e.method, e.name, e.message, e.count, clock(e.first_seen), clock(e.last_seen)], ["", "", "", "num"])));
  fillRows($("#exceptions tbody"), run.exceptions.map(e => row([`${e.type}: ${e.message}`, e.count, clock(e.first_seen), clock(e.last_seen)], ["", "num"])));
  fillRows($("#checks tbody"), run.checks.map(c => {
    const all = c.passed + c.failed;
    return row([`${c.method} ${c.name}`, c.check, c.passed, c.failed, all ? `${(100 * c.passed / all).toFixed(1)}%` : "–"], ["", "", "num", "num", "num"]);
  }));
  fillRows($("#rendezvous tbody"), run.rendezvous.map(r => {
    const last = r.releases[r.releases.length - 1];
    return row([r.name + (r.enabled ? "" : " (off)"), r.policy, r.waiting, r.arrivals, r.releases.length, last ? `${last.released} released (${last.reason}) after ${ms(last.waited_ms)} ms` : "–"], ["", "", "num", "num", "num"]);
  }));
  fillRows($("#pools tbody"), run.pools.map(p => row([p.name, p.source, p.order, p.rows, p.handed_out, p.order === "random" ? "–" : Math.max(0, p.rows - p.handed_out), p.when_empty + (p.dry ? " (ran dry)" : "")], ["", "", "", "num", "num", "num"])));
  const res = run.resources;
  const resRows = [];
  if (res) {
    resRows.push(row(["lrun (this process)", num(res.process_cpu_percent, 1), bytes(res.process_rss_bytes)], ["", "num", "num"]));
    resRows.push(row(["this machine", num(res.system_cpu_percent, 1), res.system_memory_used_bytes ? `${bytes(res.system_memory_used_bytes)} of ${bytes(res.system_memory_total_bytes)}` : "–"], ["", "num", "num"]));
    for (const [spec, t] of Object.entries(res.targets || {})) resRows.push(row([`process ${spec}`, num(t.cpu_percent, 1), bytes(t.rss_bytes)], ["", "num", "num"]));
  }
  fillRows($("#resources tbody"), resRows);
  const remote = run.remote;
  $("#remote-panel").hidden = !remote;
  if (!remote) return;
  fillRows($("#hosts tbody"), Object.entries(remote.hosts).map(([name, h]) => {
    const tr = row([name, num(h.cpu_percent, 1),
      h.memory_used_bytes === null ? "–" : `${bytes(h.memory_used_bytes)} of ${bytes(h.memory_total_bytes)}`, num(h.load1, 2),
      `${rate(h.network_rx_bytes_per_s)} / ${rate(h.network_tx_bytes_per_s)}`, `${rate(h.disk_read_bytes_per_s)} / ${rate(h.disk_write_bytes_per_s)}`],
    ["", "num", "num", "num", "num", "num"]);
    tr.dataset.host = name;
    return tr;
  }));
  $("#queries").hidden = !Object.keys(remote.queries).length;
  fillRows($("#queries tbody"), Object.entries(remote.queries).map(([name, value]) => row([name, value === null ? "–" : String(value)], ["", "num"])));
}

function renderWorkers(workers) {
  fillRows($("#workers tbody"), workers.map(w => row([w.id, w.host, w.state, w.users, w.share || "–", num(w.cpu_percent, 1), bytes(w.memory_bytes), w.requests, w.heartbeat_ago_s === null ? "–" : `${num(w.heartbeat_ago_s, 1)} s ago`], ["", "", "", "num", "", "num", "num", "num", "num"])));
}

function renderHistory(history) {
  fillRows($("#history tbody"), history.slice().reverse().map(h => {
    const links = el("span");
    for (const [file, label] of [["results.json", "JSON"], ["report.html", "report"], ["stats.csv", "stats CSV"], ["failures.csv", "failures CSV"]]) {
      links.append(el("a", { href: `/api/runs/${h.id}/${file}`, download: "" }, label), " ");
    }
    const verdict = h.passed === true ? "passed" : h.passed === false ? `failed (exit ${h.exit_code})` : "";
    const noted = (h.load_warnings || []).length ? `with warnings: ${h.load_warnings.join("; ")}` : "";
    const result = h.ended === null ? "running" : [verdict, noted, h.stop_reason].filter(Boolean).join(": ") || "–";
    return row([h.id, clock(h.started), h.users_ran ?? h.users, h.run_time ? duration(h.run_time) : "until stopped", h.requests ?? "–", h.failures ?? "–", result, links], ["", "", "num", "", "num", "num"]);
  }));
}

function render(snap) {
  ui.snap = snap;
  const run = snap.run;
  const state = snap.state;
  const badge = $("#state");
  badge.textContent = state;
  badge.className = `badge ${state}`;
  const active = state === "spawning" || state === "running";
  $("#stop").hidden = !active;
  $("#reset").hidden = !active;
  $("#new-test").hidden = active || state === "ready" || state === "stopping";
  $("#start-panel").hidden = !(state === "ready" || (ui.showForm && state === "stopped"));
  $("#change-panel").hidden = !run;
  $("#change-form button").disabled = !active;
  renderWorkers(snap.workers);
  renderHistory(snap.history);
  $("#log").textContent = snap.log.map(([, line]) => line).join("\n");
  if (!run) return;
  $("#users").textContent = run.users;
  $("#rps").textContent = num(run.total.current_rps, 1);
  $("#failratio").textContent = `${num(100 * run.total.failure_ratio, 1)}%`;
  $("#elapsed").textContent = duration(run.elapsed_s);
  $("#stop-reason").textContent = run.ended ? `test ${run.id} ended: ${run.stop_reason}` : `test ${run.id}`;
  const change = $("#change-form");
  if (document.activeElement.form !== change) {
    change.user_count.value = run.target_users;
    change.spawn_rate.value = run.spawn_rate;
  }
  $("#dl-json").href = `/api/runs/${run.id}/results.json`;
  renderStats(run);
  renderDetails(run);
  if (ui.runId !== run.id) {
    ui.runId = run.id;
    ui.runEnded = Boolean(run.ended);
    ui.selected = null;
    loadSeries();
  } else if (run.ended && !ui.runEnded) {
    ui.runEnded = true; // the end adds its last points at once (the part-second, a master's trailing seconds)
    loadSeries();
  } else if (!ui.loadingSeries) {
    append(ui.series.total, run.points.total);
    if (ui.selected) append(ui.series.entry, run.points[ui.selected]);
    appendByTime(ui.series.resources, resourcePoint(run));
    drawCharts();
    drawResources();
  }
}

/* ------------------------------------------------------------------------------------------ wiring */

function showTab(name) {
  ui.tab = name;
  $$("#tabs button").forEach(b => b.classList.toggle("active", b.dataset.tab === name));
  $$(".tab").forEach(s => { s.hidden = s.id !== `tab-${name}`; });
  if (name === "charts" || name === "resources") {
    for (const [id, chart] of Object.entries(ui.charts)) chart.setSize({ width: chartWidth(id), height: 240 });
    drawCharts();
    drawResources();
  }
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const response = await fetch("/api/state");
    if (response.ok) render((await response.json()).snapshot);
  }, 200);
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", event => {
    $("#connection").textContent = "";
    render(JSON.parse(event.data));
  });
  source.addEventListener("error", () => { $("#connection").textContent = "reconnecting…"; });
}

async function main() {
  const response = await fetch("/api/state");
  ui.info = await response.json();
  $("#scenario").textContent = `${ui.info.scenario} — ${ui.info.scenario_file}`;
  document.title = `lrun: ${ui.info.scenario}`;
  buildForm(ui.info);
  setupCharts();
  $$("#tabs button").forEach(b => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $$("#stats-table th").forEach(th => th.addEventListener("click", () => {
    const key = th.dataset.key;
    ui.sort = { key, dir: ui.sort.key === key ? -ui.sort.dir : 1 };
    $$("#stats-table th").forEach(h => h.classList.remove("asc", "desc"));
    th.classList.add(ui.sort.dir > 0 ? "asc" : "desc");
    if (ui.snap && ui.snap.run) renderStats(ui.snap.run);
  }));
  $("#stats-table").addEventListener("click", async event => {
    const tr = event.target.closest("tbody tr, tfoot tr");
    if (!tr) return;
    const key = tr.dataset.key;
    ui.selected = key === "total" ? null : key;
    const name = tr.children[1].textContent;
    $("#entry-title").textContent = ui.selected ? `Selected: ${tr.children[0].textContent} ${name}` : "Pick a row of the statistics table to chart it here";
    ui.series.entry = ui.selected ? await fetchSeries(ui.selected) : [];
    if (ui.snap && ui.snap.run) renderStats(ui.snap.run);
    showTab("charts");
  });
  $("#stop").addEventListener("click", () => post("/stop", {}).then(refreshSoon));
  $("#reset").addEventListener("click", () => post("/stats/reset", {}).then(() => { ui.runId = null; refreshSoon(); }));
  $("#new-test").addEventListener("click", () => { ui.showForm = true; render(ui.snap); });
  render(ui.info.snapshot);
  connect();
}

document.addEventListener("DOMContentLoaded", main);
