"""``ecgscreen synth``: a dataset of synthetic ECG files with their ground truth.

Every record draws from its own random stream ``default_rng([seed, index])``, so a record
does not depend on which worker made it or in what order: the same seed gives byte-identical
files, labels and signals on any number of cores.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..contract import GAIN_MM_PER_MV
from ..leads import LAYOUTS, RHYTHM_LEADS
from . import dicom_writer
from .cohort import Patient, draw_patient
from .designs import draw_design, draw_dpi, draw_palette
from .masks import record_masks, write_masks_card
from .pdf_writer import write_pdf
from .printout import GRIDS, Header, PrintStyle, compose_page
from .raster_writer import PAPER, rasterize
from .scan import ScanArtefacts, apply_artefacts, draw_artefacts, draw_world_extras
from .signals import SAMPLE_RATE, apply_markers, draw_shape, r_peak_times, synthesize

__all__ = [
    "COLOURS",
    "FORMATS",
    "EXTENSIONS",
    "LAYOUT_MIX",
    "LABEL_COLUMNS",
    "Record",
    "make_record",
    "encode_record",
    "generate",
]

FORMATS = ("png", "jpeg", "pdf", "dcm-pdf", "dcm-sc", "dcm-waveform")
FORMAT_WEIGHTS = {
    "png": 0.22,
    "jpeg": 0.22,
    "pdf": 0.16,
    "dcm-pdf": 0.12,
    "dcm-sc": 0.14,
    "dcm-waveform": 0.14,
}
EXTENSIONS = {
    "png": ".png",
    "jpeg": ".jpg",
    "pdf": ".pdf",
    "dcm-pdf": ".dcm",
    "dcm-sc": ".dcm",
    "dcm-waveform": ".dcm",
}
RASTER_FORMATS = ("png", "jpeg", "dcm-sc")
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
MARKER_COLUMNS = (
    "q_wave", "r_loss", "fragmentation", "t_inversion",
    "qrs_widening", "lbbb", "low_voltage", "tachycardia", "poor_r_progression",
)  # fmt: skip
# The study's columns first, then how the ECG was printed, then the markers written in.
LABEL_COLUMNS = (
    "path", "scar_cad", "lvef", "female_gender", "dm", "ht", "smoke", "dlp", "age", "split",
    "format", "layout", "grid", "rotation_deg", "paper_speed", "gain", "scar_territory",
    "acquisition", "dpi", "jpeg_quality", "heart_rate", *MARKER_COLUMNS,
    "calibration_pulse", "labels", "colour", "rhythm_leads",
    "paper", "pulse_place", "separators", "minor_grid", "trace_mm", "furniture", "frame", "crop_mm",
)  # fmt: skip
# How a raster file stores its pixels: colour, or greyscale as many archives and fax-like
# scanners keep them (8 bits, or 16 bits in PNG and DICOM; JPEG has no 16-bit greyscale).
COLOURS = ("rgb", "grey8", "grey16", "binary")  # binary: a fax-like 1-bit scan
# The printed layouts in the proportions the world's pictures show them (most are 3x4 with a
# lead II strip, then 3x4 without strip; a few carts print V1 or V5 as the strip, GE prints
# V1, II, V5), with 6x2 and 12x1 kept common enough to learn: (layout, strip leads) -> share.
LAYOUT_MIX: dict[tuple[str, tuple[str, ...]], float] = {
    ("3x4+1", ("II",)): 0.30,
    ("3x4+1", ("V1",)): 0.03,
    ("3x4+1", ("V5",)): 0.03,
    ("3x4", ()): 0.16,
    ("3x4+2", ("V1", "II")): 0.06,
    ("3x4+3", ("V1", "II", "V5")): 0.09,
    ("6x2", ()): 0.11,
    ("6x2+1", ("II",)): 0.08,
    ("12x1", ()): 0.14,
}
# The layouts the generator drew before the others: drawn first, uniformly, as they were, so
# a seed's records keep their draws; ``_world_layout`` then moves some to the other layouts.
_FIRST_LAYOUTS = ("3x4+1", "6x2", "12x1")
_FIRST_GRIDS = ("red", "pink", "green", "none")  # the same for the grid palettes

_FIRST = (
    "ANNA",
    "JOHN",
    "MARIA",
    "WEI",
    "FATIMA",
    "LUCAS",
    "SOFIA",
    "HIROSHI",
    "AMARA",
    "OLIVER",
    "NOOR",
    "ELENA",
)
_LAST = (
    "SMITH",
    "KIM",
    "GARCIA",
    "MUELLER",
    "OKAFOR",
    "ROSSI",
    "NGUYEN",
    "COHEN",
    "SILVA",
    "TANAKA",
    "IVANOVA",
)


@dataclass(frozen=True)
class Record:
    """Everything about one synthetic ECG, before it is written to a file."""

    index: int
    patient: Patient
    signal: np.ndarray  # (12, 5000) mV
    heart_rate: float
    file_format: str
    style: PrintStyle
    artefacts: ScanArtefacts
    dpi: int
    jpeg_quality: int
    header: Header
    dicom_patient: dicom_writer.DicomPatient
    split: str
    colour: str = "rgb"

    @property
    def is_jpeg(self) -> bool:
        return self.file_format == "jpeg" or (self.file_format == "dcm-sc" and self.index % 2 == 1)

    @property
    def filename(self) -> str:
        return f"{self.index:06d}{EXTENSIONS[self.file_format]}"

    def _design_columns(self, printed: bool) -> dict[str, object]:
        """The page design's truth (``printout.PageDesign``), empty for a waveform."""
        design = self.style.design
        if not printed:
            return dict.fromkeys(("paper", "pulse_place", "separators", "minor_grid", "trace_mm", "furniture",
                                  "frame", "crop_mm"), "")  # fmt: skip
        return {
            "paper": design.paper,
            "pulse_place": design.pulse if self.style.calibration else "none",
            "separators": design.separators,
            "minor_grid": design.minor,
            "trace_mm": f"{design.trace_mm:.2f}",
            "furniture": ";".join(design.furniture),
            "frame": int(design.frame),
            "crop_mm": f"{design.crop_mm:.1f}" if design.crop_mm else "",
        }

    def label_row(self) -> dict[str, object]:
        p, m = self.patient, self.patient.markers
        printed = self.file_format != "dcm-waveform"
        row = {
            "path": self.filename,
            "scar_cad": int(p.scar),
            "lvef": f"{p.lvef:.1f}",
            **p.clinical,
            "split": self.split,
            "format": self.file_format,
            "layout": self.style.layout if printed else "",
            "grid": self.style.grid if printed else "",
            "rotation_deg": f"{self.artefacts.rotation_deg:.3f}",
            "paper_speed": f"{self.style.paper_speed:g}" if printed else "",
            "gain": f"{self.style.gain_mm_per_mv:g}" if printed else "",
            "scar_territory": p.territory or "",
            "acquisition": self.artefacts.kind,
            "dpi": self.dpi if self.file_format in RASTER_FORMATS else "",
            "jpeg_quality": self.jpeg_quality if self.is_jpeg else "",
            "heart_rate": f"{self.heart_rate:.1f}",
            "calibration_pulse": int(self.style.calibration) if printed else "",
            "labels": self.style.labels if printed else "",
            "colour": self.colour if self.file_format in RASTER_FORMATS else "",
            "rhythm_leads": ";".join(self.style.strip_leads) if printed else "",
            **self._design_columns(printed),
        }
        for name in MARKER_COLUMNS:
            value = getattr(m, name)
            row[name] = int(value) if isinstance(value, bool) else f"{value:.3f}"
        return row


