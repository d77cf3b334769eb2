// The screening page: wiring of the upload form, the result view, the heatmap panel, the
// report (the browser's print-to-PDF with the print stylesheet), the DICOM download, the
// token field, the language switch and the two views (#screen, #questionnaire).

import { about, ApiError, multipartParts, post, setToken, token } from "./api.js";
import { HeatmapPanel } from "./heatmap.js";
import { language, preferredLanguage, setLanguage, t } from "./i18n.js";
import { Questionnaire } from "./questionnaire.js";
import { FEATURES, imputedNote, renderCards, renderError, renderModel, renderQuality } from "./results.js";

const $ = (selector) => document.querySelector(selector);
const state = { about: null, file: null, clinical: null, result: null, elapsedMs: null, previewUrl: null, dicomUrls: [] };

const heatmap = new HeatmapPanel({
  root: $("#heatmap"),
  img: $("#heatmap-img"),
  busy: $("#heatmap-busy"),
  error: $("#heatmap-error"),
  leads: $("#lead-bars"),
  territories: $("#territory-bars"),
  radios: [...document.querySelectorAll("input[name=heatmap-task]")],
});
const questionnaire = new Questionnaire($("#view-questionnaire"));

// -- views ----------------------------------------------------------------------------------

function showView() {
  const view = location.hash === "#questionnaire" ? "questionnaire" : "screen";
  for (const section of document.querySelectorAll("[data-view]")) section.hidden = section.dataset.view !== view;
  for (const link of document.querySelectorAll("[data-view-link]")) {
    if (link.dataset.viewLink === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// -- file choice ----------------------------------------------------------------------------

function humanSize(bytes) {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function chooseFile(file) {
  clearOutcome();
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = null;
  state.file = file || null;
  $("#chosen").hidden = !file;
  $("#analyse").disabled = !file;
  if (!file) {
    $("#file").value = "";
    return;
  }
  $("#file-name").textContent = file.name;
  $("#file-size").textContent = humanSize(file.size);
  const preview = $("#preview");
  const showable = /^image\/(png|jpeg|gif|webp|bmp)$/.test(file.type);
  preview.hidden = !showable;
  if (showable) {
    state.previewUrl = URL.createObjectURL(file);
    preview.src = state.previewUrl;
  } else {
    preview.removeAttribute("src");
  }
}

function clearOutcome() {
  $("#results").hidden = true;
  $("#error").hidden = true;
  $("#reading").hidden = true;
  $("#status").textContent = "";
  state.result = null;
  clearDicom();
  heatmap.reset(null);
}

$("#file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
$("#remove").addEventListener("click", () => {
  chooseFile(null);
  $("#file").focus();
});
const drop = $("#drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("dragging"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer.files.length) chooseFile(event.dataTransfer.files[0]);
});

// -- clinical features ----------------------------------------------------------------------

for (const select of document.querySelectorAll("select[data-yes-no]")) {
  select.innerHTML = "";
  for (const [value, key] of [["", "clinical.unknown"], ["1", "answer.yes"], ["0", "answer.no"]]) {
    const option = document.createElement("option");
    option.value = value;
    option.dataset.i18n = key;
    option.textContent = key;
    select.append(option);
  }
}

/** The clinical JSON for /predict, or null when nothing was given; throws on a bad age. */
function clinicalFeatures() {
  const features = {};
  for (const name of FEATURES) {
    const value = $(`#c-${name}`).value.trim();
    if (value === "") continue;
    const n = Number(value);
    if (name === "age" && !(Number.isInteger(n) && n >= 18 && n <= 110)) {
      throw new ApiError({ error: "invalid_field", detail: t("clinical.invalid_age"), status: 422 });
    }
    features[name] = n;
  }
  return Object.keys(features).length ? features : null;
}

// -- the reading picture: what was read off the page, so a person can check it ----------------

let readingUrl = null;

/** Fetch and show the reading picture of `file` (answered or refused by the judge). A file
 *  with nothing read on it (no layout, a broken file) has none: the panel stays hidden. */
async function showReading(file) {
  try {
    const response = await post("/explain", { file, format: "reading" });
    const blob = await response.blob();
    if (state.file !== file) return;
    if (readingUrl) URL.revokeObjectURL(readingUrl);
    readingUrl = URL.createObjectURL(blob);
    $("#reading-img").src = readingUrl;
    $("#reading").dataset.refusal = response.headers.get("x-ecgscreen-refusal") || "";
    $("#reading").hidden = false;
  } catch {
    $("#reading").hidden = true;
  }
}

// -- analysis -------------------------------------------------------------------------------

function showError(error) {
  const group = renderError({ root: $("#error"), reason: $("#error-reason"), advice: $("#error-advice"), meta: $("#error-meta") }, error);
  $("#error").hidden = false;
  $("#status").textContent = t("status.failed");
  $("#error").focus();
  if (group === "auth") {
    $("#token-form").hidden = false;
    $("#token-input").focus();
  }
}

function renderResult() {
  const body = state.result;
  renderCards($("#cards"), body);
  imputedNote($("#imputed"), body.fused, state.clinical);
  renderQuality($("#quality-list"), $("#quality-warnings"), body.preprocessing || {});
  renderModel($("#model-list"), $("#model-metrics"), $("#model-training"), state.about?.model || {}, body.model || {});
  $("#results-meta").textContent = t("results.meta", {
    file: state.file?.name ?? "",
    seconds: (state.elapsedMs / 1000).toLocaleString(language(), { maximumFractionDigits: 2 }),
    id: body.request_id || "–",
  });
  $("#results").dataset.requestId = body.request_id || "";
}

async function analyse(event) {
  event.preventDefault();
  const file = state.file;
  if (!file) return;
  clearOutcome();
  state.file = file;
  const limit = state.about?.max_upload_bytes;
  const button = $("#analyse");
  try {
    if (limit && file.size > limit) {
      throw new ApiError({ error: "too_large", status: 413,
                           detail: t("upload.too_large", { size: humanSize(file.size), limit: humanSize(limit) }) });
    }
    const clinical = clinicalFeatures();
    button.disabled = true;
    $("#busy").hidden = false;
    $("#screen-form").setAttribute("aria-busy", "true");
    $("#status").textContent = t("status.analysing");
    const started = performance.now();
    const response = await post("/predict", { file, clinical: clinical && JSON.stringify(clinical) });
    const body = await response.json();
    if (state.file !== file) return; // the file was replaced meanwhile
    state.elapsedMs = performance.now() - started;
    state.clinical = clinical; // as sent: the form may change before the report is printed
    state.result = body;
    renderResult();
    $("#results").dataset.elapsedMs = state.elapsedMs.toFixed(0);
    $("#results").hidden = false;
    $("#status").textContent = t("status.done");
    $("#results").scrollIntoView({ behavior: "smooth", block: "start" });
    $("#results").focus({ preventScroll: true });
    heatmap.reset(file);
    heatmap.show(heatmap.task);
    showReading(file);
  } catch (error) {
    if (state.file !== file) return;
    showError(error instanceof ApiError ? error : new ApiError({ error: "internal", detail: String(error.message || error) }));
    if (error.status === 422) showReading(file); // a page read but refused: show what was read
  } finally {
    button.disabled = !state.file;
    $("#busy").hidden = true;
    $("#screen-form").removeAttribute("aria-busy");
  }
}

$("#screen-form").addEventListener("submit", analyse);
$("#again").addEventListener("click", () => {
  chooseFile(null);
  window.scrollTo({ top: 0, behavior: "smooth" });
  $("#file").focus();
});

// -- report: one A4 page through the browser's "Save as PDF" (print stylesheet in app.css) ----

function stamp() {
  const now = new Date();
  $("#print-date").textContent = t("report.printed", { date: now.toLocaleString(language()) });
  return now.toISOString().slice(0, 10);
}

window.addEventListener("beforeprint", stamp);
$("#print").addEventListener("click", async () => {
  // The heatmap belongs in the report: wait for the one on screen if it is still coming.
  try {
    await heatmap.load(heatmap.task).both;
  } catch {
    /* the report prints without it; the panel says why */
  }
  const title = document.title;
  document.title = `ecg-report-${stamp()}`; // the file name the browser suggests
  window.addEventListener("afterprint", () => (document.title = title), { once: true });
  window.print();
});

// -- DICOM: /report's SR + SC (present only when this gateway has /report) ------------------

function clearDicom() {
  for (const url of state.dicomUrls) URL.revokeObjectURL(url);
  state.dicomUrls = [];
  $("#dicom-links").replaceChildren();
  $("#dicom-status").textContent = "";
}

function dicomKind(bytes) {
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, Math.min(bytes.length, 4096)));
  if (text.includes("1.2.840.10008.5.1.4.1.1.88.")) return "sr";
  if (text.includes("1.2.840.10008.5.1.4.1.1.7")) return "sc";
  return "other";
}

$("#dicom").addEventListener("click", async () => {
  clearDicom();
  $("#dicom-status").textContent = t("report.dicom.busy");
  try {
    const clinical = clinicalFeatures();
    const response = await post("/report", { file: state.file, clinical: clinical && JSON.stringify(clinical) });
    const parts = multipartParts(await response.arrayBuffer(), response.headers.get("content-type"));
    const date = new Date().toISOString().slice(0, 10);
    const kinds = parts.map((part) => dicomKind(part.bytes));
    const links = parts.map((part, i) => {
      const kind = kinds[i];
      const url = URL.createObjectURL(new Blob([part.bytes], { type: "application/dicom" }));
      state.dicomUrls.push(url);
      // One SR and a heatmap SC per task: number the objects of a kind when there are several.
      const nth = kinds.slice(0, i + 1).filter((k) => k === kind).length;
      const several = kinds.filter((k) => k === kind).length > 1;
      const label = (kind === "other" ? t("report.dicom.other", { n: i + 1 }) : t(`report.dicom.${kind}`)) + (several && kind !== "other" ? ` ${nth}` : "");
      const link = document.createElement("a");
      link.href = url;
      link.download = `ecg-${kind}-${date}-${i + 1}.dcm`;
      link.textContent = label;
      link.dataset.kind = kind;
      const item = document.createElement("li");
      item.append(link);
      return item;
    });
    $("#dicom-links").replaceChildren(...links);
    $("#dicom-status").textContent = t("report.dicom.ready");
  } catch (error) {
    $("#dicom-status").textContent = error.detail || error.message;
  }
});

// -- token ----------------------------------------------------------------------------------

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#token-input").value.trim();
  setToken(value);
  $("#token-state").textContent = t(value ? "token.saved" : "token.cleared");
});

// -- language -------------------------------------------------------------------------------

async function switchLanguage(code) {
  await setLanguage(code);
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language()));
  }
  if (state.result) renderResult();
  heatmap.relabel();
  questionnaire.onLanguage();
}

for (const button of document.querySelectorAll("[data-lang]")) {
  button.addEventListener("click", () => switchLanguage(button.dataset.lang));
}

// -- start ----------------------------------------------------------------------------------

async function start() {
  window.addEventListener("hashchange", showView);
  showView();
  await switchLanguage(preferredLanguage());
  try {
    state.about = await about();
    $("#token-form").hidden = !state.about.token_required;
    $("#token-input").value = token();
    $("#dicom").hidden = !state.about.endpoints.includes("/report");
  } catch {
    // The page still works without the summary; requests will say what is wrong.
  }
  document.body.dataset.ready = "true"; // for tests and scripts: the page is wired
}

start();
