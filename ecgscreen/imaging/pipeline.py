"""``preprocess``: any ECG file's bytes in, the canonical model input and an info record out.

One code path for training, evaluation and serving (Triton's ``ecg_preprocess`` imports
this). The info record is what people debug their archives with: source format, layout,
rotation, grid colour, gain, a quality score and warnings. It never contains text read from
the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..contract import CANONICAL_SIZE, PAGE_MM, PAPER_SPEED_MM_S, SIGNAL_RATE_HZ
from ..leads import LEADS
from . import canonical
from .deskew import estimate_rotation, rotate
from .dicom_reader import Waveform, read_dicom
from .digitize import read_signal
from .errors import IntakeError
from .grid_clock import check_row_length, time_rows_on_grid
from .grid_level import level_rows_on_grid
from .images import WORKING_PX_PER_MM, decode_image
from .ink import faint_ink, grid_darkness, off_page, separate_ink, threshold_ink, without_grid_lines
from .judge import Verdict, judge
from .layout import PageLayout, find_layout
from .limits import DEFAULT_LIMITS, Limits
from .not_signal import cut_edge_strokes, cut_grid_sawtooth, cut_pulse_steps, rows_past_pulses
from .page_check import why_no_layout
from .pdf_render import check_document, render_pdf
from .pdf_vectors import dark_polylines, printed_gain
from .segment import Segmenter, default_segmenter, light_grid, page_classes, strokes_not_trace
from .signal import EcgSignal
from .sniff import sniff
from .vector_trace import read_vector_signal
from .waveform_dicom import read_digitised

__all__ = [
    "LevelledPage",
    "Preprocessed",
    "Reading",
    "accept",
    "preprocess",
    "read_ecg",
    "read_page",
    "to_canonical",
]

PDF_PX_PER_MM = 8
# the refusals of a page on which no ECG layout was found (``page_check``)
_NO_LAYOUT = ("no_layout", "not_an_ecg", "incomplete_ecg")
MAX_UPSCALE = 2.0  # how much a small picture is enlarged for the segmenter


@dataclass
class Preprocessed:
    canonical: np.ndarray  # (S, S) uint8, white background
    info: dict = field(default_factory=dict)
    signal: EcgSignal | None = None

    @property
    def tensor(self) -> np.ndarray:
        """(3, S, S) float32, ImageNet-normalised: the model input."""
        return canonical.to_model_input(self.canonical)


@dataclass
class LevelledPage:
    """The picture a printout was read from, levelled, and the layout found on it: what the
    reading picture (``imaging.reading_picture``) draws the digitised traces over."""

    darkness: np.ndarray  # (H, W) float32, 0 paper .. 1 ink
    layout: PageLayout


@dataclass
class Reading:
    """What intake read from one file, judged lead by lead, before it is accepted or refused."""

    signal: EcgSignal
    info: dict
    page: LevelledPage | None = None  # printed pages read from pixels
    verdict: Verdict | None = None


def _from_printout(
    image: np.ndarray, info: dict, segmenter: Segmenter | None
) -> tuple[EcgSignal, LevelledPage]:
    """The signal of a printed page (RGB or grey pixels), and the page it was read from.

    Read through ``segmenter`` first. Where that finds no layout, the page is read once more by
    colour alone, looking for a faint pen too (``ink.separate_ink``'s ``faint_pen``): the
    segmenter learned the generator's pens, and calls a thin grey trace in a small export
    "grid" and drops it (ecg00010). The judge then weighs that reading like any other; when it
    too finds no layout, the first refusal stands."""
    try:
        return _read_printout(image, info, segmenter)
    except IntakeError as error:
        if segmenter is None or error.reason not in _NO_LAYOUT:
            raise
        again = {**info, "warnings": list(info["warnings"])}
        try:
            found = _read_printout(image, again, None, faint_pen=True)
        except IntakeError:
            raise error from None
        info.clear()
        info.update(again)
        info["warnings"].append("read by colour alone: through the page segmenter no layout was found")
        return found


def _read_printout(
    image: np.ndarray, info: dict, segmenter: Segmenter | None, faint_pen: bool = False
) -> tuple[EcgSignal, LevelledPage]:
    """``_from_printout``'s one reading; with a ``segmenter``, the strokes of ink it calls grid
    are dropped first (``segment``)."""
    scale = WORKING_PX_PER_MM * PAGE_MM[0] / max(image.shape[:2])
    # The segmenter learned pages at its own scale: a small picture is enlarged to it (up to
    # twice), which also gives the trace follower more pixels per millimetre.
    scale = min(scale, MAX_UPSCALE if segmenter is not None else 1.0)
    ink = separate_ink(image, scale, faint_pen=faint_pen)
    desk = off_page(image, ink.mask.shape, max(ink.mask.shape) / PAGE_MM[0])  # a photo's desk
    # Pulses are measured on the ink before the segmenter's drops: it gives a pulse's edge
    # drawn on a major grid line to the grid, and may call a pulse apart from the trace grid.
    pulse_ink, dropped = ink.mask & ~desk, desk
    if segmenter is not None:
        classes = page_classes(image, ink.mask.shape, segmenter)
        dropped = dropped | strokes_not_trace(ink.mask, classes)
        if not ink.greyscale:  # a greyscale page's grid lines come out by their shape, below
            dropped = dropped | light_grid(ink.mask & ~dropped, classes, ink.darkness)
    ink = replace(ink, mask=ink.mask & ~dropped)
    angle, confidence = estimate_rotation(ink.mask)
    grid = rotate(grid_darkness(image, ink.mask.shape), angle)
    # An enlarged picture's grid (under 4 px per mm: lines a pixel wide, aliased by the
    # resampling and JPEG) bends rows alike, but its length is off by 4 % (ecg00013).
    fine_grid = scale <= 1.0
    info["grid"] = ink.grid
    darkness = rotate(np.round(ink.darkness * 255).astype(np.uint8), angle).astype(np.float32) / 255
    if ink.greyscale and ink.grid != "none":
        # Greyscale: no chroma to discount the grid by, but once the page is level its lines
        # are straight across the page and come out by their shape (``without_grid_lines``).
        px_per_mm = max(darkness.shape) / PAGE_MM[0]
        ink = threshold_ink(without_grid_lines(darkness, px_per_mm), ink.grid)
        on_page = ~rotate(desk, angle)
        pulse_inks = (ink.mask & on_page, faint_ink(ink) & on_page)
        return _from_trace(
            ink.mask & ~rotate(dropped, angle),
            ink.darkness,
            angle,
            confidence,
            info,
            pulse_inks,
            grid,
            fine_grid,
        )
    pulse_inks = (rotate(pulse_ink, angle), rotate(faint_ink(ink) & ~desk, angle))
    return _from_trace(
        rotate(ink.mask, angle), darkness, angle, confidence, info, pulse_inks, grid, fine_grid
    )


def _from_pdf(
    data: bytes, info: dict, limits: Limits, segmenter: Segmenter | None
) -> tuple[EcgSignal, LevelledPage | None]:
    check_document(data, limits)
    # A page drawn as vectors alone (no image, no form) is read from the numbers it was drawn
    # from; any other page, or a drawing the vector reader does not follow, from its pixels.
    polylines = dark_polylines(data, limits)
    if polylines:
        try:
            return _from_vectors(polylines, lambda: printed_gain(data), info), None
        except IntakeError:
            pass  # the drawing is not what the vector reader expects: read the pixels
    rendered = render_pdf(data, limits, PDF_PX_PER_MM)
    if not rendered.vector:
        return _from_printout(rendered.image, info, segmenter)
    # Grid and text were dropped as vectors: the pixels are just the trace, straight, on white.
    info["grid"] = "removed (vector)"
    darkness = 1.0 - rendered.image.astype(np.float32) / 255.0
    return _from_trace(rendered.image < 128, darkness, 0.0, 10.0, info)


def _from_vectors(polylines: list, gain_text, info: dict) -> EcgSignal:
    """A cart's vector PDF read from the polylines it drew (exact values); ``gain_text()``
    is the gain the page prints, asked for only when it has no calibration pulse."""
    signal, page = read_vector_signal(polylines, SIGNAL_RATE_HZ, gain_text)
    missing = [lead for lead in LEADS if signal.confidence.get(lead, 0.0) == 0.0]
    if len(missing) > 6:
        raise IntakeError("no_layout", "the polylines hold fewer than half of the leads")
    info.update(
        grid="removed (vector)",
        layout=page.layout,
        rhythm_leads=list(page.rhythm_leads),
        rotation_deg=0.0,
        gain_mm_per_mv=round(page.gain_mm_per_mv, 2),
        gain_source=signal.gain_source,
        paper_speed_mm_s=PAPER_SPEED_MM_S,
        reading="vector",
    )
    info["warnings"] += signal.warnings
    return signal


def _from_trace(
    mask: np.ndarray,
    darkness: np.ndarray,
    angle: float,
    confidence: float,
    info: dict,
    pulse_inks: tuple[np.ndarray, np.ndarray] | None = None,
    grid: np.ndarray | None = None,
    fine_grid: bool = False,
) -> tuple[EcgSignal, LevelledPage]:
    """The signal read from a levelled trace ``mask`` (and its ``darkness``); ``pulse_inks``:
    the ink pulses are measured on, and a fainter one (``find_layout``); ``grid``: the
    page's darkness with its grid, where one may be printed (the rows are timed along it);
    ``fine_grid``: drawn finely enough to measure the rows' length by (the page is refused
    where it disagrees with their ends)."""
    try:
        page = find_layout(mask, *(pulse_inks or ()))
    except IntakeError as error:
        if error.reason not in ("no_layout", "unsupported_layout"):
            raise
        raise why_no_layout(mask, error) from None
    untimed = [row for row in page.rows if not row.knots]  # by separators (``find_layout``)
    length = None  # s of paper the untimed rows span by the grid under them
    if grid is not None:
        timed, length = time_rows_on_grid(grid, untimed)
        page.warnings += timed + level_rows_on_grid(grid, mask, page.rows)
    calibrated = any(row.calibrated for row in page.rows)
    signal = read_signal(mask, darkness, page, SIGNAL_RATE_HZ, "pulse" if calibrated else "standard")
    if rows_past_pulses(signal, page):  # a pulse read as the rows' first (last) samples
        if grid is not None:  # their ends moved: their knots were placed between the old ones
            length = time_rows_on_grid(grid, untimed)[1]
        signal = read_signal(mask, darkness, page, SIGNAL_RATE_HZ, "pulse" if calibrated else "standard")
        page.warnings.append("calibration pulses joined to the trace: the rows' time axes start past them")
    if fine_grid:
        check_row_length(length)
    info.update(
        layout=page.layout,
        rhythm_leads=list(page.rhythm_leads),
        rotation_deg=round(angle, 2),
        gain_mm_per_mv=round(page.gain_mm_per_mv, 2),
        gain_source=signal.gain_source,
        paper_speed_mm_s=PAPER_SPEED_MM_S,
    )
    info["warnings"] += page.warnings
    if confidence < 1.3 and abs(angle) > 0.5:
        info["warnings"].append("rotation estimate uncertain")
    return signal, LevelledPage(darkness, page)


def _from_waveform(waveform: Waveform, data: bytes, info: dict, limits: Limits) -> EcgSignal:
    warnings = []
    if waveform.derived:
        warnings.append(f"derived from leads I and II: {', '.join(waveform.derived)}")
    # A waveform `ecgscreen digitize` wrote says which samples were printed: the rest is NaN.
    signal = read_digitised(data, limits)
    info.update(layout="waveform", rotation_deg=0.0, grid="none", gain_source="waveform",
                sample_rate_hz=waveform.sample_rate)  # fmt: skip
    if signal.duration_s < 10.0:
        warnings.append(f"recording lasts {signal.duration_s:.1f} s; panels after that stay blank")
    info["warnings"] += warnings
    signal.warnings += warnings
    return signal


def read_page(data: bytes, limits: Limits = DEFAULT_LIMITS, segmenter: Segmenter | None = None) -> Reading:
    """What one ECG file holds, read into a 12-lead signal and judged lead by lead; an
    ``IntakeError`` only when nothing could be read (the judge's refusal waits in
    ``reading.verdict`` so that what was read can still be shown). Raster pages go through
    ``segmenter`` (default: ``segment.default_segmenter()``, in this process)."""
    if len(data) > limits.max_bytes:
        raise IntakeError(
            "too_large",
            f"the file is {len(data) / 2**20:.1f} MiB; the limit is {limits.max_bytes / 2**20:.0f} MiB",
        )
    fmt = sniff(data)
    segmenter = segmenter if segmenter is not None else default_segmenter()
    info: dict = {"source_format": fmt, "warnings": []}
    page = None
    if fmt == "dicom":
        content = read_dicom(data, limits)
        info["source_format"] = f"dicom-{content.kind}"
        if content.kind == "waveform":
            signal = _from_waveform(content.waveform, data, info, limits)
        elif content.kind == "pdf":
            signal, page = _from_pdf(content.pdf, info, limits, segmenter)
        else:
            signal, page = _from_printout(content.image, info, segmenter)
    elif fmt == "pdf":
        signal, page = _from_pdf(data, info, limits, segmenter)
    else:
        signal, page = _from_printout(decode_image(data, fmt, limits), info, segmenter)
    if info.get("layout") != "waveform":
        cut = cut_pulse_steps(signal)
        if cut:
            info["warnings"].append(f"calibration pulse read as trace, cut from: {', '.join(cut)}")
        cut = cut_grid_sawtooth(signal)
        if cut:
            info["warnings"].append(f"grid read as trace, cut from: {', '.join(cut)}")
        cut = cut_edge_strokes(signal)
        if cut:
            info["warnings"].append(f"a stroke at a lead's edge read as trace, cut from: {', '.join(cut)}")
    verdict = judge(signal)
    info.update(quality=verdict.quality, heart_rate_bpm=verdict.heart_rate_bpm, leads=verdict.to_dict())
    info["warnings"] += verdict.warnings
    return Reading(signal, info, page, verdict)


def accept(reading: Reading) -> None:
    """Raise the judge's refusal, or leave the doubtful leads blank (NaN) so the model sees
    only what was read plausibly."""
    if reading.verdict.refusal is not None:
        raise reading.verdict.refusal
    for lead in LEADS:
        if reading.verdict.leads[lead].status != "read":
            reading.signal.values[LEADS.index(lead)] = np.nan


def read_ecg(
    data: bytes, limits: Limits = DEFAULT_LIMITS, segmenter: Segmenter | None = None
) -> tuple[EcgSignal, dict]:
    """The 12-lead signal of one ECG file and the info record, or an ``IntakeError``."""
    reading = read_page(data, limits, segmenter)
    accept(reading)
    return reading.signal, reading.info


def preprocess(
    data: bytes,
    size: int = CANONICAL_SIZE,
    limits: Limits = DEFAULT_LIMITS,
    segmenter: Segmenter | None = None,
) -> Preprocessed:
    """The canonical model input of one ECG file, or an ``IntakeError`` that says why not:
    file -> 12-lead signal, judged (``read_page``) -> canonical image (``canonical.paint``)."""
    start = time.perf_counter()
    return to_canonical(read_page(data, limits, segmenter), size, start)


def to_canonical(reading: Reading, size: int = CANONICAL_SIZE, start: float | None = None) -> Preprocessed:
    """The canonical model input of an accepted ``reading`` (``accept`` raises the judge's
    refusal); ``start`` (``time.perf_counter()``) times it in the info record."""
    accept(reading)
    image = canonical.paint(reading.signal, size)
    if start is not None:
        reading.info["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return Preprocessed(image, reading.info, reading.signal)
