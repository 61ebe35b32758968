// meter2mqtt's page: plain JavaScript, no framework, no files from elsewhere. Every URL is relative, so the page
// works on its own port and under Home Assistant's ingress path alike.

const $ = (id) => document.getElementById(id);
const state = { status: null, live: {}, loads: [], view: "status", events: null, history: null };

/** An element with attributes and children (strings become text: nothing from the bridge is parsed as HTML). */
function h(tag, attrs, ...children) {
  const svg = ["svg", "rect", "path", "text", "line", "g", "title", "polyline"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children, skipping the absent ones (a condition that did not hold). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
}

async function api(path, body) {
  const init =
    body === undefined
      ? {}
      : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(`api/${path}`, init);
  const json = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
  if (!res.ok) throw new Error(json.error || `${res.status}`);
  return json;
}

const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "never");
const ago = (iso) => {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 90 ? `${Math.max(0, s)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : fmtTime(iso);
};
const fmtNum = (v, digits) =>
  typeof v === "number" ? v.toLocaleString(undefined, { maximumFractionDigits: digits ?? 3 }) : String(v);
/** A number in the user's format, a time (ISO 8601 UTC) in their zone, anything else as it is. */
const fmtValue = (v) =>
  typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) ? fmtTime(v) : fmtNum(v);
const bytes = (n) =>
  n === null || n === undefined
    ? "—"
    : n < 1 << 20
      ? `${(n / 1024).toFixed(0)} KiB`
      : `${(n / (1 << 20)).toFixed(1)} MiB`;

// Views -------------------------------------------------------------------------------------------------------------

function show(view) {
  state.view = ["status", "live", "history", "loads", "decode"].includes(view) ? view : "status";
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${state.view}`;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === state.view);
  if (state.view === "history") loadHistory();
  if (state.view === "loads") loadLoads();
  if (state.view === "status") loadStatus();
}

async function loadStatus() {
  try {
    state.status = await api("status");
    renderStatus();
  } catch (err) {
    $("overall").textContent = `The bridge does not answer: ${err.message}`;
  }
}

function renderStatus() {
  const s = state.status;
  if (!s) return;
  fill(
    $("overall"),
    h(
      "strong",
      { class: s.status === "ok" ? "ok" : "bad" },
      s.status === "ok" ? "Everything works." : "Something needs a look:",
    ),
    s.problems.length
      ? h(
          "ul",
          {},
          s.problems.map((p) => h("li", {}, p)),
        )
      : null,
  );
  $("meters-status").replaceChildren(
    ...s.meters.map((m) => {
      const online =
        m.online === null
          ? h("span", { class: "pill" }, "waiting")
          : h("span", { class: `pill ${m.online ? "ok" : "bad"}` }, m.online ? "online" : "offline");
      const id = m.identity || {};
      return h(
        "div",
        { class: "card", "data-meter": m.id },
        h("h2", {}, `${m.name} `, online),
        h(
          "table",
          { class: "kv" },
          row("Id, type", `${m.id}, ${m.type}${m.encrypted ? " (encrypted)" : ""}`),
          row("Connection", m.transport),
          row(
            "Meter",
            [id.manufacturer, id.model, id.serialNumber, id.swVersion && `version ${id.swVersion}`]
              .filter(Boolean)
              .join(", ") || "not identified yet",
          ),
          row(m.type === "smt" || m.type === "smarthub" ? "Last data" : "Last valid frame", ago(m.last_frame)),
          row("Frames received", fmtNum(m.frames_received)),
          row("Frames rejected", fmtNum(m.frames_rejected)),
        ),
        m.rejections.length
          ? h(
              "div",
              { class: "rejections" },
              h("h3", {}, "Last rejections"),
              h(
                "ul",
                {},
                m.rejections.map((r) => h("li", { title: r.hint || null }, `${fmtTime(r.time)}: ${r.reason}`)),
              ),
              m.rejections.at(-1).hint ? h("p", { class: "hint note" }, m.rejections.at(-1).hint) : null,
            )
          : null,
        m.last_raw
          ? h("details", {}, h("summary", {}, "Last frame as received"), h("pre", { class: "raw" }, m.last_raw))
          : null,
      );
    }),
  );
  $("outputs").replaceChildren(
    row(
      "MQTT broker",
      `${s.mqtt.connected ? "connected" : "not connected"} — ${s.mqtt.broker}, base topic ${s.mqtt.base_topic}`,
      s.mqtt.connected ? "ok" : "bad",
    ),
    row(
      "Home Assistant statistics",
      s.statistics.enabled ? `on, ${s.statistics.syncs} sync(s), ${s.statistics.rows} row(s) sent` : "off",
    ),
    row("InfluxDB", s.influx.enabled ? `on, ${s.influx.buffered} waiting, ${s.influx.failures} failure(s)` : "off"),
    row(
      "Archive",
      s.archive.enabled
        ? `${s.archive.path}, ${bytes(s.archive.size_bytes)}, ${s.archive.written} reading(s) written this run${s.archive.writable ? "" : ", NOT WRITABLE"}`
        : "off",
      s.archive.writable ? "" : "bad",
    ),
    row("Version", s.version),
  );
  const formats = $("decode-format");
  if (formats.options.length === 0) formats.replaceChildren(...s.decoders.map((d) => h("option", { value: d }, d)));
  const meters = $("history-meter");
  if (meters.options.length === 0)
    meters.replaceChildren(...s.meters.map((m) => h("option", { value: m.id, "data-type": m.type }, m.name)));
}

