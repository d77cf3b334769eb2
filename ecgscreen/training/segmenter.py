"""Training and evaluation of the page segmenter (``nets.segmenter``) on the generator's masks.

Recipe (``configs/segmenter/segmenter.yaml``): random square crops of cached generator pages at the
segmenter's scale (``segment_data.CropSampler``), AdamW with a linear warm-up then cosine decay
per step, loss = class-weighted cross-entropy + ``dice_weight`` x soft Dice averaged over the
printed classes (trace, pulse, labels, text, separators: the paper and the grid are most of
every page, the ink a few per cent). A run folder holds ``last.pt`` (written every
``checkpoint_every`` steps: the model, optimiser, step, the sampler's random state and the
history) and resumes from it; each logged step is one line through ``say``.

``evaluate_segmenter`` measures a predictor on fresh generator pages at the served scale:
per-class IoU over all pixels of all pages, and trace IoU per acquisition (clean, scan, photo).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from ..contract import SEGMENTER_CLASSES
from ..nets.segmenter import SegmenterNet, build_segmenter
from .segment_data import CropSampler, PageCache, make_pair, to_segmenter_scale

__all__ = [
    "CHECKPOINT_FORMAT",
    "SegmenterConfig",
    "load_segmenter_config",
    "segmenter_loss",
    "train_segmenter",
    "load_segmenter",
    "torch_predictor",
    "evaluate_segmenter",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ecgscreen-segmenter-checkpoint/1"
CONFIG_DIR = (
    Path(__file__).parent / "configs" / "segmenter"
)  # apart from the network recipes (packaged_configs)
TRACE = SEGMENTER_CLASSES.index("trace")


@dataclass
class SegmenterConfig:
    """Everything a segmenter run depends on (besides the cached pages)."""

    name: str = "segmenter"
    variant: str = "small"  # nets.segmenter.SEGMENTER_VARIANTS
    # data: pages 0..n_pages-1 of train_seed (segment_data.write_pages), crops of `crop` px
    train_seed: int = 1
    n_pages: int = 220
    crop: int = 256
    scale_jitter: float = 1.25
    grey: float = 0.1
    photometric: float = 0.5
    pulse_crops: float = 0.0  # share of crops placed over a calibration pulse
    # optimisation
    steps: int = 4400
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    # loss: cross-entropy weights in SEGMENTER_CLASSES order, + dice_weight x Dice of dice_classes
    class_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 4.0, 6.0, 6.0, 4.0, 6.0])
    dice_weight: float = 1.0
    dice_classes: list[str] = field(
        default_factory=lambda: ["trace", "pulse", "lead_label", "text", "separator"]
    )
    # bookkeeping: a validation of fixed crops from val_pages pages of val_seed (0: none)
    val_seed: int = 2
    val_pages: int = 8
    val_crops: int = 32
    log_every: int = 50
    checkpoint_every: int = 200
    val_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.class_weights) != len(SEGMENTER_CLASSES):
            raise ValueError(
                f"class_weights {self.class_weights} must give one weight per class of {list(SEGMENTER_CLASSES)}"
            )
        unknown = [c for c in self.dice_classes if c not in SEGMENTER_CLASSES]
        if unknown:
            raise ValueError(f"dice_classes {unknown} are not classes of {list(SEGMENTER_CLASSES)}")
        if not 0.0 <= self.pulse_crops <= 1.0:
            raise ValueError(f"pulse_crops {self.pulse_crops} must be a share between 0 and 1")
        for name in (
            "steps",
            "batch_size",
            "n_pages",
            "checkpoint_every",
            "log_every",
            "val_every",
            "val_crops",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def load_segmenter_config(name: str | Path = "segmenter", **overrides: Any) -> SegmenterConfig:
    """A packaged config by name (``configs/segmenter/<name>.yaml``) or a YAML path, with overrides;
    ``ValueError`` naming unknown keys."""
    path = Path(name)
    if not path.suffix:
        path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no segmenter config {name!r} (looked for {path})")
    values = {**(yaml.safe_load(path.read_text()) or {}), **overrides}
    known = {f.name for f in dataclasses.fields(SegmenterConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}")
    return SegmenterConfig(**values)


def segmenter_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    dice_index: list[int],
    dice_weight: float,
) -> torch.Tensor:
    """Weighted cross-entropy + ``dice_weight`` x (1 - mean soft Dice of ``dice_index``);
    a class absent from the batch's target and prediction counts as Dice 1."""
    loss = F.cross_entropy(logits, target, weight=weights)
    if dice_weight and dice_index:
        probs = logits.softmax(dim=1)[:, dice_index]
        onehot = torch.stack([(target == k) for k in dice_index], dim=1).float()
        inter = (probs * onehot).sum(dim=(0, 2, 3))
        total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
        dice = (2 * inter + 1.0) / (total + 1.0)
        loss = loss + dice_weight * (1 - dice.mean())
    return loss


