"""``ecgscreen import-mtecg``: a model folder written by the study's own code, served unchanged.

The study's code (package ``mtecg``, PyTorch Lightning; ``scripts/make_mtecg_fixtures.py``
builds one of each kind) leaves a folder with

* ``model.ckpt`` -- ``trainer.save_checkpoint``: ``{"state_dict", "hyper_parameters",
  "epoch", "global_step", "MixedPrecision" (16-mixed runs: the GradScaler), "callbacks",
  "optimizer_states", ...}``; or a bare ``state_dict()`` under that or another name
  (``*.ckpt``, ``*.pt``, ``*.pth``);
* ``configs.json`` -- ``save_configs``: the class's arguments (``backbone``, ``latent_dim``,
  ``bias_head``, for clinical models ``rnn_type``, ``embedding_size``, ``rnn_output_size``);
* ``transform.json`` -- albumentations' ``A.save`` of ``Resize`` + ``Normalize``;
* clinical models also ``imputer.joblib`` (an sklearn pickle, not read: see ``--clinical-defaults``).

Every class the study trains is recognised from the state dict's keys:

=====================  ===========================================================
``MultiTaskModel``     ``model.*`` (timm ResNet-D, ``fc`` -> 512 without bias),
                       ``scar_head``, ``lvef_head`` (bias if ``bias_head``)
``SingleTaskModel``    ``model.*``, ``head`` -- the task is in ``hyper_parameters``
                       (``task``) or given with ``--task``
``*ClinicalCNNModel``  ``model.*``, ``embedding_layer``, ``clinical_rnn_layer``, and
                       ``scar_head``/``lvef_head`` or ``classification_head`` over
                       ``[fc output, clinical summary]``
=====================  ===========================================================

Ignored on purpose: ``*loss_fn.weight`` (``nn.CrossEntropyLoss``'s class weights, a training
buffer) and, in a single-task clinical model, ``head.*`` (built by its parent class, never
used by its forward, so never trained). Backbone widths come from the tensors (the
configs name only the depth), BatchNorm's ``num_batches_tracked`` may be absent, a missing
``fc``/head bias is zero. Anything else that differs is an error naming at most ten keys.

A clinical model becomes ``model.onnx`` + ``fusion.onnx`` (``StudyClinicalFusion``): the
study's model has no image-only answer, so ``model.onnx`` answers with every clinical feature
at its default (the card's ``imputation_means``) and the gateway serves such a model's
answers only through the fusion head (see the README).
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..card import ModelCard
from ..contract import CANONICAL_SIZE, CLINICAL_FEATURES, IMAGENET_MEAN, IMAGENET_STD, MODEL_NAME, TASKS
from ..nets.multitask import MultiTaskNet
from ..nets.resnet import MODEL_ARGS, list_models
from ..nets.study_clinical import RNN_TYPES, StudyClinicalFusion
from ..training.checkpoint import RunModel
from .onnx_export import export_model
from .quantize import Int8Options
from .triton_configs import complete_repository

__all__ = [
    "read_study_checkpoint",
    "read_transform",
    "infer_resnet",
    "load_mtecg",
    "import_mtecg",
]

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
TRAINING_BUFFERS = ("scar_loss_fn.weight", "lvef_loss_fn.weight", "loss_fn.weight")
MAX_LISTED = 10


def _limited(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")


# -- files ---------------------------------------------------------------------------------------
def find_checkpoint(folder: Path) -> Path:
    """``model.ckpt`` (the study's name), else the folder's one ``*.ckpt``/``*.pt``/``*.pth``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give the folder the study's code saved its model in")
    if (folder / "model.ckpt").is_file():
        return folder / "model.ckpt"
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
    if len(found) == 1:
        return found[0]
    present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    if not found:
        raise ValueError(f"{folder} has no checkpoint: model.ckpt is missing (the folder holds {present})")
    raise ValueError(
        f"{folder} has no model.ckpt and several checkpoints ({', '.join(p.name for p in found)})"
    )


def read_study_checkpoint(path: Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, rest)``: ``rest`` is the Lightning checkpoint without its state dict
    (empty for a bare state dict). Only tensors and plain data unless ``trust_pickle``."""
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # torch.save: a zip, or a legacy pickle
        raise ValueError(f"{path} is not a PyTorch checkpoint (neither torch.save's zip nor a pickle)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            raise ValueError(
                f"{path} holds Python objects beyond tensors and plain data ({str(exc).splitlines()[0]}); "
                "load it only if you trust its source, with --trust-pickle"
            ) from None
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError) as exc:
        raise ValueError(f"{path} is not a PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        state, rest = ckpt["state_dict"], {k: v for k, v in ckpt.items() if k != "state_dict"}
    elif isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state, rest = ckpt, {}
    else:
        raise ValueError(
            f"{path} is neither a Lightning checkpoint (no 'state_dict') nor a state dict of tensors"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}, rest


def _find(node: Any, key: str) -> Any:
    """First value under ``key`` anywhere in a nested JSON structure."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def read_transform(path: Path) -> dict[str, Any]:
    """``{"mean", "std", "size"}`` from ``transform.json`` (flat or albumentations-serialised)."""
    if not Path(path).is_file():
        log.warning("no %s: assuming ImageNet mean/std", path)
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "size": None}
    spec = json.loads(Path(path).read_text())
    mean, std = _find(spec, "mean"), _find(spec, "std")
    if mean is None or std is None:
        log.warning("%s names no mean/std: assuming ImageNet", path)
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    mean = [float(v) for v in (mean if isinstance(mean, list) else [mean] * 3)]
    std = [float(v) for v in (std if isinstance(std, list) else [std] * 3)]
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"{path}: mean {mean} and std {std} must be three values, std positive")
    if max(mean) > 1.0:  # given in pixel units
        scale = float(_find(spec, "max_pixel_value") or 255.0)
        mean, std = [m / scale for m in mean], [s / scale for s in std]
    size = _find(spec, "image_size") or _find(spec, "resize") or _find(spec, "height") or _find(spec, "size")
    if isinstance(size, dict):  # e.g. {"resize": {"height": 512, "width": 512}}
        size = size.get("height") or size.get("size")
    if isinstance(size, list):
        size = size[0]
    try:
        size = int(size) if size else None
    except (TypeError, ValueError):
        raise ValueError(f"{path}: cannot read an image size from {size!r}") from None
    return {"mean": mean, "std": std, "size": size}


