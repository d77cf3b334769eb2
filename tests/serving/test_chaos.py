"""Soak and chaos: ``ecgscreen serve`` (real processes, loopback only) under mixed load, first
steady (a short soak: no good request fails, every bad one gets a 4xx, the memory of every
process is reported), then while its parts fail: the intake stub killed, the model stub
killed, tritonserver killed, tritonserver frozen for 10 s. For each fault:

* only requests in the fault window fail, and each failure is a 502/503/504 in the service's
  JSON error shape: never a 500, a dropped connection or an answer later than the request
  timeout allows;
* ``/readyz`` goes false and comes back;
* the service recovers with no manual action (the supervisor restarts Triton, the gateway
  reconnects).

Each fault's numbers (requests failed, seconds until ready again, seconds until the first good
answer) go to ``build/chaos/results.json``. A killed gateway is started again too, and Ctrl-C
on a frozen Triton stops everything within 10 s. The tests share one service (started again
for a test that runs after the Ctrl-C one) and each passes alone or in any order.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pydicom
import pytest
from servers import wait_until

from bench.serve import ServeProcess, process_tree
from bench.soak import soak
from bench.traffic import Traffic, bad_requests, mix
from bench.triton import bench_files

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "build" / "chaos" / "results.json"
REQUEST_TIMEOUT_S = 12.0  # the gateway's whole-request limit in this test (30 s by default)
CLIENT_TIMEOUT_S = REQUEST_TIMEOUT_S + 8  # the gateway must have answered by then
FAULT_STATUSES = {502, 503, 504}
SETTLE_S = 4.0  # healthy load before a fault, and after recovery
FREEZE_S = 10.0


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory):
    env = {"ECGSCREEN_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S), "ECGSCREEN_TRITON_TIMEOUT_S": "10"}
    server = ServeProcess(tmp_path_factory.mktemp("chaos") / "serve.log", env=env)
    yield server
    server.stop()  # Ctrl-C (SIGKILL only if that fails): a killed Triton leaks its /dev/shm regions


@pytest.fixture
def service(serve_process):
    """The service, running: started here for the first test, and again after the Ctrl-C test
    (its console log goes on in the same file)."""
    if serve_process.process is None or serve_process.process.poll() is not None:
        serve_process.start()
    return serve_process


@pytest.fixture(scope="module")
def requests():
    good = bench_files()[:12]
    return mix(good, bad_requests(good[2]), 0.1)


class Readiness:
    """``/readyz`` polled every 0.25 s in a thread: ``(time, ready)`` pairs."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self._stop = url + "/readyz", [], threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.25):
                try:
                    ready = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ready = False
                self.seen.append((time.monotonic(), ready))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def went_down_after(self, t: float) -> bool:
        return any(not ready for when, ready in self.seen if when >= t)

    def ready_since(self) -> float | None:
        """When readiness last came back and stayed (``None``: not ready now)."""
        since = None
        for when, ready in self.seen:
            since = (since or when) if ready else None
        return since


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # the supervisor already replaced it


def inject(service: ServeProcess, fault: str) -> int:
    """Cause ``fault``; returns the pid it hit."""
    target = {"preprocess_stub": "stub ecg_preprocess", "model_stub": "stub ecg_multitask"}.get(
        fault, "tritonserver"
    )
    pid = service.pid_of(target)
    assert pid, f"no {target} process in {service.pids()}"
    if fault == "tritonserver_frozen":
        _signal(pid, signal.SIGSTOP)
        threading.Timer(FREEZE_S, _signal, (pid, signal.SIGCONT)).start()
    else:
        _signal(pid, signal.SIGKILL)
    return pid


