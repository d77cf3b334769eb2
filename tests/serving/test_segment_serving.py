"""ecg_segment in the embedded (CPU) tritonserver: it loads beside the ensemble and answers as
the ONNX does in process; a malformed page fails only its own request."""

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from ecgscreen.contract import (
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_INPUT,
    SEGMENTER_NAME,
    SEGMENTER_PROBABILITY_OUTPUT,
)
from ecgscreen.segmenter_card import SegmenterCard
from ecgscreen.serving.triton import DEFAULT_REPOSITORY

pytestmark = pytest.mark.integration


def infer(triton, page: np.ndarray, outputs=(SEGMENTER_CLASS_OUTPUT,)):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput(SEGMENTER_INPUT, list(page.shape), "UINT8")
    tensor.set_data_from_numpy(page)
    return client.infer(
        SEGMENTER_NAME, [tensor], outputs=[grpcclient.InferRequestedOutput(n) for n in outputs]
    )


def test_segment_answers_as_the_onnx_and_only_what_was_asked(triton):
    folder = DEFAULT_REPOSITORY / SEGMENTER_NAME
    card = SegmenterCard.load(folder)
    session = ort.InferenceSession(str(folder / card.onnx.file), providers=["CPUExecutionProvider"])
    page = np.random.default_rng(0).integers(0, 256, size=(1, 75, 130, 3), dtype=np.uint8)
    result = infer(triton, page)
    want = session.run([SEGMENTER_CLASS_OUTPUT], {SEGMENTER_INPUT: page})[0]
    assert np.array_equal(result.as_numpy(SEGMENTER_CLASS_OUTPUT), want)
    assert result.as_numpy(SEGMENTER_PROBABILITY_OUTPUT) is None
    both = infer(triton, page, (SEGMENTER_CLASS_OUTPUT, SEGMENTER_PROBABILITY_OUTPUT))
    assert both.as_numpy(SEGMENTER_PROBABILITY_OUTPUT).shape == (1, len(card.classes), 75, 130)


def test_a_page_too_small_is_refused_with_its_shape(triton):
    with pytest.raises(InferenceServerException, match=r"H, W >= 16; got \(1, 8, 130, 3\)"):
        infer(triton, np.zeros((1, 8, 130, 3), dtype=np.uint8))
