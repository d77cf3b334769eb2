"""``ecgscreen serve``: the embedded Triton and the BentoML gateway as one service that heals.

Triton starts first, then the gateway (ready when its canary passes through Triton). Then the
``Supervisor`` watches both:

* Triton is restarted when it exits, when it does not become ready, when one of its
  python-backend stubs dies, or when the canary (``serving.canary``: a known ECG through the
  whole ensemble, the card's expected answer) fails ``failures`` times among its last
  ``window`` rounds. Triton 2.51 never restarts a dead stub and keeps reporting ready while
  the requests that reach that instance fail; the supervisor sees the stub's process gone
  at once, and the canary sees what a process list cannot (a hung or wrong pipeline).
  Restarts wait 1 s, doubling up to 30 s while failures continue, back to 1 s after a
  minute of health.
* The gateway keeps running meanwhile: it answers 503 with ``Retry-After`` and reports not
  ready until Triton answers again, then recovers by itself (its gRPC channel reconnects). If
  the gateway itself exits it is restarted the same way.

Stopping (Ctrl-C, SIGTERM) ends both process groups at once, whatever state Triton is in
(SIGCONT follows SIGTERM, so a stopped Triton can act on it; SIGKILL after the grace time).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .canary import CanaryResult, TritonCanary
from .procs import ManagedServer, adopt_orphans, alive, end_orphans, http_ok, stop_groups
from .triton import PROJECT_ROOT, EmbeddedTriton

__all__ = ["Gateway", "RestartPolicy", "Backoff", "Supervisor"]


class Gateway(ManagedServer):
    """``bentoml serve service.service:ECGScreening`` as a managed subprocess, ready when its
    ``/readyz`` is (which means its canary came back right through Triton)."""

    name = "bentoml serve"
    label = "gateway"

    def __init__(
        self,
        port: int,
        triton_grpc_url: str,
        workers: int = 2,
        log_file: Path | None = None,
        env: dict | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(log_file, echo)
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
        return http_ok(self.url + "/readyz", timeout=5.0)


@dataclass(frozen=True)
class RestartPolicy:
    """How ``Supervisor`` watches and restarts (seconds unless named otherwise)."""

    first_delay_s: float = 1.0  # the first restart waits this long ...
    max_delay_s: float = 30.0  # ... doubling while failures continue, up to this
    stable_after_s: float = 60.0  # healthy this long: the next restart waits first_delay_s again
    canary_every_s: float = 5.0  # between canary rounds while they pass (ECGSCREEN_CANARY_INTERVAL_S)
    canary_retry_s: float = 1.0  # after a failed round
    # per canary request: generous, a canary queued behind a busy Triton's work is no failure
    canary_timeout_s: float = 10.0
    # requests per round, all must pass: under load requests do not take the instances in turn,
    # and four make a dead stub behind one of two instances show in 15 rounds of 16
    canary_repeat: int = 4
    failures: int = 3  # restart Triton when this many ...
    window: int = 5  # ... of the last rounds failed
    start_timeout_s: float = 180.0  # not ready by then: restart
    kill_after_s: float = 1.0  # a failed Triton gets this long to exit before SIGKILL
    stop_timeout_s: float = 5.0  # on Ctrl-C, both servers get this long before SIGKILL

    @classmethod
    def from_env(cls) -> RestartPolicy:
        every = os.environ.get("ECGSCREEN_CANARY_INTERVAL_S")
        return cls(canary_every_s=float(every)) if every else cls()


class Backoff:
    """Restart delays: ``first``, doubling to ``maximum``; ``healthy(now)`` notes health, and a
    delay asked for after ``stable_after`` seconds of it starts at ``first`` again."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.delay = policy.first_delay_s
        self.healthy_since: float | None = None

    def healthy(self, now: float) -> None:
        if self.healthy_since is None:
            self.healthy_since = now

    def next(self, now: float) -> float:
        if self.healthy_since is not None and now - self.healthy_since >= self.policy.stable_after_s:
            self.delay = self.policy.first_delay_s
        self.healthy_since = None
        delay, self.delay = self.delay, min(self.delay * 2, self.policy.max_delay_s)
        return delay


class _Watched:
    """One supervised server's state: ``up``, ``starting`` (launched, not ready yet) or
    ``waiting`` (down, to be launched at ``restart_at``)."""

    def __init__(self, server: ManagedServer, policy: RestartPolicy) -> None:
        self.server = server
        self.backoff = Backoff(policy)
        self.state = "up"
        self.restart_at = 0.0
        self.ready_by = 0.0
        self.restarts = 0


class _Round:
    """One canary round in a thread of its own: the supervisor's loop never waits on Triton
    (a frozen one would hold up Ctrl-C and the watch of the stubs for the canary's timeout)."""

    def __init__(self, check: Callable[[], CanaryResult]) -> None:
        self.result: CanaryResult | None = None
        threading.Thread(target=self._run, args=(check,), name="canary", daemon=True).start()

    def _run(self, check: Callable[[], CanaryResult]) -> None:
        self.result = check()


