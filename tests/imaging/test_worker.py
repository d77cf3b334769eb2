"""An intake process's settings (``imaging.worker``): one BLAS/OpenMP thread, so that the
thread pools of numpy, scipy and scikit-learn stop spinning beside the one thread doing the work."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, threadpoolctl
from ecgscreen.imaging.worker import settle_intake_process
settle_intake_process()
settle_intake_process()  # idempotent
print(json.dumps([(p["internal_api"], p["num_threads"]) for p in threadpoolctl.threadpool_info()]))
"""


def test_an_intake_process_runs_every_thread_pool_on_one_thread():
    # a process of its own, with two threads per pool to start from: the limit is not the default
    env = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    pools = json.loads(out.stdout.strip().splitlines()[-1])
    assert {api for api, _ in pools} >= {"openblas"}  # numpy's and scipy's, at least
    assert all(threads == 1 for _, threads in pools), pools
