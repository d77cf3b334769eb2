"""Helpers of the python-backend models that run an ONNX file with onnxruntime on the CPU.

The embedded CPU server has only Triton's python backend, so each ONNX model there
(the network and the page segmenter) has a ``1/model.py`` that opens an onnxruntime session
and runs a dynamic batch through it. What they share lives here, importable without
``triton_python_backend_utils`` (tests call it directly): the session built from the config's
``parameters``, the batching of requests into as few onnxruntime calls as their shapes allow,
and one session per set of outputs (onnxruntime runs every node of a graph whatever outputs a
call asks for: the segmenter's probabilities cost half again its classes' time on the CPU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["parameter", "cpu_session", "pruned_model", "OutputSessions", "run_batched"]


def parameter(config: Mapping[str, Any], key: str, default: str) -> str:
    """A ``parameters { key: ... value: { string_value: ... } }`` entry of a model config."""
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def cpu_session(path: str | bytes, config: Mapping[str, Any]):
    """An onnxruntime CPU session for ``path`` (or a serialised model) with the config's ``intra_op_threads`` (0: one
    per core) and ``allow_spinning`` (``"0"``: a waiting thread sleeps, leaving the core to
    intake)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(parameter(config, "intra_op_threads", "0"))
    options.inter_op_num_threads = 1
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", parameter(config, "allow_spinning", "0")
    )
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def pruned_model(path: str, outputs: Sequence[str]) -> bytes:
    """The ONNX model at ``path`` with only ``outputs`` and the nodes and weights they need."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    unknown = set(outputs) - {o.name for o in graph.output}
    if unknown:
        raise ValueError(f"{path} has no outputs {sorted(unknown)}")
    needed, kept = set(outputs), []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    for field, keep in (("node", kept[::-1]), ("output", [o for o in graph.output if o.name in outputs]),
                        ("initializer", [t for t in graph.initializer if t.name in needed])):  # fmt: skip
        items = list(keep)
        del getattr(graph, field)[:]
        getattr(graph, field).extend(items)
    return model.SerializeToString()


class OutputSessions:
    """One CPU session of the ONNX at ``path`` per non-empty subset of ``outputs``, built once;
    ``run(names, feeds)`` uses the one that computes exactly ``names``."""

    def __init__(self, path: str, config: Mapping[str, Any], outputs: Sequence[str]):
        from itertools import combinations

        self.sessions = {
            frozenset(subset): cpu_session(pruned_model(path, subset), config)
            for k in range(1, len(outputs) + 1)
            for subset in combinations(outputs, k)
        }

    def run(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self.sessions[frozenset(names)].run(list(names), feeds)


def run_batched(
    session, input_name: str, inputs: Sequence[np.ndarray], wanted: Sequence[set[str]], outputs: Sequence[str]
) -> list[dict[str, np.ndarray]]:
    """Run the requests' ``inputs`` (each with its batch axis) through ``session``: requests
    whose arrays have the same shape (after the batch axis) go through one call; return, per
    request, the outputs it asked for (``wanted``; empty: all of ``outputs``)."""
    wanted = [set(w) or set(outputs) for w in wanted]
    results: list[dict[str, np.ndarray]] = [{} for _ in inputs]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        groups.setdefault(tuple(x.shape[1:]), []).append(i)
    for members in groups.values():
        names = [name for name in outputs if any(name in wanted[i] for i in members)]
        parts = [inputs[i] for i in members]
        batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
        values = dict(zip(names, session.run(names, {input_name: batch}), strict=True))
        start = 0
        for i, x in zip(members, parts, strict=True):
            stop = start + x.shape[0]
            results[i] = {name: values[name][start:stop] for name in names if name in wanted[i]}
            start = stop
    return results
