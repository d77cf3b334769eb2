"""The reading judge: each lead's status from the signal itself, refusals that say why, and
calibration pulses never read as signal."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.judge import MAX_DOUBTFUL_LEADS, clean_for_neurokit, detect_beats, judge
from ecgscreen.imaging.not_signal import cut_edge_strokes, cut_grid_sawtooth, cut_pulse_steps
from ecgscreen.imaging.pipeline import preprocess, read_ecg
from ecgscreen.imaging.signal import EcgSignal
from ecgscreen.leads import LEADS, layout_rows
from ecgscreen.synth.generate import make_record
from ecgscreen.synth.signals import SAMPLE_RATE

# These tests hold intake to its numbers on the generator's first page design; the world's
# page designs have their own tests (test_world_pages) and ``python -m bench layouts``.
make_record = partial(make_record, world_pages=False)


def _recording(index: int = 0) -> EcgSignal:
    record = make_record(5, index)
    return EcgSignal.from_leads(dict(zip(LEADS, record.signal, strict=True)), SAMPLE_RATE)


def _as_3x4(signal: EcgSignal) -> EcgSignal:
    """``signal`` as a 3x4+1 page prints it: each lead only over its 2.5 s, II over 10 s."""
    printed = EcgSignal.empty()
    rate = signal.sample_rate
    for row in layout_rows("3x4+1"):
        for segment in row:
            k = np.arange(int(segment.t0 * rate), int(segment.t1 * rate))
            printed.put(segment.lead, k / rate, signal.lead(segment.lead)[k], (segment.t0, segment.t1))
    return printed


def test_a_recording_is_read_in_every_lead_at_its_rate():
    for index in range(4):
        verdict = judge(_recording(index))
        assert verdict.refusal is None, verdict.refusal
        assert verdict.named("read") == list(LEADS), verdict.to_dict()
        assert verdict.quality > 0.95
        assert 25 <= verdict.heart_rate_bpm <= 250


@pytest.mark.parametrize("rate", [100, 250, 500])
def test_the_cached_clean_is_neurokits_own(rate):
    import neurokit2 as nk

    x = make_record(7, 3).signal[1].astype(np.float64)[: 10 * rate]
    x = x + np.random.default_rng(rate).normal(0, 0.05, x.size) + np.linspace(0, 1, x.size)  # noise, drift
    ours, theirs = clean_for_neurokit(x, rate), nk.ecg_clean(x, sampling_rate=rate, method="neurokit")
    assert np.allclose(ours, theirs, rtol=0, atol=1e-12) and np.ptp(ours) > 0.5


def test_a_3x4_page_is_judged_across_its_columns():
    verdict = judge(_as_3x4(_recording()))
    assert verdict.refusal is None and verdict.named("read") == list(LEADS)


def test_a_lead_that_is_not_a_hearts_is_doubtful_and_named():
    signal = _as_3x4(_recording())
    rng = np.random.default_rng(0)
    i, rate = LEADS.index("V2"), signal.sample_rate
    span = slice(int(5.0 * rate), int(7.5 * rate))
    walk = np.cumsum(rng.normal(0, 1, span.stop - span.start))
    signal.values[i, span] = 0.8 * (walk - walk.mean()) / np.abs(walk - walk.mean()).max()
    verdict = judge(signal)
    assert verdict.leads["V2"].status == "doubtful", verdict.leads["V2"]
    assert verdict.refusal is None  # one doubtful lead: answered, with the lead left blank
    assert any("V2" in w for w in verdict.warnings)


def test_a_lead_whose_qrs_complexes_fall_in_gaps_is_doubtful():
    """ecg00048's V4 (a phone photo): its tall R waves were cut out as grid sawtooth, and what
    was left (the flat stretches between beats, 84 % of the span) passed every other check."""
    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    beats = detect_beats(signal.lead("II"), rate) / rate
    cut = beats[(beats > 7.55) & (beats < 9.95)]
    assert cut.size >= 2
    i = LEADS.index("V4")
    for t in cut:  # 60 ms at each R peak: the rest of each complex stays, and its beats agree
        signal.values[i, int((t - 0.03) * rate) : int((t + 0.03) * rate)] = np.nan
    verdict = judge(signal)
    assert verdict.leads["V4"].status == "doubtful" and "QRS" in verdict.leads["V4"].reason
    assert verdict.named("read") == [lead for lead in LEADS if lead != "V4"]
    one_gap = _as_3x4(_recording())
    one_gap.values[i, int((cut[0] - 0.03) * rate) : int((cut[0] + 0.03) * rate)] = np.nan
    assert judge(one_gap).leads["V4"].status == "read"  # one beat in a gap of several: still read


def test_a_lead_read_over_a_sliver_of_its_span_is_missing():
    signal = _as_3x4(_recording())
    i, rate = LEADS.index("aVL"), signal.sample_rate
    signal.values[i, int(2.6 * rate) : int(5.0 * rate)] = np.nan
    verdict = judge(signal)
    assert verdict.leads["aVL"].status == "missing"
    assert "%" in verdict.leads["aVL"].reason


def test_too_many_doubtful_leads_are_refused_as_unreadable_and_named():
    signal = _as_3x4(_recording())
    doubtful = ("I", "aVL", "V2", "V6")[: MAX_DOUBTFUL_LEADS + 1]
    for lead in doubtful:
        signal.values[LEADS.index(lead)] = np.nan
    verdict = judge(signal)
    assert verdict.refusal is not None and verdict.refusal.reason == "unreadable"
    assert all(lead in verdict.refusal.message for lead in doubtful)


def test_flat_lines_are_no_signal():
    signal = _as_3x4(_recording())
    signal.values = np.where(np.isfinite(signal.values), 0.0, np.nan).astype(np.float32)
    assert judge(signal).refusal.reason == "no_signal"


def test_sine_waves_in_every_lead_are_not_an_ecg():
    signal = _recording()
    t = np.arange(signal.values.shape[1]) / signal.sample_rate
    signal.values[:] = 0.8 * np.sin(2 * np.pi * 1.2 * t)
    assert judge(signal).refusal.reason == "not_an_ecg"


def test_grid_lines_read_as_beats_in_every_lead_are_refused():
    # A page read along its grid: flat lines, broken where a dark vertical grid line crosses
    # every row at once, so the "beats" agree across leads, but each is a pixel wide.
    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    printed = np.isfinite(signal.values)
    signal.values = np.where(printed, 0.0, np.nan).astype(np.float32)
    noise = np.random.default_rng(3).normal(0.0, 0.02, signal.values.shape)
    signal.values += noise.astype(np.float32)
    for t in np.arange(0.3, 10.0, 0.83):  # a major line every few, not evenly: the rows' curl
        k = int(t * rate)
        signal.values[:, k : k + 4] += 1.2
    verdict = judge(signal)
    assert verdict.refusal is not None and verdict.refusal.reason in ("unreadable", "not_an_ecg")
    assert "ms wide at half their height" in verdict.refusal.message


def test_a_recordings_beats_are_qrs_wide():
    from ecgscreen.imaging.judge import _measure

    signal = _as_3x4(_recording())
    widths = [_measure(signal, lead).beat_width for lead in LEADS]
    assert 0.015 < float(np.nanmedian(widths)) < 0.06, widths


def test_a_calibration_pulse_read_into_a_lead_is_cut_and_named():
    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    i = LEADS.index("I")
    start, end = int(0.05 * rate), int(0.25 * rate)
    baseline = float(np.nanmedian(signal.values[i, : int(2.5 * rate)]))
    signal.values[i, start:end] = baseline + 1.0  # the 1 mV pulse, 0.2 s wide
    assert cut_pulse_steps(signal) == ["I"]
    assert np.isnan(signal.values[i, start:end]).all()
    assert np.isfinite(signal.values[i, int(0.5 * rate) : int(2.4 * rate)]).all()


def test_rows_that_start_on_a_missed_pulse_start_past_it():
    # The layout reader missed the pulses joined to a photo's rows: each row's first lead
    # starts with the 1 mV pulse (0.2 s), so the row's time axis starts 0.2 s early.
    from ecgscreen.imaging.layout import PageLayout, Row
    from ecgscreen.imaging.not_signal import rows_past_pulses

    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    for lead in ("I", "II", "III", "II"):
        i = LEADS.index(lead)
        level = float(np.nanmedian(signal.values[i, : int(2.5 * rate)]))
        signal.values[i, : int(0.2 * rate)] = level + 1.0
    rows = [Row(100.0 + 50 * r, 0.0, 50 * r + 75, 50 * r + 125, 100, 1100) for r in range(4)]
    page = PageLayout("3x4+1", rows, 4.0, 10.0, rhythm_leads=("II",))
    assert rows_past_pulses(signal, page)
    # 100 px per second: the rows now start 0.24 s in (the pulse and 40 ms of its foot).
    assert [row.x_start for row in rows] == [124] * 4
    assert [row.x_end for row in rows] == [1100] * 4
    # No row had its pulse measured: the page's scale follows its rows' new length.
    assert page.px_per_mm == 976 / 250 and rows[0].px_per_mv == 10.0 * 976 / 250
    # A recording without pulses moves nothing.
    plain = _as_3x4(_recording())
    rows = [Row(100.0 + 50 * r, 0.0, 50 * r + 75, 50 * r + 125, 100, 1100) for r in range(4)]
    assert not rows_past_pulses(plain, PageLayout("3x4+1", rows, 4.0, 10.0, rhythm_leads=("II",)))
    assert [row.x_start for row in rows] == [100] * 4


def test_a_row_already_on_the_others_line_stays_when_they_move_past_their_pulses():
    # Rows 2-4 run on into a pulse printed after their last lead (0.4 s more); row 1 ends
    # where the trace does. Rows 2-4 end before their pulses; row 1 keeps its end.
    from ecgscreen.imaging.layout import PageLayout, Row
    from ecgscreen.imaging.not_signal import rows_past_pulses

    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    for lead in ("V5", "V6", "II"):  # the last leads of rows 2-4, as read over 10.4 s
        i = LEADS.index(lead)
        level = float(np.nanmedian(signal.values[i, int(7.5 * rate) :]))
        signal.values[i, int(9.7 * rate) : int(9.9 * rate)] = level + 1.0
        signal.values[i, int(9.9 * rate) :] = level
    ends = [1100, 1140, 1140, 1140]
    rows = [Row(100.0 + 50 * r, 0.0, 50 * r + 75, 50 * r + 125, 100, end) for r, end in enumerate(ends)]
    page = PageLayout("3x4+1", rows, 4.0, 10.0, rhythm_leads=("II",))
    assert rows_past_pulses(signal, page)
    assert rows[0].x_end == 1100
    assert all(abs(row.x_end - 1100) <= 6 for row in rows[1:]), [row.x_end for row in rows]


def test_a_pulse_crossed_by_a_spike_is_cut_whole():
    # A grid line or a speck crossing the pulse's top on a photo reads as a spike there.
    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    i = LEADS.index("II")
    start, end = 0, int(0.2 * rate)
    baseline = float(np.nanmedian(signal.values[i, : int(2.5 * rate)]))
    signal.values[i, start:end] = baseline + 2.0
    signal.values[i, int(0.12 * rate) : int(0.12 * rate) + 3] = baseline + 2.9
    assert cut_pulse_steps(signal) == ["II"]
    assert np.isnan(signal.values[i, start:end]).all()


@pytest.mark.parametrize("printed", [False, True])
def test_no_lead_of_a_recording_loses_a_beat_to_the_pulse_cut(printed):
    # An R wave's top and its S wave's trough are each flat for a few samples: bridging the
    # stroke between them must not make a plateau (printed as 3x4, V3 of recording 208 did).
    for index in (1, 208, *range(20, 40)):
        signal = _as_3x4(_recording(index)) if printed else _recording(index)
        before = np.isfinite(signal.values).sum()
        assert cut_pulse_steps(signal) == [], index
        assert np.isfinite(signal.values).sum() == before


def test_a_sawtooth_at_the_grids_spacing_is_cut_but_no_beat_of_a_recording_is():
    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    i = LEADS.index("aVF")
    t = np.arange(int(0.6 * rate)) / rate
    start = int(2.7 * rate)
    signal.values[i, start : start + t.size] += 0.3 * np.sign(np.sin(2 * np.pi * 25 * t))  # 1 mm at 25 mm/s
    assert cut_grid_sawtooth(signal) == ["aVF"]
    assert np.isnan(signal.values[i, start + 20 : start + t.size - 20]).all()
    clean = _recording(2)
    assert cut_grid_sawtooth(clean) == []


def test_the_served_intake_blanks_doubtful_leads_and_reports_each_leads_status():
    from corpus import good_ecg

    result = preprocess(good_ecg("png"))
    leads = result.info["leads"]
    assert set(leads) == set(LEADS)
    assert all(leads[lead]["status"] in ("read", "doubtful", "missing") for lead in LEADS)
    for lead in LEADS:
        if leads[lead]["status"] != "read":
            assert np.isnan(result.signal.lead(lead)).all()
    assert 0.0 <= result.info["quality"] <= 1.0


@pytest.mark.slow
def test_the_generators_pages_are_accepted_and_their_leads_read():
    """A smaller version of ``bench refusals``' generator check: printed formats of fresh
    records are accepted and nearly every lead is judged read."""
    from ecgscreen.synth.renditions import renditions_of

    refused, leads_read, leads = 0, 0, 0
    for index in range(6):
        _, files = renditions_of(61, index, ("pdf", "png/clean", "jpeg/scan", "png/photo"), world_pages=False)
        for data in files.values():
            try:
                _, info = read_ecg(data)
            except IntakeError:
                refused += 1
                continue
            leads_read += sum(v["status"] == "read" for v in info["leads"].values())
            leads += len(LEADS)
    assert refused <= 1
    assert leads_read / leads >= 0.95


def test_a_stroke_at_a_leads_edge_is_cut_but_no_beat_of_a_recording_is():
    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    i = LEADS.index("I")
    signal.values[i, int(0.02 * rate) : int(0.06 * rate)] += 6.0  # a 6 mV stroke at the start
    assert cut_edge_strokes(signal) == ["I"]
    assert np.isnan(signal.values[i, int(0.02 * rate) : int(0.06 * rate)]).all()
    assert np.isfinite(signal.values[i, int(0.3 * rate) : int(2.4 * rate)]).all()
    assert cut_edge_strokes(_recording(3)) == []


def test_a_stroke_where_a_lead_starts_to_be_read_is_cut():
    """A lead whose first 0.4 s were not found starts where its trace does: a stroke there
    (the follower starting on another row's pulse) is an edge stroke too."""
    signal = _as_3x4(_recording())
    rate = signal.sample_rate
    i = LEADS.index("II")
    signal.values[i, : int(0.4 * rate)] = np.nan
    signal.values[i, int(0.4 * rate) : int(0.47 * rate)] = -5.9
    assert cut_edge_strokes(signal) == ["II"]
    assert np.isnan(signal.values[i, : int(0.47 * rate)]).all()
    assert np.isfinite(signal.values[i, int(0.6 * rate) : int(2.4 * rate)]).all()
