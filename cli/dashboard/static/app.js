// ibu dashboard: a snapshot, then batched deltas, over server-sent events.
// Rendering is coalesced to one pass per animation frame; the cluster list
// is paginated and filtered in the browser, so 10,000 clusters stay usable.
"use strict";
const rows = new Map();   // cluster id -> row
const plans = new Map();  // plan id -> plan summary
let ids = [];             // sorted cluster ids
let idsDirty = true;
let page = 0;
const PAGE = 100;
let selected = "";
let lastUpdate = 0;

const $ = (s) => document.querySelector(s);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));

function connect() {
  const es = new EventSource("api/events");
  es.addEventListener("snapshot", (ev) => {
    const s = JSON.parse(ev.data);
    rows.clear(); plans.clear();
    for (const p of s.plans || []) plans.set(p.id, p);
    for (const r of s.clusters || []) rows.set(r.id, r);
    idsDirty = true; changed(true);
  });
  es.addEventListener("delta", (ev) => {
    const d = JSON.parse(ev.data);
    for (const p of d.plans || []) plans.set(p.id, p);
    for (const r of d.clusters || []) { if (!rows.has(r.id)) idsDirty = true; rows.set(r.id, r); }
    for (const id of d.removed || []) { rows.delete(id); idsDirty = true; }
    changed(d.clusters && d.clusters.some((r) => r.id === selected));
  });
  es.onopen = () => { $("#conn").textContent = "live"; $("#conn").className = "conn"; };
  es.onerror = () => { $("#conn").textContent = "reconnecting…"; $("#conn").className = "conn off"; };
}

let frame = 0, detailDue = false;
function changed(detail) {
  lastUpdate = Date.now();
  detailDue = detailDue || detail;
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  if (idsDirty) { ids = [...rows.keys()].sort(); idsDirty = false; }
  renderPlans(); renderCounts(); renderFailures(); renderList();
  if (detailDue && selected) { detailDue = false; loadDetail(selected); }
  $("#total").textContent = `${rows.size} clusters · updated ${new Date(lastUpdate).toLocaleTimeString()}`;
}

function pct(n, d) { return d > 0 ? Math.round(100 * n / d) : 0; }
function dur(s) {
  if (s == null) return "";
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
  return h ? `${h}h${m}m` : m ? `${m}m${x}s` : `${x}s`;
}

function renderPlans() {
  const el = $("#plans");
  if (!plans.size) return;
  const sel = $("#f-plan"), have = new Set([...sel.options].map((o) => o.value));
  const out = [];
  for (const p of [...plans.values()].sort((a, b) => b.created - a.created)) {
    if (!have.has(p.id)) sel.add(new Option(p.id, p.id));
    const c = p.counts, done = c.succeeded + c.failed + c.skipped;
    const steps = (p.steps || []).map((s, i) => `
      <div class="step" data-step="${i}"><span>${i + 1}. ${esc(s.actions)}${i === p.current && p.phase === "Running" ? " ◂" : ""}</span>
        <div class="bar"><i class="done" style="width:${pct(s.done, s.total)}%"></i><i class="fail" style="left:${pct(s.done, s.total)}%;width:${pct(s.failed, s.total)}%"></i></div>
        <span class="pct">${pct(s.done, s.total)}%</span></div>`).join("");
    out.push(`<div class="plan" data-plan="${esc(p.id)}" data-phase="${esc(p.phase)}">
      <div class="head"><span class="id">${esc(p.id)}</span><span class="phase ${esc(p.phase)}">${esc(p.phase)}</span>
      <span class="total-pct">${pct(done, c.total)}%</span>
      <span>${c.succeeded} succeeded · ${c.inProgress} running · ${c.pending} pending · ${c.failed} failed · ${c.skipped} skipped of ${c.total}</span>
      ${p.eta != null ? `<span>ETA ${dur(p.eta)}</span>` : ""}
      ${p.reason ? `<span class="muted">${esc(p.reason)}${p.message ? ": " + esc(p.message) : ""}</span>` : ""}</div>${steps}</div>`);
  }
  el.innerHTML = out.join("");
}

function renderCounts() {
  const stages = ["Idle", "Prep", "Upgrade", "Rollback"], states = ["InProgress", "Completed", "Failed"];
  const n = {};
  for (const r of rows.values()) { const k = (r.stage || "Idle") + "/" + (r.state || "Completed"); n[k] = (n[k] || 0) + 1; }
  let h = `<tr><th></th>${states.map((s) => `<th>${s}</th>`).join("")}</tr>`;
  for (const st of stages) {
    h += `<tr><th>${st}</th>${states.map((s) => {
      const k = st + "/" + s, v = n[k] || 0;
      return `<td class="n"><a data-stage="${st}" data-state="${s}">${v || ""}</a></td>`;
    }).join("")}</tr>`;
  }
  $("#counts").innerHTML = h;
}

function renderFailures() {
  const failed = [];
  for (const id of ids) { const r = rows.get(id); if (r && r.reason) failed.push(r); }
  $("#failcount").textContent = failed.length ? `(${failed.length})` : "";
  $("#failures").innerHTML = failed.length
    ? failed.slice(0, 200).map((r) => `<li><a data-id="${esc(r.id)}">${esc(r.id)}</a> <span class="s-${esc(r.state)}">${esc(r.stage)} ${esc(r.state)}</span>: <span class="reason">${esc(r.reason)}</span></li>`).join("")
      + (failed.length > 200 ? `<li class="muted">and ${failed.length - 200} more</li>` : "")
    : `<li class="muted">none</li>`;
}

