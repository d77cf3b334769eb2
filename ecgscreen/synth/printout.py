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
    "PAPERS",
    "PULSE_PLACES",
    "SEPARATORS",
    "MINOR_STYLES",
    "PageDesign",
    "GRIDS",
    "GRID_BOX_MM",
    "FURNITURE",
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
    "orange": ((253, 222, 190), (244, 162, 92)),
    "blue": ((206, 222, 246), (118, 156, 220)),
    "grey": ((222, 222, 222), (158, 158, 158)),
    "black": ((190, 190, 190), (105, 105, 105)),
}
GRIDS = tuple(GRID_COLORS)
PAPERS = {"A4": PAGE_MM, "Letter": (279.4, 215.9)}  # landscape, mm
# Before the trace, joined to its start, after its end (apart), joined to its end.
PULSE_PLACES = ("start", "joined", "end", "end-joined")
# What marks a lead change within a row: a tick above the trace, a dashed line the row's
# height, a dotted line down through every row of leads (as Philips-style carts print it),
# a gap in the trace, nothing.
SEPARATORS = ("tick", "dashed", "dotted", "gap", "none")
MINOR_STYLES = ("solid", "dotted", "none")  # the 1 mm grid: lines, dots at the crossings, none
LABEL_PLACES = ("above", "touching", "below")


@dataclass(frozen=True)
class PageDesign:
    """A cart's page: where the rows sit and what else it prints. The defaults are the one
    page the generator drew first (A4, a 40 mm header, rows over the whole ruled area, t = 0
    at 27 mm); ``generate.draw_design`` draws the world's variety around it.

    ``rows_box``: top and bottom (mm) of the band the rows share (``None``: the ruled area).
    ``strip_spacing``: a rhythm strip's distance below the row above it, in row pitches.
    ``crop_mm``: the page height kept, as a screenshot cropped below the rows.
    ``furniture``: what else is printed: ``measurements`` (intervals and axes), ``interpretation``,
    ``device`` (speed, gain and filter line), ``footer``, ``qr``, ``barcode``.
    """

    paper: str = "A4"
    grid_box: tuple[float, float, float, float] = GRID_BOX_MM
    trace_x0: float = TRACE_X0_MM
    rows_box: tuple[float, float] | None = None
    strip_spacing: float = 1.0
    pulse: str = "start"
    separators: str = "tick"
    minor: str = "solid"
    minor_mm: float = 0.1
    major_mm: float = 0.2
    trace_mm: float = 0.3
    ink: tuple[int, int, int] = INK
    frame: bool = False
    crop_mm: float | None = None
    header: bool = True
    furniture: tuple[str, ...] = ()
    text_mm: float = 3.2
    seed: int = 0  # the QR code's modules, the barcode's bars, the measurements' numbers

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("paper", self.paper, PAPERS),
            ("pulse", self.pulse, PULSE_PLACES),
            ("separators", self.separators, SEPARATORS),
            ("minor", self.minor, MINOR_STYLES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        unknown = set(self.furniture) - set(FURNITURE)
        if unknown:
            raise ValueError(f"unknown furniture {sorted(unknown)}; expected some of {', '.join(FURNITURE)}")

    @property
    def size_mm(self) -> tuple[float, float]:
        width, height = PAPERS[self.paper]
        return width, self.crop_mm or height


FURNITURE = ("measurements", "interpretation", "device", "footer", "qr", "barcode")


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
    design: PageDesign = PageDesign()

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
        if not 0 < self.paper_speed * DURATION_S <= self.design.grid_box[2] - self.design.trace_x0:
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
    minor_style: str = "solid"  # MINOR_STYLES
    minor_mm: float = 0.1  # line widths
    major_mm: float = 0.2


@dataclass
class Page:
    size_mm: tuple[float, float] = PAGE_MM
    grid: Grid | None = None
    lines: list[Polyline] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)


def row_baselines_mm(
    n_rows: int, band: tuple[float, float] | None = None, strips: int = 0, strip_spacing: float = 1.0
) -> np.ndarray:
    """Vertical position of each row's isoelectric line (slightly below the row's middle:
    QRS complexes point up more than down). ``band``: the rows' top and bottom (default the
    first page's ruled area); the last ``strips`` rows are rhythm strips ``strip_spacing``
    pitches below the row above them."""
    top, bottom = band or (GRID_BOX_MM[1], GRID_BOX_MM[3])
    steps = np.ones(n_rows)
    if strips:
        steps[n_rows - strips :] = strip_spacing
    pitch = (bottom - top) / (steps[1:].sum() + 1.0)
    return top + pitch * (0.55 + np.concatenate([[0.0], np.cumsum(steps[1:])]))


def _calibration_pulse(
    x0: float, baseline: float, gain: float, speed: float, lead_mm: float = 2.0
) -> np.ndarray:
    """The 1 mV, 0.2 s pulse rising at ``x0``, with ``lead_mm`` of baseline either side."""
    width = 0.2 * speed
    top = baseline - gain  # 1 mV
    return np.array([
        [x0 - lead_mm, baseline], [x0, baseline], [x0, top], [x0 + width, top],
        [x0 + width, baseline], [x0 + width + lead_mm, baseline],
    ])  # fmt: skip


