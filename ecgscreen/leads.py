"""The 12 leads, coronary territories, printout layouts and the canonical model input.

One place for the facts every other module shares: which lead sits where on a printed page,
which time window of each lead the canonical model input shows, and which leads face which
coronary territory.
"""

from __future__ import annotations

from dataclasses import dataclass

from .contract import CANONICAL_SIZE, GAIN_MM_PER_MV

__all__ = [
    "LEADS",
    "LIMB_LEADS",
    "PRECORDIAL_LEADS",
    "LIMB_LEAD_ANGLES_DEG",
    "TERRITORIES",
    "LAYOUTS",
    "LAYOUT_GAIN_MM_PER_MV",
    "RHYTHM_LEADS",
    "Segment",
    "layout_rows",
    "CANONICAL_COLUMNS",
    "CANONICAL_WINDOW_S",
    "canonical_window",
    "DURATION_S",
    "panel_box",
]

LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip
LIMB_LEADS = LEADS[:6]
PRECORDIAL_LEADS = LEADS[6:]

# Hexaxial reference system: the direction each limb lead looks at in the frontal plane
# (0 deg = patient's left, +90 deg = feet). A frontal-plane vector v projects on lead L as
# |v| cos(angle(v) - angle(L)), which keeps Einthoven's law (III = II - I) exact.
LIMB_LEAD_ANGLES_DEG: dict[str, float] = {
    "I": 0.0, "II": 60.0, "III": 120.0, "aVR": -150.0, "aVL": -30.0, "aVF": 90.0,
}  # fmt: skip

# Leads facing each coronary territory (as in the study's labelling of scar location).
TERRITORIES: dict[str, tuple[str, ...]] = {
    "anterior": ("V1", "V2", "V3", "V4"),
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5", "V6"),
}

DURATION_S = 10.0
# Layouts as carts print them: rows of four 2.5 s segments (3x4) or of two 5 s segments
# (6x2), each with 0-3 full-width 10 s rhythm strips below, or twelve 10 s rows (12x1).
LAYOUTS: tuple[str, ...] = ("3x4", "3x4+1", "3x4+2", "3x4+3", "6x2", "6x2+1", "12x1")
# The rhythm strips' leads each layout prints unless the cart is set otherwise (GE's 3x4+3
# default is V1, II, V5; a single strip is II on almost every cart).
RHYTHM_LEADS: dict[str, tuple[str, ...]] = {
    "3x4": (),
    "3x4+1": ("II",),
    "3x4+2": ("V1", "II"),
    "3x4+3": ("V1", "II", "V5"),
    "6x2": (),
    "6x2+1": ("II",),
    "12x1": (),
}
# The gain each layout is usually printed at: twelve rows fit an A4 page only at half gain.
LAYOUT_GAIN_MM_PER_MV: dict[str, float] = {
    layout: GAIN_MM_PER_MV / 2 if layout == "12x1" else GAIN_MM_PER_MV for layout in LAYOUTS
}


@dataclass(frozen=True)
class Segment:
    """One lead printed over ``[t0, t1)`` seconds of the recording, as a piece of a row."""

    lead: str
    t0: float
    t1: float


def layout_rows(layout: str, rhythm_leads: tuple[str, ...] | None = None) -> list[list[Segment]]:
    """Rows of a printed page, top to bottom, each a list of segments left to right.

    ``3x4``: three rows of four 2.5 s segments (I aVR V1 V4 / II aVL V2 V5 / III aVF V3 V6);
    ``3x4+k`` adds k 10 s rhythm strips below them. ``6x2``: six rows of two 5 s segments
    (limb leads left, precordial right); ``6x2+1`` adds a strip. ``12x1``: twelve 10 s rows.
    The strips' leads are ``rhythm_leads``, by default the layout's ``RHYTHM_LEADS``.
    """
    if layout not in RHYTHM_LEADS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    strips = RHYTHM_LEADS[layout] if rhythm_leads is None else tuple(rhythm_leads)
    if len(strips) != len(RHYTHM_LEADS[layout]) or not set(strips) <= set(LEADS):
        raise ValueError(
            f"layout {layout} prints {len(RHYTHM_LEADS[layout])} rhythm strip(s); got leads {strips!r}"
        )
    if layout.startswith("3x4"):
        columns = (("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6"))
        rows = [[Segment(columns[c][r], 2.5 * c, 2.5 * (c + 1)) for c in range(4)] for r in range(3)]
    elif layout.startswith("6x2"):
        rows = [[Segment(LIMB_LEADS[r], 0.0, 5.0), Segment(PRECORDIAL_LEADS[r], 5.0, 10.0)] for r in range(6)]
    else:
        rows = [[Segment(lead, 0.0, DURATION_S)] for lead in LEADS]
    return rows + [[Segment(lead, 0.0, DURATION_S)] for lead in strips]


# The canonical model input: 12 panels stacked as 6 rows x 2 columns (the study's stacking),
# limb leads on the left, precordial leads on the right. Every panel shows 2.5 s: the window
# each lead has in the standard 3x4 printout, which every layout contains. So the same ECG
# gives the same canonical input whichever layout or file type it arrived in.
CANONICAL_COLUMNS: tuple[tuple[str, ...], tuple[str, ...]] = (LIMB_LEADS, PRECORDIAL_LEADS)
CANONICAL_WINDOW_S = 2.5


_CANONICAL_WINDOWS: dict[str, tuple[float, float]] = {
    segment.lead: (segment.t0, segment.t1) for row in layout_rows("3x4+1")[:3] for segment in row
}


def canonical_window(lead: str) -> tuple[float, float]:
    """Start and end (s) of the part of ``lead`` shown in the canonical input."""
    try:
        return _CANONICAL_WINDOWS[lead]
    except KeyError:
        raise ValueError(f"unknown lead {lead!r}; expected one of {', '.join(LEADS)}") from None


def panel_box(lead: str, size: int = CANONICAL_SIZE) -> tuple[int, int, int, int]:
    """Pixel box ``(top, left, bottom, right)`` of ``lead``'s panel in the canonical image."""
    for column, leads in enumerate(CANONICAL_COLUMNS):
        if lead in leads:
            row = leads.index(lead)
            h, w = size // 6, size // 2
            return row * h, column * w, (row + 1) * h, (column + 1) * w
    raise ValueError(f"unknown lead {lead!r}; expected one of {', '.join(LEADS)}")
