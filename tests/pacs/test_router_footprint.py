"""The router runs without the training and serving stack, with exactly what its image
(k8s/pacs-router/Dockerfile) installs, at the versions pyproject.toml pins."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "k8s" / "pacs-router" / "Dockerfile"
# Installed in the development environment, absent from the router's image.
NOT_IN_THE_IMAGE = ("torch", "onnxruntime", "onnx", "bentoml", "tritonclient", "pytriton", "scipy",
                    "pypdfium2", "matplotlib", "reportlab", "yaml")  # fmt: skip

_PROBE = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"{{name}} is not in the router's image")
sys.meta_path.insert(0, Absent())
import ecgscreen.pacs.router, ecgscreen.pacs.results
from ecgscreen.cli import app
app(["pacs", "--help"], standalone_mode=False)
"""


def test_the_router_imports_nothing_its_image_lacks():
    probe = _PROBE.format(blocked=set(NOT_IN_THE_IMAGE))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "run" in result.stdout and "status" in result.stdout


def test_the_image_pins_what_pyproject_pins():
    pins = dict(re.findall(r'"([A-Za-z0-9_.\-\[\]]+)==([^"]+)"', DOCKERFILE.read_text()))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = dict(dep.split("==", 1) for dep in project)
    assert pins, "no pinned package found in the Dockerfile"
    for package, version in pins.items():
        assert pinned.get(package) == version, (
            f"{package}=={version} in the image, {pinned.get(package)} in pyproject"
        )
