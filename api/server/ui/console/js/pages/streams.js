// Streams: each named stream, its consumers (state, checkpoint, lag) and what pins retention.
import { get } from "../api.js";
import { clear, errorText, fmt, h, message, table } from "../dom.js";

export async function render(view) {
  const list = h("div");
  const detail = h("div");
  view.append(h("h2", { text: "Streams" }), list, detail);
  let stopped = false;
  let selected = null;

  async function refresh() {
    try {
      const [doc, stats] = await Promise.all([get("/streams"), get("/stats")]);
      const head = stats.last_seq;
      clear(list,
        h("div", { class: "panel" },
          h("h3", { text: "Retention" }),
          h("div", { text: `The change log holds seq ${fmt(stats.oldest_seq)} to ${fmt(head)} (${fmt(stats.log_events)} events). Durable consumers below pin it: compaction never passes their checkpoints (up to the hard cap).` })),
        h("div", { class: "panel" }, table(doc.streams, [
          { name: "name" },
          { name: "patterns", render: (s) => fmt(s.config.key_patterns) },
          { name: "types", render: (s) => fmt(s.config.event_types) },
          { name: "durable", render: (s) => fmt(s.config.enable_persistence) },
          { name: "consumers", num: true, render: (s) => fmt(s.consumers.length) },
          { name: "delivered", num: true },
          { name: "lag_events", label: "lag (events)", num: true },
          { name: "lag_ms", label: "lag (ms)", num: true },
        ], { onRowClick: (s) => { selected = s.name; refresh(); }, empty: "no streams: create them with POST /streams or the YAML" })));
      const stream = doc.streams.find((s) => s.name === selected);
      clear(detail, stream ? consumers(stream) : null);
    } catch (error) {
      clear(list, message("error", errorText(error)));
    }
  }

  function consumers(stream) {
    return h("div", { class: "panel" },
      h("h3", { text: `Stream ${stream.name}: consumers` }),
      table(stream.consumers, [
        { name: "name" },
        { name: "state" },
        { name: "attached", render: (c) => fmt(c.attached) },
        { name: "checkpoint", num: true },
        { name: "delivered", num: true },
        { name: "lag_events", label: "lag (events)", num: true },
        { name: "lag_ms", label: "lag (ms)", num: true },
        { name: "pins", label: "pins retention", render: (c) => (c.pins === null || c.pins === undefined ? "no (not durable)" : `from seq ${fmt(c.pins + 1)}`) },
      ], { empty: "no consumers" }),
      h("pre", { text: JSON.stringify(stream.config, null, 2) }));
  }

  (async () => {
    while (!stopped) {
      await refresh();
      await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  return () => {
    stopped = true;
  };
}
