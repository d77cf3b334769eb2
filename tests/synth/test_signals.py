"""The disease markers the generator claims are measurable in the signal, in the right leads."""

import numpy as np
import pytest

from ecgscreen.leads import LEADS, LIMB_LEADS, TERRITORIES
from ecgscreen.synth.cohort import draw_patient
from ecgscreen.synth.signals import (
    N_SAMPLES,
    SAMPLE_RATE,
    Markers,
    Noise,
    apply_markers,
    draw_shape,
    r_peak_times,
    synthesize,
)


def median_beat(signal: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Median beat (12, 0.6 s) aligned on the known R peaks, from -0.2 s to +0.4 s."""
    lo, hi = int(0.2 * SAMPLE_RATE), int(0.4 * SAMPLE_RATE)
    idx = [int(round(b * SAMPLE_RATE)) for b in beats]
    windows = [signal[:, i - lo : i + hi] for i in idx if i - lo >= 0 and i + hi <= N_SAMPLES]
    return np.median(np.stack(windows), axis=0)


def at(t: float) -> int:
    """Index of time t (s, relative to R) in a median beat."""
    return int(round((t + 0.2) * SAMPLE_RATE))


def q_depth(beat: np.ndarray) -> np.ndarray:
    """Depth (mV, positive = below baseline) of the deepest point just before the R peak."""
    baseline = np.median(beat[:, at(-0.10) : at(-0.07)], axis=1)
    return baseline - beat[:, at(-0.06) : at(-0.005)].min(axis=1)


def qrs_width_ms(beat: np.ndarray) -> float:
    """QRS duration from the spatial velocity: first to last sample above 15 % of its peak
    inside the QRS search window."""
    velocity = np.abs(np.diff(beat, axis=1)).sum(axis=0)
    window = velocity[at(-0.12) : at(0.14)]
    above = np.flatnonzero(window > 0.15 * window.max())
    return (above[-1] - above[0]) / SAMPLE_RATE * 1000


def record(rng, markers: Markers, noise=Noise(wander=0.0, emg=0.005)):
    shape = apply_markers(draw_shape(rng), markers)
    beats = r_peak_times(shape.heart_rate, rng)
    return synthesize(shape, beats, noise, rng), beats, shape


def test_signal_shape_units_and_einthoven():
    rng = np.random.default_rng(0)
    signal, _, _ = record(rng, Markers(), Noise(wander=0, emg=0))
    assert signal.shape == (12, N_SAMPLES) and signal.dtype == np.float32
    assert 0.3 < np.ptp(signal[LEADS.index("II")]) < 3.0  # mV: a physiological QRS
    i, ii, iii = (signal[LEADS.index(name)] for name in ("I", "II", "III"))
    np.testing.assert_allclose(iii, ii - i, atol=1e-5)
    avr, avl, avf = (signal[LEADS.index(name)] for name in ("aVR", "aVL", "aVF"))
    np.testing.assert_allclose(avr + avl + avf, 0, atol=1e-5)


@pytest.mark.parametrize("territory", sorted(TERRITORIES))
def test_pathological_q_waves_appear_in_the_territory_leads(territory):
    """Q waves with scar are >= 0.15 mV deeper than without, in that territory's leads only."""
    rng = np.random.default_rng(1)
    leads = [LEADS.index(name) for name in TERRITORIES[territory]]
    healthy, scarred = [], []
    for _ in range(30):
        state = rng.bit_generator.state
        for markers, out in ((Markers(), healthy), (Markers(territory, q_wave=0.8), scarred)):
            rng.bit_generator.state = state  # same patient, with and without the scar
            signal, beats, _ = record(rng, markers)
            out.append(q_depth(median_beat(signal, beats)))
    healthy, scarred = np.array(healthy), np.array(scarred)
    difference = (scarred - healthy).mean(axis=0)
    assert (difference[leads] > 0.15).all(), difference[leads]
    others = [i for i in range(12) if i not in leads and LEADS[i] not in LIMB_LEADS]
    assert (np.abs(difference[others]) < 0.05).all()  # chest leads outside the wall: unchanged


def test_t_inversion_and_r_loss_in_territory():
    rng = np.random.default_rng(2)
    leads = [LEADS.index(name) for name in TERRITORIES["anterior"]]
    state = rng.bit_generator.state
    base, beats, _ = record(rng, Markers())
    rng.bit_generator.state = state
    sick, _, _ = record(rng, Markers("anterior", r_loss=1.0, t_inversion=1.0))
    b0, b1 = median_beat(base, beats), median_beat(sick, beats)
    r0, r1 = b0[leads, at(-0.01) : at(0.01)].max(axis=1), b1[leads, at(-0.01) : at(0.01)].max(axis=1)
    assert (r1 < r0 - 0.05).all()
    t0, t1 = b0[leads, at(0.15) : at(0.35)].mean(axis=1), b1[leads, at(0.15) : at(0.35)].mean(axis=1)
    assert (t1 < t0 - 0.05).all()


def test_low_ef_markers_widen_qrs_shrink_voltage_and_speed_the_rate():
    rng = np.random.default_rng(3)
    widths, wide_widths, volts, low_volts = [], [], [], []
    for _ in range(20):
        state = rng.bit_generator.state
        signal, beats, shape = record(rng, Markers())
        widths.append(qrs_width_ms(median_beat(signal, beats)))
        volts.append(np.ptp(median_beat(signal, beats), axis=1).mean())
        rng.bit_generator.state = state
        signal, beats, fast = record(rng, Markers(qrs_widening=1.0, low_voltage=1.0, tachycardia=1.0))
        wide_widths.append(qrs_width_ms(median_beat(signal, beats)))
        low_volts.append(np.ptp(median_beat(signal, beats), axis=1).mean())
        assert fast.heart_rate == pytest.approx(shape.heart_rate + 40)
    assert np.mean(wide_widths) > np.mean(widths) + 30  # ms
    assert 70 < np.mean(widths) < 115  # a normal QRS
    assert np.mean(low_volts) < 0.75 * np.mean(volts)


def test_markers_drawn_for_the_population_show_up_in_the_signal():
    """End to end through the cohort: measured QRS width separates low-EF patients."""
    rng = np.random.default_rng(4)
    wide, normal = [], []
    for _ in range(400):
        patient = draw_patient(rng)
        signal, beats, _ = record(rng, patient.markers, patient.noise)
        width = qrs_width_ms(median_beat(signal, beats))
        if patient.low_ef and patient.markers.qrs_widening > 0.5:
            wide.append(width)
        elif not patient.low_ef and patient.markers.qrs_widening == 0:
            normal.append(width)
    assert len(wide) > 10 and len(normal) > 100
    assert np.median(wide) > np.median(normal) + 25