function row(k, v, cls) {
  return h("tr", {}, h("th", {}, k), h("td", { class: cls || null }, v));
}

// Live --------------------------------------------------------------------------------------------------------------

async function loadLive() {
  try {
    const snap = await api("live");
    for (const [id, m] of Object.entries(snap))
      state.live[id] = { values: m.values, time: m.time, power: m.power.map(([t, w]) => [Date.parse(t), w]) };
    renderLive();
  } catch (err) {
    $("live-meters").textContent = `The bridge does not answer: ${err.message}`;
  }
}

function renderLive() {
  const meters = state.status ? state.status.meters : Object.keys(state.live).map((id) => ({ id, name: id }));
  $("live-meters").replaceChildren(
    ...meters.map((m) => {
      const l = state.live[m.id] || { values: [], power: [], time: null };
      return h(
        "div",
        { class: "card", "data-meter": m.id },
        h("h2", {}, m.name),
        h("p", { class: "note" }, l.time ? `as of ${fmtTime(l.time)}` : "no reading yet"),
        h("div", { class: "chart power" }, powerChart(l.power)),
        h(
          "table",
          { class: "kv values" },
          l.values.map((v) =>
            h(
              "tr",
              { "data-q": v.name },
              h("th", {}, v.label),
              h("td", { class: "num" }, `${fmtValue(v.value)}${v.unit ? ` ${v.unit}` : ""}`),
            ),
          ),
        ),
      );
    }),
  );
}

function onReading(e) {
  const r = JSON.parse(e.data);
  const l = state.live[r.meter] || (state.live[r.meter] = { values: [], power: [], time: null });
  const byName = new Map(l.values.map((v) => [v.name, v]));
  for (const v of r.values) byName.set(v.name, v);
  l.values = [...byName.values()];
  l.time = r.time;
  if (typeof r.power === "number") {
    l.power.push([Date.parse(r.received), r.power]);
    if (l.power.length > 300) l.power.shift();
  }
  if (state.view === "live") renderLive();
}

/** Grid power over the last minutes, a line with its range. */
function powerChart(points) {
  const W = 320;
  const H = 120;
  const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "power" });
  if (points.length < 2) {
    svg.append(h("text", { x: 10, y: 20 }, "power: waiting for readings"));
    return svg;
  }
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0] || t0 + 1;
  let lo = Math.min(0, ...points.map((p) => p[1]));
  let hi = Math.max(0, ...points.map((p) => p[1]));
  if (hi === lo) hi = lo + 1;
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const x = (t) => 40 + ((t - t0) / Math.max(1, t1 - t0)) * (W - 50);
  const y = (w) => 10 + (1 - (w - lo) / (hi - lo)) * (H - 30);
  svg.append(
    h("line", { class: "axis", x1: 40, x2: W - 10, y1: y(0), y2: y(0) }),
    h("text", { x: 0, y: y(hi - pad) + 4 }, `${Math.round(hi - pad)} W`),
    h("text", { x: 0, y: y(lo + pad) }, `${Math.round(lo + pad)} W`),
    h("text", { x: 40, y: H - 4 }, new Date(t0).toLocaleTimeString()),
    h("text", { x: W - 60, y: H - 4 }, new Date(t1).toLocaleTimeString()),
    h("polyline", { class: "line", points: points.map(([t, w]) => `${x(t).toFixed(1)},${y(w).toFixed(1)}`).join(" ") }),
  );
  return svg;
}

