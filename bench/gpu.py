"""GPU checks for a machine with CUDA (run there: ``python -m bench gpu``).

1. timm parity: where timm is installed, a timm ``resnet18d/34d/50d`` state dict loads
   unchanged (strict) into ours and gives the same outputs.
2. Training throughput (forward + backward + AdamW, 384 px, batch 32) on CUDA in fp32 and
   bf16 autocast, as a ratio to the same step on this machine's CPU.
3. ``ecgscreen.train`` end to end with ``device="cuda"`` on a tiny synthetic dataset.
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ecgscreen.contract import CANONICAL_SIZE
from ecgscreen.imaging.canonical import signal_to_canonical
from ecgscreen.nets.multitask import MultiTaskNet
from ecgscreen.nets.resnet import create_model
from ecgscreen.synth.generate import LABEL_COLUMNS, make_record


def timm_parity() -> None:
    try:
        import timm
    except ImportError:
        print("timm not installed: parity check skipped")
        return
    for name in ("resnet18d", "resnet34d", "resnet50d"):
        reference = timm.create_model(name, pretrained=False).eval()
        ours = create_model(name).eval()
        missing = ours.load_state_dict(reference.state_dict(), strict=True)
        x = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            diff = (reference(x) - ours(x)).abs().max().item()
        print(f"timm {timm.__version__} {name}: strict load {missing}, max |diff| {diff:.2e}")


def _step_rate(model: torch.nn.Module, device: str, amp: bool, batch: int = 32, steps: int = 5) -> float:
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, CANONICAL_SIZE, CANONICAL_SIZE, device=device)
    y = torch.randint(0, 2, (batch,), device=device)

    def step():
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
            logits = model(x).view(batch, -1, 2)  # (batch, task, class)
            loss = sum(torch.nn.functional.cross_entropy(logits[:, t], y) for t in range(logits.shape[1]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def throughput() -> None:
    for backbone in ("resnet18d_tiny", "resnet34d"):
        cpu = _step_rate(MultiTaskNet(backbone=backbone), "cpu", amp=False, steps=2)
        line = f"{backbone}: CPU {cpu:7.1f} img/s"
        if torch.cuda.is_available():
            fp32 = _step_rate(MultiTaskNet(backbone=backbone), "cuda", amp=False)
            bf16 = _step_rate(MultiTaskNet(backbone=backbone), "cuda", amp=True)
            line += f" | CUDA fp32 {fp32:7.1f} img/s (x{fp32 / cpu:.0f}) | bf16 {bf16:7.1f} img/s (x{bf16 / cpu:.0f})"
        print(line)


def train_on_cuda() -> None:
    from ecgscreen.training.config import load_config
    from ecgscreen.training.loop import train

    if not torch.cuda.is_available():
        print("no CUDA: train smoke test skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        rows = []
        for i in range(40):
            record = make_record(0, i, "easy")
            np.save(data / f"{i:06d}.npy", record.signal)
            row = record.label_row()
            row["path"], row["split"] = f"{i:06d}.npy", ("train", "train", "train", "val", "test")[i % 5]
            rows.append(row)
        with (data / "labels.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

        def loader(folder, row, size):
            return signal_to_canonical(np.load(Path(folder) / row["path"]), 500, size)

        cfg = load_config("demo", ["epochs=2", "batch_size=8"])
        start = time.perf_counter()
        summary = train(cfg, data, Path(tmp) / "run", device="cuda", loader=loader, workers=1)
        print(f"ecgscreen.train on cuda: {summary['epochs_run']} epochs in {time.perf_counter() - start:.1f} s, "
              f"val metrics {summary['metrics'].get('val')}")  # fmt: skip


def main() -> None:
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))  # fmt: skip
    timm_parity()
    throughput()
    train_on_cuda()


if __name__ == "__main__":
    main()
