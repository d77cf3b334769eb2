"""``ecgscreen serve``: the embedded Triton and the BentoML gateway as one service.

Triton starts first (the gateway reports ready only once Triton's ensemble is); the gateway
runs as ``bentoml serve`` in its own process group; stopping stops both, gateway first.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .procs import spawn, stop_group
from .triton import DEFAULT_REPOSITORY, PROJECT_ROOT, EmbeddedTriton, TritonPorts

__all__ = ["Gateway", "start_service"]

log = logging.getLogger(__name__)


class Gateway:
    """``bentoml serve service.service:ECGScreening`` as a managed subprocess."""

    def __init__(
        self,
        port: int,
        triton_grpc_url: str,
        workers: int = 2,
        log_file: Path | None = None,
        env: dict | None = None,
    ) -> None:
        self.port = port
        self.env = {
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "true",
            "ECGSCREEN_TRITON_URL": triton_grpc_url,
            "ECGSCREEN_WORKERS": str(workers),
            **(env or {}),
        }
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0, wait_ready: bool = True) -> Gateway:
        command = [str(Path(sys.executable).parent / "bentoml"), "serve", "service.service:ECGScreening",
                   "--port", str(self.port), "--working-dir", str(PROJECT_ROOT)]  # fmt: skip
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = spawn(command, self.env, out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with code {self.process.returncode}")
            if self._status("/readyz" if wait_ready else "/livez") == 200:
                return self
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"the gateway was not ready within {timeout:.0f} s")

    def _status(self, path: str) -> int | None:
        try:
            return httpx.get(self.url + path, timeout=1.0).status_code
        except httpx.HTTPError:
            return None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and everything it started (its process group)."""
        stop_group(self.process, timeout)
        self.process = None


def start_service(port: int, ports: TritonPorts, repository: Path = DEFAULT_REPOSITORY, workers: int = 2,
                  log_dir: Path | None = None) -> tuple[EmbeddedTriton, Gateway]:  # fmt: skip
    triton = EmbeddedTriton(
        repository, ports, log_file=log_dir / "tritonserver.log" if log_dir else None
    ).start()
    try:
        gateway = Gateway(
            port, triton.grpc_url, workers, log_file=log_dir / "gateway.log" if log_dir else None
        ).start()
    except BaseException:
        triton.stop()
        raise
    return triton, gateway
