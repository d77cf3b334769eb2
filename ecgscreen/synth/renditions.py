"""One ECG written in every file format the generator makes: the raw material of the parity
and digitisation benchmarks (``python -m bench parity``, ``bench digitize``) and their tests.

A *rendition* is a file format plus, for raster formats, an acquisition (clean export,
flatbed scan, phone photo). The record keeps everything else it drew (layout, grid, gain,
calibration pulse, labels, greyscale storage), so a set of records covers the printing
variants while each record is seen in every format. The scan or photo artefacts are drawn
from a stream of their own per ``(record, rendition)``: deterministic, and independent of
which other renditions are made.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .generate import RASTER_FORMATS, Record, encode_record, make_record
from .scan import ScanArtefacts, draw_artefacts, draw_world_extras

__all__ = ["RENDITIONS", "REFERENCE", "ACQUISITION_OF", "render", "renditions_of"]

REFERENCE = "dcm-waveform"  # the recording itself: what every other rendition is held to
RENDITIONS: tuple[str, ...] = (
    REFERENCE,
    "pdf",
    "dcm-pdf",
    "png/clean",
    "png/scan",
    "png/photo",
    "jpeg/clean",
    "jpeg/scan",
    "jpeg/photo",
    "dcm-sc/clean",
    "dcm-sc/scan",
    "dcm-sc/photo",
)
# How the benchmarks group renditions (the acquisition classes).
ACQUISITION_OF: dict[str, str] = {
    "pdf": "vector PDF",
    "dcm-pdf": "vector PDF",
    **{f"{fmt}/clean": "clean raster" for fmt in RASTER_FORMATS},
    **{f"{fmt}/scan": "scan" for fmt in RASTER_FORMATS},
    **{f"{fmt}/photo": "photo" for fmt in RASTER_FORMATS},
}


def _artefacts(record: Record, rendition: str, kind: str, world_pages: bool = True) -> ScanArtefacts:
    if kind == "clean":
        return ScanArtefacts()
    rng = np.random.default_rng([record.index, RENDITIONS.index(rendition), 11])
    for _ in range(200):  # draw_artefacts picks the kind by chance: draw until it is this one
        artefacts = draw_artefacts(rng)
        if artefacts.kind == kind:
            return draw_world_extras(rng, artefacts) if world_pages else artefacts
    raise RuntimeError(f"could not draw a {kind} acquisition")  # pragma: no cover


def render(record: Record, rendition: str, world_pages: bool = True) -> bytes:
    """The bytes of ``record`` written as ``rendition`` (e.g. ``"jpeg/photo"``); a scan or
    photo of the world's pages has a photo's surroundings and creases (``world_pages``)."""
    if rendition not in RENDITIONS:
        raise ValueError(f"unknown rendition {rendition!r}; expected one of {', '.join(RENDITIONS)}")
    fmt, _, kind = rendition.partition("/")
    artefacts = (
        _artefacts(record, rendition, kind or "clean", world_pages)
        if fmt in RASTER_FORMATS
        else ScanArtefacts()
    )
    written = replace(record, file_format=fmt, artefacts=artefacts)
    if written.dpi > 300 and not written.is_jpeg:
        written = replace(written, dpi=300)  # a 600 dpi page kept losslessly is over 25 MiB
    if written.is_jpeg and written.colour == "grey16":
        written = replace(written, colour="grey8")  # JPEG has no 16-bit greyscale
    return encode_record(written)


def renditions_of(
    seed: int, index: int, names=RENDITIONS, world_pages: bool = True
) -> tuple[Record, dict[str, bytes]]:
    """Record ``index`` of ``seed`` (``generate.make_record``'s ``world_pages``) and its bytes
    in each of ``names``."""
    record = make_record(seed, index, world_pages=world_pages)
    return record, {name: render(record, name, world_pages) for name in names}
