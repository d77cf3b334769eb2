"""One ECG never stops the router (issue 21): an ECG on which intake fails (a bug) is recorded
as failed with reason ``internal`` and the gateway's request id, an unexpected error in the
router's own handling of an ECG likewise, and the ECGs after them are done.

The router runs its real loop (``Router.run``) in this process; the PACS is left out (objects
come from a stand-in ``_fetch``, results go to a stand-in STOW-RS) and the gateway is a
stand-in that runs the real intake on the file and answers an exception with the gateway's
own error mapping (``service.results.failure`` and ``service.guard.error_response``). The
served stack end to end is ``test_pacs_router.py``'s.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from corpus import good_ecg
from pydicom.data import get_testdata_file

from ecgscreen.imaging import pipeline
from ecgscreen.pacs.router import Router, RouterConfig
from ecgscreen.pacs.state import State
from service.guard import error_response
from service.results import failure

WAVEFORM = Path(get_testdata_file("waveform_ecg.dcm")).read_bytes()
SOP_12_LEAD = "1.2.840.10008.5.1.4.1.1.9.1.1"


def _gateway(files: dict[str, bytes], request_ids: dict[str, str]):
    """``POST /report``: intake on the file, then results, or the gateway's error answer."""

    def handle(request: httpx.Request) -> httpx.Response:
        name = next(name for name, data in files.items() if data in request.content)
        try:
            pipeline.preprocess(files[name])
        except Exception as exc:
            answer = failure(exc)
            request_ids[name] = uuid.uuid4().hex
            response = error_response(answer.status, answer.error, answer.detail, request_ids[name])
            return httpx.Response(response.status_code, content=response.body, headers=dict(response.headers))
        body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + name.encode() + b"\r\n--b--\r\n"
        return httpx.Response(
            200,
            content=body,
            headers={"content-type": 'multipart/related; type="application/dicom"; boundary=b'},
        )

    return handle


def test_an_ecg_intake_fails_on_is_recorded_as_internal_and_the_router_goes_on(tmp_path, monkeypatch):
    files = {
        "a": WAVEFORM,
        "b-creased": good_ecg("png", index=1),
        "c": b"never read",
        "d": good_ecg("dcm-waveform"),
    }
    read_page = pipeline.read_page

    def failing_read_page(data, *args, **kwargs):
        if data == files["b-creased"]:
            raise RuntimeError("a bug in intake")
        return read_page(data, *args, **kwargs)

    monkeypatch.setattr(pipeline, "read_page", failing_read_page)
    state_path = tmp_path / "router.sqlite"
    config = RouterConfig(gateway_url="http://gateway.test", state_path=state_path,
                          dicomweb_url="http://pacs.test/dicom-web", feed="none", metrics_port=None,
                          concurrency=1)  # fmt: skip
    router = Router(config)
    request_ids: dict[str, str] = {}
    router.gateway._http = httpx.Client(
        base_url="http://gateway.test", transport=httpx.MockTransport(_gateway(files, request_ids))
    )

    def fetch(item):
        if item.sop_instance_uid == "c":
            raise RuntimeError("a bug in the router")  # its own step fails on this ECG
        return files[item.sop_instance_uid]

    stored = []
    monkeypatch.setattr(router, "_fetch", fetch)
    monkeypatch.setattr(router.stow, "store", lambda body, content_type: stored.append(body) or 2)
    for arrived, uid in enumerate(files):
        router.state.add(uid, "study", "series", SOP_12_LEAD, "qido", arrived=1000.0 + arrived)

    stop = threading.Event()
    thread = threading.Thread(target=router.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and router.state.counts().get("pending", 0):
            time.sleep(0.05)
        assert thread.is_alive(), "the router stopped"
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    state = State(state_path)
    try:
        status = {uid: state.get(uid) for uid in files}
    finally:
        state.close()
    assert {uid: item.status for uid, item in status.items()} == {
        "a": "done", "b-creased": "failed", "c": "failed", "d": "done",
    }  # fmt: skip
    assert status["b-creased"].reason == f"internal (request_id={request_ids['b-creased']})"
    assert status["c"].reason == "internal (RuntimeError)"
    assert status["b-creased"].next_attempt is not None  # retried later: a new version may read it
    assert sorted(body.split(b"\r\n")[3] for body in stored) == [b"a", b"d"]  # their results
    failed = {s.labels["reason"]: s.value for s in router.metrics.failed.collect()[0].samples
              if s.name.endswith("_total")}  # fmt: skip
    assert failed == {"internal": 2}


@pytest.mark.parametrize(
    "status,body,reason,detail",
    [
        (
            500,
            {"error": "internal", "detail": "x", "status": 500, "request_id": "abc"},
            "internal",
            "request_id=abc",
        ),
        (502, {"error": "upstream_error", "detail": "x", "status": 502}, "gateway_502", "upstream_error"),
        (503, {}, "gateway_503", "http_503"),
    ],
)
def test_the_gateways_failures_are_told_apart(status, body, reason, detail):
    from ecgscreen.pacs.gateway_client import GatewayClient
    from ecgscreen.pacs.outcomes import Transient

    client = GatewayClient("http://gateway.test")
    client._http = httpx.Client(
        base_url="http://gateway.test",
        transport=httpx.MockTransport(lambda r: httpx.Response(status, json=body)),
    )
    with pytest.raises(Transient) as caught:
        client.report(WAVEFORM)
    assert (caught.value.reason, caught.value.detail) == (reason, detail)
