"""Gateway overhead: /predict through the gateway (2 workers) vs the same files sent to
Triton directly, at concurrency 1 and 8, in the same run; and /explain vs /predict."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from ecgscreen.serving.procs import free_ports
from ecgscreen.serving.supervisor import Gateway
from ecgscreen.serving.triton import EmbeddedTriton, TritonPorts

from .load import describe, run_load
from .triton import bench_files, triton_call


def http_call(url: str, path: str, **form):
    client = httpx.Client(base_url=url, timeout=120)

    def call(data: bytes):
        response = client.post(path, files={"file": ("ecg", data)}, data=form)
        response.raise_for_status()
        return response

    return call


def main() -> None:
    files = bench_files()
    with tempfile.TemporaryDirectory() as tmp:
        ports = TritonPorts(*free_ports(3))
        with EmbeddedTriton(ports=ports, log_file=Path(tmp) / "triton.log") as triton:
            gateway = Gateway(
                free_ports(1)[0], triton.grpc_url, workers=2, log_file=Path(tmp) / "gateway.log"
            ).start()
            try:
                direct, predict = triton_call(triton.grpc_url), http_call(gateway.url, "/predict")
                explain = http_call(gateway.url, "/explain", task="scar")
                run_load(predict, files[:4], 2, rounds=1)  # warm up both workers
                for concurrency in (1, 8):
                    t = run_load(direct, files, concurrency)
                    g = run_load(predict, files, concurrency)
                    print(describe(f"Triton direct, concurrency {concurrency}", t))
                    print(describe(f"gateway /predict, concurrency {concurrency}", g))
                    print(f"  gateway overhead: p50 latency x{g['p50'] / t['p50']:.3f}, "
                          f"throughput x{g['throughput'] / t['throughput']:.3f}")  # fmt: skip
                p = run_load(predict, files, 1)
                e = run_load(explain, files, 1)
                print(describe("gateway /predict, concurrency 1", p))
                print(describe("gateway /explain (PNG), concurrency 1", e))
                print(f"  explain / predict p50 latency: x{e['p50'] / p['p50']:.3f}")
            finally:
                gateway.stop()