def _pulse(design: PageDesign, baseline: float, gain: float, speed: float) -> Polyline:
    x0 = design.trace_x0
    if design.pulse == "start":
        rise = x0 - 9.0  # the first page's place: 18 mm for t = 0 at 27 mm
    elif design.pulse == "joined":  # the pulse's baseline runs into the trace's first sample
        rise = x0 - 0.2 * speed - 1.0
        return Polyline(
            _calibration_pulse(rise, baseline, gain, speed, 1.0), design.trace_mm, design.ink, "pulse"
        )
    elif design.pulse == "end":  # after the row's last sample, 1 mm apart
        rise = x0 + DURATION_S * speed + 3.0
    else:  # after the row's last sample, its baseline running on from it
        rise = x0 + DURATION_S * speed + 2.0
    return Polyline(_calibration_pulse(rise, baseline, gain, speed), design.trace_mm, design.ink, "pulse")


def _separator(design: PageDesign, x: float, baseline: float, pitch: float) -> list[Polyline]:
    if design.separators == "tick":
        tick = np.array([[x, baseline - 0.3 * pitch], [x, baseline - 0.22 * pitch]])
        return [Polyline(tick, 0.3, design.ink, kind="separator")]
    if design.separators == "dashed":  # a dashed line the row's height: 1 mm dashes every 2 mm
        return _broken_line(design, x, baseline - 0.45 * pitch, baseline + 0.4 * pitch, 2.0, 1.0)
    return []


def _broken_line(
    design: PageDesign, x: float, top: float, bottom: float, step: float, dash: float
) -> list[Polyline]:
    """A vertical line from ``top`` to ``bottom`` (mm) of ``dash`` mm strokes every ``step`` mm."""
    ys = np.arange(top, bottom, step)
    return [Polyline(np.array([[x, y], [x, y + dash]]), 0.2, design.ink, kind="separator") for y in ys]


def _furniture(page: Page, design: PageDesign, style: PrintStyle, header: Header) -> None:
    """Header text, measurement and interpretation blocks, device line, footer, QR code and
    barcode, each where carts print them (above the ruled area, or below it)."""
    width, height = design.size_mm
    x0, y0, x1, y1 = design.grid_box
    size = design.text_mm
    rng = np.random.default_rng([design.seed, 7])
    if design.header:
        for i, line in enumerate(header.lines()):
            if 4.0 + (1.6 * size + 0.5) * (i + 1) < y0:
                page.texts.append(Text(x0 + 2.0, 4.0 + (1.6 * size + 0.5) * i, line, size + 0.3))
    right = x1
    if "qr" in design.furniture and y0 > 22.0:  # a QR code of 21x21 modules, top right
        side = min(y0 - 6.0, 20.0)
        module = side / 21
        bits = rng.random((21, 21)) < 0.5
        for finder in ((0, 0), (0, 14), (14, 0)):  # the three finder squares
            r, c = finder
            bits[r : r + 7, c : c + 7] = True
            bits[r + 1 : r + 6, c + 1 : c + 6] = False
            bits[r + 2 : r + 5, c + 2 : c + 5] = True
        left, top = right - side, 3.0
        for r, c in zip(*np.nonzero(bits), strict=True):
            y = top + (r + 0.5) * module
            page.lines.append(Polyline(np.array([[left + c * module, y], [left + (c + 1) * module, y]]),
                                       module, (0, 0, 0), kind="text"))  # fmt: skip
        right = left - 4.0
    if "barcode" in design.furniture and y0 > 16.0:
        widths = rng.choice([0.3, 0.6, 0.9], size=40)
        x, top, bottom = right - float(widths.sum()) * 1.6, 3.0, min(y0 - 4.0, 14.0)
        for k, w in enumerate(widths):
            if k % 2 == 0:
                page.lines.append(
                    Polyline(np.array([[x + w / 2, top], [x + w / 2, bottom]]), float(w), (0, 0, 0), "text")
                )
            x += 1.6 * w
        right = x - float(widths.sum()) * 1.6 - 4.0
    lines_above: list[str] = []
    if "measurements" in design.furniture:
        pr, qrs, qt = (int(v) for v in rng.integers([120, 80, 340], [210, 130, 460]))
        lines_above += [f"Vent. rate {header.heart_rate} BPM   PR int {pr} ms   QRS dur {qrs} ms",
                        f"QT/QTc {qt}/{qt + int(rng.integers(-20, 40))} ms   P-R-T axes {rng.integers(-30, 90)} "
                        f"{rng.integers(-30, 90)} {rng.integers(-30, 90)}"]  # fmt: skip
    if "interpretation" in design.furniture:
        lines_above += [str(rng.choice(["Sinus rhythm", "Sinus bradycardia", "Sinus tachycardia"])),
                        str(rng.choice(["Otherwise normal ECG", "Borderline ECG", "Unconfirmed report"]))]  # fmt: skip
    for i, line in enumerate(lines_above):
        y = 4.0 + (1.6 * size + 0.5) * i
        if y + 1.6 * size < y0 and x0 + 130.0 < right:
            page.texts.append(Text(x0 + 130.0, y, line, size))
    if "device" in design.furniture:
        text = f"{style.paper_speed:g} mm/s   {style.gain_mm_per_mv:g} mm/mV   0.05-150 Hz   ~ 50 Hz"
        y = y1 + 1.0 if height - y1 > 2.0 * size else y0 - 1.5 * size
        if y > 1.0:
            page.texts.append(Text(x0 + 1.0, y, text, size))
    if "footer" in design.furniture and height - y1 > 3.5 * size:
        page.texts.append(
            Text(
                x0 + 1.0,
                y1 + 1.8 * size,
                "Referred by:            Confirmed by:            Page 1 of 1",
                size,
            )
        )
    if design.frame:  # a thin frame around the whole page
        m = 1.5
        box = np.array([[m, m], [width - m, m], [width - m, height - m], [m, height - m], [m, m]])
        page.lines.append(Polyline(box, 0.3, (40, 40, 40), kind="text"))


