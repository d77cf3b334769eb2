// Strings live in one JSON per language (i18n/en.json, i18n/th.json). Static text is marked
// in the HTML with data-i18n="key" (text) or data-i18n-attr="attr:key;attr:key"; code asks
// t(key, {name: value}). The choice is remembered in localStorage.

export const LANGUAGES = ["en", "th"];
const STORAGE_KEY = "ecgscreen.lang";
const cache = {};
let strings = {};
let current = "en";

export function language() {
  return current;
}

/** The language to start in: the remembered one, else the browser's, else English. */
export function preferredLanguage() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (LANGUAGES.includes(saved)) return saved;
  const browser = (navigator.language || "en").slice(0, 2).toLowerCase();
  return LANGUAGES.includes(browser) ? browser : "en";
}

export async function setLanguage(code) {
  if (!LANGUAGES.includes(code)) code = "en";
  if (!cache[code]) {
    const response = await fetch(`i18n/${code}.json`);
    if (!response.ok) throw new Error(`i18n/${code}.json: HTTP ${response.status}`);
    cache[code] = await response.json();
  }
  strings = cache[code];
  current = code;
  localStorage.setItem(STORAGE_KEY, code);
  document.documentElement.lang = code;
  document.title = t("page.title");
  translate(document);
}

/** The string for key with {placeholders} filled; the key itself when missing (visible in tests). */
export function t(key, values = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));
}

export function translate(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
}

/** Numbers as percentages in the page's language ("38 %", "99.9 %"). */
export function percent(probability, digits = 0) {
  const value = new Intl.NumberFormat(current, { maximumFractionDigits: digits, minimumFractionDigits: digits })
    .format(probability * 100);
  return `${value} %`;
}

/** A number in the page's language; fixed: always that many decimals (0.940, not 0.94). */
export function number(value, digits = 0, fixed = false) {
  return new Intl.NumberFormat(current, { maximumFractionDigits: digits, minimumFractionDigits: fixed ? digits : 0 })
    .format(value);
}

export function list(items) {
  return new Intl.ListFormat(current, { style: "long", type: "conjunction" }).format(items);
}
