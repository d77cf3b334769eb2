"""The reading judge: does a digitised 12-lead signal look like a heart's, lead by lead?

Intake can follow a line on any picture; whether the line it followed is an ECG is a
separate question, answered here from the signal alone, with the checks a cardiologist makes
when a tracing looks odd:

* **Coverage**: the share of the lead's printed span that was read.
* **Amplitude**: a lead that never leaves its baseline is flat (leads off, or paper); one
  that swings more than any heart can is grid or text read as trace.
* **Beats**: a standard QRS detector (``neurokit2``) finds the lead's beats, and a beat is
  a *spike*: most of the lead's slope is spent in short bursts (QRS complexes), which sine
  waves, random walks and EEG do not have.
* **Beats are QRS-wide**: a beat's main wave is 20-40 ms wide at half its height. A page
  read along its grid (a dark grid, paper curl) gives "beats" where a vertical line crosses
  every row at once: they agree across leads, but each is a pixel or two (10 ms) wide.
* **Beats agree across leads**: all twelve leads are recorded at the same time, so a beat in
  one lead is a beat in every lead printed over the same seconds (the column of a 3x4 page,
  the rhythm strip against every column, the rows of 12x1). A consensus beat train is taken
  across leads; a lead whose beats do not fall on it was read wrong somewhere.
* **Beats read**: a lead whose reading has gaps where most of the consensus beats fall lost
  its QRS complexes (a tall R wave cut out as grid sawtooth, or never followed); what is
  left of it is the flat part between beats, which agrees with everything and says nothing.
* **Rate**: the consensus rate lies between 25 and 250 bpm.

Every lead gets a status (``read``, ``doubtful``, ``missing``) and a reason; the page gets a
``quality`` (the judge's score, 0..1) and, when it cannot be answered, the refusal a person
can act on (``not_an_ecg``, ``no_signal``, ``unreadable``). Thresholds were set on the
generator's pages and the not-an-ECG corpus (``synth.not_ecg``); see ``bench refusals``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from ..leads import LEADS
from .errors import IntakeError
from .signal import EcgSignal

__all__ = [
    "LeadVerdict",
    "Verdict",
    "judge",
    "detect_beats",
    "spikiness",
    "beat_width",
    "MAX_DOUBTFUL_LEADS",
    "STATUSES",
]

STATUSES = ("read", "doubtful", "missing")
# A reading is answered with at most this many doubtful or missing leads, left blank in the
# model input; more is refused as unreadable. Chosen on the generator's pages (bench refusals).
MAX_DOUBTFUL_LEADS = 2

MIN_COVERAGE = 0.6  # share of the printed span read; below it the lead is missing
FLAT_MV = 0.08  # peak-to-peak below this: a flat line
MAX_SWING_MV = 9.0  # peak-to-peak above this: no heart, grid or text read as trace
MIN_SPIKINESS = 0.30  # share of the slope spent in the steepest 15 % of the time (sine 0.23)
MAX_SPIKINESS = 0.97  # all of it: flat lines broken by vertical strokes (a table's rules)
MIN_RATE_BPM, MAX_RATE_BPM = 25.0, 250.0
# The leads' median beat width (``beat_width``) under this: pixel-wide strokes, not QRS waves.
# On the generator's pages read right 16-26 ms; read from grid lines 10-14 ms.
MIN_BEAT_WIDTH_S = 0.015
BEAT_TOLERANCE_S = 0.15  # the same beat's QRS peaks in different leads (R in one, Q or S in another)
REFRACTORY_S = 0.2  # no heart beats twice within this
MIN_AGREEMENT = 0.5  # F1 of a lead's beats against the consensus
MIN_ENERGY_RATIO = 2.5  # or: its slope around the consensus beats over its slope between them
QRS_HALF_S = 0.04  # around a consensus beat, this far either way is its QRS complex
MIN_BEATS_READ = 0.5  # share of the consensus beats in a lead's span read at their QRS


@dataclass
class LeadVerdict:
    status: str
    reason: str
    score: float  # 0..1, how much the reading of this lead can be trusted

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "reason": self.reason, "score": round(self.score, 3)}


@dataclass
class Verdict:
    leads: dict[str, LeadVerdict]
    quality: float
    heart_rate_bpm: float | None
    refusal: IntakeError | None = None
    warnings: list[str] = field(default_factory=list)

    def named(self, status: str) -> list[str]:
        return [lead for lead in LEADS if self.leads[lead].status == status]

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {lead: self.leads[lead].to_dict() for lead in LEADS}


@dataclass
class _Lead:
    """What the judge measured on one lead's printed span."""

    name: str
    t0: float
    values: np.ndarray  # mV over the span, gaps filled
    coverage: float
    swing: float = 0.0
    spikiness: float = 0.0
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))  # absolute times, s
    beat_width: float = float("nan")  # s: the median beat's main deflection at half its height
    wander_free: np.ndarray = field(default_factory=lambda: np.zeros(0))  # values less baseline
    read: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=bool)
    )  # samples read, before gaps were filled


