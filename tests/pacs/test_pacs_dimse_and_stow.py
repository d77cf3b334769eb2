"""The router's DICOM doors against real peers: its C-STORE SCP (pynetdicom as the sender),
and its two destinations, STOW-RS and C-STORE, storing into a real Orthanc."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from orthanc_harness import Orthanc
from pacs_files import ct_image, ecg_files, heatmap_picture, task_answer
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from servers import free_ports

from ecgscreen.pacs.destinations import CStore, StowRs, parse_dicom_url
from ecgscreen.pacs.multipart import encode_datasets
from ecgscreen.pacs.outcomes import Transient
from ecgscreen.pacs.results import Heatmap, build_results
from ecgscreen.pacs.scp import StoreSCP
from ecgscreen.pacs.state import State

pytestmark = pytest.mark.integration

ROUTER_AET = "ECGSCREEN"


def _dataset(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _results_body(model_identity, name: str = "generator-waveform") -> tuple[bytes, str, list]:
    answer = {"scar": task_answer(0.55, 0.4), "lvef": task_answer(0.25, 0.46), "fused": None}
    heatmaps = [Heatmap("scar", heatmap_picture(2)), Heatmap("lvef", heatmap_picture(3))]
    objects = build_results(_dataset(ecg_files()[name]), answer, model_identity, heatmaps)
    return *encode_datasets(objects), objects


def _send(port: int, datasets: list[pydicom.Dataset]) -> list[int]:
    ae = AE(ae_title="CART")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=ROUTER_AET)
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def test_the_scp_spools_ecgs_records_the_rest_and_answers_success(tmp_path, model_identity):
    state = State(tmp_path / "state.sqlite")
    scp = StoreSCP(state, tmp_path / "spool", ROUTER_AET).start("127.0.0.1", free_ports(1)[0])
    try:
        ecgs = [_dataset(data) for data in ecg_files().values()]
        ct = _dataset(ct_image())
        own = _results_body(model_identity)[2]
        statuses = _send(scp.port, [*ecgs, ct, *own, ecgs[0]])  # the first ECG twice
    finally:
        scp.stop()
    assert statuses == [0] * len(statuses)
    counts = state.counts()
    assert counts["pending"] == len(ecgs) and counts["refused"] == 1  # the CT; our results ignored
    for ds in ecgs:
        record = state.get(ds.SOPInstanceUID)
        assert record.origin == "scp" and record.study_uid == ds.StudyInstanceUID
        spooled = Path(record.spool_path)
        assert ds.SOPInstanceUID not in spooled.name  # names say nothing about the patient
        assert _dataset(spooled.read_bytes()).SOPInstanceUID == ds.SOPInstanceUID
    assert state.get(ct.SOPInstanceUID).reason.startswith("not_an_ecg")
    assert len(list((tmp_path / "spool").iterdir())) == len(ecgs)


def test_stow_rs_stores_the_body_unchanged_once(tmp_path, model_identity):
    body, content_type, objects = _results_body(model_identity)
    with Orthanc(tmp_path / "orthanc") as pacs:
        stow = StowRs(requests.Session(), pacs.dicomweb_url)
        assert stow.store(body, content_type) == len(objects)
        assert stow.store(body, content_type) == len(objects)  # again: same UIDs, no second copy
        assert pacs.instance_count() == len(objects)
        client = DICOMwebClient(pacs.dicomweb_url)
        study = objects[0].StudyInstanceUID
        found = client.search_for_instances(study, fields=["SOPClassUID"])
        assert {pydicom.Dataset.from_json(f).SOPInstanceUID for f in found} == {
            o.SOPInstanceUID for o in objects
        }
        pacs.stop()
        with pytest.raises(Transient, match="stow_unreachable"):
            stow.store(body, content_type)


def test_c_store_sends_each_result_to_a_dicom_node(tmp_path, model_identity):
    body, content_type, objects = _results_body(model_identity, "pydicom-waveform_ecg")
    router_port = free_ports(1)[0]
    with Orthanc(tmp_path / "orthanc", modalities={"router": (ROUTER_AET, router_port)}) as pacs:
        destination = parse_dicom_url(f"dicom://{pacs.aet}@127.0.0.1:{pacs.dicom_port}")
        assert destination == CStore(pacs.aet, "127.0.0.1", pacs.dicom_port)
        assert destination.store(body, content_type) == len(objects)
        assert pacs.instance_count() == len(objects)
        stranger = CStore(pacs.aet, "127.0.0.1", pacs.dicom_port, calling_aet="STRANGER")
        with pytest.raises(Transient):  # Orthanc accepts C-STORE from its declared peers only
            stranger.store(body, content_type)
    with pytest.raises(ValueError, match="dicom://"):
        parse_dicom_url("http://example/dicom-web")
