"""End to end: a real Orthanc, ``ecgscreen pacs run`` as its own process, the real gateway and
the real embedded Triton. Every ECG stored in the PACS gets its SR and heatmaps in its own
study; a restart, the PACS or the gateway going away lose nothing and repeat nothing.

The tests share one PACS, gateway and router (started by the first test that needs it), and
each passes alone or after the others in any order: it works on ECGs of its own, waits until
each is marked done or refused, and starts again whatever it stopped.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import highdicom as hd
import httpx
import pydicom
import pytest
from corpus import good_ecg
from dicomweb_client import DICOMwebClient
from orthanc_harness import Orthanc, dciodvfy
from pacs_files import corrupt_waveform, ct_image, ecg_files
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom import AE
from servers import free_ports, wait_until

from ecgscreen.pacs import codes
from ecgscreen.pacs.multipart import part10
from ecgscreen.pacs.results import CAUTION, MANUFACTURER
from ecgscreen.pacs.state import State
from ecgscreen.serving.procs import ManagedServer, http_ok
from ecgscreen.serving.supervisor import Gateway

pytestmark = pytest.mark.integration

ROUTER_AET = "ECGSCREEN"
TASKS = ("scar", "lvef")


class Router(ManagedServer):
    """``ecgscreen pacs run`` as a child process (the way a Deployment runs it), ready when
    its metrics endpoint answers and its C-STORE SCP (opened just after) accepts connections."""

    name = "ecgscreen pacs run"

    def __init__(
        self, args: list[str], state_path: Path, metrics_port: int, scp_port: int, log_file: Path
    ) -> None:
        super().__init__(log_file)
        self.args, self.state_path = args, state_path
        self.metrics_port, self.scp_port = metrics_port, scp_port

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "ecgscreen"), "pacs", "run", *self.args]

    def is_ready(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.metrics_port}/metrics") and _accepts(self.scp_port)

    def terminate(self) -> int:
        """SIGTERM, as Kubernetes sends it; the exit code once the ECGs in flight finished."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self.stop()
        return code

    def metrics(self) -> dict[str, float] | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        return _totals(text)

    def metric(self, name: str) -> float:
        return (self.metrics() or {}).get(name, 0.0)

    def state(self) -> State:
        return State(self.state_path)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _totals(text: str) -> dict[str, float]:
    """Each sample name's value, summed over its labels."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


@pytest.fixture(scope="module")
def gateway(triton, tmp_path_factory):
    logs = tmp_path_factory.mktemp("pacs-gateway")
    gateway = Gateway(free_ports(1)[0], triton.grpc_url, workers=2, log_file=logs / "gateway.log").start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def router_ports() -> tuple[int, int]:
    return tuple(free_ports(2))  # SCP, metrics


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, router_ports):
    with Orthanc(
        tmp_path_factory.mktemp("pacs"), modalities={"router": (ROUTER_AET, router_ports[0])}
    ) as orthanc:
        yield orthanc


@pytest.fixture(scope="module")
def router(pacs, gateway, router_ports, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("router")
    scp_port, metrics_port = router_ports
    args = ["--pacs", pacs.dicomweb_url, "--gateway", gateway.url, "--state", str(workdir / "state.sqlite"),
            "--scp-port", str(scp_port), "--scp-host", "127.0.0.1", "--ae-title", ROUTER_AET,
            "--forward", f"dicom://{pacs.aet}@127.0.0.1:{pacs.dicom_port}",
            "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1",
            "--poll-interval", "0.5", "--max-backoff", "4", "--concurrency", "2"]  # fmt: skip
    router = Router(args, workdir / "state.sqlite", metrics_port, scp_port, workdir / "router.log")
    yield router
    router.stop()


@pytest.fixture(autouse=True)
def _pacs_and_gateway_up(pacs, gateway):
    """A test that stopped the PACS or the gateway and failed before starting it again does not
    take the tests after it down too."""
    for server in (pacs, gateway):
        if not server.running:
            server.start()


@pytest.fixture
def running_router(router):
    """The router, running: started here when no test before this one started it."""
    if not router.running:
        router.start()
    return router


def _client(pacs) -> DICOMwebClient:
    return DICOMwebClient(pacs.dicomweb_url)


def _results(pacs, study_uid: str) -> dict[str, list[pydicom.Dataset]]:
    """Our objects in a study, by modality (QIDO-RS)."""
    found = _client(pacs).search_for_instances(study_uid, fields=["SeriesDescription", "Modality"])
    out: dict[str, list] = {"SR": [], "OT": []}
    for item in found:
        ds = pydicom.Dataset.from_json(item)
        if str(ds.get("SeriesDescription", "")).startswith(CAUTION):
            out.setdefault(ds.Modality, []).append(ds)
    return out


def _complete(pacs, source: pydicom.Dataset) -> bool:
    found = _results(pacs, source.StudyInstanceUID)
    return len(found["SR"]) >= 1 and len(found["OT"]) >= len(TASKS)


def _status(router, source: pydicom.Dataset) -> str | None:
    record = router.state().get(source.SOPInstanceUID)
    return None if record is None else record.status


def _finished(pacs, router, source: pydicom.Dataset) -> bool:
    """The results are in the PACS and the router marked the ECG done (it does that after the
    PACS has them, so a moment later)."""
    return _complete(pacs, source) and _status(router, source) == "done"


def _retrieve(pacs, ds: pydicom.Dataset) -> pydicom.Dataset:
    return _client(pacs).retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def _sr_probabilities(sr: pydicom.Dataset) -> dict[str, float]:
    report = hd.sr.srread(io.BytesIO(part10(sr)))
    out = {}
    for group in report.content.get_image_measurement_groups():
        (measurement,) = group.get_measurements()
        out[codes.task_of_finding(group.finding_type)] = measurement.value
    return out


def _report_requests(gateway) -> int:
    """``/report`` requests the gateway answered, from its log (its metrics directory may be
    shared with other gateways on this machine)."""
    return gateway.log_file.read_text().count(" endpoint=/report format=")


def _dataset(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def test_every_ecg_gets_an_sr_and_heatmaps_in_its_own_study_within_30_s(pacs, gateway, router, tmp_path):
    files = ecg_files()
    sources = {name: _dataset(data) for name, data in files.items()}
    ct, corrupt = ct_image(), corrupt_waveform()
    refused_before = router.metric("ecgscreen_pacs_refused_total")  # 0 before the router runs
    for data in (*files.values(), ct, corrupt):
        pacs.store(data)
    start = time.monotonic()
    if not router.running:  # the ECGs already in the PACS are its first work
        router.start()
    wait_until(
        lambda: all(_finished(pacs, router, ds) for ds in sources.values()), 30, 0.25, "results for every ECG"
    )
    elapsed = time.monotonic() - start
    print(
        f"\nall {len(sources)} ECGs had an SR and {len(TASKS)} heatmaps {elapsed:.1f} s after they were stored"
    )

    for name, source in sources.items():
        found = _results(pacs, source.StudyInstanceUID)
        assert len(found["SR"]) == 1 and len(found["OT"]) == len(TASKS), name
        sr = _retrieve(pacs, found["SR"][0])
        predicted = httpx.post(
            gateway.url + "/predict", files={"file": ("ecg.dcm", files[name])}, timeout=60
        ).json()
        for task, probability in _sr_probabilities(sr).items():
            assert probability == pytest.approx(predicted[task]["probability"]["positive"], abs=1e-4), (
                name,
                task,
            )
        assert sr.Manufacturer == MANUFACTURER and sr.PatientID == source.PatientID
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        assert source.SOPInstanceUID in {
            ref.ReferencedSOPInstanceUID for s in evidence for ref in s.ReferencedSOPSequence
        }
        for ds in (sr, _retrieve(pacs, found["OT"][0])):
            path = tmp_path / f"{name}-{ds.Modality}.dcm"
            path.write_bytes(part10(ds))
            errors, _ = dciodvfy(path)
            assert not errors, (name, ds.Modality, errors)

    wait_until(
        lambda: router.state().get(_dataset(corrupt).SOPInstanceUID).status == "refused", 15, what="refusal"
    )
    state = router.state()
    ct_record, corrupt_record = (
        state.get(_dataset(ct).SOPInstanceUID),
        state.get(_dataset(corrupt).SOPInstanceUID),
    )
    assert (
        ct_record.status == "refused"
        and ct_record.reason.startswith("not_an_ecg")
        and ct_record.attempts == 0
    )
    assert corrupt_record.status == "refused" and corrupt_record.reason == "waveform_invalid"
    assert corrupt_record.attempts == 1
    assert not _results(pacs, _dataset(ct).StudyInstanceUID)["SR"]
    # the router's own SR and heatmaps, also in the change log, never became work
    for source in sources.values():
        found = _results(pacs, source.StudyInstanceUID)
        assert [ds for ds in found["SR"] + found["OT"] if state.get(ds.SOPInstanceUID)] == []
    assert router.metric("ecgscreen_pacs_refused_total") == refused_before + 2


@pytest.mark.usefixtures("running_router")
def test_a_restart_mid_run_neither_repeats_nor_skips(pacs, gateway, router):
    corrupt = _dataset(corrupt_waveform(index=56))
    pacs.store(part10(corrupt))
    wait_until(lambda: _status(router, corrupt) == "refused", 30, 0.25, "the refusal of the corrupt ECG")
    # Enough ECGs that a stop after the first result always falls mid-run (at most 2 x concurrency
    # are in flight, and a loaded machine finishes a few more before the signal lands).
    batch = [good_ecg(kind, index=i) for i, kind in enumerate(["dcm-waveform", "dcm-pdf"] * 8, start=40)]
    sources = [_dataset(data) for data in batch]
    reports_before = _report_requests(gateway)
    done_before = router.metric("ecgscreen_pacs_processed_total")
    for data in batch:
        pacs.store(data)
    wait_until(
        lambda: router.metric("ecgscreen_pacs_processed_total") > done_before, 30, 0.05, "a first result"
    )
    assert router.terminate() == 0  # SIGTERM: the ECGs in progress finish, the rest wait
    state = router.state()
    finished = sum(
        state.get(ds.SOPInstanceUID).status == "done" for ds in sources if state.get(ds.SOPInstanceUID)
    )
    assert 0 < finished < len(sources), "the restart did not fall mid-run"
    router.start()
    wait_until(
        lambda: all(_finished(pacs, router, ds) for ds in sources), 60, 0.25, "results after the restart"
    )
    for ds in sources:
        found = _results(pacs, ds.StudyInstanceUID)
        assert len(found["SR"]) == 1 and len(found["OT"]) == len(TASKS)  # no duplicate
        record = router.state().get(ds.SOPInstanceUID)
        assert record.status == "done" and record.attempts == 1  # no repeat
    assert _report_requests(gateway) - reports_before == len(sources)  # the gateway saw each once
    refused = router.state().get(corrupt.SOPInstanceUID)
    assert refused.status == "refused" and refused.attempts == 1  # not retried after the restart


@pytest.mark.usefixtures("running_router")
def test_a_c_store_to_the_router_gets_results_into_the_pacs(pacs, router, router_ports):
    ecg = _dataset(good_ecg("dcm-waveform", index=60))
    ct = _dataset(ct_image())
    ct.SOPInstanceUID = pydicom.uid.generate_uid()
    ae = AE(ae_title="CART")
    for ds in (ecg, ct):
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", router_ports[0], ae_title=ROUTER_AET)
    assert assoc.is_established
    statuses = [assoc.send_c_store(ds).Status for ds in (ecg, ct)]
    assoc.release()
    assert statuses == [0, 0]
    wait_until(lambda: _complete(pacs, ecg), 30, 0.25, "results of the pushed ECG in the PACS")
    assert len(_results(pacs, ecg.StudyInstanceUID)["SR"]) == 1
    assert not _client(pacs).search_for_instances(
        ecg.StudyInstanceUID, search_filters={"SOPInstanceUID": ecg.SOPInstanceUID}
    )  # the PACS got the results (C-STORE from the router), not the pushed ECG
    wait_until(lambda: _status(router, ecg) == "done", 10, 0.1, "the ECG marked done")
    assert router.state().get(ecg.SOPInstanceUID).origin == "scp"
    assert router.state().get(ct.SOPInstanceUID).status == "refused"


@pytest.mark.usefixtures("running_router")
def test_the_router_rides_out_the_pacs_going_away(pacs, router):
    errors_before = router.metric("ecgscreen_pacs_pacs_errors_total")
    pacs.stop()
    wait_until(
        lambda: router.metric("ecgscreen_pacs_pacs_errors_total") > errors_before, 20, what="a failed poll"
    )
    time.sleep(2)
    assert router.process.poll() is None
    pacs.start()
    ecg = _dataset(good_ecg("dcm-pdf", index=70))
    pacs.store(part10(ecg))
    wait_until(lambda: _finished(pacs, router, ecg), 40, 0.25, "results after the PACS came back")


def _fail_an_attempt_with_the_gateway_down(pacs, gateway, router, ecg: pydicom.Dataset) -> None:
    """Stop the gateway, store ``ecg`` and wait for the router's first failed attempt at it
    (the gateway stays down: the caller starts it again)."""
    gateway.stop()
    pacs.store(part10(ecg))

    def failed_once() -> bool:
        record = router.state().get(ecg.SOPInstanceUID)
        return record is not None and record.status == "failed" and record.attempts >= 1

    wait_until(failed_once, 30, 0.25, "a failed attempt")


@pytest.mark.usefixtures("running_router")
def test_the_router_retries_while_the_gateway_is_down(pacs, gateway, router):
    ecg = _dataset(good_ecg("dcm-waveform", index=80))
    _fail_an_attempt_with_the_gateway_down(pacs, gateway, router, ecg)
    assert router.state().get(ecg.SOPInstanceUID).reason.startswith("gateway_unreachable")
    assert router.metric("ecgscreen_pacs_failed_total") >= 1
    wait_until(lambda: router.metric("ecgscreen_pacs_waiting") >= 1, 5, what="the waiting gauge")
    assert router.metric("ecgscreen_pacs_lag_seconds") > 0
    gateway.start()  # same port
    wait_until(lambda: _finished(pacs, router, ecg), 60, 0.25, "results once the gateway is back")
    record = router.state().get(ecg.SOPInstanceUID)
    assert record.status == "done" and record.attempts >= 2
    assert len(_results(pacs, ecg.StudyInstanceUID)["SR"]) == 1
    wait_until(lambda: router.metric("ecgscreen_pacs_lag_seconds") == 0, 5, what="no lag once caught up")
    assert router.metric("ecgscreen_pacs_waiting") == 0


@pytest.mark.usefixtures("running_router")
def test_the_router_logs_no_patient_data_and_reports_its_state(pacs, router):
    ecg, corrupt = _dataset(good_ecg("dcm-pdf", index=90)), _dataset(corrupt_waveform(index=91))
    for ds in (ecg, corrupt):
        pacs.store(part10(ds))
    wait_until(
        lambda: _finished(pacs, router, ecg) and _status(router, corrupt) == "refused",
        30,
        0.25,
        "the two handled",
    )
    log = router.log_file.read_text()
    assert "outcome=done" in log and "outcome=refused" in log
    everything = [*map(_dataset, [*ecg_files().values(), ct_image(), corrupt_waveform()]), ecg, corrupt]
    for ds in everything:
        for value in (ds.PatientID, str(ds.PatientName), ds.StudyInstanceUID, ds.SOPInstanceUID):
            if len(str(value)) > 3:
                assert str(value) not in log
    status = subprocess.run(
        [str(Path(sys.executable).parent / "ecgscreen"), "pacs", "status", "--state", str(router.state_path), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(status.stdout)
    assert summary["counts"] == router.state().counts()
    assert summary["counts"]["done"] >= 1 and summary["counts"]["refused"] >= 1
    assert summary["counts"]["pending"] == 0 and summary["counts"]["failed"] == 0
    assert {r["reason"] for r in summary["refused"]} >= {"waveform_invalid"}


@pytest.mark.usefixtures("running_router")
def test_the_dashboards_router_panels_show_the_real_router(pacs, gateway, router, tmp_path):
    """A real Prometheus scrapes the router: every PACS panel of the Grafana dashboard has data."""
    from prometheus_harness import PrometheusHarness, dashboard_expressions

    # The refusal and failure panels have series once this router process has refused an object
    # and failed an attempt: make them where it has not (it ran alone, or after a restart).
    if "ecgscreen_pacs_refused_total" not in (router.metrics() or {}):
        corrupt = _dataset(corrupt_waveform(index=92))
        pacs.store(part10(corrupt))
        wait_until(lambda: _status(router, corrupt) == "refused", 30, 0.25, "a refusal")
    if "ecgscreen_pacs_failed_total" not in (router.metrics() or {}):
        ecg = _dataset(good_ecg("dcm-waveform", index=93))
        _fail_an_attempt_with_the_gateway_down(pacs, gateway, router, ecg)
        gateway.start()
        wait_until(lambda: _finished(pacs, router, ecg), 60, 0.25, "results once the gateway is back")
    expressions = [(s, e) for s, e in dashboard_expressions() if s.startswith("dashboard: PACS router")]
    assert len(expressions) >= 6
    targets = {"ecgscreen-pacs-router": f"127.0.0.1:{router.metrics_port}"}
    with PrometheusHarness(targets, tmp_path) as prometheus:
        prometheus.wait_for_targets()
        deadline = time.monotonic() + 30
        while True:  # until the rate() windows hold two scrapes
            results = prometheus.evaluate(expressions)
            if all(r.has_data for r in results) or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert [r.source for r in results if not r.has_data] == []
