"""Throughput and latency through the embedded Triton (gRPC, ensemble ``ecg_screening``) at
concurrency 1 and 8, next to the same files run in this process (intake + onnxruntime on the
same model.onnx). The ratio says what the server's batching and parallel instances buy."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient

from ecgscreen.contract import ENSEMBLE_INPUT, ENSEMBLE_NAME, ENSEMBLE_PROBABILITY, MODEL_INPUT, MODEL_NAME
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.serving.procs import free_ports
from ecgscreen.serving.triton import DEFAULT_REPOSITORY, EmbeddedTriton, TritonPorts
from ecgscreen.synth.generate import FORMATS, encode_record, make_record

from .load import describe, run_load

N_FILES = 24


def bench_files() -> list[bytes]:
    """A fixed mix: every format, layout and acquisition of the generator."""
    return [encode_record(make_record(31, i, formats=(FORMATS[i % len(FORMATS)],))) for i in range(N_FILES)]


def triton_call(url: str):
    client = grpcclient.InferenceServerClient(url)

    def call(data: bytes):
        tensor = grpcclient.InferInput(ENSEMBLE_INPUT, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        outputs = [grpcclient.InferRequestedOutput(ENSEMBLE_PROBABILITY["scar"])]
        return client.infer(ENSEMBLE_NAME, [tensor], outputs=outputs)

    return call


def main() -> None:
    files = bench_files()
    session = ort.InferenceSession(
        str(DEFAULT_REPOSITORY / MODEL_NAME / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )

    def in_process(data: bytes):
        return session.run(["scar_probability"], {MODEL_INPUT: preprocess(data).canonical[None]})

    with tempfile.TemporaryDirectory() as tmp:
        with EmbeddedTriton(ports=TritonPorts(*free_ports(3)), log_file=Path(tmp) / "triton.log") as triton:
            call = triton_call(triton.grpc_url)
            run_load(call, files[:4], 2, rounds=1)  # warm up
            for concurrency in (1, 8):
                local = run_load(in_process, files, concurrency)
                served = run_load(call, files, concurrency)
                print(describe(f"in-process, concurrency {concurrency}", local))
                print(describe(f"Triton gRPC, concurrency {concurrency}", served))
                print(f"  Triton / in-process throughput: x{served['throughput'] / local['throughput']:.2f}, "
                      f"p50 latency ratio {served['p50'] / local['p50']:.2f}")  # fmt: skip
