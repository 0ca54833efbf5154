// Small hand-written SVG charts: a sparkline and a bar chart.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// A line of the last values (numbers), scaled to its own range.
export function sparkline(values, { width = 200, height = 40 } = {}) {
  const root = svg("svg", { width, height, class: "chart", viewBox: `0 0 ${width} ${height}` });
  if (values.length < 2) return root;
  const max = Math.max(...values);
  const min = Math.min(0, ...values);
  const span = max - min || 1;
  const step = width / (values.length - 1);
  const points = values.map((v, i) => [i * step, height - 2 - ((v - min) / span) * (height - 4)]);
  const line = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
  root.append(svg("path", { d: `${line}L${width},${height}L0,${height}Z`, class: "area" }));
  root.append(svg("path", { d: line, class: "line" }));
  return root;
}

// Bars for [{label, value}], with the value above each bar and the label under it.
export function bars(items, { width = 640, height = 180 } = {}) {
  const root = svg("svg", { width, height, class: "chart", viewBox: `0 0 ${width} ${height}` });
  if (!items.length) return root;
  const max = Math.max(...items.map((i) => i.value), 0) || 1;
  const slot = width / items.length;
  const barWidth = Math.max(2, slot * 0.7);
  const plot = height - 30;
  items.forEach((item, i) => {
    const h = (Math.max(item.value, 0) / max) * (plot - 12);
    const x = i * slot + (slot - barWidth) / 2;
    const bar = svg("rect", { x, y: plot - h, width: barWidth, height: h, class: "bar" });
    const title = svg("title");
    title.textContent = `${item.label}: ${item.value}`;
    bar.append(title);
    root.append(bar);
    const value = svg("text", { x: x + barWidth / 2, y: plot - h - 2, "text-anchor": "middle" });
    value.textContent = Number.isInteger(item.value) ? item.value : item.value.toFixed(1);
    root.append(value);
    if (items.length <= 12 || i % Math.ceil(items.length / 12) === 0) {
      const label = svg("text", { x: x + barWidth / 2, y: height - 16, "text-anchor": "middle" });
      label.textContent = item.label;
      root.append(label);
    }
  });
  return root;
}
