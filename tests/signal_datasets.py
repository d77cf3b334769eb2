"""Small synthetic datasets for model tests: canonical images drawn straight from the
generator's signals (no file decoding), so training and evaluation tests take seconds."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ecgscreen.imaging.canonical import signal_to_canonical
from ecgscreen.synth.generate import LABEL_COLUMNS, make_record

__all__ = ["write_signal_dataset", "signal_loader", "tiny_config", "SPLIT_BY_REMAINDER"]

SPLIT_BY_REMAINDER = {0: "train", 1: "train", 2: "train", 3: "val", 4: "test"}


def write_signal_dataset(
    out: Path, n: int, seed: int = 0, difficulty: str = "easy", recordings: bool = False
) -> Path:
    """``n`` records as ``.npy`` signals (mV, 500 Hz) plus ``labels.csv``; split by index % 5.
    With ``recordings`` the signals are also where ``synth --save-signals`` puts them
    (``signals/``), for paired training."""
    out.mkdir(parents=True, exist_ok=True)
    if recordings:
        (out / "signals").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        record = make_record(seed, i, difficulty)
        np.save(out / f"{i:06d}.npy", record.signal.astype(np.float32))
        if recordings:
            np.save(out / "signals" / f"{i:06d}.npy", record.signal.astype(np.float32))
        row = record.label_row()
        row["path"], row["split"] = f"{i:06d}.npy", SPLIT_BY_REMAINDER[i % 5]
        rows.append(row)
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


def signal_loader(data_dir: Path, row: dict, size: int) -> np.ndarray:
    """The waveform path: the stored signal drawn as the canonical image."""
    return signal_to_canonical(np.load(Path(data_dir) / row["path"]), 500, size)


def tiny_config(**overrides):
    """The demo recipe shrunk to seconds: 64 px, batch 4, few bootstrap resamples."""
    from ecgscreen.training.config import load_config

    values = {"image_size": 64, "epochs": 2, "batch_size": 4, "eval_batch_size": 16, "n_bootstrap": 200,
              "fusion": True, "fusion_epochs": 15, "warmup_epochs": 0.2, "lr": 3e-3,
              "paired": False, "consistency": 0.0}  # fmt: skip
    values.update(overrides)
    return load_config("demo", [f"{k}={v}" for k, v in values.items()])
