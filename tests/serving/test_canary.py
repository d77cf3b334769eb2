"""The readiness canary asked of the real embedded tritonserver over HTTP (KServe v2), as the
``serve`` supervisor and Kubernetes' liveness probe ask it: against the expected answer of the
network variant Triton runs (INT8 on the CPU by default, FP32 when ECGSCREEN_CPU_PRECISION=fp32)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from servers import free_ports

from bench.serve import label
from ecgscreen.card import ModelCard
from ecgscreen.contract import CPU_PRECISION_ENV, MODEL_NAME, SEGMENTER_NAME
from ecgscreen.serving.canary import TritonCanary, main
from ecgscreen.serving.precision import cpu_network
from ecgscreen.serving.triton import DEFAULT_REPOSITORY, EmbeddedTriton, TritonPorts

pytestmark = pytest.mark.integration

MODEL_DIR = DEFAULT_REPOSITORY / MODEL_NAME


def _shifted(answer: dict[str, float] | None) -> dict[str, float] | None:
    return None if answer is None else {t: abs(p - 0.5) for t, p in answer.items()}


def test_the_served_model_answers_its_canary(triton):
    canary = TritonCanary.from_model_dir(triton.http_url, MODEL_DIR)
    result = canary.check(repeat=3)
    assert result.ok and result.kind == "ok" and result.problem == ""
    card = ModelCard.load(MODEL_DIR)
    # the CPU config runs the card's INT8 variant when it passed (the default), else FP32
    assert result.precision == cpu_network(card).precision
    expected = card.canary.expected_for(result.precision)
    assert result.probabilities == pytest.approx(expected, abs=1e-4)  # the same ONNX, on CPU


def test_a_wrong_answer_an_error_and_no_server_are_told_apart(triton):
    card = ModelCard.load(MODEL_DIR)
    data = card.canary.read(MODEL_DIR)
    shifted = card.canary.model_copy(
        update={
            "expected": _shifted(card.canary.expected),
            "expected_int8": _shifted(card.canary.expected_int8),
        }
    )
    wrong = TritonCanary(triton.http_url, shifted, data, card=card).check()
    assert wrong.kind == "wrong_answer" and "expected" in wrong.problem and wrong.probabilities
    refused = TritonCanary(triton.http_url, card.canary, b"not an ECG at all", card=card).check()
    assert refused.kind == "error" and "HTTP 400" in refused.problem
    (port,) = free_ports(1)
    nobody = TritonCanary(f"http://127.0.0.1:{port}", card.canary, data, card=card).check()
    assert nobody.kind == "unavailable" and not nobody.ok
    with pytest.raises(ValueError, match="fp16"):
        TritonCanary(triton.http_url, card.canary, data, precision="fp16")


@pytest.fixture
def fp32_triton(tmp_path, monkeypatch):
    """A second embedded tritonserver told ECGSCREEN_CPU_PRECISION=fp32 (as is this process)."""
    monkeypatch.setenv(CPU_PRECISION_ENV, "fp32")
    http, grpc, metrics = free_ports(3)
    server = EmbeddedTriton(ports=TritonPorts(http, grpc, metrics), log_file=tmp_path / "tritonserver.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_triton(tmp_path):
    """An embedded tritonserver of this test's own, to break."""
    http, grpc, metrics = free_ports(3)
    server = EmbeddedTriton(ports=TritonPorts(http, grpc, metrics), log_file=tmp_path / "tritonserver.log")
    server.start()
    yield server
    server.stop()


def test_a_dead_segmenter_stub_fails_the_canary(own_triton):
    """Raster pages reach ``ecg_segment`` by BLS; the waveform canary never does. Triton 2.51
    restarts no stub and keeps calling the model ready, so without this a pod whose segmenter
    stub died would stay live while every picture failed."""
    canary = TritonCanary.from_model_dir(own_triton.http_url, MODEL_DIR)
    assert canary.segmenter  # the bundled repository holds ecg_segment
    assert canary.check(repeat=2).ok
    stubs = [pid for pid in own_triton.stub_pids() if label(pid).startswith(f"stub {SEGMENTER_NAME}")]
    assert len(stubs) == 2  # one per instance of the CPU config
    for pid in stubs:
        os.kill(pid, signal.SIGKILL)
    result = canary.check(repeat=2)
    assert not result.ok and result.kind in ("error", "unavailable", "timeout")
    assert SEGMENTER_NAME in result.problem, result.problem
    blind = TritonCanary.from_model_dir(own_triton.http_url, MODEL_DIR)
    blind.segmenter = False  # the ensemble's own path still answers: only the segmenter is dead
    assert blind.check().ok