def beat_width(wander_free: np.ndarray, beats: np.ndarray, rate: float) -> float:
    """The median width (s) of the beats' main deflection at half its height, each beat's
    largest excursion within 60 ms of where it was detected (``beats``: sample indices). A
    QRS complex's R or S wave is 20-40 ms wide there, at any resolution a page is printed at;
    a grid line or a glyph's stroke read as trace is a pixel or two: 10 ms. NaN without beats."""
    reach = int(0.06 * rate)
    widths = []
    for k in beats:
        window = np.abs(wander_free[max(0, k - reach) : k + reach + 1])
        if window.size < 3:
            continue
        peak = int(np.argmax(window))
        below = window < 0.5 * window[peak]
        left = np.flatnonzero(below[:peak])
        right = np.flatnonzero(below[peak:])
        start = left[-1] + 1 if left.size else 0
        stop = peak + right[0] if right.size else window.size
        widths.append((stop - start) / rate)
    return float(np.median(widths)) if widths else float("nan")


def spikiness(x: np.ndarray) -> float:
    """Share of the total slope spent in the steepest 15 % of samples: ~0.5-0.9 for an ECG
    (QRS complexes), ~0.3 for a sine, random walk or EEG."""
    slope = np.abs(np.diff(x))
    total = float(slope.sum())
    if total <= 0:
        return 0.0
    k = max(1, int(0.15 * slope.size))
    return float(np.partition(slope, slope.size - k)[-k:].sum() / total)


# neurokit2's default detector first; Elgendi's (2010) where it finds fewer beats than the
# slowest heart would give: the default misses wide, smooth QRS complexes (a bundle branch
# block) that Elgendi's finds.
DETECTORS = ("neurokit", "elgendi2010")


def _odd_extension(x: np.ndarray, edge: int) -> np.ndarray:
    """``x`` extended by ``edge`` samples at each end, point-mirrored (scipy's ``odd_ext``)."""
    return np.concatenate((2 * x[0] - x[edge:0:-1], x, 2 * x[-1] - x[-2 : -edge - 2 : -1]))


@dataclass(frozen=True)
class _NeurokitClean:
    """neurokit2's cleaning for its own detector at one rate, designed once: a 0.5 Hz order-5
    Butterworth high-pass, then a moving average over one period of 50 Hz, each run forwards
    and backwards (scipy's ``sosfiltfilt`` and ``filtfilt``, odd padding). neurokit2 designs
    the filter and scipy solves for its initial state on every call: that LAPACK work was a
    third of the judge's time on a cart PDF."""

    sos: np.ndarray
    sos_state: np.ndarray  # the steady state per unit step (``sosfilt_zi``)
    sos_edge: int
    average: np.ndarray
    average_state: np.ndarray  # (``lfilter_zi``)
    average_edge: int

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def at(rate: int) -> _NeurokitClean:
        from scipy.signal import butter, lfilter_zi, sosfilt_zi

        sos = butter(5, 0.5, btype="highpass", output="sos", fs=rate)
        taps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
        average = np.ones(int(rate / 50) if rate >= 100 else 2)
        state = lfilter_zi(average, [len(average)])
        return _NeurokitClean(sos, sosfilt_zi(sos), 3 * taps, average, state, 3 * len(average))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter, sosfilt

        if x.size <= max(self.sos_edge, self.average_edge):
            raise ValueError(f"{x.size} samples: too few to filter forwards and backwards")
        ext = _odd_extension(x, self.sos_edge)
        y, _ = sosfilt(self.sos, ext, zi=self.sos_state * ext[0])
        y, _ = sosfilt(self.sos, y[::-1], zi=self.sos_state * y[-1])
        y = y[::-1][self.sos_edge : -self.sos_edge]
        ext = _odd_extension(y, self.average_edge)
        a = [len(self.average)]
        z, _ = lfilter(self.average, a, ext, zi=self.average_state * ext[0])
        z, _ = lfilter(self.average, a, z[::-1], zi=self.average_state * z[-1])
        return z[::-1][self.average_edge : -self.average_edge]


