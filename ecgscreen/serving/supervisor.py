"""``ecgscreen serve``: the embedded Triton and the BentoML gateway as one service.

Triton starts first (the gateway reports ready only once Triton's ensemble is); the gateway
runs as ``bentoml serve`` in its own process group; stopping stops both, gateway first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .procs import ManagedServer, http_ok
from .triton import DEFAULT_REPOSITORY, PROJECT_ROOT, EmbeddedTriton, TritonPorts

__all__ = ["Gateway", "start_service"]


class Gateway(ManagedServer):
    """``bentoml serve service.service:ECGScreening`` as a managed subprocess, ready when its
    ``/readyz`` is (which means Triton's ensemble is)."""

    name = "bentoml serve"

    def __init__(
        self,
        port: int,
        triton_grpc_url: str,
        workers: int = 2,
        log_file: Path | None = None,
        env: dict | None = None,
    ) -> None:
        super().__init__(log_file)
        self.port = port
        self.env = {
            "BENTOML_DO_NOT_TRACK": "true",
            "ECGSCREEN_TRITON_URL": triton_grpc_url,
            "ECGSCREEN_WORKERS": str(workers),
            **(env or {}),
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "bentoml"), "serve", "service.service:ECGScreening",
                "--port", str(self.port), "--working-dir", str(PROJECT_ROOT)]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), **self.env}
        if "BENTOML_HOME" not in env:
            # BentoML keeps its workers' Prometheus files under BENTOML_HOME: two gateways on
            # one machine sharing it would mix (and reset) each other's counters. The gateway
            # serves from the working tree and stores nothing there, so each gets its own.
            env["BENTOML_HOME"] = tempfile.mkdtemp(prefix=f"ecgscreen-bentoml-{self.port}-")
        return env

    def is_ready(self) -> bool:
        return http_ok(self.url + "/readyz")


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
