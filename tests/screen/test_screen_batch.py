"""One file never stops ``screen`` (issue 21): a file intake fails on, through the real
``ecg_preprocess`` model code and the real ``ScreenClient``, gets an ``error`` row with reason
``internal``; so does a file on which anything else in the run fails; the others are screened.

Triton itself is stood in for by its python-backend model run in this process (a stub of
``triton_python_backend_utils``, the scores of the network fixed): the fault must be injected
into intake (a monkeypatched ``read_page``), which a real Triton's own process would not see.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from corpus import good_ecg
from pydicom.data import get_testdata_file
from tritonclient.utils import InferenceServerException, deserialize_bytes_tensor

from ecgscreen.card import ModelCard
from ecgscreen.contract import (
    ENSEMBLE_CAM,
    ENSEMBLE_CANONICAL,
    ENSEMBLE_INFO,
    ENSEMBLE_INPUT,
    ENSEMBLE_PROBABILITY,
    MODEL_NAME,
    SEGMENTER_NAME,
)
from ecgscreen.imaging import pipeline
from ecgscreen.imaging.segment import OnnxSegmenter
from ecgscreen.screen import runner
from ecgscreen.screen.client import ScreenClient
from ecgscreen.screen.sources import find_sources
from ecgscreen.serving.triton import DEFAULT_REPOSITORY

CARD = ModelCard.load(DEFAULT_REPOSITORY / MODEL_NAME)
MODEL_PY = DEFAULT_REPOSITORY / "ecg_preprocess" / "1" / "model.py"
PROBABILITY = 0.25


def _pb_utils() -> types.ModuleType:
    """The little of ``triton_python_backend_utils`` that ``ecg_preprocess`` uses."""
    pb = types.ModuleType("triton_python_backend_utils")

    class TritonError:
        INVALID_ARG, INTERNAL = "StatusCode.INVALID_ARGUMENT", "StatusCode.INTERNAL"

        def __init__(self, message: str, code: str = INTERNAL) -> None:
            self._message, self.code = message, code

        def message(self) -> str:
            return self._message

    class Tensor:
        def __init__(self, name: str, array: np.ndarray) -> None:
            self.name, self.array = name, array

        def as_numpy(self) -> np.ndarray:
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None) -> None:
            self.outputs = {t.name: t.array for t in output_tensors}
            self.error = error

    class InferenceRequest:  # BLS: ecg_segment, answered by the same ONNX in this process
        def __init__(self, model_name, inputs, requested_output_names) -> None:
            assert model_name == SEGMENTER_NAME
            self.page, self.names = inputs[0].array, requested_output_names

        def exec(self):
            classes = OnnxSegmenter()(self.page[0])[None]
            return InferenceResponse([Tensor(name, classes) for name in self.names])

    InferenceResponse.has_error = lambda self: self.error is not None
    pb.TritonError, pb.Tensor, pb.InferenceResponse = TritonError, Tensor, InferenceResponse
    pb.InferenceRequest = InferenceRequest
    pb.Logger = types.SimpleNamespace(log_error=lambda message: None)
    pb.get_input_tensor_by_name = lambda request, name: request.inputs[name]
    pb.get_output_tensor_by_name = lambda response, name: Tensor(name, response.outputs[name])
    pb.get_output_config_by_name = lambda config, name: {"dims": [1, 384, 384]}
    return pb


@pytest.fixture
def preprocess_model(monkeypatch):
    """``model_repository/ecg_preprocess/1/model.py``, initialised, in this process."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _pb_utils())
    spec = importlib.util.spec_from_file_location("ecg_preprocess_model", MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps({})})
    return model


