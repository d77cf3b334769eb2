"""A real Prometheus scraping the real gateway and Triton: every dashboard and rule expression
parses and runs, and each one that should have data has it."""

import threading
import time

import httpx
import pytest
from corpus import good_ecg
from prometheus_harness import GATEWAY_JOB, TRITON_JOB, PrometheusHarness, monitoring_expressions
from servers import free_ports

from ecgscreen.serving.supervisor import Gateway

pytestmark = pytest.mark.integration

# What a CPU deployment without kube-state-metrics cannot show, alerts, which stay silent
# while the service is healthy, and the PACS router's panels (no router runs here; the PACS
# end-to-end test has a real Prometheus scrape a real router for them).
MAY_BE_EMPTY = ("alert: ", "dashboard: GPU", "dashboard: Replicas [A]", "dashboard: Replicas [B]",
                "dashboard: PACS router")  # fmt: skip


def _traffic(url: str, stop: threading.Event) -> None:
    files = [good_ecg("pdf", index=i) for i in range(3)] + [good_ecg("png")]
    i = 0
    while not stop.is_set():
        data = files[i % len(files)]
        httpx.post(url + "/predict", files={"file": ("ecg", data)}, timeout=60)
        if i % 5 == 0:
            httpx.post(url + "/explain", files={"file": ("ecg", data)}, timeout=60)
            httpx.post(url + "/predict", files={"file": ("ecg", b"not an ecg")}, timeout=60)
        i += 1


def test_every_expression_runs_against_the_live_service(triton, tmp_path):
    gateway = Gateway(free_ports(1)[0], triton.grpc_url, workers=2, log_file=tmp_path / "gateway.log").start()
    stop = threading.Event()
    sender = threading.Thread(target=_traffic, args=(gateway.url, stop), daemon=True)
    targets = {GATEWAY_JOB: f"127.0.0.1:{gateway.port}", TRITON_JOB: f"127.0.0.1:{triton.ports.metrics}"}
    try:
        with PrometheusHarness(targets, tmp_path) as prometheus:
            prometheus.wait_for_targets()
            sender.start()
            expressions = monitoring_expressions()
            deadline = time.monotonic() + 90
            while True:  # until every panel that can have data has it (rate windows filled)
                results = prometheus.evaluate(expressions)
                missing = [
                    r.source for r in results if not r.has_data and not r.source.startswith(MAY_BE_EMPTY)
                ]
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(2)
    finally:
        stop.set()
        sender.join(timeout=120)
        gateway.stop()
    failures = [(r.source, r.error) for r in results if not r.ok]
    assert not failures, failures
    assert not missing, missing
    with_data = {r.source for r in results if r.has_data}
    assert len(with_data) >= 25, sorted(with_data)
    assert any(s.startswith("dashboard: Positive rate") for s in with_data)
    assert any(s.startswith("dashboard: Average batch size") for s in with_data)
