// The live page: one WebSocket to the server that served it; every message holds what is new
// (rows of signal, events, health, probabilities or the recording's labels). No inline script
// and no markup built from strings: the server's Content-Security-Policy allows neither.
"use strict";

const COLORS = ["#e6b33c", "#e0607e", "#5cb8e6", "#8fd16a", "#b48be8", "#f06be0", "#5fd6c1", "#cccccc"];
const PLOT_S = 5;
const FEED_ROWS = 200;

let hello = null, plot = null, rate = 50;
let xs = [], ys = [];
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setup(h) {
  hello = h;
  rate = h.rate_hz || 50;
  $("mode").textContent = h.mode === "record" ? "gesturekit record" : "gesturekit run";
  $("title").textContent = h.title || "";
  document.title = `gesturekit ${h.mode} · ${h.title || ""}`;
  if (h.mode === "run") setupProbs(h); else setupRecord(h);
  if (h.channels && h.channels.length) setupPlot(h.channels);
}

function setupPlot(channels) {
  if (plot) plot.destroy();
  xs = []; ys = channels.map(() => []);
  const box = $("plot");
  plot = new uPlot({
    width: Math.max(300, box.clientWidth), height: 260,
    scales: { x: { time: false } }, legend: { live: false },
    axes: [{ stroke: "#aaa", grid: { stroke: "#2a3038" }, label: hello.rate_hz ? "stream s" : "sample" },
           { stroke: "#aaa", grid: { stroke: "#2a3038" } }],
    series: [{}].concat(channels.map((c, i) => ({ label: c, stroke: COLORS[i % COLORS.length], width: 1.2,
                                                  points: { show: false } }))),
  }, [xs].concat(ys), box);
  window.addEventListener("resize", () => plot.setSize({ width: Math.max(300, box.clientWidth), height: 260 }));
}

function setupProbs(h) {
  const box = $("probs");
  box.replaceChildren();
  h.labels.forEach((label, i) => {
    const row = el("div", "prob" + (h.thresholds[i] === null ? " state" : ""));
    row.dataset.label = label;
    const bar = el("div", "bar");
    bar.appendChild(el("div", "fill"));
    if (h.thresholds[i] !== null) {
      const mark = el("div", "mark");
      mark.style.left = `${100 * h.thresholds[i]}%`;
      bar.appendChild(mark);
    }
    row.append(el("span", "name", label), bar, el("span", "value", "--"));
    box.appendChild(row);
  });
}

function setupRecord(h) {
  $("record").hidden = false;
  $("now").firstElementChild.textContent = "recording as";
  $("feed-title").textContent = "label changes";
  const box = $("labels");
  box.replaceChildren();
  h.record_labels.forEach((label, i) => {
    const b = el("button", "", `${i} ${label}`);
    b.type = "button";
    b.dataset.label = label;
    b.appendChild(el("span", "count", "0 samples"));
    b.addEventListener("click", () => send({ label }));
    box.appendChild(b);
  });
  $("guided-start").disabled = h.record_labels.length < 2;
  $("guided-start").addEventListener("click", () => send({ guided: parseInt($("reps").value, 10) || 1 }));
  $("guided-stop").addEventListener("click", () => send({ guided: 0 }));
}

let socket = null;
function send(obj) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj)); }

function addRows(m) {
  if (!m.rows.length || !plot) return;
  const n = m.rows[0].length;
  for (let k = 0; k < n; k++) xs.push(hello.rate_hz ? (m.from + k + 1) / rate : m.from + k + 1);
  m.rows.forEach((col, c) => { for (const v of col) ys[c].push(v); });
  const keep = Math.round(PLOT_S * rate);
  if (xs.length > keep) { const cut = xs.length - keep; xs.splice(0, cut); ys.forEach((y) => y.splice(0, cut)); }
  plot.setData([xs].concat(ys));
  $("plot").dataset.xLast = xs[xs.length - 1];
}

function showProbs(m) {
  if (!m.probs) return;
  const rows = $("probs").children;
  m.probs.forEach((p, i) => {
    const row = rows[i], t = hello.thresholds[i];
    row.querySelector(".fill").style.width = `${Math.min(100, 100 * p)}%`;
    row.querySelector(".value").textContent = p.toFixed(2);
    row.classList.toggle("hit", t !== null && p >= t);
  });
  $("state").textContent = m.state;
}

