// Small DOM helpers. Text always goes in through textContent, never as HTML: keys and
// values are user data.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "value") node.value = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function fmt(value) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return value.toLocaleString("en-US", { maximumFractionDigits: 2 });
  }
  if (Array.isArray(value)) return value.map(fmt).join(", ") || "-";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m ${ss}s`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

export function time(ms) {
  if (!ms) return "-";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

// A table of rows; columns are names or {name, label, num, render(row), cls}.
export function table(rows, columns, { onRowClick, rowClass, empty = "(none)" } = {}) {
  const cols = columns.map((c) => (typeof c === "string" ? { name: c } : c));
  const head = h("tr", {}, cols.map((c) => h("th", { class: c.num ? "num" : "", text: c.label || c.name })));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { colspan: cols.length, class: "muted", text: empty })));
  }
  for (const row of rows) {
    const tr = h(
      "tr",
      { class: [onRowClick ? "clickable" : "", rowClass ? rowClass(row) : ""].join(" ").trim() },
      cols.map((c) => {
        const content = c.render ? c.render(row) : fmt(row[c.name]);
        return h("td", { class: [c.num ? "num" : "", c.cls || ""].join(" ").trim() }, content);
      }),
    );
    if (onRowClick) tr.addEventListener("click", () => onRowClick(row, tr));
    body.append(tr);
  }
  return h("table", {}, h("thead", {}, head), body);
}

export function message(kind, text) {
  return h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status", text });
}

export function fields(doc) {
  return h(
    "table",
    { class: "kv-meta" },
    h("tbody", {}, Object.entries(doc).map(([k, v]) => h("tr", {}, h("td", { text: k }), h("td", { text: fmt(v) })))),
  );
}

let toastTimer = null;
export function toast(text) {
  const node = document.getElementById("toast");
  node.textContent = text;
  node.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.classList.add("hidden"), 4000);
}

export function errorText(error) {
  if (error && error.code) return `${error.code}: ${error.message}`;
  return String(error && error.message ? error.message : error);
}
