// The study app's questionnaire risk calculator: four logistic models of clinical answers
// only (no ECG). Coefficients as published in the study's app. Pure functions: the page and
// the browser tests use the same code.
//
// The original asked only the questions of some formulas, so choosing scar or CAD alone left
// "prior MI" unanswered, the logit became NaN and the page showed "high". Here every question
// a chosen formula uses is asked (questionsFor), and logit() refuses a missing answer.

export const OUTCOMES = ["scar", "cad", "lvef40", "lvef50"];

// outcome -> intercept and [variable, coefficient] terms; variables are 0/1.
export const FORMULAS = {
  scar: {
    intercept: -1.25369,
    terms: [["female", -1.289421], ["mi", 1.26799], ["ptca_cabg", 0.852316], ["cad", 1.188963],
            ["hf", 0.875971], ["ckd", 0.394268]],
  },
  cad: {
    intercept: -1.838088,
    terms: [["female", -1.257548], ["dm", 0.290813], ["mi", 1.42843], ["ptca_cabg", 0.915726],
            ["cad", 1.477169], ["hf", 0.519559], ["ckd", 0.35904]],
  },
  lvef40: {
    intercept: -1.986239,
    terms: [["age65", -0.573404], ["female", -0.537664], ["bmi25", -0.771137], ["ht", -0.533213],
            ["cad", 0.714925], ["hf", 2.065291], ["ckd", 0.61929]],
  },
  lvef50: {
    intercept: -1.468317,
    terms: [["age65", -0.438355], ["female", -0.797398], ["bmi25", -0.3547618], ["ht", -0.350557],
            ["mi", 0.534031], ["cad", 0.787748], ["hf", 1.831592]],
  },
};

// Variables computed from answers rather than asked directly.
const DERIVED_FROM = { age65: ["birth_year"], bmi25: ["height_cm", "weight_kg"] };

// Every question, in the order the form asks them.
export const QUESTIONS = ["birth_year", "female", "height_cm", "weight_kg", "dm", "mi", "ptca_cabg",
                          "cad", "hf", "ht", "ckd"];

export const BUDDHIST_ERA_OFFSET = 543; // year BE - 543 = year CE

/** The questions the chosen outcomes need, in form order. */
export function questionsFor(outcomes) {
  const needed = new Set();
  for (const outcome of outcomes) {
    for (const [variable] of formula(outcome).terms) {
      for (const question of DERIVED_FROM[variable] ?? [variable]) needed.add(question);
    }
  }
  return QUESTIONS.filter((q) => needed.has(q));
}

/** Model variables from answers ({birth_year (CE), female, height_cm, weight_kg, dm, ...}).
 *  Age >= 65 is judged from the birth year only; BMI > 25 is strict. Unanswered stays absent. */
export function variables(answers, currentYear) {
  const vars = {};
  for (const key of ["female", "dm", "mi", "ptca_cabg", "cad", "hf", "ht", "ckd"]) {
    if (answers[key] === 0 || answers[key] === 1) vars[key] = answers[key];
  }
  if (Number.isFinite(answers.birth_year)) vars.age65 = currentYear - answers.birth_year >= 65 ? 1 : 0;
  if (Number.isFinite(answers.height_cm) && Number.isFinite(answers.weight_kg) && answers.height_cm > 0) {
    vars.bmi25 = bmi(answers.height_cm, answers.weight_kg) > 25 ? 1 : 0;
  }
  return vars;
}

export function bmi(heightCm, weightKg) {
  return weightKg / (heightCm / 100) ** 2;
}

function formula(outcome) {
  const f = FORMULAS[outcome];
  if (!f) throw new Error(`unknown outcome ${outcome}`);
  return f;
}

/** The linear predictor; throws when a variable the formula uses is missing. */
export function logit(outcome, vars) {
  const f = formula(outcome);
  let sum = f.intercept;
  for (const [variable, coefficient] of f.terms) {
    const value = vars[variable];
    if (value !== 0 && value !== 1) throw new Error(`${outcome} needs ${variable}`);
    sum += coefficient * value;
  }
  return sum;
}

/** Risk in whole percent, as the study's app shows it. */
export function riskPercent(outcome, vars) {
  return Math.round(100 / (1 + Math.exp(-logit(outcome, vars))));
}

/** The study's bands: < 30 % low, 30-70 % medium, >= 70 % high. */
export function riskLevel(probability) {
  return probability < 0.3 ? "low" : probability < 0.7 ? "medium" : "high";
}
