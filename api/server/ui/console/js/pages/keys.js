// Keys: a prefix browser paged with the scan cursor (fine with millions of keys), and an
// editor that writes with If-Match, so a value changed meanwhile is never overwritten blindly.
import { keyPath, query, request } from "../api.js";
import { clear, errorText, fmt, h, message, table, toast } from "../dom.js";

const PAGE = 100;

export async function render(view, [initialKey]) {
  const prefix = h("input", { id: "key-prefix", placeholder: "prefix, e.g. users/", size: 30 });
  const list = h("div", { class: "scroll", id: "key-list" });
  const pager = h("div", { class: "row" });
  const detail = h("div", { class: "panel", id: "key-detail" }, h("div", { class: "muted", text: "Select a key, or create one." }));
  const state = { cursors: [null], page: 0, next: null, selected: null };

  async function load() {
    const cursor = state.cursors[state.page];
    try {
      const doc = await request("GET", `/kv${query({ prefix: prefix.value, limit: PAGE, cursor })}`);
      state.next = doc.next;
      clear(list, table(doc.items, [
        { name: "key", cls: "key" },
        { name: "version", render: (r) => r.version },
        { name: "content_type", label: "type", render: (r) => r.content_type || "-" },
        { name: "value", cls: "value", render: (r) => (r.encoding === "base64" ? `(binary) ${r.value}` : r.value) },
      ], { onRowClick: (row) => open(row.key), empty: "no keys here" }));
      clear(pager,
        h("button", { class: "secondary small", disabled: state.page === 0, onclick: () => { state.page--; load(); } }, "Previous"),
        h("span", { class: "muted", text: `page ${state.page + 1} · ${doc.items.length} keys` }),
        h("button", { class: "secondary small", id: "next-page", disabled: !doc.next, onclick: () => { state.cursors[state.page + 1] = state.next; state.page++; load(); } }, "Next"));
    } catch (error) {
      clear(list, message("error", errorText(error)));
    }
  }

  function search() {
    state.cursors = [null];
    state.page = 0;
    load();
  }

  async function open(key) {
    state.selected = key;
    history.replaceState(null, "", `#/keys/${encodeURIComponent(key)}`); // no re-render
    clear(detail, h("div", { class: "muted", text: "loading..." }));
    let response;
    try {
      response = await request("GET", keyPath(key), { raw: true });
    } catch (error) {
      clear(detail, message(error.status === 404 ? "info" : "error", error.status === 404 ? `${key} does not exist (deleted?)` : errorText(error)));
      return;
    }
    const version = (response.headers.get("etag") || "").replaceAll('"', "");
    const contentType = response.headers.get("content-type") || "";
    const raw = new Uint8Array(await response.arrayBuffer());
    let text = null;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
    } catch (_) {
      text = null;
    }
    editor({ key, version, contentType, text, size: raw.length, raw });
  }

  function editor(item) {
    const isNew = item.version === null;
    const keyInput = h("input", { id: "edit-key", value: item.key, size: 40, disabled: !isNew });
    const typeInput = h("input", { id: "edit-content-type", value: item.contentType || "text/plain; charset=utf-8", size: 30 });
    const value = h("textarea", { id: "edit-value", rows: 14 });
    value.value = item.text !== null ? pretty(item.text, item.contentType) : "";
    const binary = item.text === null;
    const status = h("div", { id: "edit-status" });
    const deleteButton = h("button", { class: "danger", id: "delete-key", disabled: isNew }, "Delete");
    let armed = false;

    async function save(overwriteVersion) {
      const headers = { "content-type": typeInput.value || "application/octet-stream" };
      if (isNew) headers["if-none-match"] = "*";
      else headers["if-match"] = `"${overwriteVersion || item.version}"`;
      try {
        const result = await request("PUT", keyPath(keyInput.value), { body: value.value, headers });
        toast(`saved ${result.key} at seq ${result.seq}`);
        await open(result.key);
        clear(detail.querySelector("#edit-status"), message("ok", `Saved: version ${result.version}, seq ${result.seq}.`));
        load();
      } catch (error) {
        clear(status, explain(error, item, () => open(item.key), (current) => save(current)));
      }
    }

    async function remove() {
      if (!armed) {
        armed = true;
        deleteButton.textContent = "Click again to delete";
        return;
      }
      try {
        const result = await request("DELETE", keyPath(item.key), { headers: { "if-match": `"${item.version}"` } });
        toast(`deleted ${item.key} at seq ${result.seq}`);
        clear(detail, message("ok", `Deleted ${item.key} (seq ${result.seq}).`));
        load();
      } catch (error) {
        clear(status, explain(error, item, () => open(item.key), null));
      }
    }
    deleteButton.addEventListener("click", remove);

    clear(detail,
      h("h3", { text: isNew ? "New key" : item.key }),
      h("div", { class: "row" }, h("label", {}, "key", keyInput), h("label", {}, "content type", typeInput)),
      isNew ? null : h("div", { class: "row muted" },
        h("span", { id: "edit-version", text: `version ${item.version}` }),
        h("span", { text: `· ${fmt(item.size)} bytes` }),
        h("span", { text: `· ${item.contentType || "no content type"}` })),
      binary ? message("info", `Binary value (${item.size} bytes), shown as hex; it cannot be edited here.`) : null,
      binary ? h("pre", { text: hex(item.raw) }) : value,
      h("div", { class: "row" },
        h("button", { id: "save-key", disabled: binary, onclick: () => save() }, isNew ? "Create" : "Save"),
        isNew ? null : h("button", { class: "secondary", onclick: () => open(item.key) }, "Reload"),
        deleteButton),
      status);
  }

  const form = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); search(); } },
    prefix, h("button", { type: "submit" }, "Browse"),
    h("button", { type: "button", class: "secondary", id: "new-key", onclick: () => editor({ key: prefix.value, version: null, contentType: "", text: "", size: 0 }) }, "New key"));
  view.append(h("h2", { text: "Keys" }),
    h("div", { class: "split" }, h("div", { class: "panel" }, form, list, pager), detail));
  await load();
  if (initialKey) open(initialKey);
}

// What a failed write means, in words, with the way out.
function explain(error, item, reload, overwrite) {
  if (error.status === 412 || error.code === "precondition_failed") {
    const current = error.body.current_version;
    const text = current
      ? `Not saved: ${item.key} was changed by someone else since you opened it (you edited version ${item.version}; it is now at version ${current}). Reload to see the current value and edit again, or overwrite it with yours.`
      : item.version === null
        ? `Not created: ${item.key} already exists. Open it to edit the current value.`
        : `Not saved: ${item.key} was deleted since you opened it (you edited version ${item.version}).`;
    return h("div", { class: "message error", role: "alert", id: "conflict" },
      h("div", { text: text }),
      h("div", { class: "row" },
        h("button", { class: "secondary small", onclick: reload }, "Reload"),
        current && overwrite ? h("button", { class: "danger small", onclick: () => overwrite(current) }, "Overwrite") : null));
  }
  return message("error", errorText(error));
}

function pretty(text, contentType) {
  if ((contentType || "").includes("json")) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      return text;
    }
  }
  return text;
}

function hex(raw) {
  const shown = Array.from(raw.slice(0, 4096), (b) => b.toString(16).padStart(2, "0"));
  return shown.join(" ") + (raw.length > 4096 ? " ..." : "");
}
