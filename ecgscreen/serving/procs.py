"""Child processes that cannot outlive the process that started them, and the managed server
both the embedded Triton and the gateway are."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

__all__ = ["spawn", "stop_group", "free_ports", "http_ok", "ManagedServer", "MALLOC_TUNING"]

# Every request carries a whole ECG file (up to tens of MB) that the servers copy several times
# (HTTP body, multipart, gRPC message, shared memory). glibc serves such buffers with a fresh
# mmap each and unmaps them when freed, so every copy page-faults through fresh memory: on
# the 2-core VM this made a 4.4 MB file cost the gateway 38-47 CPU ms, and 27 ms with these
# two settings (buffers up to 64 MB come from the heap and freed memory stays for the next
# request; it is bounded by the largest requests in flight at once).
MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: rely on the explicit stop


def spawn(command: list[str], env: dict[str, str], log) -> subprocess.Popen:
    """Start ``command`` in its own process group (so stopping it takes its children too),
    receiving SIGTERM if this process dies first (a killed test run leaves no server behind)."""
    return subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def stop_group(process: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """SIGTERM ``process``'s group, SIGKILL it after ``timeout``, then reap any straggler
    (a python-backend stub or BentoML worker that outlived its parent)."""
    if process is None:
        return
    pgid = process.pid  # spawn() made it a group leader
    try:
        os.killpg(pgid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free right now on loopback (for tests and benchmarks)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """``GET url`` answers 200 (a readiness probe; any failure to connect is "not yet")."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class ManagedServer:
    """A server run as a child process group: ``start`` spawns it and blocks until it is
    ready, ``stop`` ends it and everything it started. Subclasses say what to run
    (``command``, ``environment``) and when it is ready (``is_ready``)."""

    name = "server"

    def __init__(self, log_file: Path | None = None) -> None:
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {**MALLOC_TUNING, **os.environ}  # a value set by the caller wins

    def is_ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 120.0):
        """Start the server and block until it is ready (or raise, leaving nothing behind)."""
        if self.log_file:
            with open(self.log_file, "ab") as log:  # the child keeps its own copy of the handle
                self.process = spawn(self.command(), self.environment(), log)
        else:
            self.process = spawn(self.command(), self.environment(), subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"{self.name} exited with code {code}; see {self.log_file or 'its log'}")
            if self.is_ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"{self.name} was not ready within {timeout:.0f} s")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and everything it started (its process group)."""
        stop_group(self.process, timeout)
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