def clean_for_neurokit(x: np.ndarray, rate: int) -> np.ndarray:
    """``nk.ecg_clean(x, rate, method="neurokit")`` for a finite ``x`` (``_NeurokitClean``)."""
    return _NeurokitClean.at(int(rate))(np.asarray(x, dtype=np.float64))


def detect_beats(x: np.ndarray, rate: float) -> np.ndarray:
    """Sample indices of the QRS complexes in ``x`` (neurokit2's detectors, see ``DETECTORS``)."""
    import neurokit2 as nk  # 1.6 s to import: only where a signal is judged

    if x.size < int(0.8 * rate):
        return np.zeros(0, dtype=int)
    fewest = int(x.size / rate * MIN_RATE_BPM / 60.0)
    peaks = np.zeros(0, dtype=int)
    for method in DETECTORS:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                cleaned = (
                    clean_for_neurokit(x, int(rate))
                    if method == "neurokit"
                    else nk.ecg_clean(x, sampling_rate=int(rate), method=method)
                )
                peaks = np.asarray(
                    nk.ecg_findpeaks(cleaned, sampling_rate=int(rate), method=method)["ECG_R_Peaks"],
                    dtype=int,
                )
            except (ValueError, IndexError, ZeroDivisionError):
                continue
        if peaks.size >= max(1, fewest):
            break
    return peaks


def _measure(signal: EcgSignal, lead: str) -> _Lead | None:
    span = signal.spans.get(lead)
    if span is None:
        return None
    rate = signal.sample_rate
    lo = int(np.ceil(span[0] * rate))
    hi = min(int(np.ceil(span[1] * rate)), signal.values.shape[1])
    x = signal.lead(lead)[lo:hi].astype(np.float64)
    finite = np.isfinite(x)
    measured = _Lead(lead, lo / rate, x, float(finite.mean()) if x.size else 0.0, read=finite)
    if finite.sum() < 2:
        return measured
    k = np.arange(x.size)
    x = np.interp(k, k[finite], x[finite])  # bridge the gaps: the detector needs a series
    measured.values = x
    baseline = median_filter(x, size=max(3, int(0.6 * rate)) | 1, mode="nearest")
    wander_free = x - baseline
    measured.wander_free = wander_free
    measured.swing = float(np.percentile(x, 99.5) - np.percentile(x, 0.5))
    # Both ways: the baseline filter bends a slow wave into peaks, and wander flattens QRS.
    measured.spikiness = min(spikiness(wander_free), spikiness(x))
    beats = detect_beats(x, rate)
    measured.beats = lo / rate + beats / rate
    measured.beat_width = beat_width(wander_free, beats, rate)
    return measured


def _agreement(lead: _Lead, consensus: np.ndarray, rate: float) -> float:
    """F1 of the lead's beats against the consensus beats inside its span."""
    end = lead.t0 + lead.values.size / rate
    inside = consensus[(consensus >= lead.t0 + 0.05) & (consensus <= end - 0.05)]
    if inside.size == 0 and lead.beats.size == 0:
        return 0.0
    hit_own = sum(np.any(np.abs(inside - b) <= BEAT_TOLERANCE_S) for b in lead.beats)
    hit_consensus = sum(np.any(np.abs(lead.beats - c) <= BEAT_TOLERANCE_S) for c in inside)
    precision = hit_own / max(1, lead.beats.size)
    recall = hit_consensus / max(1, inside.size)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _beats_agree(lead: _Lead, consensus: np.ndarray, rate: float) -> float:
    """0..1: how well the lead's beats fall on the consensus, by its own detected beats (F1)
    or, where the detector missed them, by where its slope is."""
    by_energy = min(1.0, max(0.0, (_energy_at_beats(lead, consensus, rate) - 1.0) / (MIN_ENERGY_RATIO - 1.0)))
    return max(_agreement(lead, consensus, rate), MIN_AGREEMENT * by_energy)


def _beats_read(lead: _Lead, consensus: np.ndarray, rate: float) -> tuple[int, int]:
    """``(read, inside)``: of the consensus beats inside the lead's span, how many it read at
    their QRS complex (most samples within ``QRS_HALF_S`` not a gap)."""
    end = lead.t0 + lead.read.size / rate
    inside = consensus[(consensus >= lead.t0 + QRS_HALF_S) & (consensus <= end - QRS_HALF_S)]
    reach = int(QRS_HALF_S * rate)
    read = 0
    for t in inside:
        k = int(round((t - lead.t0) * rate))
        read += bool(lead.read[max(0, k - reach) : k + reach + 1].mean() >= 0.5)
    return read, int(inside.size)


