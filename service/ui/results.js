// The result view: one card per task (the study's risk badge, colours and probability bar,
// plus the model's threshold and call and the fused result), the image-reading facts, the
// model card summary, and the "cannot analyse" state.

import { h, probabilityBar } from "./dom.js";
import { language, list, number, percent, t } from "./i18n.js";

export const TASKS = ["scar", "lvef"];
const FEATURES = ["age", "female_gender", "dm", "ht", "smoke", "dlp"];

function riskBadge(level) {
  return h("span", { class: `badge risk-${level}` }, t(`risk.${level}`));
}

/** "99.9 %", and "> 99.9 %" / "< 0.1 %" where one decimal would round to 100 % or 0 %. */
function probabilityText(p) {
  if (p >= 0.9995) return `> ${percent(0.999, 1)}`;
  if (p < 0.0005) return `< ${percent(0.001, 1)}`;
  return percent(p, 1);
}

function taskBlock(kind, result, withBadge) {
  const p = result.probability.positive;
  const positive = result.prediction === 1;
  return h("div", { class: `task-block ${kind}`, dataset: { task: result.task, probability: String(p) } },
    h("div", { class: "task-block-head" },
      h("span", { class: "task-block-name" }, t(`card.${kind}`)),
      withBadge ? riskBadge(result.risk_level) : null,
      h("span", { class: "big-number" }, probabilityText(p))),
    probabilityBar({
      probability: p,
      average: result.average,
      threshold: result.threshold,
      label: probabilityText(p),
      ends: [t("bar.low"), t("bar.high")],
      legend: [
        ...(result.average == null ? [] : [["average", t("bar.average", { value: percent(result.average) })]]),
        ["threshold", t("bar.threshold", { value: percent(result.threshold) })],
      ],
      ariaLabel: t("bar.aria", { p: probabilityText(p), average: result.average == null ? "–" : percent(result.average), threshold: percent(result.threshold) }),
    }),
    h("p", { class: "call" },
      `${t("call.label", { threshold: percent(result.threshold) })} `,
      h("strong", { class: positive ? "call-positive" : "call-negative" },
        t(positive ? "call.positive" : "call.negative"))));
}

/** One card per task the model answers (a single-task model answers one; a clinical model
 * of the study answers only with clinical features, so its ECG-only answer is null); a fused
 * block inside each when clinical features were sent. */
export function renderCards(target, body) {
  const answered = TASKS.filter((task) => body[task] || body.fused?.[task]);
  target.replaceChildren(...answered.map((task) => {
    const image = body[task];
    const fused = body.fused?.[task];
    const shown = fused || image; // the suggestion follows the most complete answer
    return h("article", { class: `card risk-${shown.risk_level}`, "aria-labelledby": `card-${task}-title`, dataset: { task } },
      h("header", { class: "card-head" },
        h("h3", { id: `card-${task}-title`, lang: "en" }, t(`task.${task}.title`)),
        riskBadge(shown.risk_level)),
      h("p", { class: "card-desc" }, t(`task.${task}.desc`)),
      // With two answers (ECG, ECG + clinical) each gets its own badge; the header shows the fuller one.
      image ? taskBlock("image", { ...image, task }, Boolean(fused)) : null,
      fused ? taskBlock("fused", { ...fused, task }, true) : null,
      shown.prediction === 1 ? h("p", { class: "next-step" }, t(`next.${task}`)) : null);
  }));
}

/** What went into the fused answer: the features given (with their values) and the imputed ones. */
export function imputedNote(el, fused, given) {
  if (!fused) {
    el.hidden = true;
    return;
  }
  const values = Object.entries(given || {}).map(([name, value]) => `${featureName(name)} ${featureValue(name, value)}`);
  const names = fused.imputed.map((name) => featureName(name));
  const lines = [values.length ? t("clinical.given", { list: list(values) }) : null,
                 names.length ? t("imputed.some", { list: list(names) }) : t("imputed.none")];
  el.replaceChildren(...lines.filter(Boolean).map((line) => h("span", { class: "line" }, line)));
  el.hidden = false;
}

function featureValue(name, value) {
  if (name === "age") return number(value);
  if (name === "female_gender") return t(value ? "sex.female" : "sex.male").toLowerCase();
  return t(value ? "answer.yes" : "answer.no").toLowerCase();
}

export function featureName(name) {
  return t(name === "age" ? "feature.age" : `feature.${name}`);
}

export { FEATURES };

// -- image reading ------------------------------------------------------------------------

const QUALITY_FIELDS = {
  source_format: (v) => v,
  layout: (v) => v,
  grid: (v) => v,
  rotation_deg: (v) => `${number(v, 1)}°`,
  gain_mm_per_mv: (v) => `${number(v, 1)} mm/mV`,
  paper_speed_mm_s: (v) => `${number(v, 0)} mm/s`,
  sample_rate_hz: (v) => `${number(v, 0)} Hz`,
};

