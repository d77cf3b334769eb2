"""The gateway's connection to Triton: the ensemble over gRPC (asyncio).

Created inside the worker's event loop (never at import). Transient failures (Triton
restarting, a dropped connection) are retried a bounded number of times within the
request's deadline; a refusal by intake comes back as the ``IntakeError`` it was
(``imaging.errors.from_wire``). ``triton_error`` is the whole mapping from Triton's errors to
the gateway's, a pure function.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from ecgscreen.contract import (
    ENSEMBLE_CAM,
    ENSEMBLE_CANONICAL,
    ENSEMBLE_EMBEDDING,
    ENSEMBLE_INFO,
    ENSEMBLE_INPUT,
    ENSEMBLE_NAME,
    ENSEMBLE_PROBABILITY,
    MODEL_NAME,
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_INPUT,
    SEGMENTER_NAME,
    TASKS,
)
from ecgscreen.imaging.errors import IntakeError, from_wire

__all__ = ["TritonGateway", "Prediction", "Unavailable", "UpstreamTimeout", "UpstreamError", "triton_error"]

# NOT_FOUND: the ensemble is unloaded while Triton shuts down (a restart) or not loaded yet.
_TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.UNKNOWN", "StatusCode.CANCELLED", "StatusCode.NOT_FOUND"}
# Reconnect quickly after Triton restarts instead of gRPC's default backoff of up to 2 min.
_CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
# How long a request keeps retrying while Triton is unavailable: longer than the channel's
# reconnect backoff (2 s plus gRPC's 20 % jitter), so a worker whose channel is still backing
# off when Triton comes back reconnects within one request instead of answering 503 while
# its sibling worker already reports ready.
RETRY_WINDOW_S = 3.0


class Unavailable(Exception):
    """Triton is down, restarting or not ready."""


class UpstreamTimeout(Exception):
    """Triton did not answer within the deadline."""


class UpstreamError(Exception):
    """Triton answered with an unexpected error."""


def triton_error(status: str, message: str) -> IntakeError | Unavailable | UpstreamTimeout | UpstreamError:
    """What a failed ensemble call means: intake refused the file, Triton timed out, Triton is
    (perhaps briefly) unavailable, or it failed otherwise. ``status`` is the gRPC status code
    as tritonclient reports it (``"StatusCode.UNAVAILABLE"``)."""
    if (refusal := from_wire(message)) is not None:
        return refusal
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return UpstreamTimeout("Triton did not answer in time")
    if status in _TRANSIENT or "not ready" in message or "unavailable" in message.lower():
        return Unavailable("Triton is unavailable")
    if "is not healthy" in message:  # a dead python-backend stub: another instance may answer,
        return Unavailable("a Triton backend stub is not healthy")  # and a restart heals it
    return UpstreamError(f"Triton error {status}")


@dataclass(frozen=True)
class Prediction:
    probability: dict[str, float]  # per task the model has, positive class
    info: dict
    embedding: np.ndarray | None = None
    cam: np.ndarray | None = None  # (T, h, w): the model's tasks in order
    canonical: np.ndarray | None = None  # (S, S) uint8
    latency_s: float = 0.0


class TritonGateway:
    """``on_unavailable(reason)``, if given, hears of every attempt Triton could not serve,
    also one a retry then made good (readiness wants to know: a dead stub behind one of two
    instances fails only some requests). An unavailable Triton is retried with backoff for up
    to ``retry_window_s`` (within the request's deadline)."""

    def __init__(
        self, url: str, call_timeout_s: float, retry_window_s: float = RETRY_WINDOW_S, on_unavailable=None
    ) -> None:
        self.url = url
        self.call_timeout_s = call_timeout_s
        self.retry_window_s = retry_window_s
        self.on_unavailable = on_unavailable
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

    async def ready(self, timeout_s: float = 1.0, name: str = ENSEMBLE_NAME) -> bool:
        """Whether Triton calls model ``name`` (default the ensemble) ready."""
        try:
            return bool(await self.client.is_model_ready(name, client_timeout=timeout_s))
        except (TimeoutError, InferenceServerException, OSError):
            return False

    async def network_backend(self, timeout_s: float = 1.0) -> str | None:
        """The backend of the network's config Triton loaded (``python``: the CPU config, which
        runs the variant ``serving.precision`` picks; else the GPU config): which expected
        answer the readiness canary compares with. ``Unavailable`` etc. as ``triton_error``."""
        try:
            answer = await self.client.get_model_config(MODEL_NAME, as_json=True, client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise triton_error(str(exc.status()), exc.message() or "") from None
        return (answer.get("config") or {}).get("backend") or None

    async def segment(self, page: np.ndarray, deadline: float) -> np.ndarray:
        """The page segmenter's classes of one page (uint8 (H, W, 3) -> (H, W)): the gateway's
        reading picture reads raster pages as Triton's intake does, with Triton's segmenter.
        ``Unavailable`` etc. as ``triton_error``; ``UpstreamTimeout`` past ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout("the request deadline passed while waiting for Triton")
        tensor = grpcclient.InferInput(SEGMENTER_INPUT, [1, *page.shape], "UINT8")
        tensor.set_data_from_numpy(page[None])
        try:
            result = await self.client.infer(
                SEGMENTER_NAME,
                [tensor],
                outputs=[grpcclient.InferRequestedOutput(SEGMENTER_CLASS_OUTPUT)],
                client_timeout=min(self.call_timeout_s, remaining),
            )
        except InferenceServerException as exc:
            raise triton_error(str(exc.status()), exc.message() or "") from None
        return result.as_numpy(SEGMENTER_CLASS_OUTPUT)[0]

    async def predict(
        self,
        data: bytes,
        deadline: float,
        embedding: bool = False,
        explain: bool = False,
        tasks: tuple[str, ...] = TASKS,
        attempts: int | None = None,
    ) -> Prediction:
        """Run the ensemble on one file. ``deadline`` is a ``time.monotonic()`` instant;
        ``tasks`` are the model's (a single-task model's ensemble has one probability);
        ``attempts``, if given, caps the tries (the readiness canary takes no second chance)."""
        tensor = grpcclient.InferInput(ENSEMBLE_INPUT, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        names = (
            [ENSEMBLE_PROBABILITY[task] for task in tasks]
            + [ENSEMBLE_INFO]
            + [ENSEMBLE_EMBEDDING] * embedding
            + [ENSEMBLE_CAM, ENSEMBLE_CANONICAL] * explain
        )
        outputs = [grpcclient.InferRequestedOutput(name) for name in names]
        give_up_at = time.monotonic() + self.retry_window_s
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout("the request deadline passed while waiting for Triton")
            start = time.monotonic()
            try:
                result = await self.client.infer(
                    ENSEMBLE_NAME,
                    [tensor],
                    outputs=outputs,
                    client_timeout=min(self.call_timeout_s, remaining),
                )
                break
            except InferenceServerException as exc:
                error = triton_error(str(exc.status()), exc.message() or "")
                if not isinstance(error, Unavailable):
                    raise error from None
                if self.on_unavailable is not None:
                    self.on_unavailable(str(error))
                pause = min(
                    0.25 * 2 ** (attempt - 1), 1.0, give_up_at - time.monotonic(), deadline - time.monotonic()
                )
                if (attempts is not None and attempt >= attempts) or pause <= 0:
                    raise error from None
                await asyncio.sleep(pause)
        return Prediction(
            probability={t: float(result.as_numpy(ENSEMBLE_PROBABILITY[t]).ravel()[0]) for t in tasks},
            info=json.loads(result.as_numpy(ENSEMBLE_INFO).ravel()[0]),
            embedding=result.as_numpy(ENSEMBLE_EMBEDDING)[0] if embedding else None,
            cam=result.as_numpy(ENSEMBLE_CAM)[0] if explain else None,
            canonical=result.as_numpy(ENSEMBLE_CANONICAL)[0] if explain else None,
            latency_s=time.monotonic() - start,
        )