def _lead_verdict(m: _Lead | None, agreement: float, beats_read: tuple[int, int] = (0, 0)) -> LeadVerdict:
    if m is None or m.coverage == 0.0:
        return LeadVerdict("missing", "not found on the page", 0.0)
    if m.coverage < MIN_COVERAGE:
        return LeadVerdict("missing", f"only {m.coverage:.0%} of its printed span was read", m.coverage)
    if m.swing < FLAT_MV:
        return LeadVerdict("doubtful", f"flat line ({m.swing:.2f} mV peak to peak)", 0.0)
    if m.swing > MAX_SWING_MV:
        return LeadVerdict("doubtful", f"swings {m.swing:.0f} mV: more than a heart's signal", 0.0)
    # A lead's score is the share of its span read: on the generator's pages it tells a good
    # reading from a poor one better than any other check (bench refusals prints the AUROC);
    # the beat checks decide the status, which is what blanks or refuses.
    if m.spikiness < MIN_SPIKINESS:
        return LeadVerdict("doubtful", "no QRS complexes: the trace has no sharp beats", m.coverage)
    if m.spikiness > MAX_SPIKINESS:
        return LeadVerdict(
            "doubtful", "straight lines broken by strokes: grid or text read as trace", m.coverage
        )
    if agreement < MIN_AGREEMENT:
        return LeadVerdict("doubtful", "its beats do not fall where the other leads' beats are", m.coverage)
    read, inside = beats_read
    if inside >= 2 and read < MIN_BEATS_READ * inside:
        return LeadVerdict(
            "doubtful",
            f"its QRS complexes were not read ({inside - read} of {inside} beats fall in gaps)",
            m.coverage,
        )
    return LeadVerdict("read", "beats agree with the other leads", m.coverage)


def _rate_bpm(consensus: np.ndarray) -> float | None:
    if consensus.size < 2:
        return None
    return float(60.0 / np.median(np.diff(consensus)))


def judge(signal: EcgSignal) -> Verdict:
    """Each lead's status, the page's quality, and the refusal when it cannot be answered."""
    rate = signal.sample_rate
    measured = {lead: _measure(signal, lead) for lead in LEADS}
    present = [m for m in measured.values() if m is not None and m.coverage >= MIN_COVERAGE]
    consensus = _consensus(present, rate)
    agreement = {m.name: _beats_agree(m, consensus, rate) for m in present}
    verdicts = {
        lead: _lead_verdict(
            measured[lead],
            agreement.get(lead, 0.0),
            _beats_read(measured[lead], consensus, rate) if measured[lead] is not None else (0, 0),
        )
        for lead in LEADS
    }
    bpm = _rate_bpm(consensus)
    quality = float(np.mean([v.score for v in verdicts.values()]))
    verdict = Verdict(verdicts, round(quality, 3), None if bpm is None else round(bpm, 1))
    traced = [m for m in present if FLAT_MV <= m.swing <= MAX_SWING_MV]
    verdict.refusal = _refusal(verdict, traced, agreement, bpm)
    doubtful = [lead for lead in LEADS if verdicts[lead].status != "read"]
    if doubtful and verdict.refusal is None:
        verdict.warnings.append(f"leads left blank (not found or read doubtfully): {', '.join(doubtful)}")
    return verdict


def _consensus(present: list[_Lead], rate: float) -> np.ndarray:
    """Beat times that at least half of the leads printed at that moment, and in which the
    detector found beats at all, agree on.

    Beats of all leads are pooled and grouped: a group is every beat within a refractory
    window (0.2 s) of its first one, since one heartbeat peaks at slightly different times
    in different leads (R in one, S in another). A lead whose beats the detector missed
    altogether (a wide, notched QRS in 2.5 s) does not vote: the rhythm strip alone can
    time the beats of its column."""
    detecting = [m for m in present if m.beats.size]
    spans = [(m.t0, m.t0 + m.values.size / rate) for m in detecting]
    times = np.sort(np.concatenate([m.beats for m in detecting])) if detecting else np.zeros(0)
    beats: list[tuple[float, int]] = []  # (time, supporting leads)
    i = 0
    while i < times.size:
        j = int(np.searchsorted(times, times[i] + REFRACTORY_S, side="right"))
        t = float(np.median(times[i:j]))
        covering = sum(1 for a, b in spans if a <= t <= b)
        supporters = sum(1 for m in detecting if np.any(np.abs(m.beats - t) <= BEAT_TOLERANCE_S))
        if supporters >= max(1, 0.5 * covering):
            if beats and t - beats[-1][0] < REFRACTORY_S:
                # One beat split in two groups (R in some leads, S in others 80 ms later):
                # keep the better supported time.
                if supporters > beats[-1][1]:
                    beats[-1] = (t, supporters)
            else:
                beats.append((t, supporters))
        i = j
    return np.asarray([t for t, _ in beats])


