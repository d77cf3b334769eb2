"""``python -m bench screen``: ``ecgscreen screen`` over a generated archive, killed midway and
resumed, its rate next to Triton direct on the same files in the same run.

1000 ECGs (``BENCH_SCREEN_N``) from the generator, every format (kept under
``build/bench/`` for the next run); the embedded Triton.
Triton direct: the benchmarks' minimal gRPC client (``bench.clients.TritonClient``, each file
read when it is sent), concurrency 8, over the first 300 files, before and after the screen
runs. ``ecgscreen screen --concurrency 8`` runs as a command until 300 rows are written, is
killed (SIGKILL) and run again to the end; the CSV must then hold every file exactly once.
The rate compared is the resumed run's own (its summary), which excludes the command's start.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tritonclient.utils import InferenceServerException

from ecgscreen.card import ModelCard
from ecgscreen.contract import MODEL_NAME
from ecgscreen.imaging.errors import from_wire
from ecgscreen.screen.runner import screen
from ecgscreen.screen.sources import find_sources
from ecgscreen.serving.procs import free_ports
from ecgscreen.serving.triton import DEFAULT_REPOSITORY, EmbeddedTriton, TritonPorts
from ecgscreen.synth.generate import generate

from .clients import TritonClient
from .load import describe, run_load

__all__ = ["main"]

N = int(os.environ.get("BENCH_SCREEN_N", "1000"))
KILL_AFTER = min(300, N // 3)
CONCURRENCY = 8


def _direct(url: str, paths: list[Path], concurrency: int = CONCURRENCY) -> dict:
    """Each file read and sent as it comes: a client with nothing else to do (a refusal is an
    answer too)."""
    client = TritonClient(url)

    def send(path: Path) -> None:
        try:
            client(client.prepare(path.read_bytes()))
        except InferenceServerException as error:
            if from_wire(error.message() or "") is None:
                raise

    return run_load(send, paths, concurrency, rounds=1)


def _archive(n: int) -> Path:
    """``n`` generated ECGs, kept under build/ for the next run (generating takes minutes)."""
    folder = Path(__file__).resolve().parents[1] / "build" / "bench" / f"screen-archive-{n}"
    if not (folder / "labels.csv").is_file():
        start = time.perf_counter()
        generate(n, 16, folder, workers=os.cpu_count())
        print(f"{n} ECGs generated in {time.perf_counter() - start:.0f} s into {folder}", flush=True)
    return folder


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive, out = _archive(N), Path(tmp) / "results.csv"
        print(f"{N} ECGs in {archive}; load {os.getloadavg()[0]:.1f}", flush=True)
        sources = find_sources(archive)
        with EmbeddedTriton(ports=TritonPorts(*free_ports(3)), log_file=Path(tmp) / "triton.log") as triton:
            sample = [path for _, path in sources[:KILL_AFTER]]
            _direct(triton.grpc_url, sample[:4], 2)  # warm up
            before = _direct(triton.grpc_url, sample)
            print(describe(f"Triton direct, c{CONCURRENCY}, before", before), flush=True)
            command = [sys.executable, "-m", "ecgscreen.cli", "screen", str(archive), "--out", str(out),
                       "--url", triton.grpc_url, "--concurrency", str(CONCURRENCY)]  # fmt: skip
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)  # fmt: skip
            while process.poll() is None and (not out.exists() or out.read_text().count("\n") <= KILL_AFTER):
                time.sleep(0.05)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            at_kill = len(_rows(out))
            card = ModelCard.load(DEFAULT_REPOSITORY / MODEL_NAME)
            summary = screen(sources, out, card, triton.grpc_url, CONCURRENCY)
            after = _direct(triton.grpc_url, sample)
            print(describe(f"Triton direct, c{CONCURRENCY}, after", after))
        final = _rows(out)
        keys = [row["path"] for row in final]
        assert sorted(keys) == sorted(key for key, _ in sources), "the CSV must hold every file exactly once"
        direct = (before["throughput"] + after["throughput"]) / 2
        outcomes = {o: sum(r["outcome"] == o for r in final) for o in ("ok", "refused", "error")}
        print(f"killed after {at_kill} rows; the resumed run skipped {summary.skipped} and screened "
              f"{summary.screened}; the CSV holds all {len(final)} files once ({outcomes})")  # fmt: skip
        print(f"ecgscreen screen (resumed run, c{CONCURRENCY}): {summary.rate:.2f} ECG/s; Triton direct "
              f"{direct:.2f} ECG/s (mean of before/after); screen / direct = {summary.rate / direct:.2f}")  # fmt: skip
