"""The readiness canary asked of the real embedded tritonserver over HTTP (KServe v2), as the
``serve`` supervisor and Kubernetes' liveness probe ask it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from servers import free_ports

from ecgscreen.card import ModelCard
from ecgscreen.contract import MODEL_NAME
from ecgscreen.serving.canary import TritonCanary, main
from ecgscreen.serving.triton import DEFAULT_REPOSITORY

pytestmark = pytest.mark.integration

MODEL_DIR = DEFAULT_REPOSITORY / MODEL_NAME


def test_the_served_model_answers_its_canary(triton):
    canary = TritonCanary.from_model_dir(triton.http_url, MODEL_DIR)
    result = canary.check(repeat=3)
    assert result.ok and result.kind == "ok" and result.problem == ""
    expected = ModelCard.load(MODEL_DIR).canary.expected
    assert result.probabilities == pytest.approx(expected, abs=1e-4)  # the same ONNX, on CPU


def test_a_wrong_answer_an_error_and_no_server_are_told_apart(triton):
    card = ModelCard.load(MODEL_DIR)
    data = card.canary.read(MODEL_DIR)
    shifted = card.canary.model_copy(
        update={"expected": {t: abs(p - 0.5) for t, p in card.canary.expected.items()}}
    )
    wrong = TritonCanary(triton.http_url, shifted, data).check()
    assert wrong.kind == "wrong_answer" and "expected" in wrong.problem and wrong.probabilities
    refused = TritonCanary(triton.http_url, card.canary, b"not an ECG at all").check()
    assert refused.kind == "error" and "HTTP 400" in refused.problem
    (port,) = free_ports(1)
    nobody = TritonCanary(f"http://127.0.0.1:{port}", card.canary, data).check()
    assert nobody.kind == "unavailable" and not nobody.ok


def test_the_probe_command_exits_0_only_for_the_right_answer(triton, tmp_path, capsys):
    """``python -m ecgscreen.serving.canary``: what Triton's liveness probe runs on Kubernetes."""
    done = subprocess.run(
        [sys.executable, "-m", "ecgscreen.serving.canary", "--url", triton.http_url, "--model-dir", str(MODEL_DIR)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("canary ok"), done.stdout + done.stderr
    folder = shutil.copytree(MODEL_DIR, tmp_path / MODEL_NAME)
    card = json.loads((folder / "model_card.json").read_text())
    card["canary"]["expected"] = {t: abs(p - 0.5) for t, p in card["canary"]["expected"].items()}
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
