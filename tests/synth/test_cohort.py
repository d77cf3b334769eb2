"""The synthetic population has the prevalences and correlations the generator claims."""

import numpy as np
import pytest

from ecgscreen.synth.cohort import DIFFICULTIES, PREVALENCE, draw_patient
from ecgscreen.training.metrics import roc_auc


@pytest.fixture(scope="module")
def population():
    rng = np.random.default_rng(123)
    return [draw_patient(rng, "standard") for _ in range(6000)]


def test_prevalences_match_the_declared_rates(population):
    scar = np.array([p.scar for p in population])
    low_ef = np.array([p.low_ef for p in population])
    assert scar.mean() == pytest.approx(PREVALENCE["scar"], abs=0.02)
    expected_low = (
        PREVALENCE["scar"] * PREVALENCE["low_ef_given_scar"]
        + (1 - PREVALENCE["scar"]) * PREVALENCE["low_ef_given_no_scar"]
    )
    assert low_ef.mean() == pytest.approx(expected_low, abs=0.02)
    # Scar and low EF are correlated as in ischaemic cardiomyopathy: most, not all, low-EF
    # patients have scar.
    assert 0.6 < scar[low_ef].mean() < 0.8
    assert low_ef[scar].mean() > 3 * low_ef[~scar].mean()


def test_lvef_label_follows_the_numeric_ejection_fraction(population):
    lvef = np.array([p.lvef for p in population])
    assert ((lvef < 50) == np.array([p.low_ef for p in population])).all()
    assert 15 <= lvef.min() and lvef.max() <= 78


def test_clinical_features_carry_real_but_partial_signal(population):
    scar = np.array([p.scar for p in population])
    age = np.array([p.clinical["age"] for p in population])
    assert age[scar].mean() - age[~scar].mean() > 6
    for key in ("dm", "ht", "smoke", "dlp"):
        x = np.array([p.clinical[key] for p in population])
        assert x[scar].mean() > x[~scar].mean() + 0.1, key
    female = np.array([p.clinical["female_gender"] for p in population])
    assert female[scar].mean() < female[~scar].mean() - 0.1
    # A simple risk score separates scar somewhat, far from perfectly.
    score = (
        (age - 50) / 10
        + sum(np.array([p.clinical[k] for p in population]) for k in ("dm", "ht", "smoke", "dlp"))
        - female
    )
    assert 0.65 < roc_auc(scar, score) < 0.85


def test_territory_is_recorded_only_for_scar(population):
    for p in population[:500]:
        assert (p.territory is not None) == p.scar


def test_difficulty_knob_orders_what_a_perfect_reader_could_see():
    aucs = {}
    for name in DIFFICULTIES:
        rng = np.random.default_rng(7)
        patients = [draw_patient(rng, name) for _ in range(3000)]
        scores = np.array([p.oracle_scores() for p in patients])
        aucs[name] = (
            roc_auc([p.scar for p in patients], scores[:, 0]),
            roc_auc([p.low_ef for p in patients], scores[:, 1]),
        )
    for task in (0, 1):
        assert aucs["easy"][task] > aucs["standard"][task] > aucs["hard"][task]
    # Even the written-in truth is not perfectly separable at the standard level.
    assert aucs["standard"][0] < 0.97 and aucs["standard"][1] < 0.99


def test_unknown_difficulty_is_refused():
    with pytest.raises(ValueError, match="unknown difficulty 'brutal'"):
        draw_patient(np.random.default_rng(0), "brutal")