# -- the backbone ----------------------------------------------------------------------------------
def infer_resnet(state: dict[str, torch.Tensor], prefix: str = "model.") -> dict[str, Any]:
    """The ResNet-D layout the tensors describe: block kind, blocks and planes per stage, stem
    width, input channels, pooled features, embedding width and whether ``fc`` has a bias."""

    def get(key: str) -> torch.Tensor:
        if prefix + key not in state:
            raise ValueError(f"not a ResNet-D backbone: {prefix}{key} is missing")
        return state[prefix + key]

    stem = get("conv1.0.weight")
    blocks: dict[int, int] = {}
    for key in state:
        if match := re.match(re.escape(prefix) + r"layer(\d+)\.(\d+)\.", key):
            stage, block = int(match.group(1)), int(match.group(2))
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    if not blocks or sorted(blocks) != list(range(1, len(blocks) + 1)):
        raise ValueError(f"not a ResNet-D backbone: stages {sorted(blocks)} under {prefix}layer*")
    kind = "bottleneck" if prefix + "layer1.0.conv3.weight" in state else "basic"
    fc = get("fc.weight")
    return {
        "block": kind,
        "layers": tuple(blocks[s] for s in sorted(blocks)),
        "channels": tuple(int(get(f"layer{s}.0.conv1.weight").shape[0]) for s in sorted(blocks)),
        "stem_width": int(stem.shape[0]),
        "in_chans": int(stem.shape[1]),
        "num_features": int(fc.shape[1]),
        "embed_dim": int(fc.shape[0]),
        "fc_bias": prefix + "fc.bias" in state,
    }


