"""`ecgscreen serve` (what `make serve` runs) tells the user where the page is, and it is there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from servers import free_ports

pytestmark = pytest.mark.integration


def test_serve_prints_the_screening_page_url_and_the_page_answers_there():
    gateway_port, http, grpc, metrics = free_ports(4)
    env = {**os.environ, "ECGSCREEN_TRITON_HTTP_PORT": str(http), "ECGSCREEN_TRITON_GRPC_PORT": str(grpc),
           "ECGSCREEN_TRITON_METRICS_PORT": str(metrics)}  # fmt: skip
    command = [
        str(Path(sys.executable).parent / "ecgscreen"),
        "serve",
        "--port",
        str(gateway_port),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break  # exited
            lines.append(line)
            if match := re.search(r"Screening page: (http://\S+/ui/)", line):
                url = match.group(1)
        assert url == f"http://127.0.0.1:{gateway_port}/ui/", "".join(lines)
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "<title>ecgscreen" in page.text
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: stops the gateway, then Triton
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, "".join(lines) + process.stdout.read()
