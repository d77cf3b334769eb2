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


def test_a_thin_pens_pulse_at_half_the_traces_darkness_is_faint_ink():
    """A small scan's pulse, drawn one pixel wide and anti-aliased over two columns (0.2,
    seed 4242 pages 54 and 288), under the threshold the trace sets (0.28 here): not in the
    mask, in ``faint_ink``; a grid line (0.08) and sensor noise stay out of both."""
    from ecgscreen.imaging.ink import _threshold, faint_ink

    rng = np.random.default_rng(0)
    darkness = rng.uniform(0.0, 0.06, (200, 400)).astype(np.float32)
    darkness[:, 300] = darkness[40, :] = 0.08  # grid lines
    darkness[100:102, 120:380] = 0.5  # the trace, drawn over and over
    darkness[60:100, 40:42] = darkness[60:100, 60:62] = darkness[60:62, 40:62] = 0.2  # the pulse
    ink = _threshold(darkness, "red", False)
    assert ink.mask[100, 120:380].all() and not ink.mask[60:100, 40].any()
    faint = faint_ink(ink)
    assert faint[60:100, 40].all() and faint[60, 40:62].all()
    assert not faint[:99, 300].any() and not faint[40, :120].any()