def compose_page(signal: np.ndarray, style: PrintStyle, header: Header) -> Page:
    """Lay out a ``(12, N)`` signal in mV sampled at ``SAMPLE_RATE`` as a printed page."""
    if signal.shape[0] != len(LEADS):
        raise ValueError(f"expected 12 leads, got an array of shape {signal.shape}")
    design = style.design
    colors = GRID_COLORS[style.grid]
    width, height = design.size_mm
    box = design.grid_box
    box = (box[0], box[1], box[2], min(box[3], height))
    grid = Grid(box, *colors, design.minor, design.minor_mm, design.major_mm) if colors else None
    page = Page(size_mm=(width, height), grid=grid)
    if design == PageDesign():  # the first page: its header and speed/gain line, as drawn then
        for i, line in enumerate(header.lines()):
            page.texts.append(Text(12.0, 10.0 + 6.5 * i, line, 3.5))
        page.texts.append(
            Text(200.0, 30.0, f"{style.paper_speed:g} mm/s   {style.gain_mm_per_mv:g} mm/mV", 3.2)
        )
    else:
        _furniture(page, design, style, header)

    rows = layout_rows(style.layout, style.strip_leads)
    gain, speed = style.gain_mm_per_mv, style.paper_speed
    strips = len(style.strip_leads)
    # A 3x4 page without rhythm strip keeps the rows where a 3x4+1 cart prints them and
    # leaves the strip's place empty (as a screenshot cropped below row 3 does).
    places = len(rows) + 1 if style.layout == "3x4" else len(rows)
    band = design.rows_box or (box[1], design.grid_box[3])
    baselines = row_baselines_mm(places, band, strips, design.strip_spacing)
    pitch = (band[1] - band[0]) / places
    x0 = design.trace_x0
    for baseline, row in zip(baselines[: len(rows)], rows, strict=True):
        if style.calibration:
            page.lines.append(_pulse(design, baseline, gain, speed))
        for k, segment in enumerate(row):
            lo, hi = (int(round(t * SAMPLE_RATE)) for t in (segment.t0, segment.t1))
            if design.separators == "gap" and len(row) > 1:  # a few samples left out at each change
                lo, hi = (lo + 10 if k > 0 else lo), (hi - 10 if k < len(row) - 1 else hi)
            samples = np.arange(lo, min(hi + 1, signal.shape[1]))
            values = signal[LEADS.index(segment.lead), samples]
            x = x0 + samples / SAMPLE_RATE * speed
            points = np.stack([x, baseline - values * gain], axis=1)
            page.lines.append(Polyline(points, design.trace_mm, design.ink, kind="trace", lead=segment.lead))
            label_x = x0 + segment.t0 * speed + 1.0
            first_page = design == PageDesign()
            if k == 0 and (
                first_page or (design.pulse == "start" and style.calibration and x0 - box[0] >= 12.0)
            ):
                # first lead of a row: label left of the calibration pulse
                page.texts.append(Text(box[0] + 0.5, baseline - 4.5, segment.lead, kind="lead_label"))
                continue
            if style.labels == "above":
                label_y = baseline - 0.42 * pitch
            elif style.labels == "touching":
                label_y = baseline - 4.0
            else:
                label_y = baseline + 0.18 * pitch
            page.texts.append(Text(label_x, label_y, segment.lead, design.text_mm, kind="lead_label"))
            if k > 0:
                page.lines.extend(_separator(design, x0 + segment.t0 * speed, baseline, pitch))
    block = [b for b, row in zip(baselines[: len(rows)], rows, strict=True) if len(row) > 1]
    if design.separators == "dotted" and block:  # one line through every row of leads
        for segment in rows[0][1:]:
            x = x0 + segment.t0 * speed
            # dots 0.3 mm long every 1 mm
            page.lines.extend(
                _broken_line(design, x, block[0] - 0.45 * pitch, block[-1] + 0.4 * pitch, 1.0, 0.3)
            )
    return page
