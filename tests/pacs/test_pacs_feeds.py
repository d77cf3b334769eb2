"""The router's feeds against a real Orthanc: its change log and QIDO-RS find every ECG once,
refuse what is no ECG, ignore the router's own results, and survive the PACS going away."""

from __future__ import annotations

import datetime
import io
import time

import pydicom
import pytest
import requests
from corpus import good_ecg
from dicomweb_client import DICOMwebClient
from orthanc_harness import Orthanc
from pacs_files import ct_image, ecg_files, heatmap_picture, task_answer

from ecgscreen.pacs.feeds import OrthancChanges, PacsUnavailable, QidoByDate, is_orthanc
from ecgscreen.pacs.multipart import part10
from ecgscreen.pacs.results import Heatmap, build_results
from ecgscreen.pacs.state import State

pytestmark = pytest.mark.integration


def _filed_as(data: bytes, modality: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Modality = modality
    return part10(ds)


@pytest.fixture
def pacs(tmp_path):
    with Orthanc(tmp_path / "orthanc") as orthanc:
        yield orthanc


def _own_results(model_identity) -> list[bytes]:
    source = pydicom.dcmread(io.BytesIO(ecg_files()["generator-pdf"]))
    answer = {"scar": task_answer(0.5, 0.4), "lvef": task_answer(0.2, 0.4), "fused": None}
    return [
        part10(ds)
        for ds in build_results(source, answer, model_identity, [Heatmap("scar", heatmap_picture())])
    ]


def test_the_change_log_finds_each_ecg_once_and_nothing_else(pacs, tmp_path, model_identity):
    session = requests.Session()
    assert is_orthanc(session, pacs.url)
    files = ecg_files()
    for data in files.values():
        pacs.store(data)
    pacs.store(ct_image())
    pacs.store(_filed_as(good_ecg("dcm-sc", index=7), "OT"))  # a scan not filed as an ECG
    for data in _own_results(model_identity):
        pacs.store(data)
    state = State(tmp_path / "state.sqlite")
    feed = OrthancChanges(session, pacs.url, batch=5)  # several batches
    results = []
    while True:
        results.append(feed.poll(state))
        if not results[-1].more:
            break
    assert len(results) > 1
    assert sum(r.ecgs for r in results) == len(files)
    assert sum(r.refused.get("not_an_ecg", 0) for r in results) == 2
    assert sum(r.ignored for r in results) == 2  # our SR and SC
    counts = state.counts()
    assert counts["pending"] == len(files) and counts["refused"] == 2
    sources = {pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID for d in files.values()}
    assert {i.sop_instance_uid for i in state.due()} == sources
    for item in state.due():  # the change's date, on our clock
        assert abs(item.arrived - time.time()) < 60
    assert int(state.cursor("orthanc")) == pacs.get("/changes", last="")["Last"]

    # Nothing new: nothing more. A new ECG: only it.
    assert feed.poll(state).ecgs == 0
    pacs.store(good_ecg("dcm-waveform", index=8))
    assert feed.poll(state).ecgs == 1 and state.counts()["pending"] == len(files) + 1


def test_a_pacs_that_goes_away_costs_a_poll_and_nothing_else(pacs, tmp_path):
    session = requests.Session()
    state = State(tmp_path / "state.sqlite")
    feed = OrthancChanges(session, pacs.url)
    pacs.store(ecg_files()["pydicom-waveform_ecg"])
    assert feed.poll(state).ecgs == 1
    cursor = state.cursor("orthanc")
    pacs.stop()
    with pytest.raises(PacsUnavailable):
        feed.poll(state)
    assert state.cursor("orthanc") == cursor and state.counts()["pending"] == 1
    pacs.start()  # same ports, same storage
    pacs.store(ecg_files()["generator-pdf"])
    assert feed.poll(state).ecgs == 1 and state.counts()["pending"] == 2


def test_qido_by_date_finds_the_ecgs_of_any_dicomweb_pacs(pacs, tmp_path, model_identity):
    for data in ecg_files().values():
        pacs.store(data)
    pacs.store(ct_image())
    for data in _own_results(model_identity):
        pacs.store(data)
    client = DICOMwebClient(pacs.dicomweb_url)
    state = State(tmp_path / "state.sqlite")
    feed = QidoByDate(client, since=datetime.date(2000, 1, 1), page=2)  # several pages
    first = feed.poll(state)
    assert first.ecgs == len(ecg_files()) and not first.refused  # the CT has modality CT: not listed
    assert feed.poll(state).ecgs == 0  # listed again, known already
    # The default window: studies of the last two days (the files above are years old).
    today = pydicom.dcmread(io.BytesIO(good_ecg("dcm-waveform", index=9)))
    today.StudyDate = datetime.date.today().strftime("%Y%m%d")
    pacs.store(part10(today))
    recent = QidoByDate(client, lookback_days=2).poll(State(tmp_path / "fresh.sqlite"))
    assert recent.ecgs == 1
    assert feed.poll(state).ecgs == 1  # and the wide window finds it as the only new one