class _Triton:
    """A gRPC client of the ensemble: intake by ``ecg_preprocess``'s own code, then the
    network's answer fixed at ``PROBABILITY``; errors as Triton sends them."""

    def __init__(self, model) -> None:
        self.model = model

    async def infer(self, name, inputs, outputs=None, client_timeout=None):
        files = np.array(deserialize_bytes_tensor(inputs[0]._get_content()), dtype=np.object_)
        request = types.SimpleNamespace(
            inputs={ENSEMBLE_INPUT: types.SimpleNamespace(as_numpy=lambda: files)},
            requested_output_names=lambda: [ENSEMBLE_CANONICAL],
        )
        (response,) = self.model.execute([request])
        if response.error is not None:
            raise InferenceServerException(response.error.message(), status=response.error.code)
        arrays = dict(response.outputs)
        for output in ENSEMBLE_PROBABILITY.values():
            arrays[output] = np.array([[PROBABILITY]], dtype=np.float32)
        arrays[ENSEMBLE_CAM] = np.zeros((1, len(ENSEMBLE_PROBABILITY), 12, 12), dtype=np.float32)
        return types.SimpleNamespace(as_numpy=arrays.__getitem__)

    async def is_model_ready(self, name, client_timeout=None):
        return True

    async def get_model_metadata(self, name, as_json=False):
        return {
            "outputs": [{"name": name} for name in ENSEMBLE_PROBABILITY.values()] + [{"name": ENSEMBLE_INFO}]
        }

    async def close(self):
        pass


def test_a_file_intake_fails_on_gets_an_internal_row_and_the_run_goes_on(
    preprocess_model, tmp_path, monkeypatch
):
    archive = tmp_path / "archive"
    archive.mkdir()
    files = {
        "a-rest.dcm": Path(get_testdata_file("waveform_ecg.dcm")).read_bytes(),
        "b-creased.png": good_ecg("png", index=1),  # intake raises on it
        "c-scan.png": good_ecg("png"),  # the run fails on it after Triton answered
        "d-rest.dcm": Path(get_testdata_file("waveform_ecg.dcm")).read_bytes() + b"\0\0",
    }
    for name, data in files.items():
        (archive / name).write_bytes(data)
    read_page = pipeline.read_page

    def failing_read_page(data, *args, **kwargs):
        if data == files["b-creased.png"]:
            raise RuntimeError("a bug in intake")
        return read_page(data, *args, **kwargs)

    def failing_dicom(folder, key, *args):
        if key == "c-scan.png":
            raise KeyError("a bug in the DICOM results")
        (folder / f"{key}.sr.dcm").write_bytes(b"written")

    monkeypatch.setattr(pipeline, "read_page", failing_read_page)
    monkeypatch.setattr(runner, "write_dicom", failing_dicom)

    class Client(ScreenClient):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.clients = [_Triton(preprocess_model)] * len(self.clients)
            self.client = self.clients[0]

    monkeypatch.setattr(runner, "ScreenClient", Client)
    out, dicom = tmp_path / "results.csv", tmp_path / "dicom"
    dicom.mkdir()
    summary = runner.screen(find_sources(archive), out, CARD, "triton:8001", concurrency=1, dicom_dir=dicom)

    with out.open(newline="") as f:
        table = {row["path"]: row for row in csv.DictReader(f)}
    assert set(table) == set(files)  # every file has its row: none stopped the run
    for key in ("b-creased.png", "c-scan.png"):
        row = table[key]
        assert (row["outcome"], row["status"], row["reason"]) == ("error", "500", "internal"), row
        assert "a bug in" not in row["detail"]  # the message of a bug is not passed on
    assert "unexpectedly" in table["b-creased.png"]["detail"]  # the model's own words
    assert "KeyError" in table["c-scan.png"]["detail"]
    for key in ("a-rest.dcm", "d-rest.dcm"):  # before and after the failures
        row = table[key]
        assert row["outcome"] == "ok" and float(row["scar_probability"]) == PROBABILITY
        assert row["layout"] == "waveform" and (dicom / f"{key}.sr.dcm").exists()
    assert summary.outcomes == {"ok": 2, "error": 2} and summary.refusals == {"internal": 2}
    assert not summary.unanswered