export function renderQuality(listEl, warningsEl, info) {
  const rows = [];
  for (const [key, format] of Object.entries(QUALITY_FIELDS)) {
    if (info[key] !== undefined && info[key] !== null) rows.push([t(`quality.${key}`), format(info[key])]);
  }
  if (typeof info.quality === "number") {
    const meter = h("meter", { min: "0", max: "1", low: "0.6", high: "0.85", optimum: "1", value: String(info.quality) });
    rows.push([t("quality.quality"), h("span", { class: "quality-value" }, meter, ` ${percent(info.quality)}`)]);
  }
  listEl.replaceChildren(...rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
  const warnings = [...(info.warnings || [])];
  const items = warnings.map((w) => h("li", { class: "warn", lang: "en" }, w));
  if (typeof info.quality === "number" && info.quality < 0.6) items.unshift(h("li", { class: "warn" }, t("quality.low")));
  warningsEl.replaceChildren(...(items.length ? items : [h("li", { class: "ok" }, t("quality.no_warnings"))]));
}

// -- model card ---------------------------------------------------------------------------

export function renderModel(listEl, tableEl, trainingEl, card, served) {
  const model = { ...card, ...served }; // name/version from the answer win over the summary
  const rows = [
    [t("model.name"), `${model.name} v${model.version}`],
    [t("model.intended_use"), model.intended_use],
    model.backbone ? [t("model.backbone"), `${model.backbone}${model.input_size ? `, ${model.input_size} px` : ""}`] : null,
    model.created ? [t("model.created"), new Date(model.created).toLocaleDateString(language())] : null,
  ].filter(Boolean);
  listEl.replaceChildren(...rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", { lang: "en" }, value)]));

  const head = h("tr", {}, ...["model.task", "model.auc", "model.sensitivity", "model.specificity"]
    .map((key) => h("th", { scope: "col" }, t(key))));
  const body = TASKS.filter((task) => card.tasks?.[task]).map((task) => {
    const m = card.tasks[task];
    const ci = m.auc_ci95 ? h("span", { class: "ci" }, `${number(m.auc_ci95[0], 2, true)}–${number(m.auc_ci95[1], 2, true)}`) : null;
    return h("tr", {},
      h("th", { scope: "row", lang: "en" }, t(`task.${task}.title`)),
      h("td", {}, m.auc == null ? "–" : number(m.auc, 3, true), " ", ci),
      h("td", {}, m.sensitivity == null ? "–" : percent(m.sensitivity)),
      h("td", {}, m.specificity == null ? "–" : percent(m.specificity)));
  });
  tableEl.replaceChildren(h("thead", {}, head), h("tbody", {}, ...body));
  const notes = [];
  if (card.evaluated_on) notes.push(t("model.evaluated", { n: card.evaluated_on }));
  if (card.training_data) notes.push(t("model.training", { description: card.training_data }));
  trainingEl.textContent = notes.join(" ");
}

// -- "cannot analyse" ---------------------------------------------------------------------

// Error codes (the gateway's "error" field) grouped by what the user can do about them.
const ERROR_GROUPS = {
  file: ["empty", "truncated", "corrupt", "file_not_uploaded"],
  format: ["unsupported_format", "not_multipart"],
  size: ["too_large", "too_many_pixels", "pdf_too_many_pages"],
  pdf: ["pdf_encrypted", "pdf_too_complex", "pdf_bomb"],
  no_ecg: ["pdf_blank", "no_layout", "not_an_ecg"],
  incomplete: ["incomplete_ecg", "unsupported_layout"],
  unreadable: ["unreadable", "no_signal"],
  dicom: ["dicom_wrong_sop", "dicom_no_ecg", "waveform_invalid"],
  auth: ["unauthorized"],
  field: ["invalid_field"],
  busy: ["upstream_unavailable", "timeout"],
  network: ["network"],
};

export function errorGroup(code) {
  for (const [group, codes] of Object.entries(ERROR_GROUPS)) if (codes.includes(code)) return group;
  return "failed";
}

export function renderError(els, error) {
  const group = errorGroup(error.code);
  els.reason.textContent = t(`error.reason.${group}`);
  els.advice.textContent = t(`error.advice.${group}`);
  const meta = [];
  if (error.detail) meta.push(t("error.detail", { detail: error.detail }));
  meta.push(t("error.meta", { code: error.code, status: error.status || "–", id: error.requestId || "–" }));
  els.meta.replaceChildren(...meta.map((line) => h("span", { class: "line" }, line)));
  els.root.dataset.error = error.code;
  return group;
}
