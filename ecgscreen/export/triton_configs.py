"""Make a model repository's Triton configs carry exactly the tensors a model card lists.

The configs (the network's ``config.pbtxt`` and ``configs/*.pbtxt``, and the ensemble's
``config.pbtxt``; names in ``ecgscreen.contract``) are written for the two-task default. A
single-task model (the study's ``SingleTaskModel``) has one probability output, ``logits``
of 2 and a ``cam`` of one map; Triton refuses to load a config that names an output the ONNX
lacks. So export writes those configs' output lists, and the ensemble's output maps from the
network, from the card, and leaves every comment and other setting as it was (a two-task
card gives back the default configs byte for byte).

A repository that has no configs yet (``import-mtecg --repository NEW``) first gets the
default repository's intake, page segmenter (``ecg_segment``, which intake asks through BLS
for raster pages; it serves any network) and ensemble models, and the network's configs and
Python backend (never its weights, card or fusion head).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from ..card import TensorSpec
from ..contract import (
    ENSEMBLE_CAM,
    ENSEMBLE_EMBEDDING,
    ENSEMBLE_LOGITS,
    ENSEMBLE_NAME,
    ENSEMBLE_PROBABILITY,
    MODEL_NAME,
    PREPROCESS_NAME,
    SEGMENTER_NAME,
    TASKS,
    probability_output,
)
from ..serving.triton import DEFAULT_REPOSITORY

__all__ = ["ENSEMBLE_OUTPUTS", "complete_repository", "sync_triton_configs"]

# the network's output -> the ensemble output it is mapped to
ENSEMBLE_OUTPUTS = {
    **{probability_output(t): ENSEMBLE_PROBABILITY[t] for t in TASKS},
    "logits": ENSEMBLE_LOGITS,
    "embedding": ENSEMBLE_EMBEDDING,
    "cam": ENSEMBLE_CAM,
}
MODEL_OUTPUTS = set(ENSEMBLE_OUTPUTS)
_OUTPUT_BLOCK = re.compile(r"^\s*output\s*\[\s*$")
_ENTRY = re.compile(r'^(\s*)\{\s*name:\s*"([^"]+)"')
_OUTPUT_MAP = re.compile(r'^(\s*)output_map\s*\{\s*key:\s*"([^"]+)"')


def complete_repository(repository: Path, source: Path = DEFAULT_REPOSITORY) -> list[Path]:
    """Copy what ``repository`` lacks to be served (intake, the page segmenter, ensemble, the
    network's configs and python backend) from ``source``; return the paths copied."""
    repository, source = Path(repository), Path(source)
    if repository.resolve() == source.resolve():
        return []
    copied = []
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for model in (PREPROCESS_NAME, SEGMENTER_NAME, ENSEMBLE_NAME):
        if not (repository / model).exists():
            shutil.copytree(source / model, repository / model, ignore=ignore)
            copied.append(repository / model)
    for relative in ("config.pbtxt", "configs", "1/model.py"):
        target, origin = repository / MODEL_NAME / relative, source / MODEL_NAME / relative
        if not target.exists() and origin.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            (
                shutil.copytree(origin, target, ignore=ignore)
                if origin.is_dir()
                else shutil.copy2(origin, target)
            )
            copied.append(target)
    return copied


def _entry(indent: str, name: str, dtype: str, dims: list[int]) -> str:
    return f'{indent}{{ name: "{name}", data_type: TYPE_{dtype}, dims: [ {", ".join(map(str, dims))} ] }}'


def _rewrite(
    text: str, tensors: dict[str, tuple[str, list[int]]], replaced: set[str], maps: list[tuple[str, str]]
) -> str:
    """``text`` with its ``output [ ... ]`` list holding ``tensors`` (name -> dtype, dims) in
    place of the entries named in ``replaced`` (the others kept after them), and the
    ``output_map`` lines keyed by a model output replaced by ``maps`` (key, value)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _OUTPUT_BLOCK.match(line):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("]"))
            entries = [e for e in lines[i + 1 : end] if e.strip()]
            indent = _ENTRY.match(entries[0]).group(1) if entries and _ENTRY.match(entries[0]) else "  "
            kept = [
                e.rstrip().rstrip(",")
                for e in entries
                if not (_ENTRY.match(e) and _ENTRY.match(e).group(2) in replaced)
            ]
            items = [_entry(indent, name, *spec) for name, spec in tensors.items()] + kept
            out += [
                line,
                *[item + ("," if k < len(items) - 1 else "") for k, item in enumerate(items)],
                lines[end],
            ]
            i = end + 1
            continue
        if (match := _OUTPUT_MAP.match(line)) and match.group(2) in MODEL_OUTPUTS:
            if maps:  # the model's maps, written once where the first of them was
                out += [f'{match.group(1)}output_map {{ key: "{k}" value: "{v}" }}' for k, v in maps]
                maps = []
            i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def sync_triton_configs(repository: Path, outputs: Mapping[str, TensorSpec]) -> list[Path]:
    """Write the model's ``outputs`` (as its card lists them) into the configs in
    ``repository``; return the files changed."""
    repository = Path(repository)
    tensors = {name: (spec.dtype, spec.shape[1:]) for name, spec in outputs.items()}
    ensemble = {ENSEMBLE_OUTPUTS[name]: spec for name, spec in tensors.items() if name in ENSEMBLE_OUTPUTS}
    maps = [(name, ENSEMBLE_OUTPUTS[name]) for name in tensors if name in ENSEMBLE_OUTPUTS]
    model_dir = repository / MODEL_NAME
    jobs = [
        (path, tensors, MODEL_OUTPUTS, [])
        for path in [model_dir / "config.pbtxt", *sorted(model_dir.glob("configs/*.pbtxt"))]
    ]
    jobs.append((repository / ENSEMBLE_NAME / "config.pbtxt", ensemble, set(ENSEMBLE_OUTPUTS.values()), maps))
    changed = []
    for path, specs, replaced, output_maps in jobs:
        if not path.is_file():
            continue
        text = path.read_text()
        new = _rewrite(text, specs, replaced, output_maps)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
