"""ecg_segment in the embedded (CPU) tritonserver: it loads beside the ensemble and answers as
the ONNX does in process; a malformed page fails only its own request; ecg_preprocess asks it
(BLS) for raster pages only."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from corpus import good_ecg
from servers import segmented_pages
from tritonclient.utils import InferenceServerException

from ecgscreen.contract import (
    ENSEMBLE_INFO,
    ENSEMBLE_INPUT,
    ENSEMBLE_NAME,
    SEGMENTER_CLASS_OUTPUT,
    SEGMENTER_INPUT,
    SEGMENTER_NAME,
    SEGMENTER_PROBABILITY_OUTPUT,
)
from ecgscreen.imaging.pipeline import read_page
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


def _screen(triton, data: bytes) -> dict:
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput(ENSEMBLE_INPUT, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    result = client.infer(ENSEMBLE_NAME, [tensor], outputs=[grpcclient.InferRequestedOutput(ENSEMBLE_INFO)])
    return json.loads(result.as_numpy(ENSEMBLE_INFO).reshape(-1)[0])


def test_preprocess_segments_raster_pages_through_bls_and_reads_them_as_intake_does(triton):
    """A PNG page costs ecg_segment one inference (asked by ecg_preprocess through BLS) and
    is read as the in-process intake reads it; a vector PDF and a waveform never reach it."""
    page = good_ecg("png")
    before = segmented_pages(triton.grpc_url)
    info = _screen(triton, page)
    assert segmented_pages(triton.grpc_url) == before + 1
    local = read_page(page).info
    assert (info["layout"], info["quality"], info["leads"]) == (
        local["layout"],
        local["quality"],
        local["leads"],
    )
    for data in (good_ecg("pdf", index=1), good_ecg("dcm-waveform", index=4)):
        _screen(triton, data)
    assert segmented_pages(triton.grpc_url) == before + 1