def test_each_variant_answers_the_canary_against_its_own_expected_answer(triton, fp32_triton, capsys):
    """The session's Triton runs the INT8 variant (the default), ``fp32_triton`` model.onnx:
    each answers its own expected answer, and each canary compares with that one only: a card
    whose other variant's answer is wrong passes, one whose served variant's is wrong fails."""
    card = ModelCard.load(MODEL_DIR)
    assert card.int8.passed and card.canary.expected_int8 is not None  # the committed variant
    data = card.canary.read(MODEL_DIR)
    int8 = TritonCanary(triton.http_url, card.canary, data, precision="int8").check()
    fp32 = TritonCanary.from_model_dir(fp32_triton.http_url, MODEL_DIR).check()  # auto: asks Triton
    assert int8.ok and fp32.ok and fp32.precision == "fp32"
    assert int8.probabilities == pytest.approx(card.canary.expected_int8, abs=1e-4)
    assert fp32.probabilities == pytest.approx(card.canary.expected, abs=1e-4)
    moved = max(abs(int8.probabilities[t] - fp32.probabilities[t]) for t in card.canary.expected)
    assert moved == pytest.approx(card.int8.canary_diff, abs=1e-4)  # two networks, not one
    wrong_int8 = card.canary.model_copy(update={"expected_int8": _shifted(card.canary.expected_int8)})
    assert TritonCanary(fp32_triton.http_url, wrong_int8, data, card=card).check().ok
    (problem,) = {TritonCanary(triton.http_url, wrong_int8, data, precision="int8").check().kind}
    assert problem == "wrong_answer"
    wrong_fp32 = card.canary.model_copy(update={"expected": _shifted(card.canary.expected)})
    assert TritonCanary(fp32_triton.http_url, wrong_fp32, data, card=card).check().kind == "wrong_answer"
    assert TritonCanary(triton.http_url, wrong_fp32, data, precision="int8").check().ok
    # the probe: this process says fp32 too, and the CPU config it asks about runs FP32
    assert main(["--url", fp32_triton.http_url, "--model-dir", str(MODEL_DIR)]) == 0
    assert capsys.readouterr().out.startswith("canary ok (FP32)")
    assert main(["--url", triton.http_url, "--model-dir", str(MODEL_DIR), "--precision", "int8"]) == 0
    assert capsys.readouterr().out.startswith("canary ok (INT8)")


def test_the_probe_command_exits_0_only_for_the_right_answer(triton, tmp_path, capsys):
    """``python -m ecgscreen.serving.canary``: what Triton's liveness probe runs on Kubernetes."""
    done = subprocess.run(
        [sys.executable, "-m", "ecgscreen.serving.canary", "--url", triton.http_url, "--model-dir", str(MODEL_DIR)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("canary ok"), done.stdout + done.stderr
    folder = shutil.copytree(MODEL_DIR, tmp_path / MODEL_NAME)
    card = json.loads((folder / "model_card.json").read_text())
    card["canary"]["expected"] = _shifted(card["canary"]["expected"])
    card["canary"]["expected_int8"] = _shifted(card["canary"].get("expected_int8"))
    (folder / "model_card.json").write_text(json.dumps(card))
    assert main(["--url", triton.http_url, "--model-dir", str(folder)]) == 1
    assert "canary wrong_answer" in capsys.readouterr().out
    del card["canary"]  # a card from before canaries: Triton's own readiness stands in
    (folder / "model_card.json").write_text(json.dumps(card))
    assert main(["--url", triton.http_url, "--model-dir", str(folder)]) == 0
    assert "has none" in capsys.readouterr().out
    (folder / "canary.dcm").unlink()
    card["canary"] = ModelCard.load(MODEL_DIR).canary.model_dump()
    (folder / "model_card.json").write_text(json.dumps(card))
    assert main(["--url", triton.http_url, "--model-dir", str(folder)]) == 1
    assert "cannot be read" in capsys.readouterr().out
