// Live changes over WS /ws/changes: filter by pattern and type, pause, resume from a seq.
// The buffer is bounded (MAX_EVENTS) and the table is redrawn at most once a frame, so a
// fast feed costs the page a fixed amount of memory and work.
import { socket } from "../api.js";
import { clear, fmt, h, time } from "../dom.js";

const MAX_EVENTS = 1000;
const SHOWN = 300;

export async function render(view) {
  const pattern = h("input", { id: "changes-pattern", placeholder: "key regex, e.g. users/.*", size: 28 });
  const types = ["INSERT", "UPDATE", "DELETE"].map((t) => h("input", { type: "checkbox", value: t, checked: true }));
  const since = h("input", { id: "changes-since", placeholder: "now, or a seq", size: 10 });
  const pauseButton = h("button", { id: "changes-pause", type: "button" }, "Pause");
  const status = h("span", { class: "muted", id: "changes-status" });
  const body = h("tbody", { id: "changes-body" });
  const state = { ws: null, events: [], dropped: 0, lastSeq: null, paused: false, dirty: false, frame: 0 };

  function connect(from) {
    disconnect();
    const params = { pattern: pattern.value ? [pattern.value] : [], since: from };
    const chosen = types.filter((t) => t.checked).map((t) => t.value);
    if (chosen.length < 3) params.type = chosen;
    const ws = socket("/ws/changes", params);
    state.ws = ws;
    status.textContent = "connecting...";
    ws.onmessage = (message) => {
      const doc = JSON.parse(message.data);
      if (doc.type === "events") {
        for (const event of doc.events) state.events.push(event);
        if (state.events.length > MAX_EVENTS) {
          state.dropped += state.events.length - MAX_EVENTS;
          state.events.splice(0, state.events.length - MAX_EVENTS);
        }
        state.lastSeq = doc.last_seq;
        schedule();
      } else if (doc.type === "caught_up" || doc.type === "progress") {
        state.lastSeq = doc.seq;
        status.textContent = `live · through seq ${doc.seq}`;
      } else if (doc.type === "error") {
        status.textContent = `error: ${doc.code}: ${doc.message}`;
      }
    };
    ws.onclose = (event) => {
      if (state.ws === ws && !state.paused) status.textContent = `closed (${event.code}${event.reason ? ": " + event.reason : ""})`;
    };
  }

  function disconnect() {
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      ws.close();
    }
  }

  function schedule() {
    if (state.dirty) return;
    state.dirty = true;
    state.frame = requestAnimationFrame(draw);
  }

  function draw() {
    state.dirty = false;
    const rows = state.events.slice(-SHOWN).reverse().map((e) =>
      h("tr", { class: e.type, "data-seq": e.seq },
        h("td", { class: "num", text: e.seq }),
        h("td", { text: time(e.ts) }),
        h("td", { class: "type", text: e.type }),
        h("td", { class: "key", text: e.key }),
        h("td", { class: "value old", text: value(e.old_value, e.encoding) }),
        h("td", { class: "value new", text: value(e.new_value, e.encoding) }),
        h("td", { text: e.origin })));
    clear(body, rows);
    if (!state.paused) {
      status.textContent = `live · ${fmt(state.events.length)} buffered${state.dropped ? `, ${fmt(state.dropped)} older dropped` : ""} · through seq ${state.lastSeq}`;
    }
  }

  pauseButton.addEventListener("click", () => {
    if (!state.paused) {
      state.paused = true;
      disconnect();
      pauseButton.textContent = "Resume";
      since.value = state.lastSeq ?? "";
      status.textContent = `paused at seq ${state.lastSeq ?? "-"}: Resume continues from the seq in the box`;
    } else {
      state.paused = false;
      pauseButton.textContent = "Pause";
      connect(since.value || state.lastSeq || "now");
    }
  });

  const form = h("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    state.events = [];
    state.dropped = 0;
    state.paused = false;
    pauseButton.textContent = "Pause";
    schedule();
    connect(since.value || "now");
  } },
  h("label", {}, "pattern", pattern),
  types.map((t) => h("label", {}, t, t.value)),
  h("label", {}, "from seq", since),
  h("button", { type: "submit", id: "changes-apply" }, "Apply"),
  pauseButton,
  h("button", { type: "button", class: "secondary", onclick: () => { state.events = []; state.dropped = 0; schedule(); } }, "Clear"),
  status);

  view.append(h("h2", { text: "Live changes" }),
    h("div", { class: "panel" }, form,
      h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {}, ["seq", "time", "type", "key", "old value", "new value", "origin"].map((c) => h("th", { text: c })))),
        body))));
  connect("now");
  return () => {
    state.paused = true;
    cancelAnimationFrame(state.frame);
    disconnect();
  };
}

function value(v, encoding) {
  if (v === null || v === undefined) return "";
  return encoding === "base64" ? `(base64) ${v}` : v;
}
