"""The real embedded tritonserver, talked to with the real tritonclient over gRPC and HTTP."""

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from corpus import bad_inputs, good_ecg
from prometheus_client.parser import text_string_to_metric_families
from pydicom.data import get_testdata_file
from servers import children_of, free_ports, wait_until
from tritonclient.utils import InferenceServerException

from ecgscreen.card import ModelCard
from ecgscreen.contract import MODEL_INPUT, MODEL_NAME
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.serving.precision import cpu_network
from ecgscreen.serving.triton import DEFAULT_REPOSITORY, EmbeddedTriton, TritonPorts

pytestmark = pytest.mark.integration

OUTPUTS = ("SCAR_PROB", "LVEF_PROB", "EMBEDDING", "PREPROC_INFO")
SAMPLES = {
    "png": lambda: good_ecg("png"),
    "pdf": lambda: good_ecg("pdf", index=1),
    "dicom-pdf": lambda: good_ecg("dcm-pdf", index=2),
    "dicom-sc": lambda: good_ecg("dcm-sc", index=3),
    "dicom-waveform": lambda: good_ecg("dcm-waveform", index=4),
    "pydicom-waveform_ecg": lambda: Path(get_testdata_file("waveform_ecg.dcm")).read_bytes(),
}


@pytest.fixture(scope="module")
def reference():
    """The in-process pipeline: intake + onnxruntime on the network file the CPU config runs
    (the card's INT8 variant when it passed, else model.onnx: ``serving.precision``)."""
    folder = DEFAULT_REPOSITORY / MODEL_NAME
    network = folder / cpu_network(ModelCard.load(folder)).file
    session = ort.InferenceSession(str(network), providers=["CPUExecutionProvider"])

    def run(data: bytes) -> dict[str, np.ndarray]:
        canonical = preprocess(data).canonical[None]
        names = ["scar_probability", "lvef_probability", "embedding", "cam"]
        return dict(zip(names, session.run(names, {MODEL_INPUT: canonical}), strict=True))

    return run


def grpc_infer(triton, data: bytes, outputs=OUTPUTS):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput("ECG_BYTES", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    return client.infer(
        "ecg_screening", [tensor], outputs=[grpcclient.InferRequestedOutput(n) for n in outputs]
    )


def http_infer(triton, data: bytes, outputs=OUTPUTS):
    client = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"))
    tensor = httpclient.InferInput("ECG_BYTES", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_), binary_data=True)
    return client.infer(
        "ecg_screening",
        [tensor],
        outputs=[httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs],
    )


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_ensemble_equals_the_in_process_pipeline(triton, reference, protocol, sample):
    data = SAMPLES[sample]()
    result = (grpc_infer if protocol == "grpc" else http_infer)(triton, data)
    expected = reference(data)
    assert abs(result.as_numpy("SCAR_PROB")[0, 0] - expected["scar_probability"][0, 0]) <= 1e-4
    assert abs(result.as_numpy("LVEF_PROB")[0, 0] - expected["lvef_probability"][0, 0]) <= 1e-4
    np.testing.assert_allclose(result.as_numpy("EMBEDDING"), expected["embedding"], atol=1e-4)
    info = json.loads(result.as_numpy("PREPROC_INFO")[0, 0])
    assert info["source_format"] and info["layout"] and "warnings" in info
    assert result.as_numpy("CAM") is None  # not asked, not sent


def test_cam_is_returned_only_when_asked(triton, reference):
    data = good_ecg("png")
    without = grpc_infer(triton, data, ("SCAR_PROB",))
    assert without.as_numpy("CAM") is None and without.as_numpy("EMBEDDING") is None
    with_cam = grpc_infer(triton, data, ("SCAR_PROB", "CAM"))
    cam = with_cam.as_numpy("CAM")
    assert cam.shape == (1, 2, 12, 12) and np.isfinite(cam).all()
    np.testing.assert_allclose(cam, reference(data)["cam"], atol=1e-4)


