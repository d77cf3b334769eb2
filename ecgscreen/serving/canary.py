"""The readiness canary, asked of Triton directly over its HTTP API (KServe v2).

Triton's own ``/v2/health/ready`` stays green when a python-backend stub has died (Triton
2.51 never restarts one), so "up" is not "answers". The canary is: the model card's canary
file through the whole ensemble, answered with the card's expected probabilities within its
tolerance (``card.Canary``). Three places ask it:

* the ``serve`` supervisor (``serving.supervisor``), which restarts Triton when it keeps failing;
* Kubernetes, as Triton's liveness probe: ``python3 -m ecgscreen.serving.canary`` inside the
  Triton image, which has python3, numpy and pydantic but no tritonclient: hence the standard
  library's HTTP client and the binary tensor extension written out here;
* the gateway's ``/readyz``, over its own gRPC path (``service.readiness``).

Raster pages go through a second model the ensemble's waveform canary never reaches: intake
asks ``ecg_segment`` by BLS. When the repository holds it, every round also asks it for the
classes of a small blank page, so that a dead segmenter stub fails the probe too (otherwise a
pod would stay live and ready while every picture failed).

The expected answer is that of the network variant Triton runs (``Canary.expected_for``): the
CPU config runs the INT8 variant when the card's passed its parity check (unless
``ECGSCREEN_CPU_PRECISION=fp32``, ``serving.precision``), the GPU config FP32/FP16. Unless told
(``precision``), a check first asks Triton which config of the network it loaded
(``/v2/models/<network>/config``, its ``backend``) when the card has an INT8 answer; the
setting is read from this process's environment, which is Triton's for the supervisor (it
starts Triton) and for the liveness probe (it runs in Triton's container).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..card import Canary, ModelCard
from ..contract import (
    ENSEMBLE_INPUT,
    ENSEMBLE_NAME,
    ENSEMBLE_PROBABILITY,
    MODEL_NAME,
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_INPUT,
    SEGMENTER_NAME,
)
from .precision import served_precision

__all__ = ["CanaryResult", "TritonCanary", "main"]


@dataclass(frozen=True)
class CanaryResult:
    """One canary round: ``kind`` is one of ``contract.CANARY_OUTCOMES``."""

    kind: str
    problem: str = ""  # empty when ok; never patient data (the canary is synthetic)
    elapsed_s: float = 0.0
    probabilities: dict[str, float] = field(default_factory=dict)
    precision: str = ""  # the variant whose expected answer it was compared with, when it answered

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def _request_body(data: bytes, outputs: list[str]) -> tuple[bytes, int]:
    """A KServe v2 binary-extension request: the JSON header, then the BYTES tensor as Triton
    serialises it (a 4-byte little-endian length, then the bytes)."""
    tensor = struct.pack("<I", len(data)) + data
    header = json.dumps({
        "inputs": [{"name": ENSEMBLE_INPUT, "shape": [1, 1], "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(tensor)}}],
        "outputs": [{"name": name, "parameters": {"binary_data": False}} for name in outputs],
    }).encode()  # fmt: skip
    return header + tensor, len(header)


_BLANK_PX = 16  # the segmenter's smallest page (its U-Net pools 4 times)
_BLANK_PAGE = json.dumps({
    "inputs": [{"name": SEGMENTER_INPUT, "shape": [1, _BLANK_PX, _BLANK_PX, 3], "datatype": "UINT8",
                "data": [255] * (_BLANK_PX * _BLANK_PX * 3)}],
    "outputs": [{"name": SEGMENTER_CLASS_OUTPUT}],
}).encode()  # fmt: skip


class TritonCanary:
    """Ask the canary of Triton at ``http_url`` (``http://host:8000``). ``precision`` is the
    variant whose expected answer counts (``"int8"`` or ``"fp32"``), or ``"auto"``: ask Triton
    which config it loaded and ``serving.precision.served_precision(card, ...)``."""

    def __init__(
        self,
        http_url: str,
        canary: Canary,
        data: bytes,
        timeout_s: float = 3.0,
        precision: str = "auto",
        card: ModelCard | None = None,
        segmenter: bool = False,
    ) -> None:
        if precision not in ("auto", "int8", "fp32"):
            raise ValueError(f"precision {precision!r}: expected auto, int8 or fp32")
        if precision == "auto" and canary.expected_int8 is not None and card is None:
            raise ValueError("precision auto needs the model card (which variant the CPU config runs)")
        self.root = http_url.rstrip("/")
        self.url = f"{self.root}/v2/models/{ENSEMBLE_NAME}/infer"
        self.canary = canary
        self.card = card
        self.precision = precision
        self.timeout_s = timeout_s
        self.outputs = {ENSEMBLE_PROBABILITY[task]: task for task in canary.expected}
        self.body, self.header_length = _request_body(data, list(self.outputs))
        self.segmenter = segmenter  # also ask ecg_segment (raster pages' path)

    @classmethod
    def from_model_dir(
        cls, http_url: str, model_dir: Path, timeout_s: float = 3.0, precision: str = "auto"
    ) -> TritonCanary | None:
        """The canary of the model card in ``model_dir``; ``None`` when the card has none (a
        repository exported before canaries: ``ecgscreen export --refresh-canary`` adds it).
        It asks ``ecg_segment`` too when the repository beside ``model_dir`` holds it."""
        card = ModelCard.load(model_dir)
        if card.canary is None:
            return None
        segmenter = (Path(model_dir).parent / SEGMENTER_NAME / "config.pbtxt").is_file()
        data = card.canary.read(model_dir)
        return cls(http_url, card.canary, data, timeout_s, precision, card, segmenter=segmenter)

    def served(self) -> str | CanaryResult:
        """The variant Triton runs (``"int8"``/``"fp32"``), or the failed round that asking it was."""
        if self.precision != "auto":
            return self.precision
        if self.canary.expected_int8 is None:  # one expected answer: no need to ask
            return "fp32"
        start = time.monotonic()
        try:
            url = f"{self.root}/v2/models/{MODEL_NAME}/config"
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                backend = json.loads(response.read()).get("backend")
            return served_precision(self.card, backend)
        except urllib.error.HTTPError as error:  # not loaded (yet): as an ensemble that is not
            return CanaryResult(
                "unavailable", f"{MODEL_NAME}'s config: HTTP {error.code}", time.monotonic() - start
            )
        except ValueError as error:  # ECGSCREEN_CPU_PRECISION refused, or a garbled answer
            return CanaryResult("error", str(error), time.monotonic() - start)
        except (TimeoutError, OSError) as error:
            kind = "timeout" if isinstance(getattr(error, "reason", error), TimeoutError) else "unavailable"
            return CanaryResult(
                kind, f"cannot ask Triton {MODEL_NAME}'s config: {error}", time.monotonic() - start
            )

    def _post(self, request: urllib.request.Request, start: float) -> dict | CanaryResult:
        """Triton's JSON answer to ``request``, or the failed round it was."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # Triton answered, with an error
            try:
                message = json.loads(error.read()).get("error", "")
            except (ValueError, OSError):
                message = ""
            return CanaryResult("error", f"HTTP {error.code}: {message[:300]}", time.monotonic() - start)
        except TimeoutError:
            return CanaryResult("timeout", f"no answer within {self.timeout_s:g} s", time.monotonic() - start)
        except urllib.error.URLError as error:
            kind = "timeout" if isinstance(error.reason, TimeoutError) else "unavailable"
            return CanaryResult(kind, f"cannot reach Triton: {error.reason}", time.monotonic() - start)
        except (OSError, ValueError) as error:  # a dropped connection, a garbled answer
            return CanaryResult("unavailable", f"{type(error).__name__}: {error}", time.monotonic() - start)

    def _segmenter_once(self) -> CanaryResult:
        """``ecg_segment`` answers a blank page with a class map of its size."""
        start = time.monotonic()
        request = urllib.request.Request(
            f"{self.root}/v2/models/{SEGMENTER_NAME}/infer", data=_BLANK_PAGE, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        answer = self._post(request, start)
        if isinstance(answer, CanaryResult):
            return replace(answer, problem=f"{SEGMENTER_NAME}: {answer.problem}")
        shapes = [
            o.get("shape") for o in answer.get("outputs", []) if o.get("name") == SEGMENTER_CLASS_OUTPUT
        ]
        if shapes != [[1, _BLANK_PX, _BLANK_PX]]:
            return CanaryResult(
                "error", f"{SEGMENTER_NAME} answered shapes {shapes}", time.monotonic() - start
            )
        return CanaryResult("ok", "", time.monotonic() - start)

    def _once(self, precision: str) -> CanaryResult:
        request = urllib.request.Request(
            self.url,
            data=self.body,
            method="POST",
            headers={"Content-Type": "application/octet-stream",
                     "Inference-Header-Content-Length": str(self.header_length)},
        )  # fmt: skip
        start = time.monotonic()
        answer = self._post(request, start)
        if isinstance(answer, CanaryResult):
            return answer
        elapsed = time.monotonic() - start
        if self.segmenter:
            segmented = self._segmenter_once()
            if not segmented.ok:
                return segmented
        got = {
            self.outputs[o["name"]]: float(o["data"][0])
            for o in answer.get("outputs", [])
            if o.get("name") in self.outputs and o.get("data")
        }
        if problems := self.canary.problems(got, precision):
            return CanaryResult("wrong_answer", "; ".join(problems), elapsed, got, precision)
        return CanaryResult("ok", "", elapsed, got, precision)

    def check(self, repeat: int = 1) -> CanaryResult:
        """``repeat`` canaries in a row (requests go to the instances in turn, so a round of
        two or more reaches a dead stub among two instances); the first failure, else the
        last answer."""
        precision = self.served()
        if isinstance(precision, CanaryResult):
            return precision
        result = CanaryResult("ok")
        for _ in range(max(1, repeat)):
            result = self._once(precision)
            if not result.ok:
                return result
        return result


def main(argv: list[str] | None = None) -> int:
    """``python -m ecgscreen.serving.canary``: exit 0 when Triton answers the canary as
    expected, 1 otherwise (one line on stdout says what happened). Kubernetes' exec probe."""
    parser = argparse.ArgumentParser(prog="python -m ecgscreen.serving.canary", description=main.__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="Triton's HTTP root")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("ECGSCREEN_MODEL_DIR", f"/models/{MODEL_NAME}")),
        help="the model's folder: model_card.json and the canary file (env ECGSCREEN_MODEL_DIR)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--repeat", type=int, default=4, help="canaries in a row, all must pass")
    parser.add_argument(
        "--precision",
        choices=("auto", "int8", "fp32"),
        default="auto",
        help="whose expected answer counts: the network variant Triton runs (auto: ask Triton "
        "which config it loaded; the CPU config's follows ECGSCREEN_CPU_PRECISION)",
    )
    args = parser.parse_args(argv)
    try:
        canary = TritonCanary.from_model_dir(args.url, args.model_dir, args.timeout, args.precision)
    except ValueError as error:
        print(f"canary: {error}")
        return 1
    if canary is None:  # nothing to compare with: fall back to Triton's own readiness
        try:
            with urllib.request.urlopen(f"{args.url.rstrip('/')}/v2/health/ready", timeout=args.timeout):
                print("canary: the model card has none; Triton reports ready")
                return 0
        except (OSError, ValueError) as error:
            print(f"canary: the model card has none and Triton is not ready ({error})")
            return 1
    result = canary.check(args.repeat)
    variant = f" ({result.precision.upper()})" if result.precision else ""
    print(
        f"canary {result.kind}{variant}: {result.problem or result.probabilities} "
        f"({result.elapsed_s * 1000:.0f} ms)"
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
