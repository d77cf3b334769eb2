"""The two parts of the stack alone, on every core: what the machine could do at best.

* ``intake_alone``: ``ecgscreen.imaging.pipeline.preprocess`` over the files in a process pool
  of one worker per core (no server, no copies): ECGs/s, and each file's CPU time.
* ``model_alone``: the served network file (``bench.models.onnx_path``: INT8 when its variant
  passed) under onnxruntime on a given list of batch sizes
  (those Triton formed), in the two sensible layouts of a CPU, one single-threaded session per
  core, or one session with a thread per core (threads that sleep while waiting); the better
  of the two is the bound.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ecgscreen.contract import MODEL_INPUT
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.imaging.worker import settle_intake_process

__all__ = ["intake_alone", "model_alone"]


def _intake(data: bytes) -> tuple[np.ndarray, float]:
    start = time.process_time()
    canonical = preprocess(data).canonical
    return canonical, time.process_time() - start


def intake_alone(files: list[bytes], rounds: int, workers: int | None = None) -> dict:
    """``{"throughput", "cpu_ms", "canonical"}``: ECGs/s over ``files * rounds``, mean CPU ms
    per file, and the canonical images (model inputs for ``model_alone``)."""
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=settle_intake_process) as pool:
        list(pool.map(_intake, files[:workers]))  # imports and caches warm in every worker
        start = time.perf_counter()
        results = list(pool.map(_intake, files * rounds, chunksize=1))
        elapsed = time.perf_counter() - start
    return {
        "throughput": len(results) / elapsed,
        "cpu_ms": 1000 * float(np.mean([cpu for _, cpu in results])),
        "canonical": np.stack([canonical for canonical, _ in results[: len(files)]]),
    }


_session = None
_images: np.ndarray | None = None
_outputs: list[str] = []


def _load(path: str, threads: int, images: np.ndarray) -> None:
    import onnxruntime as ort

    global _session, _images, _outputs
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as served
    _session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    _images = images
    # what the served requests ask for: the probabilities (CAM and embedding only on demand)
    _outputs = [o.name for o in _session.get_outputs() if o.name.endswith("_probability")]


def _run(batch: int) -> int:
    x = np.resize(_images, (batch, *_images.shape[1:]))  # repeats the images to fill the batch
    _session.run(_outputs, {MODEL_INPUT: x})
    return batch


def _replay(path: str, images: np.ndarray, batches: list[int], workers: int, threads: int) -> float:
    with ProcessPoolExecutor(workers, initializer=_load, initargs=(path, threads, images)) as pool:
        list(pool.map(_run, [max(batches)] * workers))  # load and warm every session
        start = time.perf_counter()
        done = sum(pool.map(_run, batches, chunksize=1))
        return done / (time.perf_counter() - start)


def model_alone(path: str, images: np.ndarray, batches: list[int], cores: int | None = None) -> dict:
    """``{"throughput", "per_core", "threaded"}``: images/s running ``batches`` (batch sizes;
    the probability outputs, as the benchmarks' requests ask) with one 1-thread session per core, with one session using every core, and
    the better of the two."""
    cores = cores or os.cpu_count() or 1
    per_core = _replay(path, images, batches, cores, 1)
    threaded = _replay(path, images, batches, 1, cores)
    return {"throughput": max(per_core, threaded), "per_core": per_core, "threaded": threaded}