function addRecords(records) {
  const body = $("feed").tBodies[0];
  for (const r of records) {
    const tr = el("tr");
    tr.dataset.seq = r.seq;
    tr.dataset.kind = r.kind;
    // Time as the runner prints it (since the run began) and in the stream (its sample / rate).
    const time = r.time !== undefined ? r.time.toFixed(2) : "";
    const stream = r.sample !== undefined ? (r.sample / rate).toFixed(2) : "";
    if (r.kind === "event") {
      tr.dataset.label = r.label;
      tr.dataset.time = time;
      tr.append(el("td", "", time), el("td", "", stream), el("td", "event", r.label), el("td", "", r.confidence.toFixed(2)),
                el("td", "", r.latency_ms.toFixed(1)));
    } else {
      const text = r.kind === "gap" ? `-- gap (${r.reason}, ${r.seconds.toFixed(1)} s)`
        : r.kind === "summary" ? `summary: ${r.samples} samples, ${r.windows} windows, ${r.events} events (${r.ended})`
        : r.kind === "reference" ? `-- ${r.message}`
        : `warning: ${r.message}`;
      const cell = el("td", r.kind, text);
      cell.colSpan = 3;
      tr.append(el("td", "", time), el("td", "", stream), cell);
    }
    body.insertBefore(tr, body.firstChild);
  }
  while (body.rows.length > FEED_ROWS) body.deleteRow(-1);
}

let lastLabel = null;
function showRecord(m) {
  if (m.channels && m.channels.length && (!plot || ys.length !== m.channels.length)) setupPlot(m.channels);
  for (const b of $("labels").children) {
    b.classList.toggle("current", b.dataset.label === m.label);
    b.lastChild.textContent = `${m.counts[b.dataset.label] || 0} samples`;
    b.dataset.count = m.counts[b.dataset.label] || 0;
  }
  $("state").textContent = m.label || "--";
  if (m.label && m.label !== lastLabel) {
    const body = $("feed").tBodies[0], tr = el("tr");
    tr.dataset.kind = "label";
    tr.append(el("td", "", ""), el("td", "", `${m.total}`), el("td", "event", m.label));
    body.insertBefore(tr, body.firstChild);
    lastLabel = m.label;
  }
  const p = $("prompt");
  p.className = m.prompt ? m.prompt.phase : "";
  p.textContent = !m.prompt ? ""
    : m.prompt.phase === "ready" ? `get ready: ${m.prompt.label} (${m.prompt.rep}/${m.prompt.reps}) in ${Math.ceil(m.prompt.left_s)}`
    : m.prompt.phase === "go" ? `${m.prompt.label} now! (${m.prompt.rep}/${m.prompt.reps})`
    : "guided recording done";
}

function showHealth(m) {
  const h = m.health || {}, parts = [];
  if (h.rate_hz) parts.push(`rate ${h.rate_hz.toFixed(1)} Hz`);
  if (h.samples !== undefined) {
    parts.push(`samples ${h.samples}`, `bad lines ${h.bad_lines}`, `gaps ${h.gaps}`, `reconnects ${h.reconnects}`,
               `windows ${h.windows}`, `events ${h.events}`);
    if (h.latency_ms && h.latency_ms.p50 !== null)
      parts.push(`latency p50 ${h.latency_ms.p50.toFixed(1)} / p99 ${h.latency_ms.p99.toFixed(1)} ms`);
    if (h.page_drops) parts.push(`page drops ${h.page_drops}`);
  } else if (hello && hello.mode === "record") {
    parts.push(`samples ${m.total}`);
  }
  if (m.ended) parts.push("stream ended");
  if (parts.length) $("health").textContent = parts.join(" · ");
}

function connect() {
  socket = new WebSocket(`ws://${location.host}/ws`);
  socket.onopen = () => { $("connection").textContent = "live"; $("connection").className = "on"; };
  socket.onclose = () => {
    $("connection").textContent = "disconnected"; $("connection").className = "off";
  };
  socket.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.hello) { setup(m.hello); return; }
    if (!hello) return;
    addRows(m);
    addRecords(m.records);
    if (hello.mode === "run") showProbs(m); else showRecord(m);
    showHealth(m);
    document.body.dataset.total = m.total;
  };
}

connect();