def _header(
    rng: np.random.Generator, patient: Patient, heart_rate: float
) -> tuple[Header, dicom_writer.DicomPatient]:
    name = f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}"
    patient_id = f"{rng.integers(10**7, 10**8)}"
    year = int(rng.integers(2019, 2026))
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hour, minute = int(rng.integers(7, 20)), int(rng.integers(0, 60))
    birth_year = year - patient.clinical["age"]
    sex = "F" if patient.clinical["female_gender"] else "M"
    header = Header(
        name=name.replace("^", ", "),
        patient_id=patient_id,
        birth_date=f"{birth_year}-{month:02d}-{day:02d}",
        acquired=f"{year}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}",
        sex=sex,
        heart_rate=int(round(heart_rate)),
    )
    dicom_patient = dicom_writer.DicomPatient(
        name=name,
        patient_id=patient_id,
        birth_date=f"{birth_year}{month:02d}{day:02d}",
        sex=sex,
        study_date=f"{year}{month:02d}{day:02d}",
        study_time=f"{hour:02d}{minute:02d}00",
        uid_seed=f"{patient_id}-{rng.integers(2**62)}",
    )
    return header, dicom_patient


def _pick(rng: np.random.Generator, options: Sequence[str], weights: dict[str, float] | None = None) -> str:
    if weights:
        p = np.array([weights[o] for o in options])
        return str(rng.choice(options, p=p / p.sum()))
    return str(rng.choice(options))


