"""Triton python backend for the embedded CPU server: the network under onnxruntime.

It runs the INT8 variant (model.int8.onnx) when the model card says it passed its parity
check, else model.onnx; ECGSCREEN_CPU_PRECISION=fp32 always runs model.onnx
(``ecgscreen.serving.precision``). Production runs model.onnx on Triton's native onnxruntime
backend (config.pbtxt); this file is used only with --model-config-name=cpu. All requests of
a dynamic batch go through one onnxruntime call, then are split back; each response carries
only the outputs its request asked for.

The session's threads come from the config: ``intra_op_threads`` (0: one per core) and
``allow_spinning``. Intake shares the cores with the network here, so a waiting onnxruntime
thread must sleep, not spin: a spinning one burns the core an intake instance needs (measured
on 2 cores: 3x the network's CPU time per ECG).
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from ecgscreen.card import ModelCard
from ecgscreen.serving.precision import cpu_network


def _parameter(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(_parameter(config, "intra_op_threads", "0"))  # 0: one per core
        options.inter_op_num_threads = 1
        spinning = _parameter(config, "allow_spinning", "0")
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        network = cpu_network(ModelCard.load(args["model_repository"]))
        path = os.path.join(args["model_repository"], args["model_version"], os.path.basename(network.file))
        pb_utils.Logger.log_info(f"ecg_multitask on CPU runs {path} ({network.why})")
        self.precision = network.precision
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = config["input"][0]["name"]
        self.outputs = [output["name"] for output in config["output"]]

    def execute(self, requests):
        inputs = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        wanted = [set(r.requested_output_names()) or set(self.outputs) for r in requests]
        names = [name for name in self.outputs if any(name in w for w in wanted)]
        batch = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        results = dict(zip(names, self.session.run(names, {self.input: batch}), strict=True))
        responses, start = [], 0
        for x, asked in zip(inputs, wanted, strict=True):
            stop = start + x.shape[0]
            tensors = [pb_utils.Tensor(name, results[name][start:stop]) for name in names if name in asked]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses
