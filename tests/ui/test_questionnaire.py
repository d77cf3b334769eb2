"""The questionnaire risk calculator: the page's numbers against the study's four formulas,
written out again here from the study's app (not imported from the page's risk.js)."""

from __future__ import annotations

import datetime
import math

import pytest

pytestmark = pytest.mark.integration

# outcome -> (intercept, {variable: coefficient}), as published in the study's app.
STUDY = {
    "scar": (-1.25369, {"female": -1.289421, "mi": 1.26799, "ptca_cabg": 0.852316, "cad": 1.188963,
                        "hf": 0.875971, "ckd": 0.394268}),
    "cad": (-1.838088, {"female": -1.257548, "dm": 0.290813, "mi": 1.42843, "ptca_cabg": 0.915726,
                        "cad": 1.477169, "hf": 0.519559, "ckd": 0.35904}),
    "lvef40": (-1.986239, {"age65": -0.573404, "female": -0.537664, "bmi25": -0.771137, "ht": -0.533213,
                           "cad": 0.714925, "hf": 2.065291, "ckd": 0.61929}),
    "lvef50": (-1.468317, {"age65": -0.438355, "female": -0.797398, "bmi25": -0.3547618, "ht": -0.350557,
                           "mi": 0.534031, "cad": 0.787748, "hf": 1.831592}),
}  # fmt: skip
YES_NO = ("female", "dm", "mi", "ptca_cabg", "cad", "hf", "ht", "ckd")


def expected_percent(outcome: str, answers: dict, year: int) -> int:
    variables = {key: answers[key] for key in YES_NO}
    variables["age65"] = int(year - answers["birth_year"] >= 65)  # from the year only
    variables["bmi25"] = int(answers["weight_kg"] / (answers["height_cm"] / 100) ** 2 > 25)  # strictly
    intercept, terms = STUDY[outcome]
    logit = intercept + sum(c * variables[name] for name, c in terms.items())
    return round(100 / (1 + math.exp(-logit)))


NOW = datetime.date.today().year
CASES = [  # every variable both ways; the age and BMI edges (exactly 65; BMI exactly 25 is not > 25)
    dict(birth_year=NOW - 40, female=1, height_cm=160, weight_kg=55, dm=0, mi=0, ptca_cabg=0, cad=0, hf=0, ht=0, ckd=0),
    dict(birth_year=NOW - 65, female=0, height_cm=170, weight_kg=90, dm=1, mi=1, ptca_cabg=1, cad=1, hf=1, ht=1, ckd=1),
    dict(birth_year=NOW - 64, female=0, height_cm=200, weight_kg=100, dm=0, mi=1, ptca_cabg=0, cad=1, hf=0, ht=1, ckd=0),
    dict(birth_year=NOW - 80, female=1, height_cm=150, weight_kg=70, dm=1, mi=0, ptca_cabg=1, cad=0, hf=1, ht=0, ckd=1),
    dict(birth_year=NOW - 55, female=0, height_cm=175, weight_kg=60, dm=0, mi=0, ptca_cabg=0, cad=0, hf=1, ht=0, ckd=0),
    dict(birth_year=NOW - 70, female=1, height_cm=165, weight_kg=68, dm=1, mi=1, ptca_cabg=1, cad=1, hf=0, ht=1, ckd=0),
]  # fmt: skip


def open_questionnaire(page):
    page.click("a[data-view-link=questionnaire]")
    page.wait_for_selector("#q-form:visible")


def fill(page, answers: dict, era: str = "ce") -> None:
    if "birth_year" in answers:
        page.select_option("#q-era", era)
        page.fill("#q-birth_year", str(answers["birth_year"]))
    for key in ("height_cm", "weight_kg"):
        if key in answers:
            page.fill(f"#q-{key}", str(answers[key]))
    for key in YES_NO:
        if key in answers:
            page.check(f"input[name=q-{key}][value='{answers[key]}']")


def shown(page) -> dict[str, int]:
    page.wait_for_selector("#q-results:not([hidden])")
    cards = page.locator("#q-cards article")
    return {
        card.get_attribute("data-outcome"): int(card.get_attribute("data-percent")) for card in cards.all()
    }


def test_the_four_risks_equal_the_study_formulas_for_a_table_of_answers(page, artefacts):
    open_questionnaire(page)
    for i, answers in enumerate(CASES):
        fill(page, answers)
        page.click("#q-form button[type=submit]")
        numbers = shown(page)
        assert numbers == {o: expected_percent(o, answers, NOW) for o in STUDY}, (i, answers)
        for outcome, value in numbers.items():  # the visible text says the same
            assert page.inner_text(f"#q-cards article[data-outcome={outcome}] .q-percent") == f"{value} %"
    page.screenshot(path=str(artefacts / "questionnaire.png"), full_page=True)


def test_every_formula_shown_and_every_question_it_uses_asked(page):
    open_questionnaire(page)
    formulas = page.inner_text("#q-formula-list")
    for intercept, terms in STUDY.values():
        assert f"−{abs(intercept)}" in formulas
        for coefficient in terms.values():
            assert str(abs(coefficient)) in formulas

    def visible() -> set[str]:
        return {el.get_attribute("data-question") for el in page.locator("[data-question]:visible").all()}

    for box in page.locator("input[name=outcome]").all():
        box.uncheck()
    page.check("input[name=outcome][value=scar]")
    # The study's app left "prior MI" out here, so its scar risk was NaN, shown as "high".
    assert visible() == {"female", "mi", "ptca_cabg", "cad", "hf", "ckd"}
    page.check("input[name=outcome][value=cad]")
    assert visible() == {"female", "dm", "mi", "ptca_cabg", "cad", "hf", "ckd"}
    page.check("input[name=outcome][value=lvef40]")
    assert visible() == {"birth_year", "female", "height_cm", "weight_kg", "dm", "mi", "ptca_cabg", "cad", "hf",
                         "ht", "ckd"}  # fmt: skip


def test_a_missing_answer_is_asked_for_never_computed(page):
    open_questionnaire(page)
    for box in page.locator("input[name=outcome]").all():
        box.uncheck()
    page.check("input[name=outcome][value=scar]")
    fill(page, {k: 0 for k in ("female", "ptca_cabg", "cad", "hf", "ckd")})  # prior MI unanswered
    page.click("#q-form button[type=submit]")
    problems = page.inner_text("#q-problems")
    assert "Prior myocardial infarction" in problems and page.is_hidden("#q-results")
    page.check("input[name=q-mi][value='1']")
    page.click("#q-form button[type=submit]")
    answers = {"female": 0, "ptca_cabg": 0, "cad": 0, "hf": 0, "ckd": 0, "mi": 1}
    intercept, terms = STUDY["scar"]
    logit = intercept + sum(terms[k] * v for k, v in answers.items())
    assert shown(page) == {"scar": round(100 / (1 + math.exp(-logit)))}
    assert "NaN" not in page.inner_text("#q-results")


def test_a_buddhist_era_birth_year_counts_543_years_earlier(page):
    open_questionnaire(page)
    answers = dict(CASES[1])  # 65 this year: the age edge
    fill(page, answers | {"birth_year": answers["birth_year"] + 543}, era="be")
    page.click("#q-form button[type=submit]")
    assert shown(page) == {o: expected_percent(o, answers, NOW) for o in STUDY}
    fill(page, answers | {"birth_year": answers["birth_year"] + 543}, era="ce")  # a BE year typed as CE
    page.click("#q-form button[type=submit]")
    assert "Year of birth" in page.inner_text("#q-problems") and page.is_hidden("#q-results")
