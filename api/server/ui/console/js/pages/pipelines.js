// Pipelines: a SQL editor (POST /sql), and each pipeline's results table kept live over
// WS /ws/pipelines/{name}, with a bar chart of its latest windows.
import { get, post, socket } from "../api.js";
import { bars } from "../charts.js";
import { clear, errorText, fmt, h, message, table } from "../dom.js";

const MAX_ROWS = 500;
const CHART_WINDOWS = 24;
const EXAMPLE = `CREATE STREAM bids (bidtime TIMESTAMP, price DOUBLE, supplier STRING,
    WATERMARK FOR bidtime AS bidtime - INTERVAL '5' SECOND)
  WITH (key_pattern = 'bids/.*');

CREATE PIPELINE revenue AS
SELECT supplier, window_start, window_end, SUM(price) AS revenue, COUNT(*) AS bids
  FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
 GROUP BY supplier, window_start, window_end
EMIT CHANGES;`;

export async function render(view) {
  const editor = h("textarea", { id: "sql-editor", rows: 10, spellcheck: "false" });
  editor.value = sessionStorage.getItem("kvdb.sql") || EXAMPLE;
  const output = h("div", { id: "sql-output" });
  const cards = h("div", { id: "pipeline-cards" });
  const live = new Map(); // name -> {ws, rows, columns, card}
  let stopped = false;

  async function run() {
    sessionStorage.setItem("kvdb.sql", editor.value);
    try {
      const doc = await post("/sql", { sql: editor.value });
      clear(output, doc.results.map((r) => (r.columns
        ? h("div", {}, h("div", { class: "muted", text: r.statement }), table(r.rows || [], r.columns))
        : message("ok", `${r.statement}: ${r.action || "done"}${r.name ? " " + r.name : ""}`))));
      await refresh();
    } catch (error) {
      const where = error.body && error.body.line ? ` (line ${error.body.line}, column ${error.body.column})` : "";
      clear(output, message("error", `${errorText(error)}${where}`));
    }
  }
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run();
  });

  async function refresh() {
    let doc;
    try {
      doc = await get("/pipelines");
    } catch (error) {
      clear(cards, message("error", errorText(error)));
      return;
    }
    const names = new Set(doc.pipelines.map((p) => p.name));
    for (const [name, entry] of live) {
      if (!names.has(name)) {
        entry.ws.close();
        entry.card.remove();
        live.delete(name);
      }
    }
    if (!doc.pipelines.length && !cards.querySelector(".muted.empty")) {
      clear(cards, h("div", { class: "muted empty", text: "No pipelines yet: run a CREATE PIPELINE statement above." }));
    }
    for (const stats of doc.pipelines) {
      if (!live.has(stats.name)) subscribe(stats.name);
      const entry = live.get(stats.name);
      clear(entry.figures, `status ${stats.status} · events in ${fmt(stats.events_in)} · windows fired ${fmt(stats.windows_fired)} · late dropped ${fmt(stats.late_dropped)} · lag ${fmt(stats.lag_events)} events · watermark ${stats.watermark ?? "-"}`);
    }
  }

  function subscribe(name) {
    cards.querySelector(".empty")?.remove();
    const figures = h("div", { class: "muted" });
    const chart = h("div");
    const rowsBox = h("div", { class: "scroll" });
    const status = h("span", { class: "muted" });
    const card = h("div", { class: "panel pipeline", "data-pipeline": name },
      h("div", { class: "row" }, h("h3", { text: name }), status), figures, chart, rowsBox);
    cards.append(card);
    const entry = { ws: null, rows: new Map(), columns: [], card, figures, pending: false };
    live.set(name, entry);

    const draw = () => {
      entry.pending = false;
      const rows = [...entry.rows.values()].slice(-MAX_ROWS);
      clear(rowsBox, table(rows, entry.columns.map((c) => ({ name: c, num: rows.some((r) => typeof r[c] === "number") })), { empty: "(no rows yet)" }));
      clear(chart, windowsChart(rows, entry.columns));
    };
    const schedule = () => {
      if (!entry.pending) {
        entry.pending = true;
        requestAnimationFrame(draw);
      }
    };
    const ws = socket(`/ws/pipelines/${encodeURIComponent(name)}`);
    entry.ws = ws;
    ws.onopen = () => { status.textContent = "live"; };
    ws.onmessage = (m) => {
      const doc = JSON.parse(m.data);
      if (doc.type === "snapshot") {
        entry.columns = doc.columns;
        entry.rows = new Map(doc.rows.map((r) => [identity(r), r]));
      } else if (doc.type === "updates") {
        for (const u of doc.updates) {
          const id = identity(u.row);
          if (u.op === "delete") entry.rows.delete(id);
          else {
            entry.rows.delete(id); // re-insert: the latest change goes last
            entry.rows.set(id, u.row);
          }
        }
        while (entry.rows.size > MAX_ROWS) entry.rows.delete(entry.rows.keys().next().value);
      } else if (doc.type === "error") {
        status.textContent = `${doc.code}: ${doc.message}`;
      }
      schedule();
    };
    ws.onclose = () => {
      if (!stopped && live.get(name) === entry) status.textContent = "disconnected";
    };
  }

  view.append(h("h2", { text: "Pipelines" }),
    h("div", { class: "panel" }, h("h3", { text: "SQL" }), editor,
      h("div", { class: "row" }, h("button", { id: "sql-run", onclick: run }, "Run (Ctrl+Enter)"),
        h("span", { class: "muted", text: "CREATE STREAM, CREATE PIPELINE, DROP, SHOW" })),
      output),
    cards);
  await refresh();
  const timer = setInterval(refresh, 2000);
  return () => {
    stopped = true;
    clearInterval(timer);
    for (const entry of live.values()) entry.ws.close();
  };
}

// A row's identity: its group key and window, i.e. the fields that are not numbers (the
// aggregates are). Good enough for result tables, whose keys are strings and timestamps.
function identity(row) {
  return JSON.stringify(Object.entries(row).filter(([, v]) => typeof v !== "number"));
}

// The latest windows, the first numeric column summed over the groups of each window.
function windowsChart(rows, columns) {
  const measure = columns.find((c) => rows.some((r) => typeof r[c] === "number"));
  if (!measure || !columns.includes("window_start")) return null;
  const sums = new Map();
  for (const r of rows) sums.set(r.window_start, (sums.get(r.window_start) || 0) + (Number(r[measure]) || 0));
  const latest = [...sums.keys()].sort().slice(-CHART_WINDOWS);
  return h("div", {}, h("div", { class: "muted", text: `${measure} per window (latest ${latest.length})` }),
    bars(latest.map((w) => ({ label: String(w).slice(11, 16) || String(w), value: sums.get(w) }))));
}
