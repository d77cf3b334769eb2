"""Load-generator clients that cost the machine as little as they can: the benchmarks run them
on the cores they measure, so each request is encoded once, before the clock starts.

``GatewayClient`` posts a pre-encoded multipart body over one keep-alive connection per
thread (``http.client``); ``TritonClient`` sends a prepared ``ECG_BYTES`` input over one gRPC
channel. Both are callables for ``bench.load.run_load``: ``prepare(data)`` once per file, then
``client(prepared)`` per request; a failure raises. The gateway's back-pressure (429 when a
worker holds its share of ``max_concurrency``) is honoured as a client should: wait briefly and
send again; ``GatewayClient.refused`` counts those answers.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from urllib.parse import urlsplit

import numpy as np
import tritonclient.grpc as grpcclient

from ecgscreen.contract import ENSEMBLE_INPUT, ENSEMBLE_NAME, ENSEMBLE_PROBABILITY

__all__ = ["GatewayClient", "TritonClient"]

_GRPC_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


class GatewayClient:
    """``POST path`` (multipart field ``file``) to the gateway at ``url``."""

    def __init__(self, url: str, path: str = "/predict", **form: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path, self.form = parts.hostname, parts.port, path, form
        self.boundary = uuid.uuid4().hex
        self._local = threading.local()
        self.refused = 0  # 429 answers (back-pressure), each followed by a retry
        self.timings: list[str] = []  # the answers' Server-Timing headers, where they have one

    def prepare(self, data: bytes) -> bytes:
        fields = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in self.form.items()
        )
        head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="ecg"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        return fields + head + data + f"\r\n--{self.boundary}--\r\n".encode()

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self._local, "connection", None) is None:
            self._local.connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
        return self._local.connection

    def __call__(self, body: bytes) -> bytes:
        for attempt in range(100):
            status, answer = self._post(body)
            if status != 429:
                break
            self.refused += 1  # not atomic across threads; a count for the report, not a test
            time.sleep(min(0.5, 0.01 * 2**attempt))
        if status != 200:
            raise RuntimeError(f"gateway answered {status}: {answer[:200]!r}")
        return answer

    def _post(self, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": f"multipart/form-data; boundary={self.boundary}"}
        connection = self._connection()
        try:
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if timing := response.getheader("Server-Timing"):
                self.timings.append(timing)
        except (OSError, http.client.HTTPException):
            self._local.connection = None  # a new connection next time
            connection.close()
            raise
        return response.status, answer


class TritonClient:
    """The ensemble over gRPC at ``url`` (``host:port``), asking for the scar probability."""

    def __init__(self, url: str, outputs: tuple[str, ...] = (ENSEMBLE_PROBABILITY["scar"],)) -> None:
        self.client = grpcclient.InferenceServerClient(url, channel_args=_GRPC_OPTIONS)
        self.outputs = [grpcclient.InferRequestedOutput(name) for name in outputs]

    def prepare(self, data: bytes) -> grpcclient.InferInput:
        tensor = grpcclient.InferInput(ENSEMBLE_INPUT, [1, 1], "BYTES")
        return tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))

    def __call__(self, tensor: grpcclient.InferInput):
        return self.client.infer(ENSEMBLE_NAME, [tensor], outputs=self.outputs)
