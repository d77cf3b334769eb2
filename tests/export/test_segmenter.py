"""The segmenter's export: the ONNX contract (names, dtypes, dynamic sizes), parity with torch,
the card, the committed Triton configs and the python backend's batching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from ecgscreen.contract import SEGMENTER_CLASSES, SEGMENTER_NAME
from ecgscreen.export.segmenter import SegmenterGraph, export_segmenter, onnx_predictor, tensor_specs
from ecgscreen.nets.segmenter import build_segmenter
from ecgscreen.segmenter_card import SegmenterCard, segmenter_config_problems
from ecgscreen.serving.onnx_backend import OutputSessions, parameter, pruned_model, run_batched
from ecgscreen.training.segmenter import CHECKPOINT_FORMAT, load_segmenter_config

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
COMMITTED = REPOSITORY / SEGMENTER_NAME


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weights tiny segmenter saved as a run and exported beside the committed configs."""
    torch.manual_seed(0)
    model = build_segmenter("tiny")
    with torch.no_grad():  # non-trivial batch-norm statistics: export must fold them, not recompute
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model.eval()
    root = tmp_path_factory.mktemp("segment")
    run = root / "run"
    run.mkdir()
    config = load_segmenter_config("segmenter", variant="tiny")
    from dataclasses import asdict

    torch.save({"format": CHECKPOINT_FORMAT, "model": {"config": model.config, "state_dict": model.state_dict()},
                "train_config": asdict(config), "step": 3, "history": [], "seconds": 1.0, "finished": True}, run / "last.pt")  # fmt: skip
    repository = root / "repo"
    shutil.copytree(COMMITTED, repository / SEGMENTER_NAME,
                    ignore=shutil.ignore_patterns("model.onnx", "model_card.json", "__pycache__"))  # fmt: skip
    card = export_segmenter(run, repository)
    return model, repository / SEGMENTER_NAME, card


def test_onnx_contract(exported):
    _, folder, _ = exported
    proto = onnx.load(str(folder / "1" / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert [(i.name, dims(i)) for i in proto.graph.input] == [("page", ["batch", "height", "width", 3])]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [(o.name, dims(o)) for o in proto.graph.output] == [
        ("classes", ["batch", "height", "width"]),
        ("probabilities", ["batch", len(SEGMENTER_CLASSES), "height", "width"]),
    ]
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.UINT8 for o in proto.graph.output)


@pytest.mark.parametrize("size", [(64, 96), (53, 71)])
def test_onnx_answers_as_torch_at_any_size(exported, size):
    import onnxruntime as ort

    model, folder, card = exported
    pages = np.random.default_rng(1).integers(0, 256, size=(2, *size, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    classes, probabilities = session.run(None, {"page": pages})
    with torch.no_grad():
        want_classes, want_probabilities = SegmenterGraph(model)(torch.from_numpy(pages))
    assert np.abs(probabilities.astype(int) - want_probabilities.numpy().astype(int)).max() <= 1
    assert (classes == want_classes.numpy()).mean() > 0.999  # ties may round apart
    assert card.onnx.max_abs_diff_vs_torch <= 1 / 255 + 1e-9
    assert np.array_equal(onnx_predictor(folder / "1" / "model.onnx")(pages[0]), classes[0])


def test_card_validates_round_trips_and_refuses_a_wrong_class_list(exported, tmp_path):
    _, folder, card = exported
    loaded = SegmenterCard.load(folder)
    assert loaded == card and loaded.intended_use.startswith("Research use only")
    assert loaded.classes == list(SEGMENTER_CLASSES) and loaded.input.px_per_mm == 4.0
    data = json.loads((folder / "model_card.json").read_text())
    data["classes"] = data["classes"][::-1]
    (tmp_path / "model_card.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="classes"):
        SegmenterCard.load(tmp_path)


def test_committed_triton_configs_match_the_contract():
    assert segmenter_config_problems(COMMITTED, *tensor_specs()) == []


def test_export_refuses_configs_that_disagree(exported, tmp_path):
    _, folder, _ = exported
    repository = tmp_path / "repo"
    shutil.copytree(folder, repository / SEGMENTER_NAME)
    config = repository / SEGMENTER_NAME / "configs" / "cpu.pbtxt"
    config.write_text(config.read_text().replace("dims: [ 7, -1, -1 ]", "dims: [ 6, -1, -1 ]"))
    with pytest.raises(ValueError, match="configs/cpu.pbtxt"):
        export_segmenter(folder.parent.parent / "run", repository)


def test_committed_model_and_card():
    if not (COMMITTED / "model_card.json").exists():
        pytest.fail("model_repository/ecg_segment has no model card: run make segmenter-model")
    card = SegmenterCard.load(COMMITTED)
    onnx_file = COMMITTED / card.onnx.file
    assert onnx_file.stat().st_size == card.onnx.bytes <= 10 * 2**20
    assert card.metrics is not None and set(card.metrics.trace_iou_by_acquisition) == {
        "clean",
        "scan",
        "photo",
    }
    assert card.speed is not None and card.recipe is not None


class FakeSession:
    def __init__(self):
        self.calls = []

    def run(self, names, feeds):
        (x,) = feeds.values()
        self.calls.append((tuple(names), x.shape))
        return [x.sum(axis=-1) if name == "classes" else x[..., 0] for name in names]


def test_run_batched_groups_equal_shapes_and_returns_what_each_request_asked():
    session = FakeSession()
    a, b, c = (np.ones((1, 4, 5, 3)), np.ones((2, 4, 5, 3)), np.ones((1, 6, 5, 3)))
    results = run_batched(session, "page", [a, b, c], [{"classes"}, set(), {"probabilities"}],
                          ["classes", "probabilities"])  # fmt: skip
    assert sorted(session.calls) == [
        (("classes", "probabilities"), (3, 4, 5, 3)),
        (("probabilities",), (1, 6, 5, 3)),
    ]
    assert set(results[0]) == {"classes"} and results[0]["classes"].shape == (1, 4, 5)
    assert set(results[1]) == {"classes", "probabilities"} and results[1]["classes"].shape == (2, 4, 5)
    assert set(results[2]) == {"probabilities"}
    assert parameter({"parameters": {"k": {"string_value": "1"}}}, "k", "0") == "1"
    assert parameter({}, "k", "0") == "0"


def test_a_session_per_output_set_answers_as_the_whole_graph(exported):
    import onnxruntime as ort

    _, folder, _ = exported
    path = str(folder / "1" / "model.onnx")
    pruned = onnx.load_from_string(pruned_model(path, ["classes"]))
    assert [o.name for o in pruned.graph.output] == ["classes"]
    assert len(pruned.graph.node) < len(onnx.load(path).graph.node)
    sessions = OutputSessions(path, {}, ["classes", "probabilities"])
    assert len(sessions.sessions) == 3
    page = np.random.default_rng(2).integers(0, 256, size=(1, 40, 50, 3), dtype=np.uint8)
    whole = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"page": page})
    (classes,) = sessions.run(["classes"], {"page": page})
    probabilities, classes_too = sessions.run(["probabilities", "classes"], {"page": page})
    assert np.array_equal(classes, whole[0]) and np.array_equal(classes_too, whole[0])
    assert np.array_equal(probabilities, whole[1])
    with pytest.raises(ValueError, match="no outputs"):
        pruned_model(path, ["logits"])
