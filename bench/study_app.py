"""The study's serving approach, rebuilt for a same-run baseline (``python -m bench study``).

What its app backend (github:biodatlab/multitask-vision-ecg, ``app/backend/api.py``) does per
request, written here from that description, not copied: one uvicorn process; an ``async``
endpoint that does all its work in the event loop (so concurrent requests wait in turn);
the PDF rasterised as a whole page at 300 dpi the way ``pdf2image`` does it (the bytes to a
temporary file, ``pdfinfo`` for the page count, ``pdftoppm -r 300`` to a PPM on stdout); the
fixed box ``(82, 950, 3000, 2000)`` cropped; grid lines removed by three RGB values (+-3 per
channel, as its ``remove_grid_robust(n_jitter=3)``); the twelve lead strips cut at fixed
offsets and restacked 6 x 2; resized to 384 and ImageNet-normalised; an eager PyTorch forward
of the network with the weights in ``STUDY_WEIGHTS`` (``STUDY_BACKBONE``): the same network and
weights the benchmark exports to ONNX for our service, so the model's cost is equal. Each
answer carries a ``Server-Timing`` header with the time of each step.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ecgscreen.contract import CANONICAL_SIZE, IMAGENET_MEAN, IMAGENET_STD
from ecgscreen.serving.procs import ManagedServer, http_ok

__all__ = [
    "STEPS",
    "StudyServer",
    "rasterise",
    "remove_grid",
    "rearrange_leads",
    "model_input",
    "parse_timing",
]

STEPS = ("raster", "grid", "layout", "forward")  # Server-Timing entries, in order
BOX = (82, 950, 3000, 2000)  # the study's crop of its cart's page at 300 dpi
GRID_RGB = ((216, 111, 98), (250, 200, 168), (168, 0, 0))  # its printer's grid colours
JITTER = 3
# Lead strips in the cropped page: 3 rows x 4 columns of 701 x 350 px, restacked 6 x 2.
_ROWS, _COLUMNS, _STRIP = (0, 350, 700), (0, 740, 1478, 2217), (701, 350)


def rasterise(pdf: bytes, dpi: int = 300) -> Image.Image:
    """The first page as ``pdf2image.convert_from_bytes`` makes it, cropped to ``BOX``."""
    with tempfile.NamedTemporaryFile(suffix=".pdf") as file:
        file.write(pdf)
        file.flush()
        info = subprocess.run(["pdfinfo", file.name], capture_output=True, text=True, check=True).stdout
        pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
        command = ["pdftoppm", "-r", str(dpi), "-f", "1", "-l", str(pages), file.name]
        ppm = subprocess.run(command, capture_output=True, check=True).stdout
    return Image.open(io.BytesIO(ppm)).convert("RGB").crop(BOX)


def remove_grid(image: Image.Image) -> Image.Image:
    """Pixels within +-``JITTER`` of each grid colour become white."""
    rgb = np.array(image)
    r, g, b = rgb[:, :, 0].astype(np.int16), rgb[:, :, 1].astype(np.int16), rgb[:, :, 2].astype(np.int16)
    for red, green, blue in GRID_RGB:
        grid = (np.abs(r - red) <= JITTER) & (np.abs(g - green) <= JITTER) & (np.abs(b - blue) <= JITTER)
        rgb[grid] = 255
    return Image.fromarray(rgb)


def rearrange_leads(image: Image.Image) -> Image.Image:
    """The twelve strips, column by column, restacked into two columns of six."""
    strips = [
        np.asarray(image.crop((left, top, left + _STRIP[0], top + _STRIP[1])))
        for left in _COLUMNS
        for top in _ROWS
    ]
    return Image.fromarray(np.hstack([np.vstack(strips[:6]), np.vstack(strips[6:])]))


def model_input(image: Image.Image):
    """(1, 3, 384, 384) float tensor: resized, scaled to [0, 1], ImageNet-normalised."""
    import torch

    x = np.asarray(image.resize((CANONICAL_SIZE, CANONICAL_SIZE), Image.Resampling.BILINEAR), np.float32)
    x = (x / 255.0 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]


def _network():
    import torch

    from ecgscreen.nets.multitask import MultiTaskNet

    model = MultiTaskNet(backbone=os.environ["STUDY_BACKBONE"])
    model.load_state_dict(torch.load(os.environ["STUDY_WEIGHTS"], weights_only=True))
    return model.eval()


def _create_app():
    import torch
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    network = _network()

    async def predict(request: Request) -> JSONResponse:
        form = await request.form()
        pdf = await form["file"].read()
        spent, start = {}, time.perf_counter()
        image = rasterise(pdf)  # blocking, in the event loop, as the study's endpoint does
        spent["raster"], start = time.perf_counter() - start, time.perf_counter()
        image = remove_grid(image)
        spent["grid"], start = time.perf_counter() - start, time.perf_counter()
        x = model_input(rearrange_leads(image))
        spent["layout"], start = time.perf_counter() - start, time.perf_counter()
        with torch.no_grad():
            logits = network(x).view(-1, len(network.tasks), 2)
        probabilities = torch.softmax(logits, dim=2)[0, :, 1].tolist()
        spent["forward"] = time.perf_counter() - start
        timing = ", ".join(f"{step};dur={1000 * spent[step]:.1f}" for step in STEPS)
        body = [
            {"title": task, "probability": round(100 * p, 2)}
            for task, p in zip(network.tasks, probabilities, strict=True)
        ]
        return JSONResponse(body, headers={"Server-Timing": timing})

    async def root(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/api/predict", predict, methods=["POST"]), Route("/", root)])


class StudyServer(ManagedServer):
    """``uvicorn bench.study_app:app`` (one process) serving ``backbone`` with ``weights``."""

    name = "study app (uvicorn)"

    def __init__(self, port: int, backbone: str, weights: Path, log_file: Path | None = None) -> None:
        super().__init__(log_file)
        self.port, self.backbone, self.weights = port, backbone, weights

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "bench.study_app:app", "--port", str(self.port),
                "--workers", "1", "--no-access-log", "--log-level", "warning"]  # fmt: skip

    def environment(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parents[1])
        # the libraries' defaults, as its own uvicorn would start (not our servers' malloc settings)
        env = {**os.environ, "STUDY_BACKBONE": self.backbone, "STUDY_WEIGHTS": str(self.weights)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        return env

    def is_ready(self) -> bool:
        return http_ok(self.url + "/")


def parse_timing(header: str) -> dict[str, float]:
    """``Server-Timing`` -> ``{step: ms}``."""
    return {
        name: float(dur.split("=")[1])
        for name, dur in (part.strip().split(";") for part in header.split(","))
    }


def __getattr__(name: str):  # the ASGI app is built only where uvicorn asks for it
    if name == "app":
        return _create_app()
    raise AttributeError(name)
