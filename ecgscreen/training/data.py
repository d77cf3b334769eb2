"""Datasets from a ``labels.csv`` folder: labels, a cache of canonical images, torch datasets,
and a training run's data decoded once (``load_data``).

A *loader* turns one labels row into the canonical model input (``(size, size)`` uint8): by
default the intake pipeline (``ecgscreen.imaging.pipeline.preprocess`` on the file's bytes),
the same code path serving uses. Any callable ``loader(data_dir, row, size)`` can stand in
(tests draw from the synthetic signals). Decoding PDFs and photos is slow, so every image is
decoded once into a per-dataset cache: one ``N x size x size`` uint8 ``.npy`` (memory-mapped),
keyed by the sha256 of ``labels.csv``, the size and the loader's version, filled by worker
processes that write straight into the file. Rows whose file fails to decode are recorded
in the sidecar JSON and left out of every split.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..contract import CANONICAL_SIZE, CLINICAL_FEATURES, TASKS, canonical_tasks
from ..imaging.canonical import to_model_input

__all__ = [
    "Loader",
    "PipelineLoader",
    "Labels",
    "read_labels",
    "loader_version",
    "CanonicalCache",
    "build_cache",
    "EcgDataset",
    "Recordings",
    "RowView",
    "RunData",
    "load_data",
]

log = logging.getLogger(__name__)

Loader = Callable[[Path, Mapping[str, str], int], np.ndarray]
CACHE_FORMAT = 1


class PipelineLoader:
    """The serving intake: ``preprocess(bytes of DIR/path, size).canonical``.

    Imported lazily so training code does not need the intake's decoders until it runs.
    """

    def __call__(self, data_dir: Path, row: Mapping[str, str], size: int) -> np.ndarray:
        from ..imaging.pipeline import preprocess

        return preprocess((Path(data_dir) / row["path"]).read_bytes(), size).canonical

    @property
    def version(self) -> str:
        """A hash of the intake's source (``ecgscreen/imaging`` and the top-level modules it
        imports): any change to how a file becomes a canonical image invalidates cached images."""
        from .. import contract, dicom_codes, imaging, leads

        digest = hashlib.sha256()
        shared = [Path(m.__file__) for m in (contract, dicom_codes, leads)]
        for path in sorted(Path(imaging.__file__).parent.glob("*.py")) + shared:
            digest.update(path.read_bytes())
        return f"pipeline-src-{digest.hexdigest()[:16]}"


def loader_version(loader: Loader) -> str:
    """What identifies a loader's output in the cache key: its ``version`` or its name."""
    version = getattr(loader, "version", None)
    if version is not None:
        return str(version)
    return f"{getattr(loader, '__module__', '?')}.{getattr(loader, '__qualname__', type(loader).__name__)}"


@dataclass(frozen=True)
class Labels:
    """The rows of ``labels.csv`` and the study's targets derived from them."""

    data_dir: Path
    rows: list[dict[str, str]]
    sha256: str

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else []

    def targets(self, task: str) -> np.ndarray:
        """0/1 per row: ``scar`` from ``scar_cad``, ``lvef`` is LVEF < 50 % from ``lvef``."""
        if task == "scar":
            return np.array([int(float(r["scar_cad"])) for r in self.rows], dtype=np.int64)
        if task == "lvef":
            return np.array([float(r["lvef"]) < 50.0 for r in self.rows], dtype=np.int64)
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")

    def clinical(self) -> np.ndarray:
        """``(N, 6)`` float32 in ``CLINICAL_FEATURES`` order; NaN where a value is missing."""
        out = np.full((len(self.rows), len(CLINICAL_FEATURES)), np.nan, dtype=np.float32)
        for i, row in enumerate(self.rows):
            for j, name in enumerate(CLINICAL_FEATURES):
                value = (row.get(name) or "").strip()
                if value:
                    out[i, j] = float(value)
        return out

    def split(self, name: str) -> np.ndarray:
        """Indices of rows whose ``split`` column is ``name``."""
        return np.array([i for i, r in enumerate(self.rows) if r.get("split") == name], dtype=np.int64)


