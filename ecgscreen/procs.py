"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
import subprocess

__all__ = ["spawn"]

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
