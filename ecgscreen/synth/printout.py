"""The printed page an ECG cart produces, as vector primitives in millimetres.

``compose_page`` lays a 12-lead signal out the way carts print it (A4 landscape, 25 mm/s,
10 mm/mV, a calibration pulse at the start of each row, lead labels, a header with patient
text). The result is drawn by a backend: ``raster.rasterize`` (PNG/JPEG/DICOM-SC) or
``pdf.write_pdf`` (the vector PDF a cart writes). Coordinates: origin top left, y down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..contract import PAGE_MM, PAPER_SPEED_MM_S
from ..leads import DURATION_S, LAYOUT_GAIN_MM_PER_MV, LAYOUTS, LEADS, RHYTHM_LEADS, layout_rows
from .signals import SAMPLE_RATE

__all__ = [
    "GRID_COLORS",
    "GRIDS",
    "GRID_BOX_MM",
    "LABEL_PLACES",
    "TRACE_X0_MM",
    "PrintStyle",
    "Header",
    "Polyline",
    "Text",
    "Grid",
    "Page",
    "compose_page",
    "row_baselines_mm",
]

GRID_BOX_MM = (10.0, 40.0, 287.0, 205.0)  # x0, y0, x1, y1 of the ruled area
CAL_X_MM = 18.0  # calibration pulse: 5 mm (0.2 s) wide, 1 mV high
TRACE_X0_MM = 27.0  # where t = 0 is printed
INK = (25, 25, 30)

# (minor 1 mm lines, major 5 mm lines) as printed; "none" is plain paper.
GRID_COLORS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]] | None] = {
    "red": ((246, 176, 176), (228, 96, 96)),
    "pink": ((252, 218, 228), (243, 162, 188)),
    "green": ((196, 230, 196), (112, 186, 112)),
    "none": None,
}
GRIDS = tuple(GRID_COLORS)


LABEL_PLACES = ("above", "touching")


@dataclass(frozen=True)
class PrintStyle:
    """How a cart printed one ECG. ``gain`` defaults per layout (12x1 is printed at half gain
    so twelve rows fit on a page; at the standard 10 mm/mV its tall complexes cross into the
    neighbouring rows). ``calibration``: the 1 mV pulse before each row (some carts and
    exports leave it out). ``labels``: lead labels above the trace, or low enough to touch a
    tall first complex (as some carts print them). ``rhythm_leads``: the leads of the
    layout's full-width rhythm strips (``None``: the layout's standard, II for one strip)."""

    layout: str = "3x4+1"
    grid: str = "red"
    paper_speed: float = PAPER_SPEED_MM_S
    gain: float | None = None  # mm/mV
    calibration: bool = True
    labels: str = "above"
    rhythm_leads: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; expected one of {', '.join(LAYOUTS)}")
        if self.grid not in GRID_COLORS:
            raise ValueError(f"unknown grid {self.grid!r}; expected one of {', '.join(GRIDS)}")
        if self.labels not in LABEL_PLACES:
            raise ValueError(
                f"unknown label place {self.labels!r}; expected one of {', '.join(LABEL_PLACES)}"
            )
        if self.rhythm_leads is not None:
            strips = RHYTHM_LEADS[self.layout]
            if len(self.rhythm_leads) != len(strips) or not set(self.rhythm_leads) <= set(LEADS):
                raise ValueError(
                    f"layout {self.layout} prints {len(strips)} rhythm strip(s); got {self.rhythm_leads!r}"
                )
        if not 0 < self.paper_speed * DURATION_S <= GRID_BOX_MM[2] - TRACE_X0_MM:
            raise ValueError(f"paper speed {self.paper_speed} mm/s does not fit 10 s on the page")

    @property
    def gain_mm_per_mv(self) -> float:
        if self.gain is not None:
            return self.gain
        return LAYOUT_GAIN_MM_PER_MV[self.layout]

    @property
    def strip_leads(self) -> tuple[str, ...]:
        """The leads of the rhythm strips as printed, top to bottom."""
        return RHYTHM_LEADS[self.layout] if self.rhythm_leads is None else self.rhythm_leads


@dataclass(frozen=True)
class Header:
    """Patient text printed above the tracing (synthetic, but shaped like the real thing)."""

    name: str
    patient_id: str
    birth_date: str
    acquired: str
    sex: str
    heart_rate: int

    def lines(self) -> list[str]:
        return [
            f"Name: {self.name}    ID: {self.patient_id}    DOB: {self.birth_date}    Sex: {self.sex}",
            f"Acquired: {self.acquired}    Vent. rate: {self.heart_rate} bpm",
            "ecgscreen synthetic cart    0.05-150 Hz    SYNTHETIC - NOT A REAL PATIENT",
        ]


@dataclass(frozen=True)
class Polyline:
    points: np.ndarray  # (N, 2) mm
    width_mm: float = 0.3
    color: tuple[int, int, int] = INK
    kind: str = "trace"  # what it is, for the class masks (synth.masks): trace, pulse, separator
    lead: str | None = None  # the lead a trace draws


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # top of the text, mm
    text: str
    size_mm: float = 3.2
    kind: str = "text"  # for the class masks (synth.masks): lead_label or text


@dataclass(frozen=True)
class Grid:
    box: tuple[float, float, float, float]
    minor: tuple[int, int, int]
    major: tuple[int, int, int]


@dataclass
class Page:
    size_mm: tuple[float, float] = PAGE_MM
    grid: Grid | None = None
    lines: list[Polyline] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)


def row_baselines_mm(n_rows: int) -> np.ndarray:
    """Vertical position of each row's isoelectric line (slightly below the row's middle:
    QRS complexes point up more than down)."""
    top, bottom = GRID_BOX_MM[1], GRID_BOX_MM[3]
    pitch = (bottom - top) / n_rows
    return top + pitch * (np.arange(n_rows) + 0.55)


def _calibration_pulse(baseline: float, gain: float, speed: float) -> np.ndarray:
    x0, width = CAL_X_MM, 0.2 * speed
    top = baseline - gain  # 1 mV
    return np.array([
        [x0 - 2.0, baseline], [x0, baseline], [x0, top], [x0 + width, top],
        [x0 + width, baseline], [x0 + width + 2.0, baseline],
    ])  # fmt: skip


def compose_page(signal: np.ndarray, style: PrintStyle, header: Header) -> Page:
    """Lay out a ``(12, N)`` signal in mV sampled at ``SAMPLE_RATE`` as a printed page."""
    if signal.shape[0] != len(LEADS):
        raise ValueError(f"expected 12 leads, got an array of shape {signal.shape}")
    colors = GRID_COLORS[style.grid]
    page = Page(grid=Grid(GRID_BOX_MM, *colors) if colors else None)
    for i, line in enumerate(header.lines()):
        page.texts.append(Text(12.0, 10.0 + 6.5 * i, line, 3.5))
    page.texts.append(Text(200.0, 30.0, f"{style.paper_speed:g} mm/s   {style.gain_mm_per_mv:g} mm/mV", 3.2))

    rows = layout_rows(style.layout, style.strip_leads)
    gain, speed = style.gain_mm_per_mv, style.paper_speed
    # A 3x4 page without rhythm strip keeps the rows where a 3x4+1 cart prints them and
    # leaves the strip's place empty (as a screenshot cropped below row 3 does).
    places = len(rows) + 1 if style.layout == "3x4" else len(rows)
    pitch = (GRID_BOX_MM[3] - GRID_BOX_MM[1]) / places
    for baseline, row in zip(row_baselines_mm(places)[: len(rows)], rows, strict=True):
        if style.calibration:
            page.lines.append(Polyline(_calibration_pulse(baseline, gain, speed), kind="pulse"))
        for k, segment in enumerate(row):
            lo, hi = (int(round(t * SAMPLE_RATE)) for t in (segment.t0, segment.t1))
            samples = np.arange(lo, min(hi + 1, signal.shape[1]))
            values = signal[LEADS.index(segment.lead), samples]
            x = TRACE_X0_MM + samples / SAMPLE_RATE * speed
            points = np.stack([x, baseline - values * gain], axis=1)
            page.lines.append(Polyline(points, kind="trace", lead=segment.lead))
            if k == 0:  # first lead of a row: label left of the calibration pulse
                page.texts.append(Text(10.5, baseline - 4.5, segment.lead, kind="lead_label"))
            else:  # later leads: label above the trace, and a lead-change tick
                x = TRACE_X0_MM + segment.t0 * speed
                label_y = baseline - 0.42 * pitch if style.labels == "above" else baseline - 4.0
                page.texts.append(Text(x + 1.0, label_y, segment.lead, kind="lead_label"))
                tick = np.array([[x, baseline - 0.3 * pitch], [x, baseline - 0.22 * pitch]])
                page.lines.append(Polyline(tick, 0.3, kind="separator"))
    return page