def _record(fault: str, numbers: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[fault] = numbers
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{fault}: {numbers}")


def test_a_short_soak_fails_no_good_request_and_refuses_every_bad_one(service):
    report = soak(service, seconds=30, clients=8, bad_share=0.1, window_s=10, sample_every_s=2)
    print("\n".join(report.lines()))
    assert len(report.good) > 50 and len(report.bad) > 5
    assert report.failed_good == [], report.errors()
    assert report.bad_not_4xx == [], report.errors()
    assert {a.error for a in report.bad} >= {"empty", "file_missing"}
    names = {name.rsplit(" (", 1)[0] for name in report.rss["end"]}
    assert {"serve", "tritonserver", "stub ecg_preprocess_0_0", "stub ecg_multitask_0_0", "gateway",
            "gateway worker 1", "gateway worker 2"} <= names  # fmt: skip
    assert report.rss["start"].keys() == report.rss["end"].keys(), "a process was replaced under steady load"
    assert all(value > 10 * 2**20 for value in report.rss["end"].values())
    assert set(report.growth()) == set(report.rss["end"])


@pytest.mark.parametrize(
    "fault", ["preprocess_stub", "model_stub", "tritonserver_killed", "tritonserver_frozen"]
)
def test_the_service_heals_itself_and_fails_only_in_the_fault_window(service, requests, fault):
    wait_until(lambda: httpx.get(service.url + "/readyz", timeout=5).status_code == 200, 120, what="ready")
    console_before = service.log.stat().st_size
    with Readiness(service.url) as readiness:
        traffic = Traffic(service.url, requests, clients=8, timeout_s=CLIENT_TIMEOUT_S).start()
        try:
            time.sleep(SETTLE_S)
            t_fault = time.monotonic()
            hit = inject(service, fault)
            wait_until(lambda: readiness.went_down_after(t_fault), 30, interval=0.25, what="readiness false")
            wait_until(
                lambda: (s := readiness.ready_since()) is not None and time.monotonic() - s > SETTLE_S,
                150,
                interval=0.5,
                what="ready again, and for a while",
            )
        finally:
            answers = traffic.stop()
    t_ready = readiness.ready_since()
    assert t_ready is not None, "not ready at the end"

    # Every answer is an HTTP answer in time: no dropped connection, no client timeout.
    assert not [a for a in answers if a.status is None], [a.failure for a in answers if a.status is None]
    assert max(a.latency_s for a in answers) < CLIENT_TIMEOUT_S
    assert not [a for a in answers if a.status == 500]
    unexpected = [a for a in answers if (a.status != 200 if a.good else not 400 <= a.status < 500)]
    for answer in unexpected:
        assert answer.status in FAULT_STATUSES and answer.json_error_shape, answer
        # Only in the fault window: in flight at the fault or sent after it, answered by the time
        # readiness is back (plus one request timeout: one sent just before may meet the outage).
        assert answer.end >= t_fault, ("failed before the fault", answer, t_fault)
        assert answer.end <= t_ready + REQUEST_TIMEOUT_S, ("failed after recovery", answer, t_ready)
    after = [a for a in answers if a.good and a.start > t_ready + 1]
    assert after and all(a.status == 200 for a in after), "good requests after recovery fail"
    firsts = [a.end for a in answers if a.good and a.status == 200 and a.start > t_fault]
    if fault != "tritonserver_frozen":  # a freeze may end with the same process, thawed
        assert hit not in process_tree(service.process.pid), f"{hit} was not replaced"
        said = service.log.read_bytes()[console_before:].decode("utf-8", errors="replace").splitlines()
        assert [line for line in said if line.startswith("serve | ") and "restarting tritonserver" in line]
    _record(fault, {
        "requests": len(answers),
        "failed": len(unexpected),
        "failed_by_status": {str(s): sum(a.status == s for a in unexpected) for s in sorted(FAULT_STATUSES)},
        "seconds_until_ready_again": round(t_ready - t_fault, 1),
        "seconds_until_first_good_answer": round(min(firsts) - t_fault, 1),
    })  # fmt: skip


def test_a_killed_gateway_is_started_again(service):
    wait_until(lambda: httpx.get(service.url + "/readyz", timeout=5).status_code == 200, 120, what="ready")
    gateway = service.pid_of("gateway")
    os.kill(gateway, signal.SIGKILL)
    wait_until(lambda: service.pid_of("gateway") not in (None, gateway), 30, what="a new gateway")
    wait_until(lambda: _ready(service.url), 120, what="ready again")
    good = bench_files()[0]
    assert httpx.post(service.url + "/predict", files={"file": ("ecg", good)}, timeout=60).status_code == 200


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_console_carries_both_servers_logs_marked_and_no_patient_names(service):
    """The console of every test before this one, and of DICOM requests of its own: the
    patient names they carry reach none of it (the supervisor's ``serve |`` lines are
    checked where it restarts Triton)."""
    dicoms = [f for f in bench_files() if f[128:132] == b"DICM"]
    logged = service.log.read_text().count("request_id=")
    with httpx.Client(base_url=service.url, timeout=60) as client:
        for data in dicoms:
            assert client.post("/predict", files={"file": ("ecg", data)}).status_code == 200
    wait_until(
        lambda: service.log.read_text().count("request_id=") >= logged + len(dicoms),
        10,
        what="their log lines",
    )
    console = service.log.read_text()
    marks = {line.split(" | ", 1)[0] for line in console.splitlines() if " | " in line}
    assert {"triton", "gateway"} <= marks
    names = {str(pydicom.dcmread(io.BytesIO(f)).PatientName) for f in dicoms}
    names.add(str(pydicom.dcmread(REPO / "model_repository" / "ecg_multitask" / "canary.dcm").PatientName))
    family_names = {n.split("^")[0] for n in names if n}
    assert len(family_names) >= 3, names  # the traffic carried DICOM files with patient names
    assert not [n for n in family_names if n in console], "a patient name reached the console"


def test_ctrl_c_stops_everything_within_10_s_even_with_triton_frozen(service):
    wait_until(lambda: httpx.get(service.url + "/readyz", timeout=5).status_code == 200, 120, what="ready")
    processes = process_tree(service.process.pid)
    assert len(processes) >= 8  # serve, tritonserver + 3 stubs, the gateway and its 2 workers
    os.kill(service.pid_of("tritonserver"), signal.SIGSTOP)
    time.sleep(1)
    took = service.stop(timeout=30)
    assert service.process.returncode == 0
    assert took < 10, f"Ctrl-C took {took:.1f} s"
    left = [pid for pid in processes if os.path.exists(f"/proc/{pid}") and _state(pid) != "Z"]
    assert not left, f"still running: {left}"
    _record("ctrl_c_with_triton_frozen", {"seconds_to_stop": round(took, 1)})


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
