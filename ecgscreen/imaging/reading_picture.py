"""The reading picture: what intake read, drawn over the page it read it from.

A clinician must see at a glance whether the machine read the paper right. The levelled page
is drawn faint, and every digitised lead over it in a strong colour by the judge's status
(blue: read; orange: doubtful; a red label where a lead is missing), each labelled with its
name and status. A file with no page to draw on (a waveform, a vector PDF read from its
polylines) gets the signal drawn as a 3x4 printout. The picture holds no text from the file.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..leads import LEADS, layout_rows
from .digitize import page_clock
from .pipeline import Reading

__all__ = ["draw_reading", "reading_png", "STATUS_COLOURS"]

STATUS_COLOURS = {"read": (0, 84, 255), "doubtful": (255, 140, 0), "missing": (220, 0, 0)}
MAX_WIDTH_PX = 1600


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _status(reading: Reading, lead: str) -> tuple[str, str]:
    verdict = reading.verdict.leads[lead] if reading.verdict else None
    return (verdict.status, verdict.reason) if verdict else ("read", "")


def _legend(draw: ImageDraw.ImageDraw, reading: Reading, width: int, size: int) -> None:
    verdict = reading.verdict
    refusal = verdict.refusal if verdict else None
    counts = {s: sum(_status(reading, lead)[0] == s for lead in LEADS) for s in STATUS_COLOURS}
    text = "  ".join(f"{s}: {n}" for s, n in counts.items())
    quality = f"quality {verdict.quality:.2f}" if verdict else ""
    head = f"what was read  ·  {text}  ·  {quality}"
    if refusal is not None:
        head += f"  ·  refused: {refusal.reason}"
    draw.rectangle([0, 0, width, int(size * 1.8)], fill=(255, 255, 255))
    draw.text(
        (8, int(size * 0.35)), head, fill=(0, 0, 0) if refusal is None else (200, 0, 0), font=_font(size)
    )


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], lead: str, status: str, size: int) -> None:
    text = lead if status == "read" else f"{lead} {status}"
    box = draw.textbbox(xy, text, font=_font(size))
    draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=(255, 255, 255))
    draw.text(xy, text, fill=STATUS_COLOURS[status], font=_font(size))


def _samples(signal, t0: float, t1: float) -> np.ndarray:
    """Sample indices of ``[t0, t1)`` seconds of ``signal``."""
    rate = signal.sample_rate
    return np.arange(int(np.ceil(t0 * rate)), min(int(np.ceil(t1 * rate)), signal.values.shape[1]))


def _trace(draw: ImageDraw.ImageDraw, x: np.ndarray, y: np.ndarray, colour, width: int) -> None:
    """One polyline per unbroken stretch of ``y``: a gap in the reading stays a gap."""
    finite = np.isfinite(y)
    breaks = np.flatnonzero(np.diff(finite.astype(np.int8))) + 1
    for part_x, part_y, ok in zip(
        np.split(x, breaks), np.split(y, breaks), np.split(finite, breaks), strict=True
    ):
        if ok[0] and part_x.size > 1:
            draw.line(list(zip(part_x.tolist(), part_y.tolist(), strict=True)), fill=colour, width=width)


def _on_page(reading: Reading) -> Image.Image:
    """The traces drawn over the levelled page, where intake found each lead."""
    page = reading.page
    scale = min(1.0, MAX_WIDTH_PX / page.darkness.shape[1])
    faint = np.round(255 - 150 * np.clip(page.darkness, 0, 1)).astype(np.uint8)
    image = Image.fromarray(faint).convert("RGB")
    layout = page.layout
    signal = reading.signal
    rate = signal.sample_rate
    size = max(11, int(3.2 * layout.px_per_mm))
    width = max(1, int(round(0.35 * layout.px_per_mm)))
    draw = ImageDraw.Draw(image)
    labels = []
    clock = page_clock(layout)
    for row, segments in zip(layout.rows, layout_rows(layout.layout, layout.rhythm_leads), strict=True):
        x_at = _columns_of_time(clock, row)
        for segment in segments:
            lead = segment.lead
            if signal.spans.get(lead) != (segment.t0, segment.t1):
                continue  # printed twice: the other print is the one read
            status, _ = _status(reading, lead)
            k = _samples(signal, segment.t0, segment.t1)
            x = x_at(k / rate)
            _trace(
                draw, x, row.baseline(x) - signal.lead(lead)[k] * row.px_per_mv, STATUS_COLOURS[status], width
            )
            x0 = float(x_at(np.array([segment.t0]))[0])
            labels.append(((x0 + 3, float(row.baseline(np.array([x0]))[0]) - 2.2 * size), lead, status))
    for xy, lead, status in labels:
        _label(draw, xy, lead, status, size)
    _legend(draw, reading, image.width, size)
    if scale < 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS)
    return image


def _columns_of_time(clock, row):
    """``t (s) -> image column`` on ``row``: the inverse of the clock the signal was read
    with (``digitize.page_clock``), so each sample is drawn where it was read from. A
    photo's perspective bends a row's time axis by up to 0.1 s from a straight one."""
    xs = np.arange(np.floor(row.x_start) - 1, np.ceil(row.x_end) + 2, dtype=np.float64)
    times = clock(row, xs, row.baseline(xs))
    return lambda t: np.interp(t, times, xs)


def _as_printout(reading: Reading) -> Image.Image:
    """The signal drawn as a 3x4+1 printout on plain paper (no page to draw over)."""
    px_per_mm, gain = 5.0, 10.0
    width, height = int(270 * px_per_mm), int(190 * px_per_mm)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    signal, rate = reading.signal, reading.signal.sample_rate
    size = int(3.2 * px_per_mm)
    x_origin = 10 * px_per_mm
    for r, segments in enumerate(layout_rows("3x4+1")):
        baseline = (35 + 40 * r) * px_per_mm
        for segment in segments:
            status, _ = _status(reading, segment.lead)
            k = _samples(signal, segment.t0, segment.t1)
            values = signal.lead(segment.lead)[k]
            level = float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0
            x = x_origin + k / rate * 25 * px_per_mm
            _trace(draw, x, baseline - (values - level) * gain * px_per_mm, STATUS_COLOURS[status], 2)
            _label(
                draw,
                (x_origin + segment.t0 * 25 * px_per_mm + 3, baseline - 16 * px_per_mm),
                segment.lead,
                status,
                size,
            )
    _legend(draw, reading, width, size)
    return image


def draw_reading(reading: Reading) -> Image.Image:
    """The picture of what intake read from one file (see the module's docstring)."""
    return _on_page(reading) if reading.page is not None else _as_printout(reading)


def reading_png(reading: Reading) -> bytes:
    buffer = io.BytesIO()
    draw_reading(reading).save(buffer, format="PNG", optimize=False, compress_level=3)
    return buffer.getvalue()
