"""Naming an unlabelled rhythm strip by its trace (``strips.identify_strip``): the lead whose
own print the strip repeats; another lead than the layout's only on a close match, since a
wrong name puts one lead's trace in another's place."""

import numpy as np

from ecgscreen.contract import SIGNAL_RATE_HZ
from ecgscreen.imaging.signal import EcgSignal
from ecgscreen.imaging.strips import identify_strip

T = np.arange(0, 10.0, 1 / SIGNAL_RATE_HZ)
BEATS = {  # three leads of distinct shape, as the rows print them
    "II": np.sin(2 * np.pi * 1.2 * T) ** 15,
    "V1": -(np.sin(2 * np.pi * 1.2 * T + 0.3) ** 9),
    "V5": 0.6 * np.sin(2 * np.pi * 1.2 * T) ** 15 + 0.3 * np.sin(2 * np.pi * 2.4 * T),
}
SPANS = {"II": (2.5, 5.0), "V1": (5.0, 7.5), "V5": (7.5, 10.0)}  # 3x4: II, V1 and V5 columns


def _rows() -> EcgSignal:
    signal = EcgSignal.empty()
    for lead, (t0, t1) in SPANS.items():
        k = (T >= t0) & (T < t1)
        signal.put(lead, T[k], BEATS[lead][k], (t0, t1))
    return signal


def _strip(lead: str, noise: float) -> np.ndarray:
    size = float(np.std(BEATS[lead]))
    return BEATS[lead] + noise * size * np.random.default_rng(0).standard_normal(T.size)


def test_a_strip_repeating_a_print_is_named_by_it():
    assert identify_strip(_rows(), T, _strip("V5", 0.02), "II") == "V5"
    assert identify_strip(_rows(), T, _strip("II", 0.02), "II") == "II"


def test_another_lead_than_the_layouts_needs_a_close_match():
    rough_v5 = _strip("V5", 0.35)  # read from a photo: matches V5's print only roughly
    assert identify_strip(_rows(), T, rough_v5, "II") is None  # not used, rather than misnamed
    assert identify_strip(_rows(), T, rough_v5, "V5") == "V5"  # the layout's own lead: kept


def test_a_read_label_stands_while_its_lead_matches():
    # A II strip read as roughly as a photo reads it may match V5's print a little better
    # than II's: with its label read, it stays II.
    like_v5 = 0.4 * BEATS["II"] + 0.6 * BEATS["V5"]  # matches V5's print 0.34, II's 0.41
    assert identify_strip(_rows(), T, like_v5, "II") is None  # unlabelled: too close to name
    assert identify_strip(_rows(), T, like_v5, "II", labelled=True) == "II"
    # ...but a label whose lead the strip does not repeat at all gives way to the trace.
    assert identify_strip(_rows(), T, _strip("V1", 0.02), "II", labelled=True) == "V1"
