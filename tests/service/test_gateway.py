"""End to end: the real tritonserver and the real ``bentoml serve`` (2 workers), over httpx."""

import io
import json
import os
import re
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pypdfium2 as pdfium
import pytest
from corpus import bad_inputs, good_ecg
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from pydicom.data import get_testdata_file
from servers import free_ports, segmented_pages, wait_until

from ecgscreen.leads import LEADS
from ecgscreen.serving.supervisor import Gateway
from ecgscreen.serving.triton import EmbeddedTriton, TritonPorts
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.scan import ScanArtefacts

pytestmark = pytest.mark.integration

CANARY = "ZZCANARYQX"


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(good_ecg("png"))).save(buffer, format="TIFF")
    return buffer.getvalue()


FILES = {
    "png": lambda: good_ecg("png"),
    "jpeg": lambda: good_ecg("jpeg", index=1),
    "tiff": _tiff,
    "pdf": lambda: good_ecg("pdf", index=2),
    "dicom-pdf": lambda: good_ecg("dcm-pdf", index=3),
    "dicom-sc": lambda: good_ecg("dcm-sc", index=4),
    "dicom-waveform": lambda: good_ecg("dcm-waveform", index=5),
    "pydicom-waveform_ecg": lambda: Path(get_testdata_file("waveform_ecg.dcm")).read_bytes(),
}


@pytest.fixture(scope="module")
def service(triton, tmp_path_factory):
    """The gateway (2 workers, no token) in front of the session's Triton."""
    logs = tmp_path_factory.mktemp("gateway")
    gateway = Gateway(free_ports(1)[0], triton.grpc_url, workers=2, log_file=logs / "gateway.log").start()
    yield gateway
    gateway.stop()


def post(url: str, path: str, data: bytes, headers=None, timeout=60, **form) -> httpx.Response:
    return httpx.post(
        url + path, files={"file": ("ecg.bin", data)}, data=form, headers=headers, timeout=timeout
    )


@pytest.mark.parametrize("kind", sorted(FILES))
def test_predict_answers_every_format_in_the_documented_shape(service, kind):
    response = post(service.url, "/predict", FILES[kind]())
    assert response.status_code == 200, response.text
    body = response.json()
    for task in ("scar", "lvef"):
        result = body[task]
        p = result["probability"]
        assert p["negative"] + p["positive"] == pytest.approx(1.0, abs=1e-5)
        assert result["prediction"] == int(p["positive"] >= result["threshold"])
        expected = "low" if p["positive"] < 0.3 else "medium" if p["positive"] < 0.7 else "high"
        assert result["risk_level"] == expected
        assert 0 <= result["average"] <= 1
    assert body["fused"] is None
    assert "not for diagnosis" in body["model"]["intended_use"].lower() and body["model"]["version"]
    assert body["preprocessing"]["source_format"].startswith(kind.split("-")[0].replace("pydicom", "dicom"))
    assert (
        re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
        and response.headers["x-request-id"] == body["request_id"]
    )


def test_openapi_documents_the_predict_and_explain_response_fields(service):
    spec = httpx.get(service.url + "/docs.json", timeout=30).json()

    def response_schema(path: str) -> dict:
        schema = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        if "$ref" in schema:  # resolve one level of reference
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    predict = response_schema("/predict")
    assert set(predict["properties"]) == {
        "scar",
        "lvef",
        "fused",
        "model",
        "preprocessing",
        "novelty",
        "request_id",
    }
    assert set(predict["required"]) >= {"scar", "lvef", "model", "request_id"}
    explain = response_schema("/explain")
    assert {"attribution", "territories", "top_leads", "cam", "risk_level"} <= set(explain["properties"])
    text = json.dumps(spec)
    for field in ("risk_level", "threshold", "imputed", "intended_use", "source_format"):
        assert field in text, field  # the nested models' fields are documented too