def _backbone(name: str, arch: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Our registered variant for ``configs.json``'s ``backbone`` and the width overrides the
    checkpoint needs; ``ValueError`` when the depth or block kind disagree with the name."""
    if name not in MODEL_ARGS:
        raise ValueError(
            f"configs.json backbone {name!r} is not supported; the importer serves the ResNet-D "
            f"backbones {', '.join(list_models())}"
        )
    if arch["in_chans"] != 3:
        raise ValueError(f"the backbone takes {arch['in_chans']} input channels; the service feeds RGB (3)")
    args = MODEL_ARGS[name]
    if (args["block"], tuple(args["layers"])) != (arch["block"], arch["layers"]):
        raise ValueError(
            f"configs.json says {name} ({args['block']} blocks {tuple(args['layers'])}) but the checkpoint "
            f"holds {arch['block']} blocks {arch['layers']}"
        )
    defaults = {
        "channels": tuple(args.get("channels", (64, 128, 256, 512))),
        "stem_width": args["stem_width"],
    }
    widths = {"channels": arch["channels"], "stem_width": arch["stem_width"]}
    return name, {k: v for k, v in widths.items() if v != defaults[k]}


# -- the study's classes -----------------------------------------------------------------------------
def _variant(state: dict, hparams: dict, task: str | None) -> tuple[str, tuple[str, ...], bool]:
    """``(study class, tasks, clinical)`` from the state dict's keys (and the task of a
    single-task model from ``hyper_parameters`` or ``task``)."""
    clinical = any(k.startswith(("clinical_rnn_layer.", "embedding_layer.")) for k in state)
    multi = "scar_head.weight" in state or "lvef_head.weight" in state
    single = "head.weight" in state or "classification_head.weight" in state
    if multi == single:
        found = sorted({k.split(".")[0] for k in state if not k.startswith("model.")})
        raise ValueError(
            "cannot tell which of the study's models this is: it needs scar_head/lvef_head (multi-task) "
            f"or head/classification_head (single-task); the checkpoint has {', '.join(found) or 'no heads'}"
        )
    if multi:
        name = "MultiTaskClinicalCNNModel" if clinical else "MultiTaskModel"
        tasks = tuple(t for t in TASKS if f"{t}_head.weight" in state)
        if task is not None:
            raise ValueError(
                f"--task is for single-task models; this checkpoint has heads for {', '.join(tasks)}"
            )
        return name, tasks, clinical
    name = "SingleTaskClinicalCNNModel" if clinical else "SingleTaskModel"
    recorded = hparams.get("task")
    if task is None and recorded is None:
        raise ValueError(
            f"a {name} checkpoint does not say which task it was trained for (a bare state dict, or no "
            "'task' in its hyper_parameters); give it with --task scar or --task lvef"
        )
    chosen = task or recorded
    if chosen not in TASKS:
        raise ValueError(f"task {chosen!r} is not one of {', '.join(TASKS)}")
    if task is not None and recorded is not None and task != recorded:
        log.warning("--task %s overrides the checkpoint's hyper_parameters task %s", task, recorded)
    return name, (chosen,), clinical


def _clinical_layout(state: dict, configs: dict) -> dict[str, Any]:
    """The recurrent part: type, embedding size, hidden size; checked against ``configs.json``."""
    emb = state.get("embedding_layer.weight")
    w_ih, w_hh = state.get("clinical_rnn_layer.weight_ih_l0"), state.get("clinical_rnn_layer.weight_hh_l0")
    if emb is None or w_ih is None or w_hh is None:
        missing = [k for k, v in [("embedding_layer.weight", emb), ("clinical_rnn_layer.weight_ih_l0", w_ih),
                                  ("clinical_rnn_layer.weight_hh_l0", w_hh)] if v is None]  # fmt: skip
        raise ValueError(f"clinical model without its recurrent part: missing keys {_limited(missing)}")
    if any(re.match(r"clinical_rnn_layer\.\w+_l[1-9]", k) for k in state):
        raise ValueError(
            "the clinical RNN has more than one layer; the study's reshape of a multi-layer state mixes "
            "batch rows, so only num_rnn_layers = 1 (every config of the study) is imported"
        )
    hidden = int(w_hh.shape[1])
    gates = int(w_ih.shape[0]) // hidden
    if gates not in (1, 4) or emb.shape[0] != 2 or w_ih.shape[1] != emb.shape[1] + 1:
        raise ValueError(
            f"clinical layers of unexpected shapes: embedding_layer {tuple(emb.shape)}, weight_ih_l0 "
            f"{tuple(w_ih.shape)}, weight_hh_l0 {tuple(w_hh.shape)} (expected Embedding(2, E), an RNN or LSTM "
            "over E + 1 inputs)"
        )
    rnn_type = ("bi" if "clinical_rnn_layer.weight_ih_l0_reverse" in state else "") + (
        "lstm" if gates == 4 else "rnn"
    )
    configured = configs.get("rnn_type")
    if configured is not None and configured != rnn_type:
        raise ValueError(f"configs.json rnn_type {configured!r}, but the checkpoint holds a {rnn_type}")
    assert rnn_type in RNN_TYPES
    return {"rnn_type": rnn_type, "embedding_size": int(emb.shape[1]), "hidden": hidden}


def _clinical_defaults(values: dict[str, float] | None, folder: Path) -> torch.Tensor:
    if values is None:
        joblib = (
            " (the study's imputer.joblib is an sklearn pickle, not read)"
            if (folder / "imputer.joblib").exists()
            else ""
        )
        raise ValueError(
            "a clinical model needs the value each clinical feature takes when a request leaves it out"
            f"{joblib}: give them with --clinical-defaults, e.g. "
            '\'{"age": 62, "female_gender": 0, "dm": 0, "ht": 1, "smoke": 0, "dlp": 1}\''
        )
    unknown = sorted(set(values) - set(CLINICAL_FEATURES))
    missing = [f for f in CLINICAL_FEATURES if f not in values]
    if unknown or missing:
        raise ValueError(
            f"clinical defaults must give exactly {', '.join(CLINICAL_FEATURES)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )
    bad = [f for f in CLINICAL_FEATURES[1:] if float(values[f]) not in (0.0, 1.0)]
    if bad:
        raise ValueError(
            f"clinical defaults of {', '.join(bad)} must be 0 or 1 (the study embeds them as categories)"
        )
    return torch.tensor([float(values[f]) for f in CLINICAL_FEATURES])


def _check_keys(state: dict, expected: dict[str, tuple[int, ...]], optional: set[str]) -> None:
    """Raise ``ValueError`` naming missing, unexpected and mis-shaped keys (at most ten each)."""
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {v}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != v]  # fmt: skip
    problems = []
    if missing:
        problems.append(f"missing keys: {_limited(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_limited(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (checkpoint != expected): {_limited(shapes)}")
    if problems:
        raise ValueError("checkpoint does not match the study's network; " + "; ".join(problems))


def load_mtecg(
    folder: Path,
    trust_pickle: bool = False,
    task: str | None = None,
    clinical_defaults: dict[str, float] | None = None,
) -> tuple[RunModel, dict[str, Any]]:
    """Rebuild the study's model from its folder; return it (a ``RunModel``: image model and,
    for a clinical model, the fusion head) and what was read."""
    folder = Path(folder)
    ckpt_path = find_checkpoint(folder)
    configs_path = folder / "configs.json"
    if not configs_path.is_file():
        raise ValueError(
            f"{folder} has no configs.json (the study's save_configs writes it next to the checkpoint)"
        )
    configs = json.loads(configs_path.read_text())
    state, rest = read_study_checkpoint(ckpt_path, trust_pickle)
    hparams = rest.get("hyper_parameters") or {}
    transform = read_transform(folder / "transform.json")

    ignored = sorted(k for k in state if k in TRAINING_BUFFERS)
    study_class, tasks, clinical = _variant(state, hparams, task)
    if study_class == "SingleTaskClinicalCNNModel":
        ignored += sorted(k for k in state if k.startswith("head."))
    state = {k: v for k, v in state.items() if k not in ignored}

    arch = infer_resnet(state)
    backbone, backbone_args = _backbone(configs.get("backbone", hparams.get("backbone", "resnet34d")), arch)
    size = int(transform["size"] or hparams.get("image_size") or CANONICAL_SIZE)
    if hparams.get("image_size") and int(hparams["image_size"]) != size:
        raise ValueError(
            f"hyper_parameters image_size {hparams['image_size']} and transform.json size {size} disagree"
        )
    if size != CANONICAL_SIZE:
        raise ValueError(
            f"the model was trained at {size} px; the service feeds it the {CANONICAL_SIZE} px canonical image"
        )
    embed_dim = arch["embed_dim"]
    model = MultiTaskNet(
        backbone, tasks, embed_dim, size, backbone_args=backbone_args, embedding_relu=not clinical
    )

    # The study's key set for this layout, and where each of its tensors goes here.
    mapping = {
        "model." + k.removeprefix("backbone."): k for k in model.state_dict() if k.startswith("backbone.")
    }
    expected = {s: tuple(model.state_dict()[o].shape) for s, o in mapping.items()}
    optional = {k for k in expected if k.endswith("num_batches_tracked")} | {"model.fc.bias"}
    fusion = None
    if clinical:
        layout = _clinical_layout(state, configs)
        bias = any(k.endswith("head.bias") for k in state)
        fusion = StudyClinicalFusion(tasks, **layout, embed_dim=embed_dim, bias=bias)
        heads = {
            t: ("classification_head" if study_class.startswith("Single") else f"{t}_head") for t in tasks
        }
        for key, value in fusion.state_dict().items():
            if key.startswith("rnn."):
                expected["clinical_rnn_layer." + key.removeprefix("rnn.")] = tuple(value.shape)
            elif key.startswith("embedding_layer."):
                expected[key] = tuple(value.shape)
        for t, name in heads.items():
            expected[f"{name}.weight"] = tuple(fusion.head(t).weight.shape)
            if bias:
                expected[f"{name}.bias"] = (2,)
    else:
        head_names = {t: ("head" if study_class == "SingleTaskModel" else f"{t}_head") for t in tasks}
        for name in head_names.values():
            expected[f"{name}.weight"] = (2, embed_dim)
            expected[f"{name}.bias"] = (2,)
            optional.add(f"{name}.bias")
    _check_keys(state, expected, optional)

    ours = {o: state[s] for s, o in mapping.items() if s in state}
    for key, value in model.state_dict().items():  # absent: counters never used in eval; no fc bias
        ours.setdefault(key, torch.zeros_like(value))
    if clinical:
        defaults = _clinical_defaults(clinical_defaults, folder)
        fusion_state = {"clinical_mean": defaults}
        for key in fusion.state_dict():
            if key.startswith("rnn."):
                fusion_state[key] = state["clinical_rnn_layer." + key.removeprefix("rnn.")]
            elif key.startswith("embedding_layer."):
                fusion_state[key] = state[key]
        for t, name in heads.items():
            fusion_state[f"{t}_head.weight"] = state[f"{name}.weight"]
            if bias:
                fusion_state[f"{t}_head.bias"] = state[f"{name}.bias"]
        fusion.load_state_dict(fusion_state, strict=True)
        fusion.eval()
        for t, (weight, head_bias) in fusion.image_heads(defaults).items():  # see the module docstring
            ours[f"{t}_head.weight"], ours[f"{t}_head.bias"] = weight, head_bias
    else:
        for t, name in head_names.items():
            ours[f"{t}_head.weight"] = state[f"{name}.weight"]
            ours[f"{t}_head.bias"] = state.get(f"{name}.bias", torch.zeros(2))
    model.load_state_dict(ours, strict=True)
    model.config["mean"], model.config["std"] = transform["mean"], transform["std"]

    precision = (
        "16-mixed (GradScaler state)"
        if ("MixedPrecision" in rest or "native_amp_scaling_state" in rest)
        else None
    )
    info = {
        "kind": "mtecg-checkpoint",
        "folder": folder.resolve().name,
        "checkpoint": ckpt_path.name,
        "format": "lightning" if rest else "state_dict",
        "study_class": study_class,
        "tasks": list(tasks),
        "task_source": None if len(tasks) > 1 else ("--task" if task else "hyper_parameters.task"),
        "backbone": {
            "name": backbone,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in backbone_args.items()},
        },
        "fc_bias": arch["fc_bias"],
        "ignored_keys": ignored,
        "epoch": rest.get("epoch"),
        "global_step": rest.get("global_step"),
        "pytorch_lightning_version": rest.get("pytorch-lightning_version"),
        "precision": precision,
        "configs": configs,
        "transform": transform,
    }
    if clinical:
        info["clinical"] = {
            **fusion.config,
            "defaults": dict(zip(CLINICAL_FEATURES, defaults.tolist(), strict=True)),
            "image_only_outputs": "the study's clinical model has no image-only answer: model.onnx answers with "
            "every clinical feature at its default; the gateway answers through fusion.onnx",
        }
    meta = {
        "data": {"description": "the study's private CMR-labelled ECG images (not shipped)"},
        "imputation": "missing features take the defaults given at import (--clinical-defaults)",
        "image_only_answer": not clinical,
    }
    return RunModel(model.eval(), fusion, meta), info


def import_mtecg(
    folder: Path,
    repository: Path,
    name: str = MODEL_NAME,
    version: int = 1,
    trust_pickle: bool = False,
    task: str | None = None,
    clinical_defaults: dict[str, float] | None = None,
    int8: Int8Options | None = None,
) -> ModelCard:
    """Export the study's checkpoint as ``name`` into ``repository`` with its model card (and,
    with ``int8``, its INT8 variant for the CPU: ``export_model``)."""
    run, info = load_mtecg(folder, trust_pickle, task, clinical_defaults)
    if name == MODEL_NAME:  # a new repository gets intake, ensemble and configs to be served
        complete_repository(repository)
    # model.onnx normalises the canonical image with transform.json's mean/std in its graph
    return export_model(run, repository, name, version, source=info, int8=int8)
