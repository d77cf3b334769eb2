// The Grad-CAM++ panel: /explain's PNG overlay for the chosen task, and the share of the heat
// per lead and per coronary territory from /explain?format=json. Each task is fetched once
// per file (both calls at once) and kept until the next file.

import { post } from "./api.js";
import { shareBars } from "./dom.js";
import { list, percent, t } from "./i18n.js";

const LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
const TERRITORIES = ["anterior", "inferior", "lateral", "other"];

export class HeatmapPanel {
  constructor(els) {
    this.els = els; // {root, img, busy, error, leads, territories, radios}
    this.cache = new Map();
    this.file = null;
    this.task = "scar";
    for (const radio of els.radios) radio.addEventListener("change", () => radio.checked && this.show(radio.value));
    // "loaded" once the picture is decoded.
    els.img.addEventListener("load", () => (els.img.dataset.state = "loaded"));
  }

  /** Forget the previous file's maps (and free their object URLs). */
  reset(file) {
    for (const entry of this.cache.values()) entry.png.then((v) => URL.revokeObjectURL(v.url), () => {});
    this.cache.clear();
    this.file = file;
    delete this.els.root.dataset.ready;
    this.els.img.removeAttribute("src");
    delete this.els.img.dataset.state;
    this.els.img.alt = "";
    this.els.leads.replaceChildren();
    this.els.territories.replaceChildren();
  }

  /** The picture and the shares of one task, asked for together (each is one inference). */
  load(task) {
    if (!this.cache.has(task)) {
      const file = this.file;
      const png = post("/explain", { file, task, format: "png" })
        .then((response) => response.blob())
        .then((blob) => ({ url: URL.createObjectURL(blob), type: blob.type }));
      const json = post("/explain", { file, task, format: "json" }).then((response) => response.json());
      const entry = { png, json, both: Promise.all([png, json]) };
      this.cache.set(task, entry);
      entry.both.catch(() => this.cache.get(task) === entry && this.cache.delete(task)); // may be asked again
    }
    return this.cache.get(task);
  }

  /** Show a task's map: the picture as soon as it comes, the bars when the shares do. */
  async show(task) {
    this.task = task;
    for (const radio of this.els.radios) radio.checked = radio.value === task;
    const file = this.file;
    const current = () => this.file === file && this.task === task; // a newer file or toggle wins
    delete this.els.root.dataset.ready;
    this.els.busy.hidden = false;
    this.els.error.hidden = true;
    this.els.root.setAttribute("aria-busy", "true");
    try {
      const entry = this.load(task);
      const picture = await entry.png;
      if (!current()) return;
      this.showPicture(task, picture);
      const shares = await entry.json;
      if (!current()) return;
      this.showShares(task, shares);
      this.els.root.dataset.ready = task; // picture and bars are this task's
    } catch (error) {
      if (!current()) return;
      this.els.error.textContent = t("heatmap.error", { detail: error.detail || error.message });
      this.els.error.hidden = false;
    } finally {
      if (current()) {
        this.els.busy.hidden = true;
        this.els.root.removeAttribute("aria-busy");
      }
    }
  }

  showPicture(task, { url, type }) {
    const img = this.els.img;
    if (img.src !== url) delete img.dataset.state;
    img.src = url;
    img.dataset.task = task;
    img.dataset.type = type;
    img.alt = t("heatmap.alt.short", { task: t(`task.${task}.title`) });
  }

  showShares(task, json) {
    const top = new Set(json.top_leads.slice(0, 3));
    this.els.img.alt = t("heatmap.alt", { task: t(`task.${task}.title`), leads: list(json.top_leads.slice(0, 3)) });
    shareBars(this.els.leads, LEADS.map((lead) => [lead, json.attribution[lead] ?? 0, percent(json.attribution[lead] ?? 0), top.has(lead)]));
    const best = TERRITORIES.reduce((a, b) => ((json.territories[a] ?? 0) >= (json.territories[b] ?? 0) ? a : b));
    shareBars(this.els.territories, TERRITORIES.map((name) => [t(`territory.${name}`), json.territories[name] ?? 0, percent(json.territories[name] ?? 0), name === best]));
  }

  /** Re-label after a language switch (the data stays). */
  async relabel() {
    const entry = this.cache.get(this.task);
    if (!entry) return;
    try {
      const [picture, shares] = await entry.both;
      this.showPicture(this.task, picture);
      this.showShares(this.task, shares);
    } catch {
      /* the error text is already shown */
    }
  }
}
