"""The world's page variety: how carts, exports and screenshots lay out and print an ECG.

``draw_design`` draws a ``printout.PageDesign`` (paper, margins, where t = 0 sits, row band,
pulse place, separators, grid line styles, trace width and ink, header and furniture, a page
frame, a screenshot's crop), ``draw_palette`` a grid colour beyond the first four and
``draw_dpi`` a resolution between a 72 dpi screenshot and a 600 dpi scan. Each takes the
record's random stream after everything the generator drew before them, so older draws (the
signal, format, layout) stay as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..leads import DURATION_S
from .printout import INK, PAPERS, PageDesign, PrintStyle, row_baselines_mm

__all__ = ["draw_design", "draw_palette", "draw_dpi", "WORLD_GRIDS", "WORLD_DPIS"]

WORLD_GRIDS = {"orange": 0.3, "blue": 0.3, "grey": 0.25, "black": 0.15}
WORLD_DPIS = {72: 0.25, 96: 0.25, 200: 0.25, 300: 0.2, 600: 0.05}
_INKS = {INK: 0.8, (0, 0, 0): 0.2}  # coloured (blue) ink is left out: intake discounts colour as grid
_FURNITURE_SHARE = {
    "measurements": 0.35, "interpretation": 0.3, "device": 0.4, "footer": 0.25, "qr": 0.15, "barcode": 0.1,
}  # fmt: skip


def _choose(rng: np.random.Generator, weights: dict):
    keys = list(weights)
    p = np.array(list(weights.values()), dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def draw_design(rng: np.random.Generator, style: PrintStyle) -> PageDesign:
    """A random page for ``style``'s layout: about one page in five stays the first page."""
    if rng.random() < 0.2:
        return PageDesign(seed=int(rng.integers(2**31)))
    paper = "Letter" if rng.random() < 0.3 else "A4"
    width, height = PAPERS[paper]
    header = bool(rng.random() < 0.85)
    furniture = tuple(name for name, share in _FURNITURE_SHARE.items() if rng.random() < share)
    top = float(rng.uniform(18.0, 55.0)) if header or furniture else float(rng.uniform(3.0, 12.0))
    if "qr" in furniture:
        top = max(top, 28.0)
    left, right, bottom = (float(v) for v in rng.uniform([3.0, 3.0, 3.0], [15.0, 12.0, 22.0]))
    pulse = _choose(rng, {"start": 0.6, "joined": 0.25, "end": 0.08, "end-joined": 0.07})
    low = {"start": 12.0, "joined": 7.5, "end": 1.0, "end-joined": 1.0}[
        pulse
    ]  # mm of lead-in the pulse needs
    need = DURATION_S * style.paper_speed + low + (10.0 if pulse.startswith("end") else 0.0) + 1.0
    if width - left - right < need:  # Letter is narrow: the side margins give way
        squeeze = max(0.0, width - need - 2.0) / (left + right)
        left, right = 1.0 + left * squeeze, 1.0 + right * squeeze
    box = (left, top, width - right, height - bottom)
    room = box[2] - box[0] - (need - low - 1.0)  # mm left for the lead-in
    lead_in = float(rng.uniform(low, max(low, min(room, 26.0))))
    rows_box = (box[1] + float(rng.uniform(0.0, 8.0)), box[3] - float(rng.uniform(0.0, 8.0)))
    strip_spacing = float(rng.uniform(0.8, 1.2))
    crop = None
    if style.layout == "3x4" and rng.random() < 0.5:  # a screenshot cut below the third row
        baselines = row_baselines_mm(4, rows_box)
        crop = float(baselines[2] + 0.5 * (baselines[1] - baselines[0]))
        box = (*box[:3], crop)
    return PageDesign(
        paper=paper,
        grid_box=box,
        trace_x0=box[0] + lead_in,
        rows_box=rows_box,
        strip_spacing=strip_spacing,
        pulse=pulse,
        separators=_choose(rng, {"tick": 0.4, "dashed": 0.08, "dotted": 0.07, "gap": 0.15, "none": 0.3}),
        minor=_choose(rng, {"solid": 0.7, "dotted": 0.2, "none": 0.1}),
        minor_mm=float(rng.uniform(0.05, 0.15)),
        major_mm=float(rng.uniform(0.1, 0.4)),
        trace_mm=float(rng.uniform(0.15, 0.5)),
        ink=_choose(rng, _INKS),
        frame=bool(rng.random() < 0.15),
        crop_mm=crop,
        header=header,
        furniture=furniture,
        text_mm=float(rng.uniform(2.5, 3.6)),
        seed=int(rng.integers(2**31)),
    )


def draw_palette(rng: np.random.Generator, grid: str, grids: Sequence[str]) -> str:
    """``grid`` (one of the first four), or with probability 0.35 one of the world's others
    that ``grids`` allows."""
    others = {name: w for name, w in WORLD_GRIDS.items() if name in grids}
    if rng.random() < 0.35 and others:
        return _choose(rng, others)
    return grid


def draw_dpi(rng: np.random.Generator, dpi: int) -> int:
    """``dpi`` (100-150), or with probability 0.3 a screenshot's 72-96 or a scan's 200-600."""
    return int(_choose(rng, WORLD_DPIS)) if rng.random() < 0.3 else dpi
