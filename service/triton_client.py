"""The gateway's connection to Triton: the ``ecg_screening`` ensemble over gRPC (asyncio).

Created inside the worker's event loop (never at import). Transient failures (Triton
restarting, a dropped connection) are retried a bounded number of times within the
request's deadline; a refusal by intake comes back as ``IntakeRefusal`` with its reason.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

__all__ = ["TritonGateway", "Prediction", "IntakeRefusal", "Unavailable", "UpstreamTimeout", "UpstreamError"]

ENSEMBLE = "ecg_screening"
_INTAKE = re.compile(r"intake:([a-z_]+):(\d{3}): (.*)", re.DOTALL)
_TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.UNKNOWN", "StatusCode.CANCELLED"}
# Reconnect quickly after Triton restarts instead of gRPC's default backoff of up to 2 min.
_CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class IntakeRefusal(Exception):
    def __init__(self, reason: str, status: int, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.status, self.detail = reason, status, detail


class Unavailable(Exception):
    """Triton is down, restarting or not ready."""


class UpstreamTimeout(Exception):
    """Triton did not answer within the deadline."""


class UpstreamError(Exception):
    """Triton answered with an unexpected error."""


@dataclass(frozen=True)
class Prediction:
    scar: float
    lvef: float
    info: dict
    embedding: np.ndarray | None = None
    cam: np.ndarray | None = None  # (2, h, w): scar, lvef
    canonical: np.ndarray | None = None  # (S, S) uint8
    latency_s: float = 0.0


class TritonGateway:
    def __init__(self, url: str, call_timeout_s: float, attempts: int = 3) -> None:
        self.url = url
        self.call_timeout_s = call_timeout_s
        self.attempts = attempts
        self._client: grpcclient.InferenceServerClient | None = None

    @property
    def client(self) -> grpcclient.InferenceServerClient:
        if self._client is None:  # first use happens inside the worker's event loop
            self._client = grpcclient.InferenceServerClient(self.url, channel_args=_CHANNEL_ARGS)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ready(self, timeout_s: float = 1.0) -> bool:
        try:
            return bool(await self.client.is_model_ready(ENSEMBLE, client_timeout=timeout_s))
        except (TimeoutError, InferenceServerException, OSError):
            return False

    async def predict(
        self, data: bytes, deadline: float, embedding: bool = False, explain: bool = False
    ) -> Prediction:
        """Run the ensemble on one file. ``deadline`` is a ``time.monotonic()`` instant."""
        tensor = grpcclient.InferInput("ECG_BYTES", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        names = (
            ["SCAR_PROB", "LVEF_PROB", "PREPROC_INFO"]
            + ["EMBEDDING"] * embedding
            + ["CAM", "CANONICAL"] * explain
        )
        outputs = [grpcclient.InferRequestedOutput(name) for name in names]
        for attempt in range(1, self.attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout("the request deadline passed while waiting for Triton")
            start = time.monotonic()
            try:
                result = await self.client.infer(
                    ENSEMBLE, [tensor], outputs=outputs, client_timeout=min(self.call_timeout_s, remaining)
                )
                break
            except InferenceServerException as exc:
                status, message = str(exc.status()), exc.message() or ""
                if match := _INTAKE.search(message):
                    raise IntakeRefusal(match.group(1), int(match.group(2)), match.group(3).strip()) from None
                if status == "StatusCode.DEADLINE_EXCEEDED":
                    raise UpstreamTimeout("Triton did not answer in time") from None
                if status in _TRANSIENT or "not ready" in message or "unavailable" in message.lower():
                    if attempt == self.attempts:
                        raise Unavailable("Triton is unavailable") from None
                    await asyncio.sleep(min(0.2 * 2**attempt, max(0.0, deadline - time.monotonic())))
                    continue
                raise UpstreamError(f"Triton error {status}") from None
        return Prediction(
            scar=float(result.as_numpy("SCAR_PROB").ravel()[0]),
            lvef=float(result.as_numpy("LVEF_PROB").ravel()[0]),
            info=json.loads(result.as_numpy("PREPROC_INFO").ravel()[0]),
            embedding=result.as_numpy("EMBEDDING")[0] if embedding else None,
            cam=result.as_numpy("CAM")[0] if explain else None,
            canonical=result.as_numpy("CANONICAL")[0] if explain else None,
            latency_s=time.monotonic() - start,
        )