function filtered() {
  const fp = $("#f-plan").value, fs = $("#f-stage").value, fst = $("#f-state").value;
  const fl = $("#f-label").value.trim(), fid = $("#f-id").value.trim();
  let lk = "", lv = null;
  if (fl) { const i = fl.indexOf("="); lk = i < 0 ? fl : fl.slice(0, i); lv = i < 0 ? null : fl.slice(i + 1); }
  const out = [];
  for (const id of ids) {
    const r = rows.get(id);
    if (fp && r.plan !== fp) continue;
    if (fs && (r.stage || "Idle") !== fs) continue;
    if (fst && (r.state || "Completed") !== fst) continue;
    if (fid && !id.includes(fid)) continue;
    if (lk) { const l = r.labels || {}; if (!(lk in l) || (lv !== null && l[lk] !== lv)) continue; }
    out.push(r);
  }
  return out;
}

function renderList() {
  const list = filtered();
  const pages = Math.max(1, Math.ceil(list.length / PAGE));
  page = Math.min(page, pages - 1);
  const from = page * PAGE, slice = list.slice(from, from + PAGE);
  $("#range").textContent = list.length ? `${from + 1}–${from + slice.length} of ${list.length}` : "no clusters match";
  $("#clusters tbody").innerHTML = slice.map((r) => {
    const labels = Object.entries(r.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const step = r.precache ? `${esc(r.step)} ${Math.round(r.precache * 100)}%` : esc(r.step);
    return `<tr data-id="${esc(r.id)}"><td>${esc(r.id)}</td><td>${esc(r.plan)}</td><td>${esc(r.stage)}</td>
      <td class="s-${esc(r.state)}">${esc(r.state)}</td><td>${step}</td><td>${esc(labels)}</td><td class="reason">${esc(r.reason)}</td></tr>`;
  }).join("");
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

async function loadDetail(id) {
  selected = id;
  const res = await fetch("api/clusters/" + encodeURIComponent(id));
  if (!res.ok) { $("#d-body").textContent = await res.text(); return; }
  const v = await res.json(), st = v.status, cl = v.cluster || {};
  $("#detail").hidden = false;
  $("#d-id").textContent = id;
  const pc = st.precache;
  const kv = [
    ["position", esc(`${st.stage || "Idle"} ${st.state || ""}${st.afterPivot ? " (after pivot)" : ""}`)],
    ["step", esc(st.step || "–")],
    ["plan", esc(st.planId || "–")],
    ["version", esc(`${cl.version || "?"}${st.seedVersion ? " → " + st.seedVersion : ""}`)],
    ["trace id", v.traceId ? `<code id="d-trace">${esc(v.traceId)}</code>` : "–"],
    ["message", esc(st.message || "")],
  ];
  if (v.reason) kv.push(["failure", `<span class="reason">${esc(v.reason)}</span>`]);
  if (pc) kv.push(["precache", `${pc.pulled}/${pc.total} images, ${pc.failed} failed · ${bytes(pc.bytesDone || 0)}${pc.bytesTotal ? " of " + bytes(pc.bytesTotal) : ""} · ${bytes(pc.rateBytesPerSec || 0)}/s`]);
  const conds = (st.conditions || []).map((c) => `<tr><td>${esc(c.type)}</td><td>${esc(c.status)}</td><td>${esc(c.reason)}</td><td class="reason" style="color:inherit">${esc(c.message)}</td></tr>`).join("");
  $("#d-body").innerHTML = `<div class="kv">${kv.map(([k, x]) => `<b>${k}</b><span>${x}</span>`).join("")}</div>
    <h3>Timeline</h3><div id="timeline">${timeline(st.history || [])}</div>
    <h3>Conditions</h3><table><tr><th>type</th><th>status</th><th>reason</th><th>message</th></tr>${conds}</table>`;
}

// timeline draws a Gantt-like bar per stage run and per phase in it.
function timeline(hist) {
  if (!hist.length) return `<p class="muted">no stage has run yet</p>`;
  const now = Date.now(), t = (s) => s ? Date.parse(s) : now;
  const t0 = Math.min(...hist.map((h) => t(h.start)));
  const t1 = Math.max(...hist.map((h) => t(h.end)), t0 + 1);
  const span = t1 - t0;
  const bar = (a, b, cls) => `<div class="tl-bar ${cls}" style="left:${(100 * (t(a) - t0) / span).toFixed(2)}%;width:${(100 * (t(b) - t(a)) / span).toFixed(2)}%"></div>`;
  let h = "";
  for (const r of hist) {
    const secs = ((t(r.end) - t(r.start)) / 1000).toFixed(2);
    h += `<div class="tl-row stage"><span class="tl-label">${esc(r.stage)} · ${esc(r.state)} · ${secs}s</span><div class="tl-track">${bar(r.start, r.end, esc(r.state))}</div></div>`;
    for (const p of r.phases || []) {
      h += `<div class="tl-row"><span class="tl-label tl-phase">${esc(p.name)} · ${((t(p.end) - t(p.start)) / 1000).toFixed(2)}s</span><div class="tl-track">${bar(p.start, p.end, "phase")}</div></div>`;
    }
  }
  return h;
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("[data-id]");
  if (a) { loadDetail(a.dataset.id); $("#detail").scrollIntoView({ behavior: "smooth" }); return; }
  const c = e.target.closest("#counts a[data-stage]");
  if (c) { $("#f-stage").value = c.dataset.stage; $("#f-state").value = c.dataset.state; page = 0; render(); }
});
$("#d-close").onclick = () => { selected = ""; $("#detail").hidden = true; };
$("#prev").onclick = () => { page = Math.max(0, page - 1); renderList(); };
$("#next").onclick = () => { page++; renderList(); };
$("#filters").addEventListener("input", () => { page = 0; renderList(); });
$("#filters").addEventListener("submit", (e) => e.preventDefault());
connect();
