"""``POST /report``: its form fields, then on the real gateway (and Triton) the STOW-RS body a real
Orthanc accepts unchanged, with the SR saying what ``/predict`` says and one heatmap per task;
errors as for ``/predict``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import highdicom as hd
import httpx
import numpy as np
import pydicom
import pytest
from corpus import good_ecg
from dicomweb_client import DICOMwebClient
from orthanc_harness import Orthanc
from PIL import Image
from pydicom.data import get_testdata_file
from servers import free_ports

from ecgscreen.contract import TASKS
from ecgscreen.pacs import codes
from ecgscreen.pacs.multipart import decode_datasets, part10
from ecgscreen.pacs.results import CAUTION
from ecgscreen.serving.supervisor import Gateway
from service.report import check_identifiers, parse_tasks

WAVEFORM = Path(get_testdata_file("waveform_ecg.dcm")).read_bytes()


@pytest.fixture(scope="module")
def gateway(triton, tmp_path_factory):
    logs = tmp_path_factory.mktemp("report-gateway")
    gateway = Gateway(free_ports(1)[0], triton.grpc_url, workers=1, log_file=logs / "gateway.log").start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    with Orthanc(tmp_path_factory.mktemp("report-pacs")) as orthanc:
        yield orthanc


def test_task_lists_and_identifiers_are_checked_before_any_work():
    assert parse_tasks(None, TASKS) == TASKS and parse_tasks(" lvef, scar ", TASKS) == ("scar", "lvef")
    for bad in ("ef", "scar,scar", "scar;lvef"):
        with pytest.raises(ValueError, match="task"):
            parse_tasks(bad, TASKS)
    check_identifiers("png", "MRN-1", "ACC-1")
    with pytest.raises(ValueError, match="non-DICOM"):
        check_identifiers("dicom", None, "ACC-1")
    with pytest.raises(ValueError, match="accession"):
        check_identifiers("pdf", None, "A" * 17)


def post(gateway, path: str, data: bytes, **form) -> httpx.Response:
    return httpx.post(gateway.url + path, files={"file": ("ecg", data)}, data=form, timeout=60)


def _sr_values(sr: pydicom.Dataset) -> dict[tuple[str, str], float]:
    report = hd.sr.srread(io.BytesIO(part10(sr)))
    out = {}
    for group in report.content.get_image_measurement_groups():
        kind = "fused" if "fused" in group.tracking_identifier else "image"
        out[(codes.task_of_finding(group.finding_type), kind)] = group.get_measurements()[0].value
    return out


@pytest.mark.integration
def test_orthanc_stores_the_report_body_unchanged(gateway, pacs):
    response = post(gateway, "/report", WAVEFORM)
    assert response.status_code == 200, response.text
    content_type = response.headers["content-type"]
    assert content_type.startswith('multipart/related; type="application/dicom"')
    stored = httpx.post(
        pacs.dicomweb_url + "/studies",
        content=response.content,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        timeout=60,
    )
    assert stored.status_code == 200, stored.text
    answer = stored.json()
    assert not (answer.get("00081198") or {}).get("Value")  # no failed instance
    assert len(answer["00081199"]["Value"]) == 3  # the SR and two heatmaps
    source = pydicom.dcmread(io.BytesIO(WAVEFORM))
    found = DICOMwebClient(pacs.dicomweb_url).search_for_instances(
        source.StudyInstanceUID, fields=["Modality"]
    )
    modalities = sorted(pydicom.Dataset.from_json(f).Modality for f in found)
    assert modalities == ["OT", "OT", "SR"]  # in the source's study (the waveform itself is not stored here)


@pytest.mark.integration
def test_the_report_says_what_predict_says_with_the_explain_pictures(gateway):
    clinical = json.dumps({"age": 71, "dm": 1})
    predicted = post(gateway, "/predict", WAVEFORM, clinical=clinical).json()
    sr, *images = decode_datasets(
        *(lambda r: (r.content, r.headers["content-type"]))(
            post(gateway, "/report", WAVEFORM, clinical=clinical)
        )
    )
    values = _sr_values(sr)
    for task in ("scar", "lvef"):
        assert values[(task, "image")] == pytest.approx(predicted[task]["probability"]["positive"], abs=1e-6)
        assert values[(task, "fused")] == pytest.approx(
            predicted["fused"][task]["probability"]["positive"], abs=1e-6
        )
    explained = Image.open(io.BytesIO(post(gateway, "/explain", WAVEFORM, task="lvef").content)).convert(
        "RGB"
    )
    (lvef,) = [im for im in images if "LVEF" in im.DerivationDescription]
    np.testing.assert_array_equal(lvef.pixel_array, np.asarray(explained))  # the same picture as /explain
    assert all(im.SeriesDescription.startswith(CAUTION) for im in images)


@pytest.mark.integration
def test_a_picture_gets_a_new_study_with_the_callers_ids_and_the_tasks_asked_for(gateway):
    response = post(gateway, "/report", good_ecg("png"), task="scar", patient_id="MRN-77", accession="A-1")
    assert response.status_code == 200, response.text
    sr, sc = decode_datasets(response.content, response.headers["content-type"])
    assert sr.PatientID == sc.PatientID == "MRN-77" and sr.AccessionNumber == "A-1"
    assert sr.StudyInstanceUID == sc.StudyInstanceUID and not str(sr.PatientName)
    assert set(_sr_values(sr)) == {("scar", "image")}
    again = post(gateway, "/report", good_ecg("png"), task="scar", patient_id="MRN-77", accession="A-1")
    assert (
        decode_datasets(again.content, again.headers["content-type"])[0].SOPInstanceUID == sr.SOPInstanceUID
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    "data,form,status,needle",
    [
        (WAVEFORM, {"task": "ef"}, 422, "task"),
        (WAVEFORM, {"patient_id": "X1"}, 422, "patient_id"),
        (b"not an ecg at all", {}, 415, "unrecognised"),
        (WAVEFORM[: len(WAVEFORM) // 3], {}, 400, "DICOM"),
    ],
)
def test_bad_requests_get_the_errors_predict_gives(gateway, data, form, status, needle):
    response = post(gateway, "/report", data, **form)
    assert response.status_code == status, response.text
    body = response.json()
    assert needle in body["detail"] and body["request_id"]
