"""``python -m bench study``: our service against the study's serving approach, on the same cart
PDFs, in the same run.

The study's approach (``bench.study_app``): one uvicorn process; per request a full-page
300-dpi raster of the PDF with poppler, a fixed crop box, grid removal by RGB values, an eager
PyTorch forward. Ours: the gateway (2 workers) -> the embedded Triton, as ``make serve`` runs
it. Both serve the same network with the same seeded random weights (the study's at 384 px,
``resnet34d``; and the demo model's architecture, ``resnet18d_tiny``). The study app runs it
as an eager FP32 forward; ours as ``ecgscreen export`` makes it: the embedded CPU config runs
its INT8 variant when that passed its parity check (``bench.models``), so the network's cost
differs by what quantization saves, as it does in production. Printed per concurrency (1 and 8): each
side's throughput and p50 latency, the throughput ratio and the p50 latency ratio; then where
the time goes: the study app's own timing of each step, and our CPU time per role. Rounds
alternate which side runs first; medians over rounds. ``BENCH_STUDY_MODELS=resnet34d`` (or
``resnet18d_tiny``, comma-separated) measures fewer networks.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from ecgscreen.serving.procs import free_ports
from ecgscreen.synth.generate import encode_record, make_record

from .bound import served
from .clients import GatewayClient
from .cpu import ROLES, CpuMeter
from .load import run_load
from .models import random_network, repository_for, served_variant
from .study_app import STEPS, StudyServer, parse_timing

__all__ = ["main"]

NETWORKS = {"resnet34d": "the study's network at 384 px", "resnet18d_tiny": "the demo model's network"}
N_PDFS = 12
CONCURRENCY = {1: 1, 8: 2}  # concurrency -> rounds over the PDFs
ROUNDS = 2
REQUIRED = ["pdftoppm", "pdfinfo"]  # the study's rasteriser (poppler, through pdf2image)


def cart_pdfs() -> list[bytes]:
    """Vector PDFs as ECG carts write them (every layout and grid of the generator)."""
    return [encode_record(make_record(41, i, formats=("pdf",))) for i in range(N_PDFS)]


def _ensure_poppler() -> None:
    import shutil
    import subprocess

    if not all(shutil.which(tool) for tool in REQUIRED):
        script = Path(__file__).resolve().parents[1] / "scripts" / "ensure-debian-packages.sh"
        subprocess.run(["bash", str(script), "poppler-utils"], check=True)


def _measure(backbone: str, pdfs: list[bytes], tmp: Path) -> dict:
    weights = tmp / f"{backbone}.pt"
    torch.save(random_network(backbone).state_dict(), weights)  # the same seed as the export
    repository = repository_for(backbone, tmp)
    print(f"  Triton's CPU config serves the {served_variant(repository).upper()} network", flush=True)
    found: dict = defaultdict(list)
    with served(repository, tmp) as (triton, gateway):
        with StudyServer(free_ports(1)[0], backbone, weights, log_file=tmp / "study.log") as study:
            meter = CpuMeter(triton=triton.process.pid, gateway=gateway.process.pid)
            ours, theirs = GatewayClient(gateway.url), GatewayClient(study.url, "/api/predict")
            bodies = {"ours": [ours.prepare(p) for p in pdfs], "study": [theirs.prepare(p) for p in pdfs]}
            clients = {"ours": ours, "study": theirs}
            for side in ("ours", "study"):  # warm up: models loaded, first-call costs paid
                run_load(clients[side], bodies[side][:2], 2, rounds=1)
            theirs.timings.clear()
            for round_ in range(ROUNDS):
                print(f"  round {round_ + 1}/{ROUNDS} ...", flush=True)
                order = ("study", "ours") if round_ % 2 == 0 else ("ours", "study")
                for concurrency, rounds in CONCURRENCY.items():
                    for side in order:
                        cpu = meter.read()
                        load = run_load(clients[side], bodies[side], concurrency, rounds=rounds)
                        found[side, concurrency].append(load)
                        if side == "ours":
                            found["cpu", concurrency].append(CpuMeter.per_item(cpu, meter.read(), load["n"]))
            found["timings"] = [parse_timing(t) for t in theirs.timings]
    return found


def _report(found: dict) -> None:
    median = statistics.median
    for concurrency in CONCURRENCY:
        study, ours = found["study", concurrency], found["ours", concurrency]
        ratios = [o["throughput"] / s["throughput"] for o, s in zip(ours, study, strict=True)]
        s_rate, o_rate = median(r["throughput"] for r in study), median(r["throughput"] for r in ours)
        s_p50, o_p50 = median(r["p50"] for r in study), median(r["p50"] for r in ours)
        print(f"  c{concurrency:<2d} study app {s_rate:6.2f} ECG/s  p50 {s_p50:7.0f} ms | ours {o_rate:6.2f} ECG/s  "
              f"p50 {o_p50:6.0f} ms | throughput x{median(ratios):.1f} (rounds: "
              f"{', '.join(f'x{r:.1f}' for r in ratios)}), p50 latency {s_p50 / o_p50:.1f}x lower")  # fmt: skip
    steps = {step: median(t[step] for t in found["timings"]) for step in STEPS}
    print("  where the study app's time goes (ms per request, its own timing): "
          + ", ".join(f"{step} {ms:.0f}" for step, ms in steps.items())
          + f" = {sum(steps.values()):.0f}; one request at a time (its endpoint blocks the event loop)")  # fmt: skip
    spent = {role: median(r[role] for r in found["cpu", 8]) for role in ROLES}
    print("  where ours goes at c8 (cpu-ms per ECG, all processes): "
          + ", ".join(f"{role} {ms:.1f}" for role, ms in spent.items())
          + f" = {sum(spent.values()):.0f}, on {os.cpu_count()} cores at once")  # fmt: skip


def main() -> None:
    _ensure_poppler()
    pdfs = cart_pdfs()
    print(f"{len(pdfs)} cart PDFs ({sum(map(len, pdfs)) / len(pdfs) / 1024:.0f} kB on average), "
          f"{os.cpu_count()} cores, {ROUNDS} rounds; load {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    chosen = os.environ.get("BENCH_STUDY_MODELS", ",".join(NETWORKS)).split(",")
    for backbone, what in ((b, NETWORKS[b]) for b in chosen):
        print(f"\n{backbone} ({what}), the same random weights on both sides", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            found = _measure(backbone, pdfs, Path(tmp))
        _report(found)
    print(f"\nload {os.getloadavg()[0]:.1f} at the end")
