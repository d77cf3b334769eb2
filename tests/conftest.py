"""Shared test setup.

* ``tests/`` is importable (corpus builders, server helpers); BentoML does not phone home.
* ``triton``: the real embedded tritonserver for the session.
* Small synthetic datasets whose canonical images come straight from the generator's
  signals (no file decoding), so model tests stay fast on two CPU cores. Torch runs on one
  thread in tests: with two threads on two shared cores, any other busy process makes every
  small operation wait for a time slice (20x slower runs were measured).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import pytest  # noqa: E402
from servers import free_ports  # noqa: E402


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    """The real embedded tritonserver with the project's model repository, on free ports."""
    from ecgscreen.triton_server import EmbeddedTriton, TritonPorts

    http, grpc, metrics = free_ports(3)
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = EmbeddedTriton(ports=TritonPorts(http, grpc, metrics), log_file=log)
    server.start()
    yield server
    server.stop()


import csv  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ecgscreen.imaging.canonical import signal_to_canonical  # noqa: E402
from ecgscreen.synth import LABEL_COLUMNS, make_record  # noqa: E402

torch.set_num_threads(1)

SPLIT_BY_REMAINDER = {0: "train", 1: "train", 2: "train", 3: "val", 4: "test"}


def write_signal_dataset(out: Path, n: int, seed: int = 0, difficulty: str = "easy") -> Path:
    """``n`` records as ``.npy`` signals (mV, 500 Hz) plus ``labels.csv``; split by index % 5."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        record = make_record(seed, i, difficulty)
        np.save(out / f"{i:06d}.npy", record.signal.astype(np.float32))
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


@pytest.fixture(scope="session")
def signal_dataset(tmp_path_factory) -> Path:
    """40 easy records: 24 train, 8 val, 8 test."""
    return write_signal_dataset(tmp_path_factory.mktemp("signals"), 40, seed=3)


def tiny_config(**overrides):
    """The demo recipe shrunk to seconds: 64 px, batch 4, few bootstrap resamples."""
    from ecgscreen.trainconfig import load_config

    values = {"image_size": 64, "epochs": 2, "batch_size": 4, "eval_batch_size": 16, "n_bootstrap": 200,
              "fusion": True, "fusion_epochs": 15, "warmup_epochs": 0.2, "lr": 3e-3}  # fmt: skip
    values.update(overrides)
    return load_config("demo", [f"{k}={v}" for k, v in values.items()])


@pytest.fixture(scope="session")
def tiny_run(signal_dataset, tmp_path_factory) -> Path:
    """A finished two-epoch demo-recipe run with a fusion head, on ``signal_dataset``."""
    from ecgscreen.train import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    train(tiny_config(), signal_dataset, out, loader=signal_loader, cache_dir=out.parent / "cache", threads=1)
    return out