def _energy_at_beats(lead: _Lead, consensus: np.ndarray, rate: float) -> float:
    """How much more the lead moves around the consensus beats than between them: a QRS
    complex is where the slope, and the excursion from the baseline, are (>= 2.5 for a lead
    read right; ~1 for noise or another lead's trace). Catches leads whose beats the
    detector itself missed (a wide, smooth QRS)."""
    end = lead.t0 + lead.values.size / rate
    inside = consensus[(consensus >= lead.t0) & (consensus <= end)]
    if inside.size == 0 or lead.values.size < 3:
        return 0.0
    near = np.zeros(lead.values.size, dtype=bool)
    reach = int(0.08 * rate)  # a QRS lasts 80-120 ms, wider in a bundle branch block
    for t in inside:
        k = int((t - lead.t0) * rate)
        near[max(0, k - reach) : k + reach] = True
    if near.all() or not near.any():
        return 0.0
    smooth = gaussian_filter1d(lead.values, 0.008 * rate)
    slope = np.abs(np.gradient(smooth))
    excursion = np.abs(lead.wander_free)
    ratios = [m[near].mean() / max(m[~near].mean(), 1e-9) for m in (slope, excursion)]
    return float(max(ratios))


def _not_an_ecg(traced: list[_Lead], agreement: dict[str, float], bpm: float | None) -> str | None:
    """Why the traces on the page are not a heart's, or ``None`` when they could be."""
    if len(traced) < 3:
        return "no trace could be followed across the page"
    spikiness = float(np.median([m.spikiness for m in traced]))
    if spikiness < MIN_SPIKINESS:
        return "the traces are smooth waves with no QRS complexes"
    if spikiness > MAX_SPIKINESS:
        return "the traces are straight lines broken by strokes (a table or a chart), not beats"
    widths = [m.beat_width for m in traced if np.isfinite(m.beat_width)]
    if widths and float(np.median(widths)) < MIN_BEAT_WIDTH_S:
        return (
            f"the beats read are {1000 * float(np.median(widths)):.0f} ms wide at half their height, "
            "strokes a pixel or two across (grid lines or text followed as trace), not QRS complexes"
        )
    if float(np.mean([agreement[m.name] >= MIN_AGREEMENT for m in traced])) < 0.5:
        return "the traces' peaks do not fall at the same times, as twelve leads of one heart's beats do"
    if bpm is None:
        return "no heartbeat is found in more than one lead"
    if not MIN_RATE_BPM <= bpm <= MAX_RATE_BPM:
        return f"the beats found give {bpm:.0f} bpm: not a heart's rhythm"
    return None


def _refusal(
    verdict: Verdict, traced: list[_Lead], agreement: dict[str, float], bpm: float | None
) -> IntakeError | None:
    statuses = verdict.leads
    flat = [lead for lead in LEADS if statuses[lead].reason.startswith("flat line")]
    if len(flat) > len(LEADS) // 2:
        return IntakeError(
            "no_signal", f"{len(flat)} of 12 leads are flat lines: were the electrodes connected?"
        )
    read = verdict.named("read")
    unread = [lead for lead in LEADS if statuses[lead].status != "read"]
    why = _not_an_ecg(traced, agreement, bpm)
    if why is not None and len(read) < 3:
        return IntakeError("not_an_ecg", f"no ECG found: {why}. Is this a 12-lead ECG?")
    if len(unread) <= MAX_DOUBTFUL_LEADS and why is None:
        return None
    # Some leads show a heart's beats, so this is an ECG, read wrong in too many places.
    return IntakeError(
        "unreadable",
        f"{len(unread)} of 12 leads could not be read plausibly ({', '.join(unread) or 'none'}"
        f"{'; ' + why if why else ''}); at most {MAX_DOUBTFUL_LEADS} may be doubtful. "
        "A sharper, straighter picture may help: the reading picture shows what was read.",
    )