class Supervisor:
    """Runs ``triton`` and ``gateway`` until ``stop`` is set, healing Triton (see the module
    docstring). ``canary``: Triton's canary (``None``: Triton's own readiness stands in);
    ``say``: where the supervisor's own lines go (the console)."""

    def __init__(
        self,
        triton: EmbeddedTriton,
        gateway: Gateway,
        canary: TritonCanary | None,
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.canary = canary
        self.say = say
        self.triton = _Watched(triton, self.policy)
        self.gateway = _Watched(gateway, self.policy)
        self.rounds: deque[bool] = deque(maxlen=self.policy.window)
        self.next_canary = 0.0
        self.stubs: set[int] = set()  # the running Triton's python-backend stubs
        self.round: _Round | None = None  # the canary round under way

    def start(self, cancel: threading.Event) -> None:
        """Start Triton, then the gateway; block until both are ready (``procs.Cancelled`` if
        ``cancel`` is set meanwhile, with nothing left running)."""
        timeout = self.policy.start_timeout_s
        adopt_orphans()
        self.triton.server.start(timeout, cancel)
        self.stubs = self.triton.server.stub_pids()
        try:
            self.gateway.server.start(timeout, cancel)
        except BaseException:
            self.stop()
            raise

    def run(self, stop: threading.Event) -> None:
        """Watch and heal until ``stop`` is set (then return; ``stop()`` ends the servers)."""
        while not stop.wait(0.2):
            now = time.monotonic()
            self._watch_triton(now)
            self._watch_gateway(now)

    def stop(self) -> None:
        """Stop both servers at once, within ``stop_timeout_s`` (then SIGKILL)."""
        stop_groups([self.gateway.server.process, self.triton.server.process], self.policy.stop_timeout_s)
        self.gateway.server.process = self.triton.server.process = None
        self._end_orphans()

    def _end_orphans(self) -> None:
        """End what a dead server left behind (BentoML workers, in sessions of their own)."""
        keep = {s.process.pid for s in (self.triton.server, self.gateway.server) if s.process is not None}
        if ended := end_orphans(keep):
            self.say(f"ended {len(ended)} process(es) left behind by a stopped server")

    # -- Triton --------------------------------------------------------------------------------

    def _watch_triton(self, now: float) -> None:
        watched, server = self.triton, self.triton.server
        if watched.state == "waiting":
            if now >= watched.restart_at:
                self.say(f"starting {server.name} again (restart {watched.restarts})")
                server.launch()
                watched.state, watched.ready_by = "starting", now + self.policy.start_timeout_s
        elif not server.running:
            self._restart_triton(now, f"{server.name} exited with code {server.process.returncode}")
        elif watched.state == "starting":
            if server.is_ready():
                self.say(f"{server.name} is ready again; checking it with the canary")
                server.note_regions()
                self.stubs = server.stub_pids()
                watched.state, self.next_canary = "up", now
                self.rounds.clear()
            elif now > watched.ready_by:
                self._restart_triton(now, f"not ready within {self.policy.start_timeout_s:.0f} s")
        elif dead := sorted(pid for pid in self.stubs if not alive(pid)):
            self._restart_triton(
                now, f"its python-backend stub (pid {dead[0]}) died, and Triton never restarts one"
            )
        elif self.round is not None:
            if self.round.result is not None:
                result, self.round = self.round.result, None
                self._judge(result, now)
        elif now >= self.next_canary:
            self.round = _Round(self._check)

    def _check(self) -> CanaryResult:
        if self.canary is not None:
            return self.canary.check(self.policy.canary_repeat)
        ok = self.triton.server.is_ready()
        return CanaryResult("ok" if ok else "unavailable", "" if ok else "Triton reports not ready")

    def _judge(self, result: CanaryResult, now: float) -> None:
        self.rounds.append(result.ok)
        if result.ok:
            self.triton.backoff.healthy(now)
            self.next_canary = now + self.policy.canary_every_s
            return
        failed = self.rounds.count(False)
        self.say(f"canary {result.kind} ({failed} of the last {len(self.rounds)} rounds): {result.problem}")
        self.next_canary = time.monotonic() + self.policy.canary_retry_s
        if failed >= self.policy.failures:
            self._restart_triton(time.monotonic(), f"the canary failed {failed} times: {result.problem}")

    def _restart_triton(self, now: float, reason: str) -> None:
        watched = self.triton
        delay = watched.backoff.next(now)
        watched.restarts += 1
        self.say(f"{reason}; restarting {watched.server.name} in {delay:g} s")
        watched.server.stop(self.policy.kill_after_s)
        self._end_orphans()
        watched.state, watched.restart_at = "waiting", time.monotonic() + delay
        self.rounds.clear()
        self.round = None  # a round under way asked the old Triton: its verdict is moot

    # -- the gateway ---------------------------------------------------------------------------

    def _watch_gateway(self, now: float) -> None:
        watched, server = self.gateway, self.gateway.server
        if watched.state == "waiting":
            if now >= watched.restart_at:
                self.say(f"starting {server.name} again (restart {watched.restarts})")
                server.launch()
                watched.state = "up"
        elif not server.running:
            delay = watched.backoff.next(now)
            watched.restarts += 1
            self.say(
                f"{server.name} exited with code {server.process.returncode}; restarting it in {delay:g} s"
            )
            server.stop(self.policy.kill_after_s)
            self._end_orphans()  # its workers, which outlive it in sessions of their own
            watched.state, watched.restart_at = "waiting", now + delay
        else:
            watched.backoff.healthy(now)
