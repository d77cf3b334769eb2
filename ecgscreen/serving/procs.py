"""Child processes that cannot outlive the process that started them, and the managed server
both the embedded Triton and the gateway are."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

__all__ = [
    "spawn",
    "stop_group",
    "stop_groups",
    "free_ports",
    "http_ok",
    "alive",
    "children",
    "adopt_orphans",
    "end_orphans",
    "ConsoleLines",
    "ManagedServer",
    "Cancelled",
]

_PR_SET_PDEATHSIG = 1
# Both servers move megabyte buffers (files, image tensors) between many threads. glibc's
# defaults give each thread an arena and, once a large block is freed, serve later ones from
# the heap instead of fresh mappings: resident memory then creeps up for minutes under load
# and is never returned (Triton documents it as a "false leak"; its NGC image preloads
# tcmalloc). Two arenas and a fixed mmap threshold keep it level (the 10-minute soak holds
# every process within 10 %). Keeping large buffers in the heap instead (a 64 MB threshold)
# saved the gateway ~10 CPU ms on a 4.4 MB file, but it is not the bottleneck (intake is)
# and resident memory then tracks the largest files ever in flight. The environment wins.
_STEADY_MALLOC = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
_PR_SET_CHILD_SUBREAPER = 36


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: rely on the explicit stop


def spawn(command: list[str], env: dict[str, str], log) -> subprocess.Popen:
    """Start ``command`` in its own process group (so stopping it takes its children too),
    receiving SIGTERM if this process dies first (a killed test run leaves no server behind).
    ``log``: a file, ``subprocess.DEVNULL`` or ``subprocess.PIPE`` (stdout and stderr together)."""
    return subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_groups(processes: list[subprocess.Popen | None], timeout: float = 20.0) -> None:
    """Stop every process's group at once: SIGTERM (and SIGCONT, so a stopped process can act
    on it), then SIGKILL whatever is left after ``timeout`` seconds in all, then reap any
    straggler (a python-backend stub or a BentoML worker that outlived its parent)."""
    live = [p for p in processes if p is not None]
    for process in live:  # spawn() made each a group leader
        _signal_group(process.pid, signal.SIGTERM)
        _signal_group(process.pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    for process in live:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    for process in live:
        _signal_group(process.pid, signal.SIGKILL)


def stop_group(process: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """``stop_groups`` for one process."""
    stop_groups([process], timeout)


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


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, parent pid)`` of a process, ``None`` when there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie, dead but not reaped by its parent, does not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(pid: int, zombies: bool = False) -> set[int]:
    """The child processes of ``pid``: live ones, and with ``zombies`` the unreaped too."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) and stat[1] == pid and (zombies or stat[0] != "Z"):
            found.add(int(entry))
    return found


def adopt_orphans() -> bool:
    """Make this process a child subreaper: a process orphaned below it becomes its child
    instead of init's. BentoML's workers each run in a session of their own, out of reach of
    their parent's process group: when the parent is killed, this is how they are found (and
    ended, ``end_orphans``) instead of holding the gateway's port forever."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0
    except OSError:
        return False  # not Linux


def end_orphans(keep: set[int]) -> list[int]:
    """SIGKILL and reap every child of this process but ``keep`` (the servers it runs):
    what is left are orphans it adopted (``adopt_orphans``) from a server that died."""
    ended = []
    for pid in children(os.getpid(), zombies=True) - keep:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        ended.append(pid)
    return ended


class ConsoleLines:
    """Whole lines from several threads onto one stream (the terminal), never interleaved."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class Cancelled(Exception):
    """A server's start was cancelled (Ctrl-C while it was starting)."""


class ManagedServer:
    """A server run as a child process group: ``start`` spawns it and blocks until it is
    ready, ``stop`` ends it and everything it started. Subclasses say what to run
    (``command``, ``environment``) and when it is ready (``is_ready``).

    Its output goes to ``log_file`` (appended) and, when ``echo`` is given, to ``echo`` line
    by line, each marked with ``label`` ("triton | ..."); with neither it is discarded."""

    name = "server"
    label = "server"

    def __init__(self, log_file: Path | None = None, echo: Callable[[str], None] | None = None) -> None:
        self.log_file = log_file
        self.echo = echo
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {**_STEADY_MALLOC, **os.environ}

    def is_ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> subprocess.Popen:
        """Spawn the server without waiting for it (``start`` waits)."""
        if self.echo is not None:
            self.process = spawn(self.command(), self.environment(), subprocess.PIPE)
            threading.Thread(
                target=self._pump, args=(self.process.stdout,), name=f"{self.label}-log", daemon=True
            ).start()
        elif self.log_file:
            with open(self.log_file, "ab") as log:  # the child keeps its own copy of the handle
                self.process = spawn(self.command(), self.environment(), log)
        else:
            self.process = spawn(self.command(), self.environment(), subprocess.DEVNULL)
        return self.process

    def _pump(self, stream) -> None:
        """Copy the server's output to its log file and the console until every process that
        holds the pipe (the server, its stubs or workers) has closed it."""
        log = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115 - closed below
        try:
            for raw in iter(stream.readline, b""):
                if log is not None:
                    log.write(raw)
                    log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    self.echo(f"{self.label} | {line}")
        except (OSError, ValueError):
            pass  # the pipe was closed under us: the server is gone
        finally:
            stream.close()
            if log is not None:
                log.close()

    def start(self, timeout: float = 120.0, cancel: threading.Event | None = None):
        """Start the server and block until it is ready (or raise, leaving nothing behind);
        ``cancel`` set meanwhile stops it and raises ``Cancelled``."""
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"{self.name} exited with code {code}; see {self.log_file or 'its log'}")
            if cancel is not None and cancel.is_set():
                self.stop(5.0)
                raise Cancelled(f"{self.name} start cancelled")
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
