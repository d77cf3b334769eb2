"""Layout reading (issue 21): every layout the world prints, read back with its strips; six
even rows told apart; headers, QR codes and frames ignored; other layouts refused."""

import io
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from corpus import four_strips_page
from PIL import Image

from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.layout import _best_shape, _without_frame
from ecgscreen.imaging.pipeline import read_ecg
from ecgscreen.leads import LEADS, RHYTHM_LEADS
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.scan import ScanArtefacts

# These tests hold intake to its numbers on the generator's first page design; the world's
# page designs have their own tests (test_world_pages) and ``python -m bench layouts``.
make_record = partial(make_record, world_pages=False)

SCAN = ScanArtefacts(
    kind="scan", rotation_deg=0.8, blur_px=0.4, noise_sd=3.0, cast=(0.98, 0.97, 0.95), seed=2
)


def _record(layout: str, fmt: str = "png", strips: tuple[str, ...] | None = None, index: int = 3):
    base = make_record(77, index)
    style = replace(base.style, layout=layout, rhythm_leads=strips, grid="red", gain=None)
    return replace(base, file_format=fmt, style=style, artefacts=SCAN if fmt == "jpeg" else ScanArtefacts())


def _strips_read(info: dict, truth: tuple[str, ...], layout: str) -> bool:
    """The strips as printed (from their label or their trace), or the layout's standard
    with a warning that says the strip was not used."""
    if tuple(info["rhythm_leads"]) == truth:
        return True
    assumed = [w for w in info["warnings"] if w.startswith("rhythm strip lead assumed")]
    return tuple(info["rhythm_leads"]) == RHYTHM_LEADS[layout] and len(assumed) > 0


@pytest.mark.parametrize(
    "layout,strips",
    [
        ("3x4", None),
        ("3x4+1", None),
        ("3x4+1", ("V1",)),
        ("3x4+1", ("V5",)),
        ("3x4+2", None),
        ("3x4+3", None),
        ("6x2+1", None),
    ],
)
@pytest.mark.parametrize("fmt", ["png", "jpeg", "pdf"])
def test_each_layout_is_read_back_with_every_lead(layout, strips, fmt):
    record = _record(layout, fmt, strips)
    signal, info = read_ecg(encode_record(record))
    assert info["layout"] == layout
    assert _strips_read(info, record.style.strip_leads, layout), info
    assert all(signal.confidence.get(lead, 0.0) > 0.5 for lead in LEADS), signal.confidence


@pytest.mark.parametrize("index", [1, 3, 8])
@pytest.mark.parametrize("fmt", ["png", "jpeg", "pdf"])
def test_six_even_rows_are_told_apart(index, fmt):
    """3x4+3 and 6x2 both print six evenly spaced rows; the lead changes at 2.5 and 7.5 s of
    the rows of four (and none in the strips) tell them apart."""
    for layout in ("3x4+3", "6x2"):
        _, info = read_ecg(encode_record(_record(layout, fmt, index=index)))
        assert info["layout"] == layout, (layout, fmt, index)


def test_a_layout_it_does_not_support_is_refused_with_what_it_saw():
    with pytest.raises(IntakeError) as refused:
        read_ecg(four_strips_page())
    assert refused.value.reason == "unsupported_layout" and refused.value.status == 422
    assert "7 trace rows: 3 of 4 leads and 4 full-width strips" in refused.value.message


