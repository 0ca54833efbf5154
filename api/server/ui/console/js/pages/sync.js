// Sync: replication targets, their state and lag, and conflicts (GET /sync/status and
// /sync/conflicts). A node without replication says so instead of failing.
import { get } from "../api.js";
import { clear, errorText, fmt, h, message, table } from "../dom.js";

export async function render(view) {
  const body = h("div", { id: "sync-body" });
  view.append(h("h2", { text: "Sync" }), body);
  let stopped = false;

  async function refresh() {
    let status;
    try {
      status = await get("/sync/status");
    } catch (error) {
      if (error.status === 404) {
        clear(body, message("info", "Replication is not available on this node: it serves no /sync/status. Nodes that replicate show their targets, state, lag and conflicts here."));
        return false;
      }
      clear(body, message("error", errorText(error)));
      return true;
    }
    let conflicts = { conflicts: [] };
    try {
      conflicts = await get("/sync/conflicts");
    } catch (_) {
      /* conflicts are optional */
    }
    clear(body, render_(status), h("div", { class: "panel" }, h("h3", { text: "Conflicts" }), rowsTable(conflicts.conflicts || [])));
    return true;
  }

  (async () => {
    while (!stopped && (await refresh())) await new Promise((r) => setTimeout(r, 2000));
  })();
  return () => {
    stopped = true;
  };
}

function render_(doc) {
  const scalars = Object.entries(doc).filter(([, v]) => v === null || typeof v !== "object");
  const parts = [];
  if (scalars.length) parts.push(h("div", { class: "panel" }, h("h3", { text: "Node" }), rowsTable(scalars.map(([k, v]) => ({ field: k, value: v })))));
  for (const [name, value] of Object.entries(doc)) {
    if (Array.isArray(value)) parts.push(h("div", { class: "panel" }, h("h3", { text: name }), rowsTable(value)));
    else if (value && typeof value === "object") {
      const rows = Object.entries(value).map(([k, v]) => (v && typeof v === "object" && !Array.isArray(v) ? { name: k, ...v } : { name: k, value: v }));
      parts.push(h("div", { class: "panel" }, h("h3", { text: name }), rowsTable(rows)));
    }
  }
  return parts;
}

function rowsTable(rows) {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return table(rows, columns.map((c) => ({ name: c, render: (r) => fmt(r[c]) })), { empty: "(none)" });
}
