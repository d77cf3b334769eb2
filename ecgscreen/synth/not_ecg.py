"""Pictures that are not a complete, readable 12-lead ECG, with the refusal each must get.

A screening result for a page of text, a chart or half an ECG looks exactly like a real one
in a report, so the service must refuse them. This corpus is the yardstick: the tests send
it through the served stack and ``python -m bench refusals`` prints its table. Every entry
is built from scratch, deterministically: ``(name, PNG or JPEG bytes, reason)``.

Kinds: not an ECG at all (noise, text, a lab table, blank paper, a line chart, a photo,
scribbles), ECG-shaped but not a heart's signal (random walks, sine waves and EEG-like
channels laid out like a printout), an ECG page with no signal (grid only, flat lines), and
an ECG with too few leads (half a page, one rhythm strip, two rows), and an ECG page whose
layout reads but four of whose leads are not a heart's.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..leads import DURATION_S, LEADS
from .generate import make_record
from .printout import PrintStyle, compose_page
from .raster_writer import rasterize
from .signals import SAMPLE_RATE

__all__ = ["not_ecg_corpus", "CORPUS_REASONS"]

CORPUS_REASONS = ("not_an_ecg", "no_signal", "incomplete_ecg", "unreadable")
_PAGE_PX = (1169, 827)  # A4 landscape at 100 dpi
_DPI = 100
_WORDS = (
    "the quick brown fox jumps over the lazy dog while patients wait for results in clinic "
    "haemoglobin creatinine sodium potassium glucose report confirmed by physician"
).split()


def _encode(image: Image.Image | np.ndarray, fmt: str = "PNG") -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt)
    return buffer.getvalue()


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", _PAGE_PX, (255, 255, 255))
    return image, ImageDraw.Draw(image)


def _text_page(rng: np.random.Generator) -> Image.Image:
    image, draw = _canvas()
    font = ImageFont.load_default(size=22)
    for y in range(40, _PAGE_PX[1] - 40, 34):
        words = rng.choice(_WORDS, size=int(rng.integers(9, 14)))
        draw.text((50, y), " ".join(words).capitalize() + ".", fill=(20, 20, 20), font=font)
    return image


def _lab_table(rng: np.random.Generator) -> Image.Image:
    image, draw = _canvas()
    font = ImageFont.load_default(size=20)
    columns = (60, 360, 560, 760, 960)
    for r, y in enumerate(range(60, 760, 40)):
        draw.line([(50, y), (1120, y)], fill=(60, 60, 60), width=1)
        for c, x in enumerate(columns):
            text = str(rng.choice(_WORDS)) if c == 0 else f"{rng.uniform(0.1, 200):.1f}"
            draw.text(
                (x, y + 9), text if r else ("TEST" if c == 0 else f"COL {c}"), fill=(0, 0, 0), font=font
            )
    for x in (*columns, 1120):
        draw.line([(x - 10, 60), (x - 10, 740)], fill=(60, 60, 60), width=1)
    return image


def _line_chart(rng: np.random.Generator) -> Image.Image:
    image, draw = _canvas()
    draw.line([(100, 700), (1100, 700)], fill=(0, 0, 0), width=2)  # axes
    draw.line([(100, 700), (100, 80)], fill=(0, 0, 0), width=2)
    font = ImageFont.load_default(size=18)
    for k in range(6):
        draw.text((40, 690 - 120 * k), f"{20 * k}", fill=(0, 0, 0), font=font)
        draw.line([(100, 700 - 120 * k), (1100, 700 - 120 * k)], fill=(215, 215, 215), width=1)
    x = np.linspace(110, 1090, 60)
    for colour in ((30, 30, 200), (200, 40, 40), (20, 140, 20)):
        y = 400 + np.cumsum(rng.normal(0, 18, x.size))
        draw.line(list(zip(x.tolist(), np.clip(y, 90, 690).tolist(), strict=True)), fill=colour, width=3)
    return image


def _photo(rng: np.random.Generator) -> np.ndarray:
    """Smooth colour blobs and gradients: a holiday snap has no trace rows."""
    yy, xx = np.mgrid[0 : _PAGE_PX[1], 0 : _PAGE_PX[0]] / 300.0
    image = np.zeros((*yy.shape, 3))
    for c in range(3):
        for _ in range(6):
            cx, cy, f = rng.uniform(0, 4), rng.uniform(0, 3), rng.uniform(0.5, 3)
            image[..., c] += np.sin(f * (xx - cx)) * np.cos(f * (yy - cy))
    return ((image - image.min()) / np.ptp(image) * 255).astype(np.uint8)


def _scribbles(rng: np.random.Generator) -> Image.Image:
    image, draw = _canvas()
    for _ in range(25):
        points = np.cumsum(rng.normal(0, 25, (40, 2)), axis=0) + rng.uniform((100, 100), (1050, 700))
        draw.line([tuple(p) for p in points.tolist()], fill=(10, 10, 60), width=int(rng.integers(2, 5)))
    return image


def _printed(
    signal: np.ndarray, layout: str = "3x4+1", calibration: bool = True, trace: bool = True
) -> Image.Image:
    """``signal`` (12, N) mV laid out as a cart would print it, on a red grid (without its
    lines when not ``trace``: the paper, labels and header only)."""
    record = make_record(4, 0)
    style = PrintStyle(layout=layout, grid="red", calibration=calibration)
    page = compose_page(signal, style, record.header)
    if not trace:
        page.lines.clear()
    return rasterize(page, _DPI)


def _samples() -> int:
    return int(DURATION_S * SAMPLE_RATE) + 1


def _random_walks(rng: np.random.Generator) -> np.ndarray:
    walks = np.cumsum(rng.normal(0, 1, (12, _samples())), axis=1)
    walks -= walks.mean(axis=1, keepdims=True)
    return 0.8 * walks / np.abs(walks).max(axis=1, keepdims=True)


def _sines(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(_samples()) / SAMPLE_RATE
    frequency = rng.uniform(0.9, 1.6)
    return np.stack([0.8 * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 0.3)) for _ in range(12)])


def _eeg_like(rng: np.random.Generator) -> np.ndarray:
    """1/f background with bursts of 10 Hz alpha: twelve channels of an EEG montage."""
    n = _samples()
    spectrum = np.fft.rfft(rng.normal(size=(12, n)), axis=1)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    background = np.fft.irfft(spectrum / np.maximum(f, 0.5), n=n, axis=1)
    t = np.arange(n) / SAMPLE_RATE
    alpha = np.sin(2 * np.pi * 10 * t) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6, (12, 1)))
    )
    eeg = background / background.std(axis=1, keepdims=True) + 0.8 * alpha
    return 0.3 * eeg / eeg.std(axis=1, keepdims=True)


def _scrambled(ecg: np.ndarray, rng: np.random.Generator, leads: tuple[str, ...]) -> np.ndarray:
    """``ecg`` with ``leads`` swapped for random walks of the same size: a page whose layout
    reads, but too many of whose leads no heart drew."""
    out = ecg.copy()
    walks = _random_walks(rng)[:, : ecg.shape[1]]
    for lead in leads:
        i = LEADS.index(lead)
        out[i] = walks[i] * np.ptp(ecg[i]) / 1.6
    return out


def _crop_rows(image: Image.Image, top: float, bottom: float) -> Image.Image:
    """The part of a printed page between ``top`` and ``bottom`` (fractions of its height)."""
    return image.crop((0, int(top * image.height), image.width, int(bottom * image.height)))


@lru_cache(maxsize=1)
def not_ecg_corpus(seed: int = 0) -> tuple[tuple[str, bytes, str], ...]:
    """Every kind of picture the service must refuse, with the refusal reason it must get."""
    rng = np.random.default_rng(seed)
    ecg = make_record(seed + 4, 0).signal  # a real-looking ECG, for the incomplete pages
    page = _printed(ecg)
    noise = rng.integers(0, 256, (_PAGE_PX[1], _PAGE_PX[0], 3), dtype=np.uint8)
    flat = np.zeros_like(ecg)
    grid_only = _printed(flat, calibration=False, trace=False)
    return (
        ("uniform-noise", _encode(noise), "not_an_ecg"),
        ("text-page", _encode(_text_page(rng)), "not_an_ecg"),
        ("lab-table", _encode(_lab_table(rng)), "not_an_ecg"),
        ("blank-paper", _encode(_canvas()[0]), "not_an_ecg"),
        ("ecg-paper-without-trace", _encode(grid_only), "not_an_ecg"),
        ("line-chart", _encode(_line_chart(rng)), "not_an_ecg"),
        ("photo", _encode(_photo(rng), "JPEG"), "not_an_ecg"),
        ("scribbles", _encode(_scribbles(rng)), "not_an_ecg"),
        ("random-walks-3x4", _encode(_printed(_random_walks(rng))), "not_an_ecg"),
        ("sine-waves-3x4", _encode(_printed(_sines(rng))), "not_an_ecg"),
        ("eeg-like-12-channels", _encode(_printed(_eeg_like(rng), "12x1", calibration=False)), "not_an_ecg"),
        ("flat-lines-3x4", _encode(_printed(flat)), "no_signal"),
        (
            "four-leads-scrambled",
            _encode(_printed(_scrambled(ecg, rng, ("I", "aVL", "V2", "V6")))),
            "unreadable",
        ),
        ("half-a-page", _encode(_crop_rows(page, 0.0, 0.5)), "incomplete_ecg"),
        ("one-rhythm-strip", _encode(_crop_rows(page, 0.78, 1.0)), "incomplete_ecg"),
        ("two-rows", _encode(_crop_rows(page, 0.3, 0.72)), "incomplete_ecg"),
    )