def test_a_corrupt_file_fails_only_its_own_request(triton, reference):
    good = [good_ecg("png"), good_ecg("pdf", index=1), good_ecg("dcm-sc", index=3), good_ecg("jpeg")]
    bad = next(data for name, data, _ in bad_inputs() if name == "truncated-png")
    files = good[:2] + [bad] + good[2:]
    # Sent together: in flight at once in both intake instances and the network's batches.
    with ThreadPoolExecutor(len(files)) as pool:
        futures = [pool.submit(grpc_infer, triton, data, ("SCAR_PROB",)) for data in files]
    for data, future in zip(files, futures, strict=True):
        if data is bad:
            with pytest.raises(InferenceServerException) as caught:
                future.result()
            assert "intake:truncated:400" in str(caught.value)
            assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
        else:
            expected = reference(data)["scar_probability"][0, 0]
            assert abs(future.result().as_numpy("SCAR_PROB")[0, 0] - expected) <= 1e-4


def _counts(triton, model: str) -> tuple[float, float]:
    text = httpx.get(triton.metrics_url, timeout=5).text
    values = {}
    for family in text_string_to_metric_families(text):  # the parser names counter samples *_total
        for sample in family.samples:
            if (
                family.name in ("nv_inference_count", "nv_inference_exec_count")
                and sample.labels.get("model") == model
            ):
                values[family.name] = sample.value
    return values["nv_inference_count"], values["nv_inference_exec_count"]


def test_concurrent_requests_are_batched(triton):
    """The network's dynamic batcher joins requests that wait together. Sent to the network
    itself: through the ensemble, intake (one file per instance) spaces them out, and on two
    cores they rarely meet at the network."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)

    def infer(canonical: np.ndarray):
        tensor = grpcclient.InferInput(MODEL_INPUT, [1, *canonical.shape], "UINT8")
        tensor.set_data_from_numpy(canonical[None])
        return client.infer(
            "ecg_multitask", [tensor], outputs=[grpcclient.InferRequestedOutput("scar_probability")]
        )

    images = [preprocess(good_ecg("pdf", index=i % 3)).canonical for i in range(16)]
    before = _counts(triton, "ecg_multitask")
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(infer, images))
    after = _counts(triton, "ecg_multitask")
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 16
    assert executions < inferences, f"{executions} executions for {inferences} inferences: no batching"
    # batched or not, each request gets its own image's answer
    for i in range(3, 16):
        assert answers[i].as_numpy("scar_probability")[0, 0] == pytest.approx(
            answers[i % 3].as_numpy("scar_probability")[0, 0], abs=1e-5
        )


def test_metrics_endpoint_is_scrapeable(triton):
    response = httpx.get(triton.metrics_url, timeout=5)
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"nv_inference_request_success", "nv_inference_queue_duration_us", "nv_inference_count"} <= names


def test_server_stops_cleanly_and_leaves_no_process(tmp_path):
    ports = TritonPorts(*free_ports(3))
    server = EmbeddedTriton(ports=ports, log_file=tmp_path / "log").start()
    pgid = os.getpgid(server.process.pid)
    assert len(children_of(pgid)) >= 3  # tritonserver and its python-backend stubs
    server.stop()
    assert children_of(pgid) == []
    assert not server.is_ready()


def test_cli_runs_until_sigterm(tmp_path):
    http, grpc, metrics = free_ports(3)
    command = [
        sys.executable,
        "-m",
        "ecgscreen.cli",
        "triton",
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_until(
            lambda: (
                httpx.get(f"http://127.0.0.1:{http}/v2/health/ready").status_code == 200
                if _up(http)
                else False
            ),
            120,
            what="ready",
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output
    assert f"gRPC 127.0.0.1:{grpc}" in output and "Triton stopped." in output
    assert children_of(process.pid) == []


def _up(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=1)
        return True
    except httpx.HTTPError:
        return False
