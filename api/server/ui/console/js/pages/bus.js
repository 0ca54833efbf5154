// Event bus: handlers with their stats, routes by priority, dead letters (inspect, re-drive,
// delete, purge, paged), and replay with a dry run.
import { del, get, post, query } from "../api.js";
import { clear, errorText, fmt, h, message, table, time, toast } from "../dom.js";

const PAGE = 50;

export async function render(view) {
  const handlers = h("div", { class: "panel", id: "bus-handlers" });
  const routes = h("div", { class: "panel", id: "bus-routes" });
  const letters = h("div", { class: "panel", id: "dead-letters" });
  const letter = h("div", { id: "dead-letter" });
  const replay = h("div", { class: "panel", id: "replay" });
  view.append(h("h2", { text: "Event bus" }), handlers, routes, letters, letter, replay);
  const state = { after: [null], page: 0, handler: "" };
  let names = { handlers: [], routes: [] };

  async function loadConfig() {
    try {
      const [hs, rs] = await Promise.all([get("/bus/handlers"), get("/bus/routes")]);
      names = { handlers: hs.handlers.map((x) => x.name), routes: rs.routes.map((x) => x.name) };
      clear(handlers, h("h3", { text: "Handlers" }), table(hs.handlers, [
        { name: "name" },
        { name: "kind" },
        { name: "source" },
        { name: "routes", render: (x) => fmt(x.routes) },
        ...["delivered", "failed", "retried", "dead_lettered", "lag_events", "pending"].map((n) => ({ name: n, num: true, render: (x) => fmt(x.stats[n]) })),
      ], { empty: "no handlers" }));
      clear(routes, h("h3", { text: "Routes (highest priority first)" }), table(rs.routes, [
        { name: "priority", num: true }, { name: "name" }, { name: "key_patterns", label: "patterns" },
        { name: "event_types", label: "types" }, { name: "handler_names", label: "handlers" }, { name: "final" }, { name: "stored" },
      ], { empty: "no routes" }));
    } catch (error) {
      clear(handlers, message("error", errorText(error)));
    }
  }

  async function loadLetters() {
    try {
      const doc = await get(`/bus/dead-letters${query({ handler: state.handler, after: state.after[state.page], limit: PAGE })}`);
      const counts = Object.entries(doc.counts);
      const filter = h("select", { id: "dead-letter-handler", onchange: (e) => { state.handler = e.target.value; state.after = [null]; state.page = 0; loadLetters(); } },
        h("option", { value: "", text: "all handlers" }),
        counts.map(([name, n]) => h("option", { value: name, text: `${name} (${n})`, selected: name === state.handler })));
      clear(letters,
        h("h3", { text: `Dead letters (${fmt(counts.reduce((a, [, n]) => a + n, 0))})` }),
        h("div", { class: "row" }, filter,
          h("button", { class: "secondary small", id: "redrive-all", disabled: !counts.length, onclick: redriveAll }, "Re-drive these"),
          h("button", { class: "danger small", id: "purge", disabled: !counts.length, onclick: purge }, "Purge these")),
        table(doc.dead_letters, [
          { name: "id" }, { name: "events", num: true }, { name: "keys", render: (x) => fmt(x.keys) },
          { name: "attempts", num: true }, { name: "last failed", render: (x) => time(x.last_failed_ms) },
          { name: "error", cls: "value" },
          { name: "", render: (x) => h("span", {},
            h("button", { class: "small secondary", onclick: (e) => { e.stopPropagation(); inspect(x); } }, "Inspect"), " ",
            h("button", { class: "small redrive", "data-id": x.id, onclick: (e) => { e.stopPropagation(); redrive(x); } }, "Re-drive")) },
        ], { onRowClick: inspect, empty: "no dead letters" }),
        h("div", { class: "row" },
          h("button", { class: "secondary small", disabled: state.page === 0, onclick: () => { state.page--; loadLetters(); } }, "Previous"),
          h("button", { class: "secondary small", disabled: !doc.next, onclick: () => { state.after[state.page + 1] = doc.next; state.page++; loadLetters(); } }, "Next")));
    } catch (error) {
      clear(letters, message("error", errorText(error)));
    }
  }

  async function inspect(summary) {
    try {
      const doc = await get(`/bus/dead-letters/${encodeURIComponent(summary.handler)}/${summary.seq}`);
      clear(letter, h("div", { class: "panel" },
        h("h3", { text: `Dead letter ${doc.id}` }),
        h("div", { class: "row" },
          h("span", { text: `${doc.attempts} attempts · first failed ${time(doc.first_failed_ms)} · last ${time(doc.last_failed_ms)}` }),
          h("button", { class: "small", onclick: () => redrive(doc) }, "Re-drive"),
          h("button", { class: "small danger", onclick: () => remove(doc) }, "Delete")),
        message("error", doc.error),
        table(doc.events, ["seq", "type", "key", { name: "old_value", cls: "value" }, { name: "new_value", cls: "value" }])));
    } catch (error) {
      clear(letter, message("error", errorText(error)));
    }
  }

  async function redrive(x) {
    try {
      const outcome = await post(`/bus/dead-letters/${encodeURIComponent(x.handler)}/${x.seq}/redrive`);
      const text = outcome.redriven ? `Re-drove ${outcome.id}: delivered.` : `Re-drove ${outcome.id}: failed again (${outcome.error}); kept.`;
      clear(letter, message(outcome.redriven ? "ok" : "error", text));
      toast(text);
    } catch (error) {
      clear(letter, message("error", errorText(error)));
    }
    refresh();
  }

  async function redriveAll() {
    try {
      const doc = await post("/bus/dead-letters/redrive", state.handler ? { handler: state.handler, limit: 1000 } : { limit: 1000 });
      clear(letter, message(doc.failed ? "error" : "ok", `Re-driven: ${doc.redriven}; failed: ${doc.failed}.`));
    } catch (error) {
      clear(letter, message("error", errorText(error)));
    }
    refresh();
  }

  async function purge() {
    if (!window.confirm(`Delete the dead letters of ${state.handler || "every handler"}?`)) return;
    try {
      const doc = await del(`/bus/dead-letters${query(state.handler ? { handler: state.handler } : { all: true })}`);
      clear(letter, message("ok", `Purged ${doc.purged} dead letters.`));
    } catch (error) {
      clear(letter, message("error", errorText(error)));
    }
    refresh();
  }

  async function remove(x) {
    try {
      await del(`/bus/dead-letters/${encodeURIComponent(x.handler)}/${x.seq}`);
      clear(letter, message("ok", `Deleted ${x.id}.`));
    } catch (error) {
      clear(letter, message("error", errorText(error)));
    }
    refresh();
  }

  function replayForm() {
    const target = h("select", { id: "replay-target" },
      names.handlers.map((n) => h("option", { value: `handler:${n}`, text: `handler ${n}` })),
      names.routes.map((n) => h("option", { value: `route:${n}`, text: `route ${n}` })));
    const from = h("input", { id: "replay-from", value: "1", size: 8 });
    const to = h("input", { id: "replay-to", placeholder: "head", size: 8 });
    const patterns = h("input", { placeholder: "key regex (optional)", size: 20 });
    const dry = h("input", { type: "checkbox", id: "replay-dry", checked: true });
    const result = h("div", { id: "replay-result" });
    async function run(e) {
      e.preventDefault();
      const [kind, name] = target.value.split(/:(.*)/s);
      const body = { [kind]: name, from_seq: Number(from.value) || 1, dry_run: dry.checked };
      if (to.value) body.to_seq = Number(to.value);
      if (patterns.value) body.key_patterns = [patterns.value];
      try {
        const doc = await post("/bus/replay", body);
        const counts = doc.dry_run ? doc.would_deliver : doc.delivered;
        clear(result,
          message("info", `${doc.dry_run ? "Dry run: would deliver" : "Delivered"} ${Object.entries(counts).map(([k, v]) => `${v} to ${k}`).join(", ") || "nothing"} · scanned ${doc.scanned} (seq ${doc.from_seq}..${doc.through_seq})${doc.next_seq ? ` · more from seq ${doc.next_seq}` : ""}`),
          doc.dry_run ? table(doc.events.slice(0, 200), ["seq", "type", "key", { name: "handlers", render: (x) => fmt(x.handlers) }]) : null);
      } catch (error) {
        clear(result, message("error", errorText(error)));
      }
      refresh();
    }
    clear(replay, h("h3", { text: "Replay" }),
      h("form", { class: "row", onsubmit: run }, h("label", {}, "into", target), h("label", {}, "from seq", from),
        h("label", {}, "to seq", to), patterns, h("label", {}, dry, "dry run"), h("button", { type: "submit", id: "replay-run" }, "Replay")),
      result);
  }

  async function refresh() {
    await Promise.all([loadConfig(), loadLetters()]);
  }
  await refresh();
  replayForm();
  const timer = setInterval(loadConfig, 3000);
  return () => clearInterval(timer);
}
