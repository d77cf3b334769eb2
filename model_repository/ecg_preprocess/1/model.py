"""Triton python backend: encoded ECG file -> the canonical image + info record.

Imports the project's own intake (``ecgscreen.imaging``): one preprocessing code path for
training, evaluation and serving. Each request is handled on its own, so a corrupt file
fails only its own request (INVALID_ARG, the refusal encoded by ``imaging.errors.to_wire``)
while the other requests of the same call get their answers. The canonical image leaves as
it is drawn (uint8): the network normalises it inside its graph; the client's copy
(``CANONICAL``) only when the client asked for it.

Raster pages are segmented by the ``ecg_segment`` model, asked through BLS (Business Logic
Scripting): on a GPU node it runs there, next to the network, and its dynamic batcher gathers
the pages of all preprocess instances. Waveforms and vector PDFs never reach it.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from ecgscreen.contract import (
    ENSEMBLE_CANONICAL,
    ENSEMBLE_INFO,
    ENSEMBLE_INPUT,
    MODEL_INPUT,
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_INPUT,
    SEGMENTER_NAME,
)
from ecgscreen.imaging.errors import INTERNAL, IntakeError, to_wire
from ecgscreen.imaging.pipeline import preprocess
from ecgscreen.imaging.worker import settle_intake_process


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        canonical = pb_utils.get_output_config_by_name(config, MODEL_INPUT)
        self.size = int(canonical["dims"][-1])
        self.logger = pb_utils.Logger
        settle_intake_process()  # this stub does intake alone: one BLAS thread, buffers in the heap

    def execute(self, requests):
        responses = []
        for request in requests:
            files = pb_utils.get_input_tensor_by_name(request, ENSEMBLE_INPUT).as_numpy().reshape(-1)
            try:
                results = [preprocess(bytes(data), self.size, segmenter=_segment) for data in files]
            except IntakeError as error:
                responses.append(_refuse(error, pb_utils.TritonError.INVALID_ARG))
                continue
            except SegmenterUnavailable as error:  # Triton stopping or restarting: retry, not a bug
                message = f"{SEGMENTER_NAME} unavailable: {error}"
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(message, pb_utils.TritonError.UNAVAILABLE)
                    )
                )
                continue
            except Exception as error:  # a bug must fail one request, never the batch
                self.logger.log_error(f"ecg_preprocess: unexpected {type(error).__name__}")
                failure = IntakeError(INTERNAL, "preprocessing failed unexpectedly")
                responses.append(_refuse(failure, pb_utils.TritonError.INTERNAL))
                continue
            canonical = np.stack([result.canonical for result in results])
            info = np.array([[json.dumps(result.info).encode()] for result in results], dtype=np.object_)
            tensors = [pb_utils.Tensor(MODEL_INPUT, canonical), pb_utils.Tensor(ENSEMBLE_INFO, info)]
            if ENSEMBLE_CANONICAL in request.requested_output_names():  # the client's own copy
                tensors.append(pb_utils.Tensor(ENSEMBLE_CANONICAL, canonical))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses


class SegmenterUnavailable(Exception):
    """``ecg_segment`` did not answer (unloaded while Triton stops, its stub dead): the
    request is answered UNAVAILABLE, which clients retry, never ``internal``."""


def _segment(page: np.ndarray) -> np.ndarray:
    """The classes of one page (uint8 (H, W, 3)), from ``ecg_segment`` through BLS."""
    request = pb_utils.InferenceRequest(
        model_name=SEGMENTER_NAME,
        inputs=[pb_utils.Tensor(SEGMENTER_INPUT, page[None])],
        requested_output_names=[SEGMENTER_CLASS_OUTPUT],
    )
    response = request.exec()
    if response.has_error():  # never read by colour alone instead: the answer would differ
        raise SegmenterUnavailable(response.error().message())
    return pb_utils.get_output_tensor_by_name(response, SEGMENTER_CLASS_OUTPUT).as_numpy()[0]


def _refuse(error: IntakeError, code) -> "pb_utils.InferenceResponse":
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(to_wire(error), code))