def test_predict_matches_triton_direct(service, triton):
    import tritonclient.grpc as grpcclient

    data = good_ecg("pdf", index=2)
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput("ECG_BYTES", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    direct = client.infer("ecg_screening", [tensor]).as_numpy("SCAR_PROB")[0, 0]
    body = post(service.url, "/predict", data).json()
    assert body["scar"]["probability"]["positive"] == pytest.approx(float(direct), abs=1e-5)


def test_clinical_fusion_changes_the_answer_and_reports_imputation(service):
    data = good_ecg("png")
    image_only = post(service.url, "/predict", data).json()
    risky = {"age": 82, "female_gender": 0, "dm": 1, "ht": 1, "smoke": 1, "dlp": 1}
    healthy = {"age": 25, "female_gender": 1, "dm": 0, "ht": 0, "smoke": 0, "dlp": 0}
    high = post(service.url, "/predict", data, clinical=json.dumps(risky)).json()["fused"]
    low = post(service.url, "/predict", data, clinical=json.dumps(healthy)).json()["fused"]
    assert high["imputed"] == [] and low["imputed"] == []
    assert high["scar"]["probability"]["positive"] > low["scar"]["probability"]["positive"] + 0.02
    assert high["scar"]["probability"]["positive"] != image_only["scar"]["probability"]["positive"]
    partial = post(service.url, "/predict", data, clinical=json.dumps({"age": 70, "dm": True})).json()[
        "fused"
    ]
    assert partial["imputed"] == ["female_gender", "ht", "smoke", "dlp"]


@pytest.mark.parametrize(
    "clinical,needle",
    [('{"age": 7}', "age"), ('{"dm": "maybe"}', "dm"), ('{"height": 180}', "height"), ("{not json", "JSON")],
)
def test_bad_clinical_features_get_a_422_that_names_them(service, clinical, needle):
    response = post(service.url, "/predict", good_ecg("png"), clinical=clinical)
    assert response.status_code in (400, 422), response.text
    assert needle in json.dumps(response.json())


def test_explain_png_is_the_canonical_overlay_at_twice_the_size(service):
    response = post(service.url, "/explain", good_ecg("png"), task="lvef")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    image.verify()
    assert image.size == (768, 816)


def test_explain_json_attributes_the_heat_to_the_twelve_leads(service):
    body = post(service.url, "/explain", good_ecg("pdf", index=2), task="scar", format="json").json()
    assert set(body["attribution"]) == set(LEADS)
    assert sum(body["attribution"].values()) == pytest.approx(1.0, abs=1e-5)
    assert all(v >= 0 for v in body["attribution"].values())
    assert np.array(body["cam"]).shape == (12, 12)
    assert body["top_leads"][0] == max(body["attribution"], key=body["attribution"].get)
    assert sum(body["territories"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("form,needle", [({"task": "ef"}, "task"), ({"format": "gif"}, "format")])
def test_explain_refuses_unknown_task_or_format(service, form, needle):
    response = post(service.url, "/explain", good_ecg("png"), **form)
    assert response.status_code == 422 and needle in response.json()["detail"]


def test_bad_input_corpus_gets_4xx_json_and_the_service_stays_ready(service):
    for name, data, reason in bad_inputs():
        response = post(service.url, "/predict", data)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        body = response.json()
        assert body["error"] == reason, (name, body)
        assert body["detail"]
    assert httpx.get(service.url + "/readyz").status_code == 200
    assert post(service.url, "/predict", good_ecg("png")).status_code == 200


def _samples(url: str, name: str) -> dict[tuple, float]:
    text = httpx.get(url + "/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_custom_metrics_count_the_requests_of_both_workers(service):
    before = _samples(service.url, "ecgscreen_requests_total")
    positives_before = sum(_samples(service.url, "ecgscreen_predictions_total").values())
    n = 24
    for i in range(n):
        post(service.url, "/predict", good_ecg("pdf", index=i % 3))
    wait_until(lambda: len(_pids(service)) >= 2, 5, what="log lines from both workers")
    for _ in range(4):  # whichever worker answers /metrics, it reports every worker's counts
        after = _samples(service.url, "ecgscreen_requests_total")
        key = (("endpoint", "/predict"), ("input_format", "pdf"), ("outcome", "ok"))
        assert after.get(key, 0) - before.get(key, 0) == n
    assert sum(_samples(service.url, "ecgscreen_predictions_total").values()) - positives_before == 2 * n
    histogram = _samples(service.url, "ecgscreen_predicted_probability_count")
    assert histogram[(("task", "scar"),)] >= n
    assert sum(_samples(service.url, "ecgscreen_triton_latency_seconds_count").values()) >= n
    refusals = _samples(service.url, "ecgscreen_preprocess_refusals_total")
    post(service.url, "/predict", b"")
    assert (
        sum(_samples(service.url, "ecgscreen_preprocess_refusals_total").values())
        == sum(refusals.values()) + 1
    )


def _pids(service) -> set[str]:
    log = service.log_file.read_text()
    return set(re.findall(r"pid=(\d+) request_id=", log))


def test_auth_on_requires_the_bearer_token_except_for_health_and_metrics(triton, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    gateway = Gateway(
        free_ports(1)[0], triton.grpc_url, workers=1, env={"ECGSCREEN_API_TOKEN_FILE": str(token_file)}
    ).start()
    try:
        data = good_ecg("png")
        missing = post(gateway.url, "/predict", data)
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert (
            post(gateway.url, "/predict", data, headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert post(gateway.url, "/explain", data).status_code == 401
        assert (
            post(gateway.url, "/predict", data, headers={"Authorization": "Bearer s3cret-token"}).status_code
            == 200
        )
        for path in ("/livez", "/readyz", "/metrics"):
            assert httpx.get(gateway.url + path).status_code == 200, path
    finally:
        gateway.stop()


def test_a_file_field_sent_as_text_is_not_fetched_as_a_url(service):
    multipart = httpx.post(
        service.url + "/predict",
        files={
            "file": (None, "http://127.0.0.1:9/ecg.png"),
            "task": (None, "scar"),
        },  # a text part, no filename
        timeout=30,
    )
    assert multipart.status_code == 400 and multipart.json()["error"] == "file_not_uploaded"
    urlencoded = httpx.post(service.url + "/predict", data={"file": "http://127.0.0.1:9/ecg.png"}, timeout=30)
    assert urlencoded.status_code == 415 and urlencoded.json()["error"] == "not_multipart"


def test_oversized_body_is_refused_before_it_is_read(service):
    big = b"\x89PNG\r\n\x1a\n" + bytes(30 * 1024 * 1024)
    response = post(service.url, "/predict", big)
    assert response.status_code == 413 and response.json()["error"] == "too_large"


def test_triton_down_gives_503_with_retry_after_and_the_gateway_recovers(tmp_path):
    ports = TritonPorts(*free_ports(3))
    triton = EmbeddedTriton(ports=ports, log_file=tmp_path / "triton.log").start()
    gateway = Gateway(free_ports(1)[0], triton.grpc_url, workers=2, log_file=tmp_path / "gateway.log").start()
    try:
        data = good_ecg("png")
        assert post(gateway.url, "/predict", data).status_code == 200
        triton.stop()
        start = time.monotonic()
        response = post(gateway.url, "/predict", data)
        assert response.status_code == 503 and response.json()["error"] == "upstream_unavailable"
        assert int(response.headers["retry-after"]) > 0
        assert time.monotonic() - start < 30  # within the request timeout
        wait_until(lambda: httpx.get(gateway.url + "/readyz").status_code == 503, 10, what="not ready")
        triton.start()  # same ports; the gateway process is not restarted
        wait_until(lambda: httpx.get(gateway.url + "/readyz").status_code == 200, 30, what="ready again")
        assert post(gateway.url, "/predict", data).status_code == 200
    finally:
        gateway.stop()
        triton.stop()


def test_patient_identifiers_never_reach_the_logs(service, triton):
    record = make_record(4, 6)
    header = replace(record.header, name=f"{CANARY}, JANE", patient_id=f"{CANARY}77")
    pdf = encode_record(replace(record, file_format="pdf", header=header))
    dicom_patient = replace(record.dicom_patient, name=f"{CANARY}^DICOM", patient_id=f"{CANARY}88")
    dicom = encode_record(
        replace(record, file_format="dcm-sc", dicom_patient=dicom_patient, artefacts=ScanArtefacts())
    )
    waveform = encode_record(replace(record, file_format="dcm-waveform", dicom_patient=dicom_patient))
    assert CANARY in pdfium.PdfDocument(pdf)[0].get_textpage().get_text_range()  # printed in the header
    for data in (dicom, waveform):
        assert CANARY.encode() in data  # PatientName / PatientID
    for data in (pdf, dicom, waveform):
        assert post(service.url, "/predict", data).status_code == 200
        assert post(service.url, "/explain", data).status_code == 200
    assert post(service.url, "/predict", pdf[: len(pdf) // 2]).status_code == 400  # refused, still no leak
    assert post(service.url, "/predict", dicom[: len(dicom) // 3]).status_code == 400
    time.sleep(1)
    gateway_log = service.log_file.read_text()
    assert "request_id=" in gateway_log  # the log is being written
    assert CANARY not in gateway_log
    assert CANARY not in Path(triton.log_file).read_text()


@pytest.mark.parametrize(
    "name,content,content_type,reason",
    [
        ("1001 fields", b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
                                 for i in range(1001)) + b"--b--\r\n", "multipart/form-data; boundary=b", "bad_multipart"),
        # (10 kB, not more: a header over 16 kB is the HTTP server's own to refuse, h11's limit on
        # what it buffers, and whether it does depends on how the bytes arrive: a flaky test)
        ("10 kB boundary", b"--" + b"B" * 10_000 + b'\r\nContent-Disposition: form-data; name="file"; filename="a"'
         b"\r\n\r\nx\r\n--" + b"B" * 10_000 + b"--\r\n", "multipart/form-data; boundary=" + "B" * 10_000, "bad_multipart"),
        ("no boundary", b"--x\r\n", "multipart/form-data", "bad_multipart"),
        ("no file field", b'--b\r\nContent-Disposition: form-data; name="clinical"\r\n\r\n{}\r\n--b--\r\n',
         "multipart/form-data; boundary=b", "file_missing"),
    ],
)  # fmt: skip
def test_a_form_the_framework_chokes_on_is_a_400_in_the_error_shape(
    service, name, content, content_type, reason
):
    response = httpx.post(
        service.url + "/predict", content=content, headers={"content-type": content_type}, timeout=30
    )
    assert response.status_code == 400, (name, response.text)
    body = response.json()
    assert body["error"] == reason and body["status"] == 400 and body["detail"], (name, body)
    assert body["request_id"] == response.headers["x-request-id"]


def test_routes_and_methods_the_framework_refuses_answer_in_the_error_shape(service):
    missing = httpx.post(service.url + "/predicts", files={"file": ("a", good_ecg("png"))}, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    method = httpx.get(service.url + "/predict", timeout=30)
    assert method.status_code == 405 and method.json()["error"] == "method_not_allowed"


def test_readiness_comes_from_the_canary_and_is_counted(service):
    assert httpx.get(service.url + "/readyz").status_code == 200
    counts = _samples(service.url, "ecgscreen_canary_total")
    assert counts[(("outcome", "ok"),)] >= 1 and counts[(("outcome", "wrong_answer"),)] == 0


def test_a_wrong_canary_answer_makes_the_gateway_not_ready_though_it_serves(triton, tmp_path):
    """A model card whose canary expects another answer than Triton gives (a different model
    or intake behind the gateway): never ready, and it says why."""
    from ecgscreen.card import ModelCard

    folder = shutil.copytree(
        Path(__file__).parents[2] / "model_repository" / "ecg_multitask", tmp_path / "model"
    )
    card = ModelCard.load(folder)
    card.canary.expected = {t: abs(p - 0.5) for t, p in card.canary.expected.items()}
    if card.canary.expected_int8 is not None:  # the answer of the variant the CPU config runs
        card.canary.expected_int8 = {t: abs(p - 0.5) for t, p in card.canary.expected_int8.items()}
    card.save(folder)
    env = {"ECGSCREEN_MODEL_DIR": str(folder), "ECGSCREEN_CANARY_INTERVAL_S": "1"}
    gateway = Gateway(
        free_ports(1)[0], triton.grpc_url, workers=1, log_file=tmp_path / "gateway.log", env=env
    )
    gateway.launch()
    try:
        wait_until(lambda: _up(gateway.url), 60, what="the gateway answering")
        wait_until(lambda: _probed(gateway.url) and "wrong_answer" in gateway.log_file.read_text(), 30,
                   what="a canary round (a probe starts one)")  # fmt: skip
        for _ in range(3):
            assert httpx.get(gateway.url + "/readyz").status_code == 503
            time.sleep(0.5)
        assert post(gateway.url, "/predict", good_ecg("png")).status_code == 200
        assert "readiness canary wrong_answer: scar probability" in gateway.log_file.read_text()
        assert _samples(gateway.url, "ecgscreen_canary_total")[(("outcome", "wrong_answer"),)] >= 1
    finally:
        gateway.stop()


def test_a_dead_segmenter_stub_makes_the_gateway_not_ready(tmp_path):
    """The waveform canary never reaches ``ecg_segment`` (raster pages do, by BLS), and Triton
    2.51 keeps calling a model with a dead stub ready: each readiness round also asks the
    segmenter for a blank page, so the gateway stops taking traffic it would fail."""
    from bench.serve import label
    from ecgscreen.contract import SEGMENTER_NAME

    http, grpc, metrics = free_ports(3)
    own = EmbeddedTriton(ports=TritonPorts(http, grpc, metrics), log_file=tmp_path / "tritonserver.log")
    own.start()
    env = {"ECGSCREEN_CANARY_INTERVAL_S": "1"}
    gateway = Gateway(free_ports(1)[0], own.grpc_url, workers=1, log_file=tmp_path / "gateway.log", env=env)
    gateway.launch()
    try:
        wait_until(lambda: _up(gateway.url) and _probed(gateway.url), 60, what="the gateway answering")
        wait_until(lambda: httpx.get(gateway.url + "/readyz").status_code == 200, 30, what="ready")
        stubs = [pid for pid in own.stub_pids() if label(pid).startswith(f"stub {SEGMENTER_NAME}")]
        assert len(stubs) == 2
        for pid in stubs:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: httpx.get(gateway.url + "/readyz").status_code == 503, 30, what="not ready")
        assert re.search(rf"readiness canary \w+: {SEGMENTER_NAME}", gateway.log_file.read_text())
        assert (
            post(gateway.url, "/predict", good_ecg("dcm-waveform", index=4)).status_code == 200
        )  # its path lives
    finally:
        gateway.stop()
        own.stop()


def test_readiness_compares_with_the_answer_of_the_variant_triton_runs(triton, tmp_path):
    """The CPU config runs the card's INT8 variant: a card whose FP32 answer is wrong but whose
    INT8 answer is right leaves the gateway ready; with ECGSCREEN_CPU_PRECISION=fp32 in the
    gateway's environment (as it must be in Triton's), the same card's wrong FP32 answer counts."""
    from ecgscreen.card import ModelCard
    from ecgscreen.contract import CPU_PRECISION_ENV

    folder = shutil.copytree(
        Path(__file__).parents[2] / "model_repository" / "ecg_multitask", tmp_path / "model"
    )
    card = ModelCard.load(folder)
    assert card.int8.passed and card.canary.expected_int8 is not None  # the committed INT8 variant
    card.canary.expected = {t: abs(p - 0.5) for t, p in card.canary.expected.items()}
    card.save(folder)
    base = {"ECGSCREEN_MODEL_DIR": str(folder), "ECGSCREEN_CANARY_INTERVAL_S": "1"}
    for setting, ready in (("auto", 200), ("fp32", 503)):
        log = tmp_path / f"gateway-{setting}.log"
        env = {**base, CPU_PRECISION_ENV: setting}
        gateway = Gateway(free_ports(1)[0], triton.grpc_url, workers=1, log_file=log, env=env)
        gateway.launch()
        try:
            wait_until(lambda g=gateway: _up(g.url), 60, what="the gateway answering")
            outcome = "readiness canary ok" if ready == 200 else "readiness canary wrong_answer"
            wait_until(lambda g=gateway, o=outcome, f=log: _probed(g.url) and o in f.read_text(), 30,
                       what="a canary round (a probe starts one)")  # fmt: skip
            assert httpx.get(gateway.url + "/readyz").status_code == ready
            about = httpx.get(gateway.url + "/ui/about.json").json()
            assert about["model"]["cpu_precision"] == ("int8" if setting == "auto" else "fp32")
        finally:
            gateway.stop()
    assert "(FP32)" in (tmp_path / "gateway-fp32.log").read_text()


def _probed(url: str) -> bool:
    return httpx.get(url + "/readyz", timeout=5).status_code in (200, 503)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/livez", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_explain_reading_draws_what_was_read_even_for_a_refused_page(service, triton):
    from ecgscreen.synth.not_ecg import not_ecg_corpus

    corpus = {name: data for name, data, _ in not_ecg_corpus()}
    before = segmented_pages(triton.grpc_url)
    answered = post(service.url, "/explain", good_ecg("png"), format="reading")
    assert answered.status_code == 200 and answered.headers["content-type"] == "image/png"
    assert segmented_pages(triton.grpc_url) == before + 1  # the page was segmented by Triton's ecg_segment
    assert "x-ecgscreen-refusal" not in answered.headers
    with Image.open(io.BytesIO(answered.content)) as picture:
        assert picture.width >= 600
    refused = post(service.url, "/explain", corpus["four-leads-scrambled"], format="reading")
    assert refused.status_code == 200 and refused.headers["x-ecgscreen-refusal"] == "unreadable"
    nothing_read = post(service.url, "/explain", corpus["text-page"], format="reading")
    assert nothing_read.status_code == 422 and nothing_read.json()["error"] == "not_an_ecg"


def test_predict_reports_each_leads_reading_and_the_inputs_novelty(service):
    body = post(service.url, "/predict", good_ecg("pdf")).json()
    leads = body["preprocessing"]["leads"]
    assert len(leads) == 12 and all(v["status"] in ("read", "doubtful", "missing") for v in leads.values())
    assert 25 <= body["preprocessing"]["heart_rate_bpm"] <= 250
    novelty = body["novelty"]
    assert novelty is not None, "the committed model card holds the training embeddings' distribution"
    assert novelty["distance"] > 0 and novelty["unusual"] == (novelty["distance"] > novelty["threshold"])
