"""``python -m bench bound``: how close the served stack comes to what this machine can do.

For the committed demo model and for the study's ``resnet34d`` at 384 px (random weights,
exported through the native path: timing does not depend on weights), in the same run:

* **intake alone** on every core (a process pool over the same files);
* **the model alone** at the batch sizes Triton formed in each stack run (``bench.alone``);
* **the stack**: gateway (2 workers) -> Triton, concurrency 1, 8 and 32; Triton direct at 8.

Printed per concurrency: throughputs, ``stack / min(intake, model)`` (the issue's measure) and
``stack / shared-core bound``, where the shared-core bound ``1 / (1/intake + 1/model)`` counts
that intake and the network run on the same cores; and where the time goes (CPU ms per ECG per
role, ``bench.cpu``). Rounds interleave every measurement, so noise from other work on the
machine hits them alike; the medians over rounds are printed. ``BENCH_BOUND_MODELS=demo`` (or
``resnet34d``, comma-separated) measures fewer models.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import tritonclient.grpc as grpcclient

from ecgscreen.contract import MODEL_NAME
from ecgscreen.serving.procs import free_ports
from ecgscreen.serving.supervisor import Gateway
from ecgscreen.serving.triton import EmbeddedTriton, TritonPorts

from .alone import intake_alone, model_alone
from .clients import GatewayClient, TritonClient
from .cpu import ROLES, CpuMeter
from .load import run_load
from .models import DEMO, onnx_path, repository_for, served_variant
from .triton import bench_files

__all__ = ["served", "batch_counts", "batches_between", "main"]

BACKBONES = tuple(os.environ.get("BENCH_BOUND_MODELS", f"{DEMO},resnet34d").split(","))
CONCURRENCY = {1: 1, 8: 3, 32: 4}  # concurrency -> rounds over the files
ROUNDS = 2


@contextlib.contextmanager
def served(repository: Path, logs: Path, workers: int = 2):
    """The embedded Triton on ``repository`` and the gateway in front of it."""
    http, grpc, metrics, port = free_ports(4)
    with EmbeddedTriton(repository, TritonPorts(http, grpc, metrics), log_file=logs / "triton.log") as triton:
        # a throughput measurement: at concurrency 32 on 2 shared cores resnet34d's requests
        # queue longer than the gateway's production timeouts (30 s / 20 s)
        env = {"ECGSCREEN_MODEL_DIR": str(Path(repository) / MODEL_NAME),
               "ECGSCREEN_REQUEST_TIMEOUT_S": "600", "ECGSCREEN_TRITON_TIMEOUT_S": "590",
               # concurrency 32 over two workers may put 17 on one: back-pressure off too
               "ECGSCREEN_MAX_IN_FLIGHT": "256"}  # fmt: skip
        gateway = Gateway(port, triton.grpc_url, workers, log_file=logs / "gateway.log", env=env).start()
        try:
            yield triton, gateway
        finally:
            gateway.stop()


def batch_counts(client: grpcclient.InferenceServerClient) -> Counter:
    """Executions of the network so far, per batch size (Triton's statistics)."""
    (stats,) = client.get_inference_statistics(MODEL_NAME).model_stats
    return Counter({b.batch_size: b.compute_infer.count for b in stats.batch_stats})


def batches_between(before: Counter, after: Counter) -> list[int]:
    """The batch sizes of the executions between two ``batch_counts``."""
    return [size for size in sorted(after) for _ in range(after[size] - before.get(size, 0))]


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _measure(backbone: str, files: list[bytes], tmp: Path) -> dict:
    repository = repository_for(backbone, tmp)
    print(f"  Triton's CPU config serves the {served_variant(repository).upper()} network", flush=True)
    found: dict = defaultdict(list)
    with served(repository, tmp) as (triton, gateway):
        meter = CpuMeter(triton=triton.process.pid, gateway=gateway.process.pid)
        stats = grpcclient.InferenceServerClient(triton.grpc_url)
        stack, direct = GatewayClient(gateway.url), TritonClient(triton.grpc_url)
        bodies, tensors = [stack.prepare(f) for f in files], [direct.prepare(f) for f in files]
        run_load(stack, bodies[:4], 2, rounds=1)  # both gateway workers and every instance warm
        for round_ in range(ROUNDS):
            print(f"  round {round_ + 1}/{ROUNDS} ...", flush=True)
            intake = intake_alone(files, rounds=2)
            found["intake"].append(intake["throughput"])
            found["intake_cpu"].append(intake["cpu_ms"])
            for concurrency, rounds in CONCURRENCY.items():
                before, cpu = batch_counts(stats), meter.read()
                load = run_load(stack, bodies, concurrency, rounds=rounds)
                spent = CpuMeter.per_item(cpu, meter.read(), load["n"])
                batches = batches_between(before, batch_counts(stats))
                model = model_alone(str(onnx_path(repository)), intake["canonical"], batches)
                found[concurrency].append({"load": load, "model": model, "cpu": spent, "batches": batches})
            found["refused"].append(stack.refused)
            cpu = meter.read()
            load = run_load(direct, tensors, 8, rounds=CONCURRENCY[8])
            found["direct"].append({"load": load, "cpu": CpuMeter.per_item(cpu, meter.read(), load["n"])})
    return found


def _report(backbone: str, found: dict, cores: int) -> None:
    intake = _median(found["intake"])
    print(f"  intake alone ({cores} processes)            {intake:7.2f} ECG/s   "
          f"{_median(found['intake_cpu']):6.1f} cpu-ms per ECG")  # fmt: skip
    for concurrency in CONCURRENCY:
        runs = found[concurrency]
        stack = _median([r["load"]["throughput"] for r in runs])
        model = _median([r["model"]["throughput"] for r in runs])
        ratios = [r["load"]["throughput"] / min(intake, r["model"]["throughput"]) for r in runs]
        shared = 1 / (1 / intake + 1 / model)
        sizes = Counter(size for r in runs for size in r["batches"])
        mean_batch = sum(s * n for s, n in sizes.items()) / max(1, sum(sizes.values()))
        p50 = _median([r["load"]["p50"] for r in runs])
        print(f"  c{concurrency:<3d} model alone at Triton's batches (mean {mean_batch:4.1f})  {model:7.2f} img/s  "
              f"(1-thread sessions x{cores} {_median([r['model']['per_core'] for r in runs]):.2f}, "
              f"1 session x{cores} threads {_median([r['model']['threaded'] for r in runs]):.2f})")  # fmt: skip
        print(f"       stack (gateway -> Triton)              {stack:7.2f} ECG/s   p50 {p50:7.1f} ms   "
              f"stack / min(intake, model) = {_median(ratios):.2f} (rounds: "
              f"{', '.join(f'{x:.2f}' for x in ratios)})   stack / shared-core bound {shared:.1f} = {stack / shared:.2f}")  # fmt: skip
    if refused := max(found["refused"]):
        print(
            f"  (the gateway answered 429 {refused} times, each retried: its max_concurrency back-pressure)"
        )
    direct = _median([r["load"]["throughput"] for r in found["direct"]])
    stack8 = _median([r["load"]["throughput"] for r in found[8]])
    print(
        f"  c8   Triton direct (gRPC)                   {direct:7.2f} ECG/s   gateway costs x{stack8 / direct:.2f}"
    )
    for name, runs in [*((f"stack c{c}", found[c]) for c in CONCURRENCY), ("direct c8", found["direct"])]:
        spent = {role: _median([r["cpu"][role] for r in runs]) for role in ROLES}
        total = sum(spent.values())
        parts = "  ".join(f"{role} {ms:5.1f}" for role, ms in spent.items())
        print(f"  where the time goes, {name:9s} (cpu-ms per ECG): {parts}  = {total:5.1f}  "
              f"-> at most {cores * 1000 / total:5.1f} ECG/s on {cores} cores")  # fmt: skip


def main() -> None:
    files = bench_files()
    cores = os.cpu_count() or 1
    print(f"{len(files)} files (every format of the generator), {cores} cores, {ROUNDS} interleaved rounds; "
          f"load {os.getloadavg()[0]:.1f} at the start (other work on this machine shows here)")  # fmt: skip
    for backbone in BACKBONES:
        name = "demo model (committed)" if backbone == DEMO else f"{backbone} at 384 px (random weights)"
        print(f"\n{name}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            found = _measure(backbone, files, Path(tmp))
        _report(backbone, found, cores)
    print(f"\nload {os.getloadavg()[0]:.1f} at the end")
