"""Training pairs of the page segmenter: the generator's raster pages and their class masks.

A pair is what intake decodes from a generated file (``encode_record`` -> ``decode_page``: the
same decoders, so JPEG blocks, 16-bit greyscale and the photo and scan artefacts are the
served ones) and the pixel-exact class mask of that raster (``synth.masks.record_masks``: the
geometry of the scan or photo applied, no photometric artefact). Pages are cached once in a
folder as ``.npy`` files (memory-mapped: a crop reads only its rows) with ``pages.jsonl``;
``CropSampler`` draws random crops at the segmenter's scale (``SEGMENTER_PX_PER_MM``) times a
random factor, with the mask reduced by coverage (``rescale_classes``), never by nearest
neighbour, which breaks one-pixel traces.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..contract import SEGMENTER_CLASSES, SEGMENTER_PX_PER_MM
from ..imaging.dicom_reader import read_dicom
from ..imaging.images import decode_image
from ..imaging.limits import Limits
from ..imaging.sniff import sniff
from ..synth.generate import RASTER_FORMATS, encode_record, make_record
from ..synth.masks import record_masks

__all__ = [
    "RASTER_FORMATS",
    "LABEL_WEIGHTS",
    "PagePair",
    "decode_page",
    "make_pair",
    "rescale_classes",
    "ink_on_trace",
    "rescale_pair",
    "to_segmenter_scale",
    "write_pages",
    "PageCache",
    "CropSampler",
]

log = logging.getLogger(__name__)

# How much a class's share of an output pixel counts when the mask is reduced: a thin trace
# covering a third of a pixel beats the paper covering the rest (the image shows it dark).
LABEL_WEIGHTS = np.array([1.0, 1.5, 3.0, 3.0, 2.5, 2.5, 3.0], dtype=np.float32)
_LIMITS = Limits()
TRACE = 2  # SEGMENTER_CLASSES.index("trace")
# A pair is kept only when at least this share of its trace pixels is ink (``ink_on_trace``):
# generated pages gave 0.63-1.0, a mask lying beside the trace gives near 0.
MIN_INK_ON_TRACE = 0.5


@dataclass
class PagePair:
    """One page: ``image`` (H, W, 3) uint8 as intake decodes it, ``classes`` (H, W) uint8
    (``SEGMENTER_CLASSES``), its resolution and how it was acquired (clean, scan, photo)."""

    image: np.ndarray
    classes: np.ndarray
    px_per_mm: float
    acquisition: str
    index: int
    file_format: str = ""


def decode_page(data: bytes) -> np.ndarray:
    """The (H, W, 3) uint8 picture intake decodes from a raster file (PNG, JPEG, DICOM SC)."""
    fmt = sniff(data)
    if fmt == "dicom":
        content = read_dicom(data, _LIMITS)
        if content.image is None:
            raise ValueError(f"the DICOM object holds a {content.kind}, not a picture")
        return content.image
    return decode_image(data, fmt, _LIMITS)


def make_pair(seed: int, index: int) -> PagePair:
    """Record ``index`` of the generator's dataset ``seed``, drawn among the raster formats."""
    record = make_record(seed, index, formats=RASTER_FORMATS)
    image = decode_page(encode_record(record))
    masks = record_masks(record)
    if masks is None:  # pragma: no cover - formats are raster
        raise ValueError(f"record {index} of seed {seed} has no raster")
    classes = masks[0]
    px_per_mm = record.dpi / 25.4
    if image.shape[:2] != classes.shape:  # decoded at a reduced size: follow it
        factor = image.shape[1] / classes.shape[1]
        classes = rescale_classes(classes, (image.shape[1], image.shape[0]))
        px_per_mm *= factor
    share = ink_on_trace(image, classes)
    if share < MIN_INK_ON_TRACE:
        raise ValueError(
            f"the mask of record {index} (seed {seed}, {record.artefacts.kind}) does not follow its picture: "
            f"{share:.0%} of its trace pixels are ink"
        )
    return PagePair(image, classes, px_per_mm, record.artefacts.kind, index, record.file_format)


def ink_on_trace(image: np.ndarray, classes: np.ndarray, offset: int = 4, contrast: float = 12.0) -> float:
    """The share of the mask's trace pixels that are darker, by ``contrast`` grey levels, than
    the brighter of the pixels ``offset`` rows above and below them: near 1 when the mask lies
    on the printed trace, near 0 when it lies beside it (a mask that does not follow the
    picture's geometry). Local, so a dark table around a photographed page does not matter."""
    trace = classes == TRACE
    if not trace.any():
        return 0.0
    grey = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    above, below = np.roll(grey, offset, axis=0), np.roll(grey, -offset, axis=0)
    return float((grey[trace] < np.maximum(above, below)[trace] - contrast).mean())


def rescale_classes(classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``classes`` resized to ``size`` (width, height): each output pixel takes the class with
    the largest share of it, shares weighted by ``LABEL_WEIGHTS``."""
    if (classes.shape[1], classes.shape[0]) == tuple(size):
        return classes
    best = np.zeros((size[1], size[0]), dtype=np.uint8)
    best_score = np.zeros((size[1], size[0]), dtype=np.float32)
    present = np.unique(classes)
    for value in present:
        share = Image.fromarray((classes == value).astype(np.float32)).resize(size, Image.Resampling.BOX)
        score = np.asarray(share) * LABEL_WEIGHTS[value]
        wins = score > best_score
        best[wins] = value
        best_score[wins] = score[wins]
    return best


def rescale_pair(
    image: np.ndarray, classes: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """An image (antialiased bilinear) and its mask (``rescale_classes``) resized to ``size``
    (width, height)."""
    if (image.shape[1], image.shape[0]) != tuple(size):
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    return image, rescale_classes(classes, size)


def to_segmenter_scale(pair: PagePair) -> tuple[np.ndarray, np.ndarray]:
    """The page and its mask at ``SEGMENTER_PX_PER_MM`` (what the served segmenter is given)."""
    factor = SEGMENTER_PX_PER_MM / pair.px_per_mm
    size = (max(1, round(pair.image.shape[1] * factor)), max(1, round(pair.image.shape[0] * factor)))
    return rescale_pair(pair.image, pair.classes, size)


def write_pages(folder: Path, seed: int, n: int, progress: Callable[[int], None] | None = None) -> Path:
    """Cache pages ``0..n-1`` of ``seed`` in ``folder`` (resumable: pages already written are
    kept; a page the generator fails to draw, or whose mask does not follow its picture, is
    left out with a warning and listed as rejected); return
    ``folder / "pages.jsonl"``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / "pages.jsonl"
    done = {}
    if index_path.exists():
        for line in index_path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("seed") == seed and ("rejected" in entry or (folder / entry["image"]).exists()):
                done[entry["index"]] = line
    with index_path.open("w") as out:
        for line in done.values():
            out.write(line + "\n")
        out.flush()
        if progress and done:
            progress(len([i for i in done if i < n]))
        for index in range(n):
            if index in done:
                continue
            try:
                pair = make_pair(seed, index)
            except ValueError as error:  # a generator bug costs one page, not the cache
                log.warning("page %d of seed %d not cached: %s", index, seed, error)
                out.write(json.dumps({"seed": seed, "index": index, "rejected": str(error)}) + "\n")
                continue
            stem = f"{seed}-{index:06d}"
            np.save(folder / f"{stem}.image.npy", pair.image)
            np.save(folder / f"{stem}.classes.npy", pair.classes)
            entry = {
                "seed": seed, "index": index, "image": f"{stem}.image.npy", "classes": f"{stem}.classes.npy",
                "px_per_mm": pair.px_per_mm, "acquisition": pair.acquisition, "format": pair.file_format,
            }  # fmt: skip
            out.write(json.dumps(entry) + "\n")
            out.flush()
            if progress:
                progress(1)
    return index_path


PULSE = SEGMENTER_CLASSES.index("pulse")


class PageCache:
    """The pages ``write_pages`` cached in ``folder``, memory-mapped."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        path = self.folder / "pages.jsonl"
        if not path.exists():
            raise ValueError(f"{self.folder} holds no cached pages (no pages.jsonl)")
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        self.entries = [entry for entry in lines if "rejected" not in entry]
        self.rejected = [entry for entry in lines if "rejected" in entry]
        if not self.entries:
            raise ValueError(f"{path} lists no pages")

    def __len__(self) -> int:
        return len(self.entries)

    def page(self, i: int) -> tuple[np.ndarray, np.ndarray, dict]:
        entry = self.entries[i]
        image = np.load(self.folder / entry["image"], mmap_mode="r")
        classes = np.load(self.folder / entry["classes"], mmap_mode="r")
        return image, classes, entry


class CropSampler:
    """Random square crops of ``crop`` px at ``SEGMENTER_PX_PER_MM`` times a factor drawn
    log-uniformly in ``[1 / scale_jitter, scale_jitter]``, with photometric jitter
    (brightness, contrast, per-channel gain, greyscale).

    ``pulse_crops``: the share of crops placed over a calibration pulse. Pulses are ~0.3 % of a
    page's pixels and one or three of them a row; with uniform crops a run can learn to call
    them trace and never predict the class (the committed run of round 3 did).

    Returns ``(pages, classes)``: uint8 ``(B, crop, crop, 3)`` and int64 ``(B, crop, crop)``.
    """

    def __init__(
        self,
        cache: PageCache,
        crop: int = 256,
        scale_jitter: float = 1.25,
        grey: float = 0.1,
        photometric: float = 0.5,
        seed: int = 0,
        pulse_crops: float = 0.0,
    ):
        if crop < 16:
            raise ValueError(f"crop {crop} must be at least 16 px")
        if scale_jitter < 1.0:
            raise ValueError(f"scale_jitter {scale_jitter} must be >= 1")
        self.cache, self.crop, self.scale_jitter = cache, crop, scale_jitter
        self.grey, self.photometric, self.pulse_crops = grey, photometric, pulse_crops
        self.rng = np.random.default_rng(seed)
        self._pulse_pixels: dict[int, np.ndarray] = {}

    def _pulse_pixel(self, i: int, classes: np.ndarray) -> tuple[int, int] | None:
        """A random pulse pixel of page ``i`` (its pixels found once, a subsample kept)."""
        if i not in self._pulse_pixels:
            found = np.argwhere(np.asarray(classes) == PULSE)
            self._pulse_pixels[i] = found[:: max(1, len(found) // 256)]
        pixels = self._pulse_pixels[i]
        if not len(pixels):
            return None
        row, col = pixels[int(self.rng.integers(len(pixels)))]
        return int(row), int(col)

    def one(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, classes, entry = self.cache.page(i)
        rng, size = self.rng, self.crop
        jitter = math.exp(rng.uniform(-math.log(self.scale_jitter), math.log(self.scale_jitter)))
        factor = SEGMENTER_PX_PER_MM * jitter / entry["px_per_mm"]
        window = min(math.ceil(size / factor), image.shape[0], image.shape[1])
        pulse = self._pulse_pixel(i, classes) if rng.random() < self.pulse_crops else None
        if pulse is None:
            top = int(rng.integers(0, image.shape[0] - window + 1))
            left = int(rng.integers(0, image.shape[1] - window + 1))
        else:  # the pulse pixel anywhere in the window's middle half
            top, left = (
                int(np.clip(p - window * rng.uniform(0.25, 0.75), 0, extent - window))
                for p, extent in zip(pulse, image.shape[:2], strict=True)
            )
        region = np.ascontiguousarray(image[top : top + window, left : left + window])
        labels = np.ascontiguousarray(classes[top : top + window, left : left + window])
        region, labels = rescale_pair(region, labels, (size, size))
        return self._photometric(region), labels

    def _photometric(self, image: np.ndarray) -> np.ndarray:
        rng = self.rng
        x = image.astype(np.float32)
        if rng.random() < self.photometric:
            gain = rng.uniform(0.85, 1.15) * rng.uniform(0.92, 1.08, size=3)
            x = (x - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)
            x = x * gain
        if rng.random() < self.grey:
            x = np.repeat(x @ np.array([0.299, 0.587, 0.114], dtype=np.float32), 3).reshape(x.shape)
        return np.clip(x, 0, 255).astype(np.uint8)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pages = self.rng.integers(0, len(self.cache), size=n)
        pairs = [self.one(int(i)) for i in pages]
        return np.stack([p for p, _ in pairs]), np.stack([c for _, c in pairs]).astype(np.int64)
