"""INT8 vs FP32 of a repository's network (issue 23): the parity gate's numbers and the CPU
latency per image of both files in the same run, one onnxruntime thread.

    python scripts/int8_parity.py [--repository model_repository] [--n-fresh 600] [--out build/int8]

Works on a copy of the model's folder (the repository is not touched) and prints one JSON
object: the card's ``int8`` record (kept or refused, and why) and the latencies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def latency_ms(path: Path, images: np.ndarray, repeats: int) -> float:
    """Median wall time of one image through ``path``, one thread, after a warm-up."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {"canonical": images[:1]})
    times = []
    for i in range(repeats):
        x = images[i % len(images)][None]
        start = time.perf_counter()
        session.run(None, {"canonical": x})
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    from ecgscreen.contract import MODEL_NAME
    from ecgscreen.export.quantize import Int8Options, fresh_canonicals, quantize_export

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--n-calibration", type=int, default=128)
    parser.add_argument("--n-fresh", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("build/int8"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        shutil.copytree(args.repository / MODEL_NAME, Path(work) / MODEL_NAME,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        options = Int8Options(n_calibration=args.n_calibration, n_fresh=args.n_fresh)
        card = quantize_export(Path(work), options=options, keep_refused=True)
        folder = Path(work) / MODEL_NAME
        images, _ = fresh_canonicals(20, options.fresh_seed + 1, card.input_size)
        fp32 = latency_ms(folder / card.onnx.file, images, args.repeats)
        int8 = latency_ms(folder / card.int8.file, images, args.repeats)
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / card.int8.file, args.out / "model.int8.onnx")
    result = {
        "int8": card.int8.model_dump(mode="json"),
        "fp32_bytes": card.onnx.bytes,
        "latency_ms_one_thread": {
            "fp32": round(fp32, 2),
            "int8": round(int8, 2),
            "speedup": round(fp32 / int8, 2),
        },
    }
    (args.out / "parity.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
