"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess

__all__ = ["spawn", "stop_group", "free_ports"]

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
