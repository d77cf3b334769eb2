"""The ensemble ``ecg_screening`` over gRPC (asyncio), for archive screening.

One file per request, over several gRPC connections (one per ``PER_CONNECTION`` files in
flight, each with its own subchannel): a Kubernetes Service balances connections, not requests,
so one connection would pin a whole archive to one Triton replica; several spread over them.
What comes back is an ``Answer`` (the probabilities of the model's
tasks, intake's info record and, when asked, the CAM and the canonical image), or an
``IntakeError`` (the file's refusal, final), or ``Unanswered`` after the bounded retries that
a restarting or overloaded Triton gets (the file runs again next time).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from ..contract import (
    ENSEMBLE_CAM,
    ENSEMBLE_CANONICAL,
    ENSEMBLE_INFO,
    ENSEMBLE_INPUT,
    ENSEMBLE_NAME,
    ENSEMBLE_PROBABILITY,
)
from ..imaging.errors import from_wire

__all__ = ["Answer", "Unanswered", "ScreenClient", "PER_CONNECTION"]

PER_CONNECTION = 4  # files in flight per gRPC connection

_CHANNEL = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.use_local_subchannel_pool", 1),  # a connection of its own, not one shared per target
]
_TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED",
              "StatusCode.CANCELLED", "StatusCode.UNKNOWN"}  # fmt: skip


@dataclass(frozen=True)
class Answer:
    probability: dict[str, float]
    info: dict
    cam: np.ndarray | None = None  # (T, h, w), the model's tasks in order
    canonical: np.ndarray | None = None  # (S, S) uint8


class Unanswered(Exception):
    """Triton gave no answer for this file (down, overloaded, timed out) after the retries."""


class ScreenClient:
    """Created inside the running event loop (the aio channel belongs to it)."""

    def __init__(self, url: str, tasks: tuple[str, ...], pictures: bool = False, timeout_s: float = 120.0,
                 attempts: int = 4, connections: int = 1) -> None:  # fmt: skip
        self.clients = [
            grpcclient.InferenceServerClient(url, channel_args=_CHANNEL) for _ in range(max(1, connections))
        ]
        self.client = self.clients[0]
        self.tasks, self.pictures, self.timeout_s, self.attempts = tasks, pictures, timeout_s, attempts
        names = [ENSEMBLE_PROBABILITY[t] for t in tasks] + [ENSEMBLE_INFO]
        names += [ENSEMBLE_CAM, ENSEMBLE_CANONICAL] if pictures else []
        self.outputs = [grpcclient.InferRequestedOutput(name) for name in names]

    async def answered_tasks(self) -> tuple[str, ...]:
        """The tasks whose probability the ensemble outputs (its metadata)."""
        metadata = await self.client.get_model_metadata(ENSEMBLE_NAME, as_json=True)
        names = {output["name"] for output in metadata["outputs"]}
        return tuple(t for t, name in ENSEMBLE_PROBABILITY.items() if name in names)

    async def ready(self) -> bool:
        try:
            return bool(await self.client.is_model_ready(ENSEMBLE_NAME, client_timeout=5))
        except (InferenceServerException, OSError, TimeoutError):
            return False

    async def screen(self, data: bytes, lane: int = 0) -> Answer:
        """Raises ``IntakeError`` for a refused file, ``Unanswered`` when Triton does not answer.
        ``lane`` picks the connection (a worker keeps its own)."""
        client = self.clients[lane % len(self.clients)]
        tensor = grpcclient.InferInput(ENSEMBLE_INPUT, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
        problem = ""
        for attempt in range(self.attempts):
            try:
                result = await client.infer(
                    ENSEMBLE_NAME, [tensor], outputs=self.outputs, client_timeout=self.timeout_s
                )
                break
            except InferenceServerException as exc:
                if (refusal := from_wire(exc.message() or "")) is not None:
                    raise refusal from None
                problem = f"{exc.status()}: {(exc.message() or '')[:200]}"
                if str(exc.status()) not in _TRANSIENT and "not ready" not in problem:
                    raise Unanswered(problem) from None
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        else:
            raise Unanswered(problem)
        return Answer(
            probability={t: float(result.as_numpy(ENSEMBLE_PROBABILITY[t]).ravel()[0]) for t in self.tasks},
            info=json.loads(result.as_numpy(ENSEMBLE_INFO).ravel()[0]),
            cam=result.as_numpy(ENSEMBLE_CAM)[0] if self.pictures else None,
            canonical=result.as_numpy(ENSEMBLE_CANONICAL)[0] if self.pictures else None,
        )

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
