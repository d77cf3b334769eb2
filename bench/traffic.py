"""Mixed traffic against the gateway, every answer recorded: ``clients`` threads, each sending
the next request as soon as its last answer arrives; good ECGs (``bench.triton.bench_files``:
every format the generator writes) and a share of bad requests (empty, truncated, not an ECG,
a blank page, a form without its file).

The soak (``bench.soak``) and the chaos tests (``tests/serving/test_chaos.py``) both drive the
service with it and judge the answers: a good request must get 200, a bad one a 4xx in the
service's JSON error shape; an outage may answer 502/503/504 in that shape, never a 500, a
dropped connection or silence past the client's timeout.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np
from PIL import Image

__all__ = ["Request", "Answer", "Traffic", "bad_requests", "mix", "percentiles"]


@dataclass(frozen=True)
class Request:
    kind: str  # "good" or the bad request's name
    data: bytes
    field: str = "file"  # the form field the bytes go in ("clinical": a form without its file)

    @property
    def good(self) -> bool:
        return self.kind == "good"


@dataclass(frozen=True)
class Answer:
    kind: str
    start: float  # time.monotonic()
    end: float
    status: int | None  # None: no HTTP answer (``failure`` says what happened)
    error: str | None = None  # the JSON error's reason code, if any
    failure: str | None = None  # a client-side failure: ReadTimeout, RemoteProtocolError, ...
    json_error_shape: bool = False  # the body is {"error", "detail", "status", ...}

    @property
    def latency_s(self) -> float:
        return self.end - self.start

    @property
    def good(self) -> bool:
        return self.kind == "good"


def bad_requests(example: bytes) -> list[Request]:
    """Requests the service must refuse with a 4xx: one of each kind."""
    blank = io.BytesIO()
    Image.fromarray(np.full((600, 800, 3), 255, np.uint8)).save(blank, format="PNG")
    return [
        Request("empty", b""),
        Request("truncated", example[: len(example) // 3]),
        Request("not_an_ecg", b"this is a text file, not an ECG\n" * 64),
        Request("blank_page", blank.getvalue()),
        Request("no_file_field", b'{"age": 60}', field="clinical"),
    ]


def mix(good: list[bytes], bad: list[Request], bad_share: float) -> list[Request]:
    """One cycle of requests with ``bad_share`` of them bad, spread evenly."""
    every = max(1, round(1 / bad_share)) if bad_share > 0 else 0
    n = len(good) * every if every else len(good)
    goods, bads = itertools.cycle(good), itertools.cycle(bad)
    return [
        next(bads) if every and i % every == every - 1 else Request("good", next(goods)) for i in range(n)
    ]


def percentiles(values: list[float], qs=(50, 95, 99)) -> dict[int, float]:
    return {q: float(np.percentile(values, q)) if values else float("nan") for q in qs}


class Traffic:
    """``clients`` threads posting ``requests`` (cycled) to ``url + path`` until ``stop()``.

    ``answers`` grows as they come back; ``timeout_s`` is each client's read timeout (an
    answer later than that is recorded as a ``ReadTimeout`` failure)."""

    def __init__(
        self,
        url: str,
        requests: list[Request],
        clients: int = 8,
        timeout_s: float = 60.0,
        path: str = "/predict",
    ) -> None:
        self.url, self.path, self.clients, self.timeout_s = url, path, clients, timeout_s
        self._requests = itertools.cycle(requests)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.answers: list[Answer] = []

    def _next(self) -> Request:
        with self._lock:
            return next(self._requests)

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=httpx.Timeout(self.timeout_s, connect=5.0)) as client:
            while not self._stop.is_set():
                request = self._next()
                start = time.monotonic()
                try:
                    response = client.post(self.path, files={request.field: ("ecg", request.data)})
                except httpx.HTTPError as exc:
                    answer = Answer(request.kind, start, time.monotonic(), None, failure=type(exc).__name__)
                else:
                    answer = _answer(request.kind, start, response)
                with self._lock:
                    self.answers.append(answer)

    def start(self) -> Traffic:
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Answer]:
        """Stop sending and wait for the answers in flight (at most ``timeout_s``)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 10)
        with self._lock:
            return list(self.answers)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)


def _answer(kind: str, start: float, response: httpx.Response) -> Answer:
    end, error, shaped = time.monotonic(), None, False
    if response.status_code != 200:
        try:
            body = response.json()
            shaped = isinstance(body, dict) and {"error", "detail", "status"} <= set(body)
            error = body.get("error") if isinstance(body, dict) else None
        except ValueError:
            pass
    return Answer(kind, start, end, response.status_code, error, json_error_shape=shaped)
