"""Intake reads raster pages through the page segmenter (``imaging.segment``): the ink it calls
grid, label, text or separator is dropped; waveforms and vector PDFs never reach it."""

import numpy as np
import pytest
from corpus import good_ecg
from PIL import Image

from ecgscreen.contract import SEGMENTER_CLASSES
from ecgscreen.imaging import segment
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.imaging.segment import (
    NOT_TRACE,
    OnnxSegmenter,
    default_segmenter,
    light_grid,
    page_classes,
    strokes_not_trace,
)


class Recording:
    """A segmenter answering one class everywhere, remembering the pages it was given."""

    def __init__(self, name: str):
        self.value = SEGMENTER_CLASSES.index(name)
        self.pages: list[np.ndarray] = []

    def __call__(self, page: np.ndarray) -> np.ndarray:
        self.pages.append(page)
        return np.full(page.shape[:2], self.value, dtype=np.uint8)


def test_the_page_is_padded_to_the_unets_multiple_and_the_answer_cropped():
    seen = Recording("text")
    image = np.full((50, 90, 3), 200, dtype=np.uint8)
    classes = page_classes(image, (37, 61), seen)
    assert classes.shape == (37, 61) and (classes == SEGMENTER_CLASSES.index("text")).all()
    (page,) = seen.pages
    assert page.shape == (48, 64, 3) and page.dtype == np.uint8
    assert (page[37:] == 255).all() and (page[:, 61:] == 255).all()  # white paper added
    assert page_classes(image[..., 0], (37, 61), Recording("trace")).shape == (37, 61)  # grey pages too


def test_strokes_are_dropped_whole_when_the_segmenter_calls_them_grid():
    ink = np.zeros((20, 60), dtype=bool)
    ink[2, 2:20] = True  # a grid line's fragment
    ink[10, 2:30] = ink[5:10, 2] = ink[5:10, 12] = True  # a pulse drawn over grid lines
    ink[15, 35:58] = True  # faint trace under a shadow
    classes = np.zeros(ink.shape, dtype=np.uint8)  # background
    grid, pulse = SEGMENTER_CLASSES.index("grid"), SEGMENTER_CLASSES.index("pulse")
    classes[2] = classes[10] = grid  # the grid gets the pulse's feet and plateau
    classes[5:10, 2] = classes[5:10, 12] = pulse
    dropped = strokes_not_trace(ink, classes)
    assert dropped[2, 2:20].all()  # the fragment
    assert not dropped[10].any() and not dropped[5:10, 2].any()  # the pulse, kept whole
    assert not dropped[15].any()  # ink called background stays
    assert not strokes_not_trace(np.zeros_like(ink), classes).any()


def test_light_grid_joined_to_the_trace_is_dropped_but_where_it_touches():
    """A photo of a dark grid (ecg00046): bits of grid line hang on the trace (stubs read as
    spikes, rectangles read as steps); they are fainter than the pen and go. A QRS stroke
    along a grid line is as dark as the trace and stays, though called grid."""
    grid, trace = SEGMENTER_CLASSES.index("grid"), SEGMENTER_CLASSES.index("trace")
    ink = np.zeros((40, 80), dtype=bool)
    darkness = np.zeros(ink.shape, dtype=np.float32)
    classes = np.zeros(ink.shape, dtype=np.uint8)
    ink[20, :] = True  # the trace's baseline...
    classes[20, :], darkness[20, :] = trace, 0.8
    ink[5:20, 40] = True  # ...its R wave, drawn along a grid line: called grid, as dark as the pen
    classes[5:20, 40], darkness[5:20, 40] = grid, 0.8
    ink[21:30, 10] = True  # a faint stub of grid line hanging below
    ink[21:30, 60] = ink[29, 60:75] = ink[21:30, 75] = True  # a faint rectangle joined at two points
    faint = ink & (darkness == 0)
    classes[faint], darkness[faint] = grid, 0.4
    dropped = light_grid(ink, classes, darkness)
    assert dropped[22:30, 10].all() and dropped[22:30, 60].all() and dropped[29, 61:75].all()
    assert not dropped[21, 10] and not dropped[21, 60]  # the pixels touching the trace stay
    assert not dropped[5:20, 40].any() and not dropped[20].any()
    assert not light_grid(ink, np.zeros_like(classes), darkness).any()  # nothing called trace: no yardstick
    wide = np.zeros((40, 2000), dtype=bool)  # the same on a page 25 times larger: too little trace
    wide[:, :80] = ink
    grown = np.zeros(wide.shape, dtype=np.uint8)
    grown[:, :80] = classes
    dark = np.zeros(wide.shape, dtype=np.float32)
    dark[:, :80] = darkness
    assert not light_grid(wide, grown, dark).any()