def _lr_at(step: int, config: SegmenterConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def _confusion(pred: np.ndarray, target: np.ndarray, k: int = len(SEGMENTER_CLASSES)) -> np.ndarray:
    return np.bincount(
        target.astype(np.int64).ravel() * k + pred.astype(np.int64).ravel(), minlength=k * k
    ).reshape(k, k)


def _iou(confusion: np.ndarray) -> list[float | None]:
    inter = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - inter
    return [float(i / u) if u else None for i, u in zip(inter, union, strict=True)]


def _val_batch(config: SegmenterConfig, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation crops from ``val_pages`` pages of ``val_seed`` (cached in ``folder``)."""
    from .segment_data import write_pages

    write_pages(folder, config.val_seed, config.val_pages)
    sampler = CropSampler(PageCache(folder), config.crop, config.scale_jitter, 0.0, 0.0, seed=12345)
    return sampler.batch(config.val_crops)


def train_segmenter(
    config: SegmenterConfig,
    pages: Path,
    run: Path,
    resume: bool = True,
    threads: int | None = None,
    progress: Callable[[str, int], Callable[[int], None] | None] | None = None,
    say: Callable[[str], None] = log.info,
    max_seconds: float | None = None,
) -> Path:
    """Train on the pages cached in ``pages`` into ``run``; return ``run / "last.pt"``.

    ``resume``: continue from ``run/last.pt`` when it exists. ``max_seconds``: stop (after a
    checkpoint) when this much time has passed, to continue later.
    """
    if threads:
        torch.set_num_threads(threads)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build_segmenter(config.variant)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    cache = PageCache(pages)
    cache.entries = [
        e for e in cache.entries if e["seed"] == config.train_seed and e["index"] < config.n_pages
    ]
    if len(cache) < 0.75 * config.n_pages:  # write_pages leaves out pages it could not pair
        raise ValueError(
            f"{pages} caches {len(cache)} pages of seed {config.train_seed}; the config trains on {config.n_pages}"
        )
    sampler = CropSampler(
        cache,
        config.crop,
        config.scale_jitter,
        config.grey,
        config.photometric,
        config.seed,
        pulse_crops=config.pulse_crops,
    )
    step, history, seconds = 0, [], 0.0
    last = run / "last.pt"
    if resume and last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{last} is not a segmenter checkpoint ({CHECKPOINT_FORMAT})")
        model.load_state_dict(ckpt["model"]["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        sampler.rng.bit_generator.state = ckpt["sampler_state"]
        step, history, seconds = ckpt["step"], ckpt["history"], ckpt.get("seconds", 0.0)
        say(f"resumed at step {step} of {config.steps}")
    val = _val_batch(config, run.parent / f"val-pages-{config.val_seed}") if config.val_pages else None
    weights = torch.tensor(config.class_weights, dtype=torch.float32)
    dice_index = [SEGMENTER_CLASSES.index(c) for c in config.dice_classes]
    bar = progress("training the segmenter", config.steps) if progress else None
    if bar and step:
        bar(step)
    started, running, window_start = time.monotonic(), [], time.monotonic()

    def checkpoint(finished: bool = False) -> None:
        _save(last, {
            "model": {"config": model.config, "state_dict": model.state_dict()},
            "train_config": dataclasses.asdict(config), "optimizer": optimizer.state_dict(),
            "sampler_state": sampler.rng.bit_generator.state, "step": step, "history": history,
            "seconds": seconds + time.monotonic() - started, "finished": finished,
            "crops_seen": step * config.batch_size,
        })  # fmt: skip

    model.train()
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        x, y = sampler.batch(config.batch_size)
        logits = model(model.normalise(torch.from_numpy(x)))
        loss = segmenter_loss(logits, torch.from_numpy(y), weights, dice_index, config.dice_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running.append(loss.item())
        if bar:
            bar(1)
        if step % config.log_every == 0 or step == config.steps:
            rate = (time.monotonic() - window_start) / len(running)
            record = {
                "step": step,
                "loss": float(np.mean(running)),
                "lr": _lr_at(step - 1, config),
                "s_per_step": rate,
            }
            if val is not None and (step % config.val_every == 0 or step == config.steps):
                record.update(_validate(model, *val))
                model.train()
            history.append(record)
            say(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
            running, window_start = [], time.monotonic()
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint(finished=step == config.steps)
            if max_seconds is not None and time.monotonic() - started > max_seconds and step < config.steps:
                say(f"stopping at step {step} after {max_seconds:.0f} s; run again to resume")
                break
    return last


@torch.no_grad()
def _validate(model: SegmenterNet, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    model.eval()
    confusion = np.zeros((len(SEGMENTER_CLASSES),) * 2, dtype=np.int64)
    for i in range(0, len(x), 8):
        pred = model(model.normalise(torch.from_numpy(x[i : i + 8]))).argmax(1).numpy()
        confusion += _confusion(pred, y[i : i + 8])
    iou = _iou(confusion)
    return {
        "val_trace_iou": iou[TRACE] or 0.0,
        "val_mean_iou": float(np.mean([v for v in iou if v is not None])),
    }


def load_segmenter(path: Path) -> tuple[SegmenterNet, dict[str, Any]]:
    """The model of a run folder (its ``last.pt``) or checkpoint file, in eval mode, and the
    checkpoint's metadata (without weights and optimiser)."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise ValueError(f"no segmenter checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a segmenter checkpoint ({CHECKPOINT_FORMAT})")
    model = SegmenterNet(**ckpt["model"]["config"])
    model.load_state_dict(ckpt["model"]["state_dict"])
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "sampler_state")}
    return model.eval(), meta


