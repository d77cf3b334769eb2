"""Ink thresholds (``imaging.ink``)."""

import numpy as np


def test_a_faint_pen_on_noiseless_paper_is_ink_only_when_asked_for():
    """A thin grey pen (darkness 0.18, as ecg00010's) on paper without texture: under the
    default floor of 0.28, found with ``faint_pen``; on textured paper the floor stays."""
    from ecgscreen.imaging.ink import _threshold

    darkness = np.zeros((200, 400), np.float32)
    darkness[100, 20:380] = 0.18  # the trace
    darkness[20:40, 20:24] = 0.6  # a lead label's stroke, the page's darkest ink
    assert not _threshold(darkness, "red", False).mask[100].any()
    assert _threshold(darkness, "red", False, faint_pen=True).mask[100, 20:380].all()
    textured = darkness + np.random.default_rng(0).uniform(0.0, 0.1, darkness.shape).astype(np.float32)
    assert not _threshold(textured, "red", False, faint_pen=True).mask[100].all()
