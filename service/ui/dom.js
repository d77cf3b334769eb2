// A small element builder: every text from the gateway goes in as text, never as HTML.

/** h("p", {class: "note", "aria-label": "x"}, "text", child) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "style") Object.assign(el.style, value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function show(el, visible = true) {
  el.hidden = !visible;
}

/** A probability bar in the study's style: blue-to-red up to p, grey after, the value inside,
 *  ticks at 0/25/50/75/100 %, end labels, and markers for the population average and the
 *  model's threshold (explained in a legend under the bar rather than crowded onto it). */
export function probabilityBar({ probability, average, threshold, label, ends, legend, ariaLabel }) {
  const clamp = (v) => Math.min(100, Math.max(0, v * 100));
  const p = clamp(probability);
  const bar = h("div", { class: "bar", role: "img", "aria-label": ariaLabel },
    h("div", { class: "bar-rest", style: { left: `${p}%` } }),
    h("span", { class: `bar-value ${p > 18 ? "inside" : "outside"}`, style: p > 18 ? { right: `${100 - p}%` } : { left: `${p}%` } }, label),
    average == null ? null : h("span", { class: "marker average", style: { left: `${clamp(average)}%` } }),
    threshold == null ? null : h("span", { class: "marker threshold", style: { left: `${clamp(threshold)}%` } }),
  );
  const ticks = h("div", { class: "ticks", "aria-hidden": "true" },
    [0, 25, 50, 75, 100].map((v) => h("span", { style: { left: `${v}%` } }, `${v}`)));
  const endLabels = h("div", { class: "bar-ends", "aria-hidden": "true" }, h("span", {}, ends[0]), h("span", {}, ends[1]));
  const legendEl = legend.length
    ? h("p", { class: "bar-legend", "aria-hidden": "true" },
        legend.map(([kind, text]) => h("span", { class: `legend ${kind}` }, text)))
    : null;
  return h("div", { class: "bar-block" }, bar, ticks, endLabels, legendEl);
}

/** Horizontal share bars (per lead, per territory): rows of [name, share 0-1, text, highlight]. */
export function shareBars(target, rows) {
  const peak = Math.max(...rows.map(([, v]) => v), 1e-9);
  target.replaceChildren(...rows.map(([name, value, text, strong]) =>
    h("li", { class: strong ? "top" : "" },
      h("span", { class: "hbar-name" }, name),
      h("span", { class: "hbar-track", "aria-hidden": "true" },
        h("span", { class: "hbar-fill", style: { width: `${(100 * value) / peak}%` } })),
      h("span", { class: "hbar-value" }, text))));
}
