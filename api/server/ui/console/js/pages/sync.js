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
    clear(body, render_(status), h("div", { class: "panel" }, h("h3", { text: "Conflicts" }), rowsTable(conflictRows(conflicts.conflicts || []))));
    return true;
  }

  (async () => {
    while (!stopped && (await refresh())) await new Promise((r) => setTimeout(r, 2000));
  })();
  return () => {
    stopped = true;
  };
}

const TARGET_COLUMNS = ["processor", "target", "state", "endpoint", "checkpoint", "remote_checkpoint", "lag_events", "lag_ms", "sent", "applied", "skipped", "conflicts", "retries", "failovers", "last_error"];

function render_(doc) {
  const node = ["node_id", "epoch", "last_seq", "conflicts"].map((k) => ({ field: k, value: doc[k] }));
  const targets = (doc.processors || []).flatMap((p) => (p.targets || []).map((t) => ({ processor: p.name, target: t.node_id, ...t })));
  const parts = [h("div", { class: "panel" }, h("h3", { text: "Node" }), rowsTable(node))];
  const targetPanel = h("div", { class: "panel" }, h("h3", { text: "Targets" }));
  if (targets.length) {
    targetPanel.append(table(targets, TARGET_COLUMNS.map((c) => ({ name: c, render: (r) => (c === "state" ? h("span", { class: `state state-${r.state}`, text: r.state }) : fmt(r[c])) }))));
  } else {
    targetPanel.append(message("info", "No sync processors on this node: declare them under sync: in its YAML, or POST /sync/processors."));
  }
  parts.push(targetPanel);
  if ((doc.inbound || []).length) parts.push(h("div", { class: "panel" }, h("h3", { text: "Inbound (what this node applied of each source)" }), rowsTable(doc.inbound)));
  return parts;
}

function conflictRows(conflicts) {
  return conflicts.map((c) => ({
    seq: c.seq,
    key: c.key,
    versions: (c.versions || []).map((v) => v.version + (v.deleted ? " (deleted)" : "")).join(" vs "),
    winner: c.winner,
    policy: c.policy,
    id: c.id,
  }));
}

function rowsTable(rows) {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return table(rows, columns.map((c) => ({ name: c, render: (r) => fmt(r[c]) })), { empty: "(none)" });
}