// History -----------------------------------------------------------------------------------------------------------

const TARIFF_CLASS = {
  import_tariff1: "bar-t1",
  import_tariff2: "bar-t2",
  import_tariff3: "bar-t3",
  import_tariff4: "bar-t4",
};

/** Bars: import up (per tariff when the meter has tariff registers), export down. */
function barChart(rows, label, onPick) {
  const W = 720;
  const H = 220;
  const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "energy" });
  if (rows.length === 0) {
    svg.append(h("text", { x: 10, y: 20 }, "no energy in the archive for this period yet"));
    return svg;
  }
  const up = rows.map((r) => r.import_kwh || 0);
  const down = rows.map((r) => r.export_kwh || 0);
  const top = Math.max(0.001, ...up);
  const bottom = Math.max(0, ...down);
  const scale = (H - 40) / (top + bottom);
  const base = 10 + top * scale;
  const bw = (W - 50) / rows.length;
  svg.append(
    h("line", { class: "axis", x1: 40, x2: W, y1: base, y2: base }),
    h("text", { x: 0, y: 18 }, `${fmtNum(top, 1)} kWh`),
  );
  rows.forEach((r, i) => {
    const x = 45 + i * bw;
    const w = Math.max(1, bw * 0.8);
    const g = h("g", { class: "bar", "data-label": label(r), onclick: onPick ? () => onPick(r) : null });
    const tariffs = r.tariffs.filter((t) => t.name.startsWith("import_tariff"));
    const tip = `${label(r)}: import ${fmtNum(r.import_kwh)} kWh${r.export_kwh ? `, export ${fmtNum(r.export_kwh)} kWh` : ""}${tariffs.map((t) => `, ${t.name.replace("import_", "")} ${fmtNum(t.kwh)}`).join("")}${typeof r.cost === "number" ? `, cost ${fmtNum(r.cost, 2)} ${r.currency || ""}` : ""}`;
    g.append(h("title", {}, tip));
    if (tariffs.length > 0) {
      let y = base;
      for (const t of tariffs) {
        const hgt = Math.max(0, t.kwh) * scale;
        y -= hgt;
        g.append(h("rect", { class: TARIFF_CLASS[t.name] || "bar-import", x, y, width: w, height: hgt }));
      }
    } else g.append(h("rect", { class: "bar-import", x, y: base - up[i] * scale, width: w, height: up[i] * scale }));
    if (down[i] > 0) g.append(h("rect", { class: "bar-export", x, y: base, width: w, height: down[i] * scale }));
    svg.append(g);
    if (rows.length <= 31 || i % Math.ceil(rows.length / 31) === 0)
      svg.append(h("text", { x, y: H - 4 }, label(r).slice(-2)));
  });
  return svg;
}

async function loadHistory() {
  if (!state.status) await loadStatus();
  const meter = $("history-meter").value;
  if (!meter) return;
  const days = $("history-days").value;
  $("history-note").textContent = "";
  try {
    const data = await api(`history?meter=${encodeURIComponent(meter)}&days=${days}`);
    state.history = data;
    $("history-chart").replaceChildren(
      barChart(
        data.days,
        (r) => r.day,
        (r) => loadHours(meter, r.day),
      ),
    );
    const costs = data.days.filter((d) => typeof d.cost === "number");
    const total = data.days.reduce((a, d) => a + (d.import_kwh || 0), 0);
    $("history-cost").textContent = `${fmtNum(total, 1)} kWh imported in ${data.days.length} day(s)${
      costs.length
        ? `, costing ${fmtNum(
            costs.reduce((a, d) => a + d.cost, 0),
            2,
          )} ${costs[0].currency || ""}`
        : ""
    }. Pick a day for its hours.`;
    $("hours-title").hidden = true;
    $("hours-chart").replaceChildren();
  } catch (err) {
    $("history-note").textContent = err.message;
    $("history-chart").replaceChildren();
    $("history-cost").textContent = "";
  }
  const type = $("history-meter").selectedOptions[0]?.dataset.type;
  $("calendar-box").hidden = !(type === "smt" || type === "smarthub");
  if (!$("calendar-box").hidden) loadCalendar(meter, state.calMonth || new Date().toISOString().slice(0, 7));
}

