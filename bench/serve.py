"""``ecgscreen serve`` as an operator runs it, in a subprocess: free loopback ports, wait for
ready, and the processes it runs (the supervisor, tritonserver and its python-backend stubs,
the gateway and its workers) with what each holds in memory. The soak and the chaos tests
drive the service through it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ecgscreen.serving.procs import alive, children, free_ports, http_ok

__all__ = ["ServeProcess", "process_tree", "rss_bytes", "label"]


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def process_tree(root: int) -> list[int]:
    """``root`` and every live (not zombie) descendant of it."""
    tree, frontier = [], [root] if alive(root) else []
    while frontier:
        tree += frontier
        frontier = [child for pid in frontier for child in children(pid)]
    return tree


def label(pid: int) -> str:
    """What a process of the service is, in words: ``serve``, ``tritonserver``,
    ``stub ecg_preprocess_0_1``, ``gateway``, ``gateway worker 2``..."""
    argv = _cmdline(pid)
    text = " ".join(argv)
    if any(a.endswith("triton_python_backend_stub") for a in argv[:1]):
        instance = argv[-2] if len(argv) >= 2 else "?"
        return f"stub {instance}"
    if argv and argv[0].endswith("tritonserver"):
        return "tritonserver"
    if "ecgscreen" in text and " serve" in text and "bentoml" not in text:
        return "serve"
    if "_bentoml_impl.worker" in text:
        worker = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--worker-id"), "?")
        return f"gateway worker {worker}"
    if "bentoml" in text and " serve" in text:
        return "gateway"
    return Path(argv[0]).name if argv else "?"


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (``None`` when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return 0


class ServeProcess:
    """``ecgscreen serve`` on free ports with ``env`` added; ``log`` gets its console."""

    def __init__(self, log: Path, env: dict[str, str] | None = None, workers: int = 2) -> None:
        self.port, http, grpc, metrics = free_ports(4)
        self.triton_http = f"http://127.0.0.1:{http}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        self.command = [sys.executable, "-m", "ecgscreen.cli", "serve", "--port", str(self.port),
                        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
                        "--workers", str(workers)]  # fmt: skip
        self.env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240.0) -> ServeProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not http_ok(self.url + "/readyz", timeout=5.0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"ecgscreen serve did not become ready; see {self.log}")
            time.sleep(0.5)
        return self

    def pids(self) -> dict[int, str]:
        """Every process of the service, with its label."""
        return {pid: label(pid) for pid in process_tree(self.process.pid)} if self.process else {}

    def pid_of(self, wanted: str) -> int | None:
        """The process labelled ``wanted`` (``"tritonserver"``), or whose label starts with it
        (``"stub ecg_preprocess"``: the first instance)."""
        found = sorted(pid for pid, name in self.pids().items() if name == wanted or name.startswith(wanted))
        return found[0] if found else None

    def stop(self, timeout: float = 30.0) -> float:
        """Ctrl-C, as an operator would; the seconds ``serve`` took to exit."""
        start = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return time.monotonic() - start

    def kill(self) -> None:
        if self.process is not None:
            for pid in process_tree(self.process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait()
