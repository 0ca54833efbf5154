// Overview: the node at a glance, with live sparklines from GET /stats once a second.
import { get } from "../api.js";
import { sparkline } from "../charts.js";
import { bytes, clear, duration, errorText, fmt, h, message } from "../dom.js";

const SAMPLES = 60;

export async function render(view) {
  const cards = h("div", { class: "grid" });
  const status = h("div");
  const tables = h("div");
  view.append(h("h2", { text: "Overview" }), status, cards, tables);
  const rates = [];
  const logSizes = [];
  let previous = null;
  let stopped = false;

  async function tick() {
    let stats;
    try {
      stats = await get("/stats");
      clear(status);
    } catch (error) {
      clear(status, message("error", errorText(error)));
      return;
    }
    const now = performance.now();
    if (previous) {
      const seconds = (now - previous.at) / 1000;
      const events = stats.writer.events - previous.events;
      rates.push(Math.max(0, events / seconds));
    }
    previous = { at: now, events: stats.writer.events };
    logSizes.push(stats.log_events);
    if (rates.length > SAMPLES) rates.shift();
    if (logSizes.length > SAMPLES) logSizes.shift();
    const rate = rates.length ? rates[rates.length - 1] : 0;
    clear(
      cards,
      card("node id", stats.node_id, "node-id"),
      card("head seq", fmt(stats.last_seq), "head-seq"),
      card("writes/s", fmt(Math.round(rate)), "writes", sparkline(rates)),
      card("change log", `${fmt(stats.log_events)} events`, "log-size", sparkline(logSizes)),
      card("oldest seq", fmt(stats.oldest_seq)),
      card("records", fmt(stats.records)),
      card("durability", stats.durability || "-", "durability"),
      card("uptime", duration(stats.uptime_s), "uptime"),
      card("data file", bytes(stats.disk_bytes)),
      card("subscribers", fmt(stats.subscribers)),
      card("commit group", `${fmt(stats.writer.mean_group_size)} writes, ${fmt(stats.writer.mean_commit_ms)} ms`),
      card("version", stats.version || "-"),
    );
    clear(
      tables,
      h("div", { class: "panel" }, h("h3", { text: "Streams" }), summary(stats.streams, ["delivered", "lag_events", "lag_ms"])),
      h("div", { class: "panel" }, h("h3", { text: "Handlers" }), summary(stats.bus.handlers, ["delivered", "failed", "dead_lettered", "lag_events"])),
      h("div", { class: "panel" }, h("h3", { text: "Pipelines" }), summary(stats.pipelines, ["status", "events_in", "windows_fired", "lag_events"])),
    );
  }

  async function loop() {
    while (!stopped) {
      await tick();
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  loop();
  return () => {
    stopped = true;
  };
}

function card(label, value, id, chart) {
  return h("div", { class: "card", id: id ? `card-${id}` : undefined },
    h("div", { class: "label", text: label }),
    h("div", { class: "value", text: value }),
    chart || null);
}

function summary(map, columns) {
  const names = Object.keys(map || {});
  if (!names.length) return h("div", { class: "muted", text: "(none)" });
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", { text: "name" }), columns.map((c) => h("th", { class: "num", text: c })))),
    h("tbody", {}, names.map((name) => h("tr", {}, h("td", { text: name }),
      columns.map((c) => h("td", { class: "num", text: fmt(map[name][c]) }))))));
}
