// The questionnaire page: pick outcomes, answer exactly the questions their formulas use,
// read each risk with its worked formula. The arithmetic is in risk.js.

import { h, probabilityBar } from "./dom.js";
import { language, list, number, t } from "./i18n.js";
import { BUDDHIST_ERA_OFFSET, FORMULAS, OUTCOMES, logit, questionsFor, riskLevel, riskPercent, variables } from "./risk.js";

const YES_NO = ["mi", "ptca_cabg", "cad", "hf", "ht", "ckd", "dm"];
const QUESTION_LABELS = {
  birth_year: "q.birth_year", female: "q.sex", height_cm: "q.height", weight_kg: "q.weight",
  dm: "q.dm", mi: "q.mi", ptca_cabg: "q.ptca_cabg", cad: "q.cad", hf: "q.hf", ht: "q.ht", ckd: "q.ckd",
};
const RANGES = { height_cm: [100, 250], weight_kg: [20, 300] };
const FIRST_BIRTH_YEAR = 1900;

export class Questionnaire {
  constructor(root) {
    this.root = root;
    this.form = root.querySelector("#q-form");
    this.era = root.querySelector("#q-era");
    this.eraTouched = false;
    for (const fieldset of root.querySelectorAll("[data-yes-no-question]")) {
      const name = `q-${fieldset.dataset.question}`;
      fieldset.append(
        h("label", {}, h("input", { type: "radio", name, value: "1" }), " ", h("span", { "data-i18n": "answer.yes" }, "Yes")),
        h("label", {}, h("input", { type: "radio", name, value: "0" }), " ", h("span", { "data-i18n": "answer.no" }, "No")));
    }
    this.era.addEventListener("change", () => (this.eraTouched = true));
    this.form.addEventListener("change", (event) => {
      if (event.target.name === "outcome") this.updateQuestions();
      this.markStale();
    });
    this.form.addEventListener("input", () => this.markStale());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.calculate();
    });
    this.updateQuestions();
  }

  outcomes() {
    return [...this.form.querySelectorAll("input[name=outcome]:checked")].map((el) => el.value);
  }

  /** Show exactly the questions the chosen formulas use. */
  updateQuestions() {
    const needed = new Set(questionsFor(this.outcomes()));
    for (const block of this.root.querySelectorAll("[data-question]")) {
      block.hidden = !needed.has(block.dataset.question);
    }
  }

  /** Numbers shown are for the answers as calculated: any change hides them until Calculate. */
  markStale() {
    this.root.querySelector("#q-results").hidden = true;
    this.lastShown = false;
  }

  /** Thai readers count years in the Buddhist era; follow the language until the user picks. */
  onLanguage() {
    if (!this.eraTouched) this.era.value = language() === "th" ? "be" : "ce";
    this.renderFormulas();
    if (this.lastShown) this.calculate();
  }

  answers() {
    const answers = {};
    const year = this.form.querySelector("#q-birth_year").value;
    if (year !== "") answers.birth_year = Number(year) - (this.era.value === "be" ? BUDDHIST_ERA_OFFSET : 0);
    for (const key of ["height_cm", "weight_kg"]) {
      const value = this.form.querySelector(`#q-${key}`).value;
      if (value !== "") answers[key] = Number(value);
    }
    for (const key of ["female", ...YES_NO]) {
      const checked = this.form.querySelector(`input[name=q-${key}]:checked`);
      if (checked) answers[key] = Number(checked.value);
    }
    return answers;
  }

  /** Problems with the answers the chosen outcomes need; [] when they can be computed. */
  problems(outcomes, answers, currentYear) {
    if (!outcomes.length) return [t("q.none")];
    const needed = questionsFor(outcomes);
    const missing = needed.filter((q) => answers[q] === undefined || Number.isNaN(answers[q]));
    const problems = missing.length ? [t("q.missing", { list: list(missing.map((q) => t(QUESTION_LABELS[q]))) })] : [];
    if (needed.includes("birth_year") && !missing.includes("birth_year")) {
      const y = answers.birth_year;
      if (!Number.isInteger(y) || y < FIRST_BIRTH_YEAR || y > currentYear) {
        const offset = this.era.value === "be" ? BUDDHIST_ERA_OFFSET : 0;
        problems.push(t("q.invalid.birth_year", { min: FIRST_BIRTH_YEAR + offset, max: currentYear + offset,
                                                   era: t(`q.era.${this.era.value}`) }));
      }
    }
    for (const [key, [low, high]] of Object.entries(RANGES)) {
      if (needed.includes(key) && !missing.includes(key) && !(answers[key] >= low && answers[key] <= high)) {
        problems.push(t(`q.invalid.${key}`));
      }
    }
    return problems;
  }

  calculate() {
    const outcomes = this.outcomes();
    const answers = this.answers();
    const currentYear = new Date().getFullYear();
    const problems = this.problems(outcomes, answers, currentYear);
    const problemsEl = this.root.querySelector("#q-problems");
    const results = this.root.querySelector("#q-results");
    problemsEl.replaceChildren(...problems.map((p) => h("span", { class: "line" }, p)));
    problemsEl.hidden = problems.length === 0;
    if (problems.length) {
      results.hidden = true;
      this.lastShown = false;
      return;
    }
    const vars = variables(answers, currentYear);
    this.root.querySelector("#q-cards").replaceChildren(...outcomes.map((outcome) => this.card(outcome, vars)));
    const firstTime = results.hidden;
    results.hidden = false;
    this.lastShown = true;
    if (firstTime) {
      results.scrollIntoView({ behavior: "smooth", block: "start" });
      results.focus({ preventScroll: true });
    }
  }

  card(outcome, vars) {
    const p = riskPercent(outcome, vars);
    const level = riskLevel(p / 100);
    const f = FORMULAS[outcome];
    const active = f.terms.filter(([name]) => vars[name] === 1);
    const terms = [signed(f.intercept, true), ...active.map(([name, c]) => `${signed(c)} (${t(`var.${name}`)})`)].join(" ");
    return h("article", { class: `card risk-${level}`, dataset: { outcome, percent: String(p) } },
      h("header", { class: "card-head" }, h("h3", {}, t(`outcome.${outcome}`)),
        h("span", { class: `badge risk-${level}` }, t(`risk.${level}`))),
      h("div", { class: "task-block-head" }, h("span", { class: "big-number q-percent" }, `${p} %`)),
      probabilityBar({ probability: p / 100, label: `${p} %`, ends: [t("bar.low"), t("bar.high")], legend: [],
                       ariaLabel: `${t(`outcome.${outcome}`)}: ${p} %` }),
      h("p", { class: "worked" }, t("q.worked", { terms, logit: number(logit(outcome, vars), 3).replace("-", "−") })));
  }

  renderFormulas() {
    const target = this.root.querySelector("#q-formula-list");
    target.replaceChildren(...OUTCOMES.map((outcome) => {
      const f = FORMULAS[outcome];
      const text = [signed(f.intercept, true), ...f.terms.map(([name, c]) => `${signed(c)}·${t(`var.${name}`)}`)].join(" ");
      return h("p", { class: "formula" }, h("strong", {}, `${t(`outcome.${outcome}`)}: `), h("code", {}, `logit = ${text}`));
    }));
  }
}

/** "−1.25369", "+ 1.26799", "− 0.5" (typographic minus). */
function signed(value, first = false) {
  const magnitude = String(Math.abs(value));
  if (first) return value < 0 ? `−${magnitude}` : magnitude;
  return value < 0 ? `− ${magnitude}` : `+ ${magnitude}`;
}