def _world_layout(
    rng: np.random.Generator, drawn: str, options: Sequence[str], layouts: Sequence[str]
) -> tuple[str, tuple[str, ...]]:
    """The layout and strip leads of a record whose first draw was ``drawn`` (uniform over
    ``options``), moved so that the records follow ``LAYOUT_MIX`` over ``layouts``: a record
    keeps its draw with probability ``min(1, mix / uniform)``, else takes one of the layouts
    the uniform draw leaves short."""
    mix = {key: w for key, w in LAYOUT_MIX.items() if key[0] in layouts}
    total = sum(mix.values())
    target = {key: w / total for key, w in mix.items()}
    uniform = {(o, RHYTHM_LEADS[o]): 1.0 / len(options) for o in options}
    key = (drawn, RHYTHM_LEADS[drawn])
    if rng.random() < min(1.0, target[key] / uniform[key]):
        return key
    short = [(k, max(0.0, p - uniform.get(k, 0.0))) for k, p in target.items()]
    weights = np.array([w for _, w in short])
    return short[int(rng.choice(len(short), p=weights / weights.sum()))][0]


def make_record(
    seed: int,
    index: int,
    difficulty: str = "standard",
    formats: Sequence[str] = FORMATS,
    layouts: Sequence[str] = LAYOUTS,
    grids: Sequence[str] = GRIDS,
    world_pages: bool = True,
) -> Record:
    """Draw record ``index`` of the dataset with ``seed`` (no file is written).

    ``world_pages``: draw the world's page designs, grid colours, resolutions, fax-like
    storage and photo surroundings (``synth.designs``); without, every page is the first
    page the generator drew (one geometry, four grids, 100-150 dpi), as older datasets hold."""
    rng = np.random.default_rng([seed, index])
    patient = draw_patient(rng, difficulty)
    shape = apply_markers(draw_shape(rng), patient.markers)
    signal = synthesize(shape, r_peak_times(shape.heart_rate, rng), patient.noise, rng)
    file_format = _pick(rng, formats, FORMAT_WEIGHTS)
    first = [layout for layout in layouts if layout in _FIRST_LAYOUTS] or list(layouts)
    first_grids = [grid for grid in grids if grid in _FIRST_GRIDS] or list(grids)
    style = PrintStyle(layout=_pick(rng, first), grid=_pick(rng, first_grids))
    artefacts = draw_artefacts(rng) if file_format in RASTER_FORMATS else ScanArtefacts()
    dpi = int(rng.choice([100, 125, 150]))
    jpeg_quality = int(rng.integers(60, 96))
    header, dicom_patient = _header(rng, patient, shape.heart_rate)
    u, split = rng.random(), SPLITS[-1][0]
    for name, share in SPLITS:
        if u < share:
            split = name
            break
        u -= share
    # Printing variants drawn last, so the draws above (and older datasets) stay as they were:
    # 12x1 at the standard 10 mm/mV (rows overlap), no calibration pulse, labels touching the
    # trace, greyscale storage.
    if style.layout == "12x1" and rng.random() < 0.5:
        style = replace(style, gain=GAIN_MM_PER_MV)
    style = replace(
        style, calibration=bool(rng.random() >= 0.1), labels="touching" if rng.random() < 0.2 else "above"
    )
    colour = str(rng.choice(COLOURS[:3], p=[0.8, 0.12, 0.08]))
    if colour == "grey16" and (file_format == "jpeg" or (file_format == "dcm-sc" and index % 2 == 1)):
        colour = "grey8"  # JPEG has no 16-bit greyscale
    if set(layouts) - set(_FIRST_LAYOUTS):  # the world's mix of layouts, drawn last
        layout, strips = _world_layout(rng, style.layout, first, layouts)
        if layout != style.layout:
            gain = GAIN_MM_PER_MV if layout == "12x1" and rng.random() < 0.5 else None
            style = replace(style, layout=layout, gain=gain)
        if strips != RHYTHM_LEADS[layout]:
            style = replace(style, rhythm_leads=strips)
    # The world's pages, drawn after all of the above: page design, grid palette, resolution,
    # fax-like 1-bit storage, a photo's surroundings and creases.
    if not world_pages:
        return Record(
            index, patient, signal, shape.heart_rate, file_format, style, artefacts, dpi,
            jpeg_quality, header, dicom_patient, split, colour,
        )  # fmt: skip
    labels = "below" if style.labels == "above" and rng.random() < 0.2 else style.labels
    style = replace(style, grid=draw_palette(rng, style.grid, grids), labels=labels)
    style = replace(style, design=draw_design(rng, style))
    dpi = draw_dpi(rng, dpi)
    if dpi > 300 and not (file_format == "jpeg" or (file_format == "dcm-sc" and index % 2 == 1)):
        dpi = 300  # a 600 dpi page kept losslessly is over the 25 MiB a request may carry
    if file_format in ("png", "dcm-sc") and rng.random() < 0.04:
        colour = "binary"
    artefacts = draw_world_extras(rng, artefacts)
    return Record(
        index, patient, signal, shape.heart_rate, file_format, style, artefacts, dpi,
        jpeg_quality, header, dicom_patient, split, colour,
    )  # fmt: skip


