"""The segmenter's INT8 variant (issue 23): made from the exported segmenter, checked against
FP32 on fresh generator pages (trace IoU) and in speed, kept only when both hold, recorded in
the card, and run by the CPU only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgscreen.contract import CPU_PRECISION_ENV, INT8_MODEL_FILE, SEGMENTER_NAME
from ecgscreen.export import segmenter_int8
from ecgscreen.export.segmenter_int8 import SegmenterInt8Options, quantize_segmenter
from ecgscreen.segmenter_card import SegmenterCard
from ecgscreen.serving.precision import cpu_segmenter

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository" / SEGMENTER_NAME
SMALL = SegmenterInt8Options(n_calibration=2, n_fresh=2, repeats=1)


@pytest.fixture
def repository(committed_copy) -> Path:
    return committed_copy(SEGMENTER_NAME)


def test_the_variant_is_measured_recorded_and_kept_only_if_it_passed(repository):
    card = quantize_segmenter(repository, SMALL)
    q, folder = card.int8, repository / SEGMENTER_NAME
    assert SegmenterCard.load(folder) == card and q.file.endswith(INT8_MODEL_FILE)
    assert 0.0 < q.trace_iou_fp32 <= 1.0 and 0.0 < q.trace_iou_int8 <= 1.0
    assert q.ms_per_page_fp32 > 0 and q.ms_per_page_int8 > 0 and q.limits == {"trace_iou_diff": 0.01}
    moved = abs(q.trace_iou_int8 - q.trace_iou_fp32) > 0.01
    slower = q.ms_per_page_int8 >= q.ms_per_page_fp32
    assert q.passed == (not moved and not slower)
    assert (folder / q.file).exists() == q.passed  # a refused variant is never served nor shipped
    assert cpu_segmenter(card, {}).precision == ("int8" if q.passed else "fp32")


def test_a_faster_variant_that_reads_as_fp32_is_kept_and_run(repository, monkeypatch):
    monkeypatch.setattr(segmenter_int8, "_ms_per_page", lambda paths, repeats: [300.0, 200.0])
    monkeypatch.setattr(segmenter_int8, "evaluate_segmenter",
                        lambda predict, seed, n: {"per_class_iou": {"trace": 0.80}})  # fmt: skip
    card = quantize_segmenter(repository, SMALL)
    q = card.int8
    assert q.passed and q.refused is None and (repository / SEGMENTER_NAME / q.file).is_file()
    assert cpu_segmenter(card, {}).file == q.file
    assert cpu_segmenter(card, {CPU_PRECISION_ENV: "fp32"}).file == card.onnx.file


def test_a_variant_that_reads_the_trace_worse_is_refused(repository, monkeypatch):
    ious = iter([0.80, 0.75])  # FP32, then INT8
    monkeypatch.setattr(segmenter_int8, "_ms_per_page", lambda paths, repeats: [300.0, 200.0])
    monkeypatch.setattr(segmenter_int8, "evaluate_segmenter",
                        lambda predict, seed, n: {"per_class_iou": {"trace": next(ious)}})  # fmt: skip
    card = quantize_segmenter(repository, SMALL)
    assert not card.int8.passed and "trace IoU moved -0.0500" in card.int8.refused
    assert not (repository / SEGMENTER_NAME / card.int8.file).exists()
    assert cpu_segmenter(card, {}).precision == "fp32" and "refused" in cpu_segmenter(card, {}).why


def test_the_committed_card_records_its_check():
    q = SegmenterCard.load(COMMITTED).int8
    assert q is not None and (COMMITTED / q.file).exists() == q.passed