def torch_predictor(model: SegmenterNet) -> Callable[[np.ndarray], np.ndarray]:
    """``page (H, W, 3) uint8 -> classes (H, W) uint8`` with the torch model."""

    @torch.no_grad()
    def predict(page: np.ndarray) -> np.ndarray:
        x = model.normalise(torch.from_numpy(np.array(page, dtype=np.uint8))[None])
        return model.eval()(x).argmax(1)[0].numpy().astype(np.uint8)

    return predict


def evaluate_segmenter(
    predict: Callable[[np.ndarray], np.ndarray],
    seed: int,
    n: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """``predict`` (page -> classes) on pages ``0..n-1`` of the generator's ``seed`` (raster
    formats, the generator's mix of acquisitions) at the segmenter's scale: per-class IoU over
    all pixels, trace IoU / precision / recall, trace IoU per acquisition, and the time per page."""
    k = len(SEGMENTER_CLASSES)
    total = np.zeros((k, k), dtype=np.int64)
    by_acquisition: dict[str, np.ndarray] = {}
    pages: dict[str, int] = {}
    elapsed, skipped = [], 0
    for index in range(n):
        try:
            pair = make_pair(seed, index)
        except ValueError as error:  # the generator could not draw or pair it: not the model's fault
            log.warning("evaluation page %d of seed %d skipped: %s", index, seed, error)
            skipped += 1
            if progress:
                progress(1)
            continue
        image, classes = to_segmenter_scale(pair)
        start = time.perf_counter()
        pred = predict(image)
        elapsed.append(time.perf_counter() - start)
        confusion = _confusion(pred, classes)
        total += confusion
        by_acquisition.setdefault(pair.acquisition, np.zeros((k, k), dtype=np.int64))
        by_acquisition[pair.acquisition] += confusion
        pages[pair.acquisition] = pages.get(pair.acquisition, 0) + 1
        if progress:
            progress(1)
    iou = _iou(total)
    tp = int(total[TRACE, TRACE])
    return {
        "seed": seed,
        "n_pages": n - skipped,
        "pages_skipped": skipped,
        "pages_by_acquisition": dict(sorted(pages.items())),
        "per_class_iou": {
            name: None if v is None else round(v, 4) for name, v in zip(SEGMENTER_CLASSES, iou, strict=True)
        },
        "mean_iou": round(float(np.mean([v for v in iou if v is not None])), 4),
        "trace_precision": round(tp / max(1, int(total[:, TRACE].sum())), 4),
        "trace_recall": round(tp / max(1, int(total[TRACE].sum())), 4),
        "trace_iou_by_acquisition": {
            a: round(_iou(c)[TRACE] or 0.0, 4) for a, c in sorted(by_acquisition.items())
        },
        "median_ms_per_page": round(float(np.median(elapsed)) * 1000, 1),
    }
