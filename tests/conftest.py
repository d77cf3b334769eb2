"""Shared test setup.

* ``tests/`` is on the path (``pythonpath`` in pyproject.toml): the shared helpers
  (``signal_datasets``, ``corpus``, ``servers``, ``nets_reference``, ``prometheus_harness``)
  are imported by name from every test folder; BentoML does not phone home.
* ``triton``: the real embedded tritonserver for the session.
* ``committed_copy``: a committed model's folder copied into a fresh repository, without its
  INT8 variant (the INT8 export tests make their own).
* Small synthetic datasets (``signal_datasets.py``) whose canonical images come straight from the
  generator's signals (no file decoding), so model tests stay fast on two CPU cores. Torch
  runs on one thread in tests: with two threads on two shared cores, any other busy process
  makes every small operation wait for a time slice (20x slower runs were measured).
"""

import os
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import pytest  # noqa: E402
import torch  # noqa: E402
from servers import free_ports  # noqa: E402
from signal_datasets import signal_loader, tiny_config, write_signal_dataset  # noqa: E402

torch.set_num_threads(1)

COMMITTED_REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"


@pytest.fixture
def committed_copy(tmp_path):
    """``copy(name) -> repository``: ``model_repository/<name>`` copied into ``tmp_path``,
    less its INT8 file and caches."""
    import shutil

    from ecgscreen.contract import INT8_MODEL_FILE

    def copy(name: str) -> Path:
        ignore = shutil.ignore_patterns("__pycache__", INT8_MODEL_FILE)
        shutil.copytree(COMMITTED_REPOSITORY / name, tmp_path / name, ignore=ignore)
        return tmp_path

    return copy


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    """The real embedded tritonserver with the project's model repository, on free ports."""
    from ecgscreen.serving.triton import EmbeddedTriton, TritonPorts

    http, grpc, metrics = free_ports(3)
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = EmbeddedTriton(ports=TritonPorts(http, grpc, metrics), log_file=log)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def signal_dataset(tmp_path_factory) -> Path:
    """40 easy records: 24 train, 8 val, 8 test."""
    return write_signal_dataset(tmp_path_factory.mktemp("signals"), 40, seed=3)


@pytest.fixture(scope="session")
def tiny_run(signal_dataset, tmp_path_factory) -> Path:
    """A finished two-epoch demo-recipe run with a fusion head, on ``signal_dataset``."""
    from ecgscreen.training.loop import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    train(tiny_config(), signal_dataset, out, loader=signal_loader, cache_dir=out.parent / "cache", threads=1)
    return out
