"""The study's own models, imported and served for real: the embedded tritonserver and the
BentoML gateway on an imported repository (a temporary folder), answering as the study's
forward (its TorchScript oracle) on the canonical image Triton drew from the file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from mtecg_oracles import DEFAULTS, FIXTURES, study_forward
from servers import free_ports

from ecgscreen.contract import ENSEMBLE_CANONICAL, ENSEMBLE_INPUT, ENSEMBLE_NAME
from ecgscreen.export.mtecg import import_mtecg, read_transform
from ecgscreen.serving.supervisor import Gateway
from ecgscreen.serving.triton import EmbeddedTriton, TritonPorts

pytestmark = pytest.mark.integration

ECG = Path(__file__).parent.parent.parent / "samples" / "ecg_6x2_scan.jpg"
TOLERANCE = 1e-5


def serve(repository: Path, logs: Path):
    """Triton on ``repository`` and the gateway (one worker) reading its model card."""
    http, grpc, metrics, port = free_ports(4)
    triton = EmbeddedTriton(
        repository, TritonPorts(http, grpc, metrics), log_file=logs / "triton.log"
    ).start()
    env = {"ECGSCREEN_MODEL_DIR": str(repository / "ecg_multitask")}
    try:
        gateway = Gateway(port, triton.grpc_url, workers=1, log_file=logs / "gateway.log", env=env).start()
    except Exception:
        triton.stop()
        raise
    return triton, gateway


def canonical_rgb(triton: EmbeddedTriton, data: bytes) -> np.ndarray:
    """The canonical image the ensemble drew from ``data``, as the study's RGB input in [0, 1]."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput(ENSEMBLE_INPUT, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    result = client.infer(
        ENSEMBLE_NAME, [tensor], outputs=[grpcclient.InferRequestedOutput(ENSEMBLE_CANONICAL)]
    )
    gray = result.as_numpy(ENSEMBLE_CANONICAL)[0].astype(np.float32) / 255.0
    return np.repeat(gray[None, :, :, None], 3, axis=3)


def predict(gateway: Gateway, data: bytes, clinical: dict | None = None) -> dict:
    form = {"clinical": json.dumps(clinical)} if clinical is not None else {}
    response = httpx.post(gateway.url + "/predict", files={"file": ("ecg.jpg", data)}, data=form, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def clinical_service(tmp_path_factory):
    repository = tmp_path_factory.mktemp("clinical-repository")
    import_mtecg(FIXTURES / "multi-task-clinical", repository, clinical_defaults=DEFAULTS)
    triton, gateway = serve(repository, tmp_path_factory.mktemp("clinical-logs"))
    yield triton, gateway
    gateway.stop()
    triton.stop()


def test_a_clinical_model_answers_as_the_study_s_clinical_model(clinical_service):
    triton, gateway = clinical_service
    data = ECG.read_bytes()
    rgb = canonical_rgb(triton, data)
    transform = read_transform(FIXTURES / "multi-task-clinical" / "transform.json")
    features = [
        {"age": 71, "female_gender": True, "dm": True, "ht": True, "smoke": False, "dlp": True},
        {"age": 38, "female_gender": False, "dm": False, "ht": False, "smoke": True, "dlp": False},
    ]
    answers = []
    for given in features:
        body = predict(gateway, data, given)
        row = np.array([[float(given[k]) for k in DEFAULTS]], np.float32)
        expected = study_forward("multi-task-clinical", rgb, row, transform)[0]
        got = [body["fused"][t]["probability"]["positive"] for t in ("scar", "lvef")]
        assert np.abs(np.array(got) - expected).max() <= TOLERANCE
        assert body["fused"]["imputed"] == []
        assert (
            body["scar"] is None and body["lvef"] is None
        )  # the study's clinical model: no image-only answer
        answers.append(got)
    assert np.abs(np.subtract(*answers)).max() > 1e-4  # the features matter: the check has teeth

    # Missing features take the card's defaults, and the response says which.
    body = predict(
        gateway, data, {"female_gender": True, "dm": False, "ht": True, "smoke": False, "dlp": False}
    )
    assert body["fused"]["imputed"] == ["age"]
    row = np.array([[DEFAULTS["age"], 1, 0, 1, 0, 0]], np.float32)
    expected = study_forward("multi-task-clinical", rgb, row, transform)[0]
    assert (
        np.abs(
            np.array([body["fused"][t]["probability"]["positive"] for t in ("scar", "lvef")]) - expected
        ).max()
        <= TOLERANCE
    )

    # Without clinical features at all: every one imputed, still through the fusion head.
    body = predict(gateway, data)
    assert body["fused"]["imputed"] == list(DEFAULTS) and body["scar"] is None
    expected = study_forward(
        "multi-task-clinical", rgb, np.array([list(DEFAULTS.values())], np.float32), transform
    )[0]
    assert (
        np.abs(
            np.array([body["fused"][t]["probability"]["positive"] for t in ("scar", "lvef")]) - expected
        ).max()
        <= TOLERANCE
    )


def test_a_single_task_model_answers_its_task_and_null(tmp_path_factory):
    repository = tmp_path_factory.mktemp("single-repository")
    import_mtecg(FIXTURES / "single-task-lvef", repository)
    assert (repository / "ecg_segment" / "1" / "model.onnx").is_file()  # intake asks it (BLS)
    triton, gateway = serve(repository, tmp_path_factory.mktemp("single-logs"))
    try:
        data = ECG.read_bytes()
        body = predict(gateway, data)
        assert body["scar"] is None and body["fused"] is None
        transform = read_transform(FIXTURES / "single-task-lvef" / "transform.json")
        expected = study_forward("single-task-lvef", canonical_rgb(triton, data), None, transform)[0, 0]
        assert abs(body["lvef"]["probability"]["positive"] - expected) <= TOLERANCE
        response = httpx.post(gateway.url + "/explain", files={"file": ("ecg.jpg", data)},
                              data={"task": "scar", "format": "json"}, timeout=60)  # fmt: skip
        assert response.status_code == 422 and "has no 'scar' head" in response.json()["detail"]
        response = httpx.post(gateway.url + "/explain", files={"file": ("ecg.jpg", data)},
                              data={"task": "lvef", "format": "json"}, timeout=60)  # fmt: skip
        assert response.status_code == 200 and abs(response.json()["probability"] - expected) <= TOLERANCE
        assert np.asarray(response.json()["cam"]).shape == (12, 12)
        response = httpx.post(gateway.url + "/predict", files={"file": ("ecg.jpg", data)},
                              data={"clinical": json.dumps({"age": 50})}, timeout=60)  # fmt: skip
        assert response.status_code == 422 and "no clinical fusion head" in response.json()["detail"]
    finally:
        gateway.stop()
        triton.stop()