def encode_record(record: Record) -> bytes:
    """The bytes of the file a clinic would hold for this record."""
    fmt = record.file_format
    if fmt == "dcm-waveform":
        return dicom_writer.ecg_waveform(record.signal, SAMPLE_RATE, record.dicom_patient)
    page = compose_page(record.signal, record.style, record.header)
    if fmt in ("pdf", "dcm-pdf"):
        pdf = write_pdf(page)
        return pdf if fmt == "pdf" else dicom_writer.encapsulated_pdf(pdf, record.dicom_patient)
    image = _stored_colour(
        apply_artefacts(rasterize(page, record.dpi), record.artefacts, PAPER), record.colour
    )
    if fmt == "dcm-sc":  # every other scanning workstation stores JPEG Baseline
        quality = record.jpeg_quality if record.is_jpeg else None
        return dicom_writer.secondary_capture(image, record.dicom_patient, quality)
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=record.jpeg_quality)
    return buffer.getvalue()


def _stored_colour(image: Image.Image, colour: str) -> Image.Image:
    """The scanner's pixels as stored: RGB, 8-bit grey, or 16-bit grey (``I;16``)."""
    if colour == "rgb":
        return image
    grey = image.convert("L")
    if colour == "grey8":
        return grey
    if colour == "binary":  # 1-bit, as a fax or a bilevel scanner stores it (kept as 8-bit grey)
        return grey.point(lambda v: 255 if v >= 170 else 0)
    return Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)  # mode I;16


@dataclass(frozen=True)
class _Job:
    out: Path
    seed: int
    difficulty: str
    formats: tuple[str, ...]
    layouts: tuple[str, ...]
    grids: tuple[str, ...]
    save_signals: bool
    masks: bool = False


def _write_one(job: _Job, index: int) -> dict[str, object]:
    record = make_record(job.seed, index, job.difficulty, job.formats, job.layouts, job.grids)
    (job.out / record.filename).write_bytes(encode_record(record))
    if job.save_signals:
        np.save(job.out / "signals" / f"{index:06d}.npy", record.signal.astype(np.float32))
    if job.masks and (masks := record_masks(record)) is not None:
        for mask, suffix in zip(masks, (".mask.png", ".leads.png"), strict=True):
            Image.fromarray(mask).save(job.out / f"{index:06d}{suffix}", format="PNG", compress_level=6)
    return record.label_row()


def _write_chunk(job: _Job, indices: range) -> list[dict[str, object]]:
    return [_write_one(job, i) for i in indices]


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def generate(
    n: int,
    seed: int,
    out: Path,
    difficulty: str = "standard",
    formats: Sequence[str] = FORMATS,
    layouts: Sequence[str] = LAYOUTS,
    grids: Sequence[str] = GRIDS,
    workers: int | None = None,
    save_signals: bool = False,
    progress: Callable[[int], None] | None = None,
    masks: bool = False,
) -> Path:
    """Write ``n`` records and ``labels.csv`` into ``out``; return the labels path.

    ``masks``: beside each raster image ``NNNNNN.ext``, its class mask ``NNNNNN.mask.png``
    and lead mask ``NNNNNN.leads.png`` (``synth.masks``), described in ``masks.json``.

    ``progress`` is called with the number of records finished since the last call.
    """
    for name, given, allowed in (
        ("format", formats, FORMATS),
        ("layout", layouts, LAYOUTS),
        ("grid", grids, GRIDS),
    ):
        unknown = sorted(set(given) - set(allowed))
        if unknown or not given:
            raise ValueError(f"unknown {name}(s) {unknown or given}; expected some of {', '.join(allowed)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    out.mkdir(parents=True, exist_ok=True)
    if save_signals:
        (out / "signals").mkdir(exist_ok=True)
    job = _Job(out, seed, difficulty, tuple(formats), tuple(layouts), tuple(grids), save_signals, masks)
    if masks:
        write_masks_card(out)
    workers = workers or os.cpu_count() or 1
    rows: list[dict[str, object]] = []
    chunks = list(_chunks(n, max(1, min(16, n // (4 * workers) or 1))))
    if workers == 1:
        for chunk in chunks:
            rows += _write_chunk(job, chunk)
            if progress:
                progress(len(chunk))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for chunk_rows in pool.map(_write_chunk, [job] * len(chunks), chunks):
                rows += chunk_rows
                if progress:
                    progress(len(chunk_rows))
    labels = out / "labels.csv"
    with labels.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["path"]))
    return labels
