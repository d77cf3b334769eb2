"""The gateway builds as a Bento offline, with only the gateway's files, and imports from it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_bento_builds_offline_with_only_the_gateway(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = str(Path(sys.executable).parent / "bentoml")
    build = subprocess.run(
        [bentoml, "build", "--output", "tag"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (src,) = (tmp_path / "home" / "bentos" / "ecgscreen-gateway").glob("*/src")
    files = {str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()}
    assert "service/service.py" in files and "model_repository/ecg_multitask/model_card.json" in files
    assert "model_repository/ecg_multitask/fusion.onnx" in files
    assert {"service/ui/index.html", "service/ui/app.js", "service/ui/i18n/th.json"} <= files  # the page
    assert not any(f.startswith(("tests/", "k8s/", "bench/", "runs/")) for f in files)
    assert not any(f.endswith("model.onnx") for f in files)  # the network lives in Triton
    assert "ecgscreen/pacs/results.py" in files  # /report's DICOM results ...
    assert "ecgscreen/pacs/router.py" not in files  # ... but not the router (its own image)
    assert (
        not {"ecgscreen/training/loop.py", "ecgscreen/synth/generate.py", "ecgscreen/nets/resnet.py"} & files
    )
    requirements = (src.parent / "env/python/requirements.txt").read_text()
    assert "torch" not in requirements and "onnxruntime" in requirements and "highdicom" in requirements
    # The service imports from the Bento alone (no torch, no training code).
    probe = (
        "import sys, service.service, ecgscreen; assert 'torch' not in sys.modules; print(ecgscreen.__file__)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=src, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().startswith(str(src))
