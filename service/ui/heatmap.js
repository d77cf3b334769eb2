// The Grad-CAM++ panel: /explain's PNG overlay for the chosen task, and the share of the heat
// per lead and per coronary territory from /explain?format=json. Each task is fetched once
// per file and kept until the next file.

import { post } from "./api.js";
import { shareBars } from "./dom.js";
import { list, percent, t } from "./i18n.js";

const LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
const TERRITORIES = ["anterior", "inferior", "lateral", "other"];

export class HeatmapPanel {
  constructor(els) {
    this.els = els; // {img, busy, error, leads, territories, radios}
    this.cache = new Map();
    this.file = null;
    this.task = "scar";
    for (const radio of els.radios) radio.addEventListener("change", () => radio.checked && this.show(radio.value));
    // "loaded" once the picture is decoded: what tests and the report wait for.
    els.img.addEventListener("load", () => (els.img.dataset.state = "loaded"));
  }

  /** Forget the previous file's maps (and free their object URLs). */
  reset(file) {
    for (const entry of this.cache.values()) entry.then((v) => v.url && URL.revokeObjectURL(v.url), () => {});
    this.cache.clear();
    this.file = file;
    this.els.img.removeAttribute("src");
    delete this.els.img.dataset.state;
    this.els.img.alt = "";
    this.els.leads.replaceChildren();
    this.els.territories.replaceChildren();
  }

  load(task) {
    if (!this.cache.has(task)) {
      const file = this.file;
      const entry = (async () => {
        // One after the other: on a small CPU box two parallel calls only delay the first.
        const json = await (await post("/explain", { file, task, format: "json" })).json();
        const png = await (await post("/explain", { file, task, format: "png" })).blob();
        return { json, url: URL.createObjectURL(png), type: png.type };
      })();
      this.cache.set(task, entry);
      entry.catch(() => this.cache.delete(task)); // a failed map can be asked for again
    }
    return this.cache.get(task);
  }

  async show(task) {
    this.task = task;
    for (const radio of this.els.radios) radio.checked = radio.value === task;
    const file = this.file;
    this.els.busy.hidden = false;
    this.els.error.hidden = true;
    this.els.img.closest("figure").setAttribute("aria-busy", "true");
    try {
      const result = await this.load(task);
      if (this.file !== file || this.task !== task) return; // a newer file or toggle won
      this.render(task, result);
    } catch (error) {
      if (this.file !== file || this.task !== task) return;
      this.els.error.textContent = t("heatmap.error", { detail: error.detail || error.message });
      this.els.error.hidden = false;
    } finally {
      if (this.task === task) {
        this.els.busy.hidden = true;
        this.els.img.closest("figure").removeAttribute("aria-busy");
      }
    }
  }

  render(task, { json, url, type }) {
    const img = this.els.img;
    if (img.src !== url) delete img.dataset.state;
    img.src = url;
    img.dataset.task = task;
    img.dataset.type = type;
    img.alt = t("heatmap.alt", { task: t(`task.${task}.title`), leads: list(json.top_leads.slice(0, 3)) });
    const top = new Set(json.top_leads.slice(0, 3));
    shareBars(this.els.leads, LEADS.map((lead) => [lead, json.attribution[lead] ?? 0, percent(json.attribution[lead] ?? 0), top.has(lead)]));
    const best = TERRITORIES.reduce((a, b) => ((json.territories[a] ?? 0) >= (json.territories[b] ?? 0) ? a : b));
    shareBars(this.els.territories, TERRITORIES.map((name) => [t(`territory.${name}`), json.territories[name] ?? 0, percent(json.territories[name] ?? 0), name === best]));
  }

  /** Re-label after a language switch (the data stays). */
  async relabel() {
    const entry = this.cache.get(this.task);
    if (!entry) return;
    try {
      this.render(this.task, await entry);
    } catch {
      /* the error text is already shown */
    }
  }
}
