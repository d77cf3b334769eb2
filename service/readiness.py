"""The gateway's readiness: "a recent canary answered correctly", not "Triton is up".

The model card's canary file (``card.Canary``) goes through the gateway's own request path
(``TritonGateway.predict`` over gRPC, the whole ensemble, no retries) and must come back
with the card's expected probabilities within its tolerance, twice in a row. One round runs
at most every ``interval_s`` per worker (every second while not ready), in the background,
one at a time: a probe reads the latest verdict and never waits on Triton.

Two signals from real traffic sharpen it. A request that fails upstream makes the verdict
stale (the next probe starts a round at once). A request Triton could not serve, even one a
retry then made good, makes the gateway not ready for ``interval_s``: a dead stub behind one
of two instances fails only the requests that reach it, and a canary may well reach the other.

The expected answer is that of the network variant Triton runs (``card.Canary.expected_for``):
when the card has an INT8 answer, each round first asks Triton which config of the network it
loaded (the CPU config runs the variant ``serving.precision`` picks for this environment's
``ECGSCREEN_CPU_PRECISION``; the GPU config runs FP32/FP16), through ``precision_of``.

Raster pages take a path the waveform canary never does: intake asks ``ecg_segment`` by BLS.
When Triton has that model loaded, each round also sends it a blank 16 px page (as the
liveness probe does, ``serving.canary``), so a dead segmenter stub makes the gateway not ready.

A card without a canary (exported before canaries) falls back to Triton's model readiness,
and says so at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np

from ecgscreen.card import Canary
from ecgscreen.contract import SEGMENTER_NAME, TASKS
from ecgscreen.imaging.errors import IntakeError

from .triton_client import TritonGateway, Unavailable, UpstreamError, UpstreamTimeout

__all__ = ["Readiness"]

log = logging.getLogger("ecgscreen.gateway")

_BLANK_PAGE = np.full((16, 16, 3), 255, dtype=np.uint8)  # the segmenter's smallest page


class Readiness:
    def __init__(
        self,
        triton: TritonGateway,
        canary: Canary | None,
        data: bytes | None,
        interval_s: float,
        timeout_s: float,
        count=None,
        repeat: int = 2,
        precision_of: Callable[[str | None], str] = lambda backend: "fp32",
    ) -> None:
        self.triton = triton
        self.canary = canary
        self.data = data
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.count = count  # outcome -> None (a metric), optional
        self.repeat = repeat  # canaries per round, each without retry; all must pass
        # Triton's network config backend -> the variant it runs ("int8" or "fp32"):
        # ``serving.precision.served_precision`` with the card; ValueError for a refused setting
        self.precision_of = precision_of
        self.tasks = tuple(t for t in TASKS if canary and t in canary.expected)
        self._ok = False
        self._last: tuple[str, str] | None = None
        self._checked_at = -float("inf")
        self._failed_at = -float("inf")  # when Triton last failed a real request
        self._task: asyncio.Task | None = None  # the round under way, if any
        if canary is None:
            log.warning("the model card has no readiness canary: /readyz reflects Triton's model readiness "
                        "only (ecgscreen export --refresh-canary adds one)")  # fmt: skip

    def start(self) -> None:
        """Begin the first round now (a worker's start-up), so the first probe to reach this
        worker finds a verdict instead of starting one and answering not ready meanwhile."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh())

    def stale(self) -> None:
        """A request just failed upstream: the next probe runs a canary instead of the cache."""
        self._checked_at = -float("inf")

    def upstream_failed(self, reason: str) -> None:
        """Triton could not serve a real request (even if a retry then did): not ready for
        ``interval_s``, whatever the canary says meanwhile (it may reach a healthy instance)."""
        if time.monotonic() - self._failed_at >= self.interval_s:
            log.warning("not ready: Triton failed a request (%s)", reason)
        self._failed_at = time.monotonic()

    def _fresh(self) -> bool:
        # Not ready: ask again after a second, so recovery shows as soon as it happens.
        return time.monotonic() - self._checked_at < (
            self.interval_s if self._ok else min(1.0, self.interval_s)
        )

    async def ready(self) -> bool:
        """The verdict now, never waiting on Triton (a probe's own timeout is short): a stale
        verdict starts a round in the background, and the next probe reads its outcome."""
        if not self._fresh():
            self.start()
        if time.monotonic() - self._failed_at < self.interval_s:
            return False
        return self._ok

    async def _refresh(self) -> None:
        try:
            outcome, problem = await self._round()
            ok = outcome == "ok"
            if (outcome, problem) != self._last:  # a change, not every probe of an outage
                level = logging.INFO if ok else logging.WARNING
                log.log(level, "readiness canary %s%s", outcome, f": {problem}" if problem else "")
            self._ok, self._last, self._checked_at = ok, (outcome, problem), time.monotonic()
            if self.count is not None:
                self.count(outcome)
        finally:
            self._task = None

    async def _round(self) -> tuple[str, str]:
        """``(outcome, problem)``, the outcome one of ``CANARY_OUTCOMES``."""
        if self.canary is None:
            ok = await self.triton.ready(timeout_s=self.timeout_s)
            return ("ok", "") if ok else ("unavailable", "Triton's ensemble is not ready")
        try:
            precision = "fp32"
            if self.canary.expected_int8 is not None:  # which variant answers decides what is right
                precision = self.precision_of(await self.triton.network_backend(timeout_s=self.timeout_s))
            for _ in range(self.repeat):  # requests go to the instances in turn: reach two of them
                deadline = time.monotonic() + self.timeout_s
                prediction = await self.triton.predict(self.data, deadline, tasks=self.tasks, attempts=1)
                if problems := self.canary.problems(prediction.probability, precision):
                    return "wrong_answer", "; ".join(problems)
            if await self.triton.ready(timeout_s=self.timeout_s, name=SEGMENTER_NAME):
                for _ in range(self.repeat):
                    await self._segment_blank()
        except Unavailable as error:
            return "unavailable", str(error)
        except UpstreamTimeout:
            return "timeout", f"no answer within {self.timeout_s:g} s"
        except IntakeError as error:  # the canary itself refused: intake changed under the card
            return "wrong_answer", f"intake refused the canary ({error.reason}); refresh it"
        except UpstreamError as error:
            return "error", str(error)
        except ValueError as error:  # ECGSCREEN_CPU_PRECISION names no variant this card has
            return "error", str(error)
        except Exception as error:  # noqa: BLE001 - readiness must answer, whatever went wrong
            return "error", type(error).__name__
        return "ok", ""

    async def _segment_blank(self) -> None:
        """``ecg_segment`` answers a blank page with a class map of its size; its errors are
        raised as Triton's, named."""
        try:
            classes = await self.triton.segment(_BLANK_PAGE, time.monotonic() + self.timeout_s)
        except (Unavailable, UpstreamTimeout, UpstreamError) as error:
            raise type(error)(f"{SEGMENTER_NAME}: {error}") from None
        if classes.shape != _BLANK_PAGE.shape[:2]:
            raise UpstreamError(f"{SEGMENTER_NAME} answered a {classes.shape} map for a 16x16 page")