async function loadHours(meter, day) {
  const data = await api(`hours?meter=${encodeURIComponent(meter)}&day=${day}`);
  $("hours-title").hidden = false;
  $("hours-title").textContent = `${day}, per hour (UTC)`;
  $("hours-chart").replaceChildren(barChart(data.hours, (r) => r.hour.slice(11, 13)));
}

async function loadCalendar(meter, month) {
  state.calMonth = month;
  $("cal-month").textContent = month;
  try {
    const data = await api(`calendar?meter=${encodeURIComponent(meter)}&month=${month}`);
    const byDay = new Map(data.days.map((d) => [d.day, d]));
    const [y, m] = month.split("-").map(Number);
    const first = new Date(Date.UTC(y, m - 1, 1));
    const n = new Date(Date.UTC(y, m, 0)).getUTCDate();
    const cells = [];
    for (let i = 0; i < (first.getUTCDay() + 6) % 7; i++) cells.push(h("span", {}));
    for (let d = 1; d <= n; d++) {
      const day = `${month}-${String(d).padStart(2, "0")}`;
      const info = byDay.get(day);
      const st = info ? info.state : day < data.today ? "missing" : "";
      cells.push(
        h(
          "div",
          {
            class: st,
            "data-day": day,
            title: info
              ? `${day}: ${info.state}, ${info.intervals} interval(s)${info.revised ? `, ${info.revised} revised` : ""}`
              : `${day}: nothing received`,
          },
          String(d),
        ),
      );
    }
    $("calendar").replaceChildren(...cells);
  } catch (err) {
    $("calendar").textContent = err.message;
  }
}

function shiftMonth(by) {
  const [y, m] = (state.calMonth || new Date().toISOString().slice(0, 7)).split("-").map(Number);
  const d = new Date(Date.UTC(y, m - 1 + by, 1));
  loadCalendar($("history-meter").value, d.toISOString().slice(0, 7));
}

// Loads -------------------------------------------------------------------------------------------------------------

async function loadLoads() {
  try {
    state.loads = await api("loads");
    renderLoads();
  } catch (err) {
    $("loads").textContent = err.message;
  }
}

function renderLoads() {
  if (state.loads.length === 0) {
    $("loads").replaceChildren(h("p", { class: "note" }, "No loads are configured (loads: in the configuration)."));
    return;
  }
  $("loads").replaceChildren(
    ...state.loads.map((l) =>
      h(
        "div",
        { class: "card", "data-load": l.id },
        h(
          "h2",
          {},
          `${l.name} `,
          h(
            "span",
            { class: `pill ${l.state === "on" ? "ok" : ""}`, "data-state": l.state || "" },
            l.state === null ? "waiting" : `recommended ${l.state}`,
          ),
        ),
        h(
          "table",
          { class: "kv" },
          row("Meter, power", `${l.meter}, ${l.power_w} W`),
          row(
            "Mode",
            h(
              "select",
              { class: "mode", "aria-label": `mode of ${l.name}`, onchange: (e) => setMode(l.id, e.target.value) },
              ["auto", "on", "off"].map((m) => h("option", { value: m, selected: m === l.mode }, m)),
            ),
          ),
          row("Reason", l.reason + (l.delay_s ? `, changes in ${l.delay_s} s` : "")),
          row("Since", l.since ? fmtTime(l.since) : "—"),
        ),
        h("h3", {}, "Switches"),
        timelineStrip(l.timeline),
        h(
          "ul",
          { class: "timeline" },
          [...l.timeline]
            .reverse()
            .slice(0, 10)
            .map((t) => h("li", {}, `${fmtTime(t.time)}: ${t.on ? "on" : "off"} (${t.mode}, ${t.reason})`)),
        ),
      ),
    ),
  );
}