def test_a_segmenter_answering_the_wrong_size_is_an_error():
    with pytest.raises(ValueError, match="answered"):
        page_classes(np.zeros((40, 40, 3), np.uint8), (40, 40), lambda page: np.zeros((8, 8), np.uint8))


def test_only_grid_is_dropped():
    # lead labels name the rhythm strips and separators tell 3x4 from 6x2: the layout reads
    # them; text stays, as a fast wiggle (noise, an EEG) is called handwriting
    assert [SEGMENTER_CLASSES[i] for i in NOT_TRACE] == ["grid"]


def test_the_committed_segmenter_tells_trace_from_grid_on_a_generated_page():
    from ecgscreen.imaging.images import decode_image
    from ecgscreen.imaging.limits import DEFAULT_LIMITS

    image = decode_image(good_ecg("png"), "png", DEFAULT_LIMITS)
    h, w = (s * 1184 // max(image.shape[:2]) // 16 * 16 for s in image.shape[:2])  # about 4 px/mm
    page = np.asarray(Image.fromarray(image).resize((w, h)))
    share = np.bincount(OnnxSegmenter()(page).ravel(), minlength=len(SEGMENTER_CLASSES)) / (h * w)
    named = dict(zip(SEGMENTER_CLASSES, share, strict=True))
    assert 0.005 < named["trace"] < 0.1 and named["grid"] > 0.2 and named["lead_label"] > 0


def test_raster_pages_are_read_through_the_segmenter_and_its_map_is_used():
    data = good_ecg("png")
    everything_grid = Recording("grid")
    # all ink dropped: no layout through the segmenter, so the page is read again by colour alone
    by_colour = read_page(data, segmenter=everything_grid)
    assert len(everything_grid.pages) == 1
    assert any("read by colour alone" in w for w in by_colour.info["warnings"])
    all_trace = read_page(data, segmenter=Recording("trace"))
    assert all_trace.verdict.refusal is None and all_trace.info["layout"] == read_page(data).info["layout"]
    assert not any("read by colour alone" in w for w in all_trace.info["warnings"])
    assert by_colour.verdict.refusal is None and by_colour.info["layout"] == all_trace.info["layout"]


def test_a_page_colour_alone_cannot_read_either_keeps_the_first_refusal():
    from ecgscreen.synth.not_ecg import not_ecg_corpus

    pictures = {name: data for name, data, _ in not_ecg_corpus()}
    with pytest.raises(IntakeError) as refused:
        read_page(pictures["text-page"], segmenter=Recording("grid"))
    assert refused.value.reason == "not_an_ecg"
    # half a page: "incomplete_ecg" as read through the committed segmenter; through one that
    # drops every stroke, that segmenter's own refusal stands, whatever the second reading says
    with pytest.raises(IntakeError) as committed:
        read_page(pictures["half-a-page"])
    with pytest.raises(IntakeError) as refused:
        read_page(pictures["half-a-page"], segmenter=Recording("grid"))
    assert (committed.value.reason, refused.value.reason) == ("incomplete_ecg", "not_an_ecg")


def test_waveforms_and_vector_pdfs_never_reach_the_segmenter():
    seen = Recording("text")
    for data in (good_ecg("pdf", index=1), good_ecg("dcm-waveform", index=4)):
        assert read_page(data, segmenter=seen).verdict.refusal is None
    assert seen.pages == []


def test_the_segmenter_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("ECGSCREEN_SEGMENTER", "off")
    assert default_segmenter() is None
    monkeypatch.setenv("ECGSCREEN_SEGMENTER", "on")
    assert isinstance(default_segmenter(), OnnxSegmenter)
    assert default_segmenter() is segment.default_segmenter()  # loaded once
