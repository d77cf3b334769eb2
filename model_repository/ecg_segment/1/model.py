"""Triton python backend for the embedded CPU server: the page segmenter under onnxruntime.

Production runs the same model.onnx on Triton's native onnxruntime backend (config.pbtxt);
this file is used only with --model-config-name=cpu. Requests of one dynamic batch that carry
pages of the same size go through one onnxruntime call (``serving.onnx_backend.run_batched``,
shared with ecg_multitask's CPU model); each response carries only the outputs its request
asked for. A malformed page (not uint8 (B, H, W, 3), or smaller than the network's 16 px)
fails only its own request.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from ecgscreen.contract import SEGMENTER_INPUT
from ecgscreen.segmenter_card import SegmenterCard
from ecgscreen.serving.onnx_backend import OutputSessions, run_batched
from ecgscreen.serving.precision import cpu_segmenter

MIN_SIZE = 16  # 2 ** poolings of the segmenter (nets.segmenter.SegmenterNet.min_size)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        card = SegmenterCard.load(args["model_repository"])
        network = cpu_segmenter(card)  # INT8 only when its card says it passed
        path = os.path.join(args["model_repository"], network.file)
        pb_utils.Logger.log_info(
            f"ecg_segment on CPU runs {path} ({card.version}, {network.precision}: {network.why})"
        )
        self.outputs = [output["name"] for output in config["output"]]
        # one session per set of outputs: asking for the classes alone skips the probabilities
        self.session = OutputSessions(path, config, self.outputs)

    def execute(self, requests):
        responses = [None] * len(requests)
        good, inputs, wanted = [], [], []
        for i, request in enumerate(requests):
            page = pb_utils.get_input_tensor_by_name(request, SEGMENTER_INPUT).as_numpy()
            if page.ndim != 4 or page.shape[-1] != 3 or min(page.shape[1:3]) < MIN_SIZE:
                message = (
                    f"{SEGMENTER_INPUT} must be uint8 (B, H, W, 3) with H, W >= {MIN_SIZE}; got {page.shape}"
                )
                error = pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
                responses[i] = pb_utils.InferenceResponse(error=error)
                continue
            good.append(i)
            inputs.append(np.ascontiguousarray(page))
            wanted.append(set(request.requested_output_names()))
        if good:
            results = run_batched(self.session, SEGMENTER_INPUT, inputs, wanted, self.outputs)
            for i, result in zip(good, results, strict=True):
                tensors = [pb_utils.Tensor(name, value) for name, value in result.items()]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses
