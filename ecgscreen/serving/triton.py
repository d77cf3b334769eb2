"""The embedded Triton: the real ``tritonserver`` that ships inside the nvidia-pytriton wheel.

That binary carries only the python backend, so it runs ``model_repository`` with
``--model-config-name=cpu`` (the network then runs the same ``model.onnx`` with onnxruntime
inside a python-backend model). What it needs, and why:

* a backend directory holding ``libtriton_python.so``, ``triton_python_backend_utils.py``
  and the stub built for *this* Python (the wheel keeps stubs per version);
* ``LD_LIBRARY_PATH`` with the wheel's bundled libraries;
* this environment's ``bin/`` first on ``PATH``: the stub finds its Python (and so numpy
  and ``ecgscreen``) through ``PATH``.

``EmbeddedTriton`` (a ``procs.ManagedServer``) starts it, waits for readiness and stops it
with its whole process group, so no python-backend stub outlives it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..contract import ENSEMBLE_NAME
from .procs import ManagedServer, children, http_ok

__all__ = [
    "TritonPorts",
    "EmbeddedTriton",
    "PROJECT_ROOT",
    "DEFAULT_REPOSITORY",
    "backend_directory",
    "tritonserver_binary",
]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: model_repository/, service/, samples/
DEFAULT_REPOSITORY = PROJECT_ROOT / "model_repository"
# The python backend moves tensors through /dev/shm: a batch of 16 canonical images is 28 MB.
_SHM_DEFAULT_BYTES = 64 * 1024 * 1024
_SHM_GROWTH_BYTES = 32 * 1024 * 1024
_SHM_REGION_PREFIX = "/dev/shm/triton_python_backend_shm_region_"


@dataclass(frozen=True)
class TritonPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @classmethod
    def from_env(
        cls, http: int | None = None, grpc: int | None = None, metrics: int | None = None
    ) -> TritonPorts:
        """Ports from arguments, else ``ECGSCREEN_TRITON_{HTTP,GRPC,METRICS}_PORT``, else 8000-8002."""
        env = os.environ.get
        return cls(
            http=http or int(env("ECGSCREEN_TRITON_HTTP_PORT", 8000)),
            grpc=grpc or int(env("ECGSCREEN_TRITON_GRPC_PORT", 8001)),
            metrics=metrics or int(env("ECGSCREEN_TRITON_METRICS_PORT", 8002)),
        )


def _pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def tritonserver_binary() -> Path:
    return _pytriton_dir() / "tritonserver" / "bin" / "tritonserver"


def backend_directory(cache: Path | None = None) -> Path:
    """A backend folder with the python backend and the stub for the running Python.

    Built once per environment (idempotent) under ``cache`` (default: next to the venv).
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    source = _pytriton_dir() / "tritonserver"
    stub = source / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise RuntimeError(f"nvidia-pytriton ships no python-backend stub for Python {version}")
    root = cache or Path(sys.prefix) / "var" / "triton-backends"
    target = root / "python"
    target.mkdir(parents=True, exist_ok=True)
    for path in (source / "backends" / "python" / "libtriton_python.so",
                 source / "backends" / "python" / "triton_python_backend_utils.py", stub):  # fmt: skip
        destination = target / path.name
        if not destination.exists() or destination.stat().st_size != path.stat().st_size:
            shutil.copy2(path, destination)
    return root


class EmbeddedTriton(ManagedServer):
    """The embedded ``tritonserver``, also as a context manager.

    >>> with EmbeddedTriton(repository, TritonPorts(8000, 8001, 8002)) as triton:
    ...     triton.grpc_url  # "127.0.0.1:8001"
    """

    name = "tritonserver"
    label = "triton"

    def __init__(
        self,
        repository: Path = DEFAULT_REPOSITORY,
        ports: TritonPorts | None = None,
        config_name: str = "cpu",
        log_file: Path | None = None,
        host: str = "127.0.0.1",
        echo=None,
    ) -> None:
        super().__init__(log_file, echo)
        self.repository = Path(repository).resolve()
        if not (self.repository / ENSEMBLE_NAME).is_dir():
            raise FileNotFoundError(
                f"{self.repository} is not an ecgscreen model repository (no {ENSEMBLE_NAME}/)"
            )
        self.ports = ports or TritonPorts.from_env()
        self.config_name = config_name
        self.host = host
        self._regions: set[Path] = set()

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.ports.metrics}/metrics"

    def command(self) -> list[str]:
        return [
            str(tritonserver_binary()),
            f"--model-repository={self.repository}",
            f"--model-config-name={self.config_name}",
            f"--backend-directory={backend_directory()}",
            f"--backend-config=python,shm-default-byte-size={_SHM_DEFAULT_BYTES}",
            f"--backend-config=python,shm-growth-byte-size={_SHM_GROWTH_BYTES}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--strict-readiness=true",
            "--exit-on-error=true",
            # On SIGTERM Triton waits this long for in-flight requests (default 30 s, and a
            # model with a dead stub never finishes): stopping stays well inside 10 s.
            "--exit-timeout-secs=5",
            "--model-control-mode=none",
            "--allow-gpu-metrics=false",
            "--metrics-config=summary_latencies=true",
            "--log-verbose=0",
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        libs = _pytriton_dir().parent / "nvidia_pytriton.libs"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(libs), env.get("LD_LIBRARY_PATH")]))
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def is_ready(self) -> bool:
        return http_ok(f"{self.http_url}/v2/health/ready")

    def shm_regions(self) -> set[Path]:
        """The python backend's shared-memory regions this tritonserver has mapped (one per
        model instance, in /dev/shm; 64 MB each by default)."""
        try:
            with open(f"/proc/{self.process.pid}/maps") as maps:
                return {Path(line.split()[-1]) for line in maps if _SHM_REGION_PREFIX in line}
        except (OSError, AttributeError):
            return set()

    def stub_pids(self) -> set[int]:
        """The python-backend stubs this tritonserver runs (one process per model instance)."""
        return children(self.process.pid) if self.running else set()

    def note_regions(self) -> None:
        """Remember the current regions: a tritonserver that is killed cannot unlink them, so
        ``stop`` does (each killed or crashed Triton would otherwise leak ~200 MB of /dev/shm)."""
        self._regions |= self.shm_regions()

    def stop(self, timeout: float = 20.0) -> None:
        self.note_regions()
        super().stop(timeout)
        for region in self._regions:  # the group is gone: nobody maps them any more
            region.unlink(missing_ok=True)
        self._regions = set()

    def start(self, timeout: float = 120.0, cancel=None) -> EmbeddedTriton:
        """Start the server and block until every model is ready (or raise)."""
        super().start(timeout, cancel)
        self.note_regions()
        log.info("Triton ready: HTTP %s, gRPC %s, metrics %s", self.http_url, self.grpc_url, self.metrics_url)
        return self
