"""Triton python backend for the embedded CPU server: model.onnx under onnxruntime.

Production runs the same model.onnx on Triton's native onnxruntime backend (config.pbtxt);
this file is used only with --model-config-name=cpu. All requests of a dynamic batch go
through one onnxruntime call, then are split back; each response carries only the outputs
its request asked for.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "0"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.inter_op_num_threads = 1
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.outputs = [output["name"] for output in config["output"]]

    def execute(self, requests):
        images = [pb_utils.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]
        wanted = [set(r.requested_output_names()) or set(self.outputs) for r in requests]
        names = [name for name in self.outputs if any(name in w for w in wanted)]
        results = dict(zip(names, self.session.run(names, {"image": np.concatenate(images)}), strict=True))
        responses, start = [], 0
        for image, asked in zip(images, wanted, strict=True):
            stop = start + image.shape[0]
            tensors = [pb_utils.Tensor(name, results[name][start:stop]) for name in names if name in asked]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start = stop
        return responses