def read_labels(data_dir: Path) -> Labels:
    """Read ``data_dir/labels.csv``; it must have the study's columns."""
    path = Path(data_dir) / "labels.csv"
    if not path.is_file():
        raise ValueError(f"no labels.csv in {data_dir}")
    raw = path.read_bytes()
    rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
    required = {"path", "scar_cad", "lvef", "split"}
    missing = sorted(required - set(rows[0] if rows else ()))
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}")
    return Labels(Path(data_dir), rows, hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class CanonicalCache:
    """Canonical images of every row (memory-mapped) and which rows decoded."""

    path: Path
    images: np.ndarray  # (N, S, S) uint8
    ok: np.ndarray  # (N,) bool
    errors: dict[int, str]


def _fill(
    args: tuple[Path, Path, Loader, list[tuple[int, dict[str, str]]], int],
) -> list[tuple[int, str | None]]:
    cache_path, data_dir, loader, items, size = args
    images = np.load(cache_path, mmap_mode="r+")
    results = []
    for index, row in items:
        try:
            canonical = np.asarray(loader(data_dir, row, size))
            if canonical.shape != (size, size) or canonical.dtype != np.uint8:
                raise ValueError(
                    f"loader returned {canonical.dtype} {canonical.shape}, expected uint8 {(size, size)}"
                )
            images[index] = canonical
            results.append((index, None))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the cache
            results.append((index, f"{type(exc).__name__}: {exc}"))
    images.flush()
    return results


def build_cache(
    labels: Labels,
    size: int = CANONICAL_SIZE,
    loader: Loader | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CanonicalCache:
    """Decode every row once into ``cache_dir`` (default ``DATA/.cache``); reuse if present.

    ``progress`` is called with the number of rows finished since the last call.
    """
    loader = loader or PipelineLoader()
    key = hashlib.sha256(
        f"{CACHE_FORMAT}|{labels.sha256}|{size}|{loader_version(loader)}".encode()
    ).hexdigest()
    cache_dir = Path(cache_dir) if cache_dir else labels.data_dir / ".cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"canonical-{size}-{key[:20]}.npy"
    meta_path = path.with_suffix(".json")
    n = len(labels)
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        errors = {int(k): v for k, v in meta["errors"].items()}
        ok = np.ones(n, dtype=bool)
        ok[list(errors)] = False
        if progress:
            progress(n)
        return CanonicalCache(path, np.load(path, mmap_mode="r"), ok, errors)

    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size)).flush()
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    chunk = max(1, min(32, n // (4 * workers) or 1))
    items = list(enumerate(labels.rows))
    jobs = [(tmp, labels.data_dir, loader, items[i : i + chunk], size) for i in range(0, n, chunk)]
    errors: dict[int, str] = {}
    try:
        if workers == 1:
            results = map(_fill, jobs)
            for done in results:
                errors.update({i: e for i, e in done if e})
                if progress:
                    progress(len(done))
        else:
            with ProcessPoolExecutor(workers) as pool:
                for done in pool.map(_fill, jobs):
                    errors.update({i: e for i, e in done if e})
                    if progress:
                        progress(len(done))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    for index, message in sorted(errors.items())[:10]:
        log.warning("could not decode %s: %s", labels.rows[index]["path"], message)
    if errors:
        log.warning("%d of %d files failed to decode and are left out", len(errors), n)
    meta = {"labels_sha256": labels.sha256, "size": size, "loader": loader_version(loader), "errors": errors}
    meta_path.write_text(json.dumps(meta, indent=1))
    ok = np.ones(n, dtype=bool)
    ok[list(errors)] = False
    return CanonicalCache(path, np.load(path, mmap_mode="r"), ok, errors)


class EcgDataset(torch.utils.data.Dataset):
    """Rows ``indices`` of a cache as model inputs and targets.

    Item: ``{"image": (3, S, S) float32 ImageNet-normalised, "targets": (T,) int64 in
    ``tasks`` order, "clinical": (6,) float32 with NaN for missing, "index": row}``. With
    ``augment`` the image is augmented in [0, 1] grayscale before the same normalisation
    serving uses (``to_model_input``), from a generator seeded by ``(seed, epoch, row)``.

    With ``recordings`` (row -> the recorded ``(12, N)`` signal, ``None`` if there is none)
    the item also holds ``"image_b"``: the canonical input painted from the recording,
    distorted as a digitiser would (``signal_augment`` probabilities), then augmented like
    ``"image"`` — the pair the consistency term compares.
    """

    def __init__(
        self,
        cache: CanonicalCache,
        labels: Labels,
        indices: Sequence[int] | np.ndarray,
        tasks: Sequence[str] = TASKS,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        seed: int = 0,
        recordings: Callable[[int], np.ndarray | None] | None = None,
        signal_augment: dict[str, float] | None = None,
    ):
        indices = np.asarray(indices, dtype=np.int64)
        bad = indices[~cache.ok[indices]] if indices.size else indices
        if bad.size:
            raise ValueError(f"rows {bad[:5].tolist()} failed to decode; leave them out")
        self.cache, self.indices, self.tasks = cache, indices, tuple(tasks)
        self.targets = np.stack([labels.targets(t) for t in self.tasks], axis=1)
        self.clinical = labels.clinical()
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.recordings, self.signal_augment = recordings, dict(signal_augment or {})

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.indices.size)

    def _model_input(self, canonical: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
        if self.augment is not None and rng is not None:
            image = to_model_input(self.augment(canonical.astype(np.float32) / 255.0, rng) * 255.0)
        else:
            image = to_model_input(canonical)
        return torch.from_numpy(np.ascontiguousarray(image))

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = int(self.indices[i])
        canonical = np.asarray(self.cache.images[row])
        rng = np.random.default_rng([self.seed, self.epoch, row])
        item = {
            "image": self._model_input(canonical, rng),
            "targets": torch.from_numpy(self.targets[row]),
            "clinical": torch.from_numpy(self.clinical[row]),
            "index": row,
        }
        if self.recordings is not None:
            from ..imaging.canonical import paint
            from ..imaging.signal import EcgSignal
            from .signal_augment import distort_signal

            recording = self.recordings(row)
            if recording is None:  # no recording: the pair is the file's input twice
                item["image_b"] = self._model_input(canonical, rng)
            else:
                distorted = distort_signal(recording, self.signal_augment, rng)
                painted = paint(EcgSignal(distorted), canonical.shape[0])
                item["image_b"] = self._model_input(painted, rng)
        return item


class Recordings:
    """``row -> (12, N)`` float32 recorded signal: ``DATA/signals/<file stem>.npy`` as
    ``ecgscreen synth --save-signals`` writes it (``SIGNAL_RATE_HZ``, ``LEADS`` order), or
    ``None`` for a row without one. Picklable, for DataLoader workers."""

    def __init__(self, labels: Labels):
        self.folder = labels.data_dir / "signals"
        self.stems = [Path(r["path"]).stem for r in labels.rows]

    def available(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*.npy"))

    def __call__(self, row: int) -> np.ndarray | None:
        path = self.folder / f"{self.stems[row]}.npy"
        return np.load(path).astype(np.float32) if path.is_file() else None


class RowView:
    """Rows ``indices`` of a (memory-mapped) array, read a slice at a time."""

    def __init__(self, array: np.ndarray, indices: np.ndarray):
        self.array, self.indices = array, np.asarray(indices)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, s: slice) -> np.ndarray:
        return np.asarray(self.array[self.indices[s]])


def _data_summary(labels: Labels, splits: dict[str, np.ndarray], tasks: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "description": f"{len(labels)} ECGs listed in {labels.data_dir.resolve().name}/labels.csv; "
        + ", ".join(f"{name} {idx.size}" for name, idx in splits.items()),
        "source": f"{labels.data_dir.resolve().name}/labels.csv",
        "labels_sha256": labels.sha256,
        "n": {name: int(idx.size) for name, idx in splits.items()},
        "prevalence": {t: float(labels.targets(t)[splits["train"]].mean()) for t in tasks},
    }
    for column in ("format", "layout", "acquisition"):
        if column in labels.columns:
            values = [labels.rows[i][column] or "(none)" for i in splits["train"]]
            summary[f"train_{column}"] = {v: values.count(v) for v in sorted(set(values))}
    return summary


@dataclass
class RunData:
    """A run's dataset, decoded once: the labels, the cache of canonical images, the rows of
    each split that decoded, the tasks, and the summary the checkpoint and card record."""

    labels: Labels
    cache: CanonicalCache
    splits: dict[str, np.ndarray]
    tasks: list[str]
    summary: dict[str, Any]

    def images(self, split: str) -> RowView:
        return RowView(self.cache.images, self.splits[split])

    def clinical(self, split: str) -> np.ndarray:
        return self.labels.clinical()[self.splits[split]]

    def targets(self, split: str) -> np.ndarray:
        """``(N, T)`` 0/1 targets of ``split`` in ``tasks`` order."""
        return np.stack([self.labels.targets(t)[self.splits[split]] for t in self.tasks], axis=1)


def load_data(
    data_dir: Path,
    tasks: Sequence[str],
    size: int,
    loader: Loader | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> RunData:
    """A training run's data: ``labels.csv`` read and every file decoded once
    (``build_cache``); ``train`` and ``val`` must keep decodable rows. ``progress(phase,
    total)`` returns a callback fed the number of rows done."""
    labels = read_labels(data_dir)
    done = progress("decoding", len(labels)) if progress else None
    cache = build_cache(labels, size, loader, cache_dir, workers, done)
    splits = {name: (idx := labels.split(name))[cache.ok[idx]] for name in ("train", "val", "test")}
    for name in ("train", "val"):
        if splits[name].size == 0:
            raise ValueError(f"{data_dir}/labels.csv has no decodable {name!r} rows")
    tasks = list(canonical_tasks(tasks))
    return RunData(labels, cache, splits, tasks, _data_summary(labels, splits, tasks))