/** The load's on periods since the first switch the page knows of, as a strip up to now. */
function timelineStrip(timeline) {
  const W = 300;
  const svg = h("svg", { viewBox: `0 0 ${W} 24`, class: "strip", role: "img", "aria-label": "on and off over time" });
  if (timeline.length === 0) return svg;
  const t0 = Date.parse(timeline[0].time);
  const span = Math.max(1000, Date.now() - t0);
  const x = (t) => ((t - t0) / span) * W;
  svg.append(h("rect", { class: "strip-off", x: 0, y: 4, width: W, height: 12 }));
  timeline.forEach((t, i) => {
    if (!t.on) return;
    const end = i + 1 < timeline.length ? Date.parse(timeline[i + 1].time) : Date.now();
    const from = x(Date.parse(t.time));
    svg.append(
      h(
        "rect",
        { class: "strip-on", x: from, y: 4, width: Math.max(1, x(end) - from), height: 12 },
        h("title", {}, `on from ${fmtTime(t.time)}`),
      ),
    );
  });
  svg.append(h("text", { x: 0, y: 24 }, new Date(t0).toLocaleTimeString()), h("text", { x: W - 30, y: 24 }, "now"));
  return svg;
}

async function setMode(id, mode) {
  try {
    const s = await api("loads/mode", { id, mode });
    mergeLoad(s);
  } catch (err) {
    alert(`The mode was not changed: ${err.message}`);
  }
}

function mergeLoad(s) {
  const l = state.loads.find((x) => x.id === s.id);
  if (!l) return;
  Object.assign(l, s);
  if (state.view === "loads") renderLoads();
}

// Decode ------------------------------------------------------------------------------------------------------------

async function decode(e) {
  e.preventDefault();
  const out = $("decode-out");
  out.replaceChildren(h("p", { class: "note" }, "decoding…"));
  try {
    const r = await api("decode", {
      format: $("decode-format").value,
      text: $("decode-text").value,
      key: $("decode-key").value,
      aad: $("decode-aad").value,
    });
    if (r.items.length === 0)
      out.replaceChildren(h("p", { class: "refused" }, "Nothing in this text is a complete frame of that format."));
    else
      fill(
        out,
        ...r.items.map((it) =>
          it.ok
            ? h("div", { class: "decoded" }, h("strong", {}, "Read:"), h("pre", {}, JSON.stringify(it.json, null, 2)))
            : h(
                "div",
                { class: "refused" },
                h("strong", {}, "Refused: "),
                it.reason,
                it.hint ? h("p", { class: "hint" }, it.hint) : null,
              ),
        ),
        r.more ? h("p", { class: "note" }, "…and more; only the first 50 are shown.") : null,
      );
  } catch (err) {
    out.replaceChildren(h("p", { class: "refused" }, err.message));
  }
}

// Events ------------------------------------------------------------------------------------------------------------

function follow() {
  const es = new EventSource("api/events");
  state.events = es;
  es.addEventListener("open", () => {
    $("conn").textContent = "live";
    $("conn").className = "pill ok";
  });
  es.addEventListener("error", () => {
    $("conn").textContent = "reconnecting…";
    $("conn").className = "pill bad";
  });
  es.addEventListener("reading", onReading);
  es.addEventListener("status", (e) => {
    const s = JSON.parse(e.data);
    const m = state.status?.meters.find((x) => x.id === s.meter);
    if (!m) return;
    m.online = s.online;
    m.frames_received = s.frames_received;
    m.frames_rejected = s.frames_rejected;
  });
  es.addEventListener("load", (e) => mergeLoad(JSON.parse(e.data)));
}

document.addEventListener("DOMContentLoaded", async () => {
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  $("history-meter").addEventListener("change", () => {
    state.calMonth = null;
    loadHistory();
  });
  $("history-days").addEventListener("change", loadHistory);
  $("cal-prev").addEventListener("click", () => shiftMonth(-1));
  $("cal-next").addEventListener("click", () => shiftMonth(1));
  $("decode-form").addEventListener("submit", decode);
  await loadStatus();
  await loadLive();
  follow();
  show(location.hash.slice(1) || "status");
  // The status view's times and counters, and the loads' strips, refreshed now and then while shown.
  setInterval(() => {
    if (state.view === "status" && !document.hidden) loadStatus();
    if (state.view === "loads" && !document.hidden) renderLoads();
  }, 10000);
});
