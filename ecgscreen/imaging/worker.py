"""Settings for a process whose work is intake: one file per thread, workers scale by process
(Triton's ``ecg_preprocess`` instances, the benchmarks' and the CLI's process pools).

Two library defaults cost intake CPU for nothing:

* **OpenBLAS threads.** numpy's and scipy's OpenBLAS start a thread per core. scipy's filter
  design and neurokit2's filters (the judge's beat detection) make small LAPACK calls, and
  after each one those threads spin, waiting for more: on 2 cores a cart PDF took 200 CPU ms
  for 100 ms of work (``python -m bench study``'s PDFs). With one BLAS thread per process the
  CPU time equals the wall time.
* **glibc's mmap threshold.** ``serving.procs`` gives both servers a fixed 128 KB threshold so
  that their resident memory stays level under load (Triton's "false leak"), but then every
  large intake buffer (a page, its maps) is a fresh mapping paid for in page faults: intake in
  Triton took 166 CPU ms per ECG where a plain process took 101. An intake process keeps
  buffers up to ``HEAP_BUFFERS_UP_TO`` in its heap instead; its resident memory then follows the
  largest page in flight, which ``imaging.limits`` bounds.
"""

from __future__ import annotations

import ctypes
import logging

__all__ = ["settle_intake_process", "HEAP_BUFFERS_UP_TO"]

log = logging.getLogger(__name__)

HEAP_BUFFERS_UP_TO = 32 * 1024 * 1024  # bytes: more than a 4 px/mm A4 page's largest map
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def settle_intake_process() -> None:
    """One BLAS/OpenMP thread and large buffers in the heap, for this process (idempotent).
    Loads the intake's numerical libraries first, so that the thread limit reaches each one."""
    import neurokit2  # noqa: F401  (scipy's and scikit-learn's thread pools load with it)
    import numpy  # noqa: F401
    import scipy.signal  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its own allocator's defaults stand
        log.info("not glibc: the mmap threshold is left as it is")
        return
    if not libc.mallopt(_M_MMAP_THRESHOLD, HEAP_BUFFERS_UP_TO):
        log.warning("mallopt(M_MMAP_THRESHOLD) refused: large buffers stay fresh mappings")