def test_a_thin_frame_and_a_qr_code_are_ignored():
    """A rendered page with a one-pixel frame around it and a QR code in its header."""
    record = _record("3x4+1")
    image = np.array(Image.open(io.BytesIO(encode_record(record))).convert("RGB"))
    image[[0, -1], :] = 0
    image[:, [0, -1]] = 0
    rng = np.random.default_rng(0)
    cells = rng.random((25, 25)) < 0.5
    image[20:120, -130:-30] = np.where(np.kron(cells, np.ones((4, 4), bool))[..., None], 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    signal, info = read_ecg(buffer.getvalue())
    assert info["layout"] == "3x4+1"
    assert all(signal.confidence.get(lead, 0.0) > 0.5 for lead in LEADS)


def test_only_straight_runs_over_half_the_page_are_frame():
    """Runs of at least half the width (or height) go; shorter runs and a row of dashes with as
    much ink stay. PIL's bools (255, not 1) count as ink once."""
    mask = np.zeros((60, 100), dtype=bool)
    mask[5, :] = True  # a frame line
    mask[10, 80:] = True  # 20 px at the edge (mirrored there: 40, under half)
    mask[20, ::2] = True  # 50 px of ink, in dashes
    mask[30, 10:70] = True  # a 60 px run: frame
    mask[:, 3] = True  # a frame column
    mask[40:52, 50] = True  # a short stroke
    pil = np.asarray(Image.fromarray(mask).convert("1"), dtype=bool)
    for m in (mask, pil):
        kept = _without_frame(m)
        # (an even filter length leaves a run's first pixel: a dot, no line)
        assert kept[5].sum() <= 1 and kept[30].sum() <= 1 and kept[:, 3].sum() <= 1
        assert kept[10, 80:].all() and kept[20, 4::2].all() and kept[40:52, 50].all()


def test_rows_are_a_block_of_leads_and_strips_below_it():
    """Candidate baselines (y, coverage): a header line at the rows' pitch and a grid remnant
    between rows are left out; a strip printed closer than the rows' pitch is kept."""
    ys = np.array([40, 100, 300, 500, 620])
    coverage = np.array([0.35, 0.9, 0.85, 0.88, 0.9])
    shape = _best_shape(ys, coverage)
    assert ys[shape.members].tolist() == [100, 300, 500, 620] and shape.block == 3
    ys = np.array([96, 167, 262, 326, 399, 443, 558])
    coverage = np.array([0.93, 0.49, 0.89, 0.67, 0.78, 0.91, 0.82])
    shape = _best_shape(ys, coverage)
    assert ys[shape.members].tolist() == [96, 262, 443, 558] and shape.block == 3
    twelve = 200 + 55 * np.arange(12) + np.array([0, 3, -4, 5, 0, -3, 4, 0, -5, 2, 0, 3])
    shape = _best_shape(twelve, np.full(12, 0.8))
    assert shape.block == 12 and len(shape.members) == 12


@pytest.mark.parametrize("strip", ["V1", "V5"])
def test_an_unlabelled_strip_never_stands_in_for_another_lead(strip):
    """A vector PDF's strip has no label the reader can use: its trace says which lead it is
    (the one whose own print it repeats), and a strip it cannot place is left out, never
    read as the layout's standard II."""
    record = _record("3x4+1", "pdf", (strip,), index=1)
    signal, info = read_ecg(encode_record(record))
    ten_seconds = [lead for lead in LEADS if signal.spans.get(lead) == (0.0, 10.0)]
    assert ten_seconds in ([strip], []), (ten_seconds, info["warnings"])
    assert signal.spans["II"] == (0.0, 2.5)  # lead II from its own print in the rows
    if ten_seconds:
        assert tuple(info["rhythm_leads"]) == (strip,)
        assert any(f"rhythm strip read as {strip}" in w for w in info["warnings"])


def test_a_dotted_grids_specks_do_not_start_the_rows_at_the_pictures_edge():
    """A phone photo of a dotted grid keeps some of its dots as ink, a millimetre apart:
    joined into one run of columns they started every row at the picture's left edge (and
    swallowed its pulse). The rows start where their trace does."""
    from ecgscreen.imaging.layout import find_layout

    mask = np.asarray(Image.open(io.BytesIO(encode_record(_record("3x4+1")))).convert("L")) < 100
    dotted = mask.copy()
    dotted[::4, ::4] = True  # a dot every millimetre at 4 px/mm, across the whole picture
    clean_starts = [row.x_start for row in find_layout(mask).rows]
    dotted_starts = [row.x_start for row in find_layout(dotted).rows]
    assert min(clean_starts) > 20
    assert np.allclose(dotted_starts, clean_starts, atol=3), (dotted_starts, clean_starts)
