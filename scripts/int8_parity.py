"""INT8 vs FP32 of a repository's network (issue 23): the parity gate's numbers and the CPU
latency per image of both files in the same run, one onnxruntime thread.

    python scripts/int8_parity.py [--repository model_repository] [--n-fresh 600] [--out build/int8]
    python scripts/int8_parity.py --sweep [--n-calibration 128]

Works on a copy of the model's folder (the repository is not touched) and prints one JSON
object: the card's ``int8`` record (kept or refused, and why) and the latencies (FP32 and INT8
interleaved, the fastest of several rounds' medians: a busy machine only slows them).

``--sweep`` is the per-layer sensitivity sweep that chose ``quantize.FP32_CONVS``: each
convolution quantized alone (with the identity-path and bias corrections), its max |dP| against
FP32 on the calibration seed's ECGs (never the gate's fresh ones), most sensitive first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def latency_ms(paths: list[Path], images: np.ndarray, repeats: int, rounds: int = 6) -> list[float]:
    """Wall time of one image (the probabilities) through each of ``paths``, one thread: the
    files take turns, ``rounds`` rounds of ``repeats`` images each, the fastest round's median."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
    outputs = [o.name for o in sessions[0].get_outputs() if o.name.endswith("_probability")]
    for session in sessions:
        session.run(outputs, {"canonical": images[:1]})
    best = [float("inf")] * len(paths)
    for _ in range(rounds):
        for k, session in enumerate(sessions):
            times = []
            for i in range(repeats):
                x = images[i % len(images)][None]
                start = time.perf_counter()
                session.run(outputs, {"canonical": x})
                times.append(time.perf_counter() - start)
            best[k] = min(best[k], 1000 * float(np.median(times)))
    return best


def sweep(folder: Path, n_calibration: int) -> list[dict]:
    """Each convolution quantized alone: its max |dP| on the calibration seed's ECGs."""
    import onnx

    from ecgscreen.card import ModelCard
    from ecgscreen.export.quantize import (
        CALIBRATION_SEED,
        _probabilities,
        intake_canonicals,
        quantize_network,
    )

    card = ModelCard.load(folder)
    fp32 = folder / card.onnx.file
    images = intake_canonicals(n_calibration, CALIBRATION_SEED, card.input_size)
    tasks = list(card.tasks)
    reference = _probabilities(fp32, images, tasks)
    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    rows = []
    for conv in convs:
        one = folder / "sweep.int8.onnx"
        quantize_network(fp32, one, images, fp32_convs=tuple(c for c in convs if c != conv))
        p = _probabilities(one, images, tasks)
        rows.append(
            {"conv": conv, "max_abs_diff": max(float(np.abs(p[t] - reference[t]).max()) for t in tasks)}
        )
        print(f"{rows[-1]['max_abs_diff']:.4f}  {conv}", flush=True)
    return sorted(rows, key=lambda r: -r["max_abs_diff"])


def main() -> None:
    from ecgscreen.contract import MODEL_NAME
    from ecgscreen.export.quantize import Int8Options, fresh_canonicals, quantize_export

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--n-calibration", type=int, default=128)
    parser.add_argument("--n-fresh", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("build/int8"))
    parser.add_argument("--sweep", action="store_true", help="per-layer sensitivity sweep instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        shutil.copytree(args.repository / MODEL_NAME, Path(work) / MODEL_NAME,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        if args.sweep:
            print(json.dumps(sweep(Path(work) / MODEL_NAME, args.n_calibration), indent=2))
            return
        options = Int8Options(n_calibration=args.n_calibration, n_fresh=args.n_fresh)
        card = quantize_export(Path(work), options=options, keep_refused=True)
        folder = Path(work) / MODEL_NAME
        images, _ = fresh_canonicals(20, options.fresh_seed + 1, card.input_size)
        fp32, int8 = latency_ms([folder / card.onnx.file, folder / card.int8.file], images, args.repeats)
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
