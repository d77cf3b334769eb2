"""Shared test setup: make ``tests/`` importable (corpus builders) and keep BentoML quiet."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import pytest  # noqa: E402
from servers import free_ports  # noqa: E402


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    """The real embedded tritonserver with the project's model repository, on free ports."""
    from ecgscreen.triton_server import EmbeddedTriton, TritonPorts

    http, grpc, metrics = free_ports(3)
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = EmbeddedTriton(ports=TritonPorts(http, grpc, metrics), log_file=log)
    server.start()
    yield server
    server.stop()
