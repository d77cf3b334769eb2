"""`ecgscreen synth` writes files that independent readers accept, with truthful labels."""

import csv
import filecmp
import io
from collections import Counter

import numpy as np
import pydicom
import pypdfium2 as pdfium
import pytest
from PIL import Image
from typer.testing import CliRunner

from ecgscreen import dicom_codes
from ecgscreen.cli import app
from ecgscreen.leads import LAYOUTS, LEADS, RHYTHM_LEADS
from ecgscreen.synth.generate import FORMATS, LABEL_COLUMNS, LAYOUT_MIX, generate, make_record
from ecgscreen.synth.printout import GRIDS, LABEL_PLACES, PAPERS

STUDY_COLUMNS = ["path", "scar_cad", "lvef", "female_gender", "dm", "ht", "smoke", "dlp", "age", "split"]
RENDER_COLUMNS = ["format", "layout", "grid", "rotation_deg", "paper_speed", "gain", "scar_territory"]
SOP_BY_FORMAT = {
    "dcm-pdf": dicom_codes.SOP_ENCAPSULATED_PDF,
    "dcm-sc": dicom_codes.SOP_SECONDARY_CAPTURE,
    "dcm-waveform": dicom_codes.SOP_12_LEAD_ECG,
}


def read_labels(folder):
    with (folder / "labels.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(48, seed=11, out=out, save_signals=True, workers=2)
    return out, read_labels(out)


def test_labels_have_the_study_columns_then_the_rendering_truth(dataset):
    _, rows = dataset
    assert list(rows[0])[: len(STUDY_COLUMNS)] == STUDY_COLUMNS
    assert set(RENDER_COLUMNS) <= set(rows[0]) and list(rows[0]) == list(LABEL_COLUMNS)
    assert {r["format"] for r in rows} == set(FORMATS)
    printed = [r for r in rows if r["format"] != "dcm-waveform"]
    assert {r["layout"] for r in printed} == set(LAYOUTS)
    assert {r["grid"] for r in printed} <= set(GRIDS)
    for r in printed:
        assert r["paper_speed"] == "25"
        # 12x1 pages print at half gain or, overlapping their neighbours, at the standard 10
        assert r["gain"] in (("5", "10") if r["layout"] == "12x1" else ("10",))
        assert r["calibration_pulse"] in ("0", "1") and r["labels"] in LABEL_PLACES
        strips = tuple(r["rhythm_leads"].split(";")) if r["rhythm_leads"] else ()
        assert len(strips) == len(RHYTHM_LEADS[r["layout"]]) and set(strips) <= set(LEADS)
    assert {r["split"] for r in rows} <= {"train", "val", "test"}


def test_every_file_decodes_with_an_independent_reader(dataset):
    out, rows = dataset
    for r in rows:
        data = (out / r["path"]).read_bytes()
        if r["paper"]:  # the page's size, as its design printed it
            width, height = PAPERS[r["paper"]]
            page_w_in, page_h_in = width / 25.4, float(r["crop_mm"] or height) / 25.4
        fmt = r["format"]
        if fmt in ("png", "jpeg"):
            image = Image.open(io.BytesIO(data))
            image.load()
            assert image.format == {"png": "PNG", "jpeg": "JPEG"}[fmt]
            dpi = int(r["dpi"])
            assert image.size == (round(page_w_in * dpi), round(page_h_in * dpi))
        elif fmt == "pdf":
            doc = pdfium.PdfDocument(data)
            assert len(doc) == 1
            w, h = doc[0].get_size()
            assert (w, h) == pytest.approx((page_w_in * 72, page_h_in * 72), abs=0.5)
        else:
            ds = pydicom.dcmread(io.BytesIO(data))
            assert ds.SOPClassUID == SOP_BY_FORMAT[fmt]
            assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
            if fmt == "dcm-pdf":
                assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
                pdf = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
                assert len(pdfium.PdfDocument(pdf)) == 1
            elif fmt == "dcm-sc":
                pixels = ds.pixel_array
                dpi = int(r["dpi"])
                assert pixels.shape[:2] == (round(page_h_in * dpi), round(page_w_in * dpi))
            else:
                signal = np.load(out / "signals" / r["path"].replace(".dcm", ".npy"))
                waveform = ds.waveform_array(0)  # microvolts, sensitivity applied
                assert waveform.shape == (5000, 12)
                np.testing.assert_allclose(waveform.T / 1000.0, signal, atol=0.0013)
                names = [
                    ch.ChannelSourceSequence[0].CodeMeaning
                    for ch in ds.WaveformSequence[0].ChannelDefinitionSequence
                ]
                assert [n.split()[1] for n in names] == list(LEADS)


def test_same_seed_gives_byte_identical_dataset_on_any_worker_count(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(14, seed=5, out=a, save_signals=True, workers=1)
    generate(14, seed=5, out=b, save_signals=True, workers=2)
    generate(14, seed=6, out=c, save_signals=True, workers=2)
    files = sorted(p.name for p in a.iterdir() if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors and len(match) == 15  # 14 ECGs + labels.csv
    signals = sorted(p.name for p in (a / "signals").iterdir())
    _, mismatch, _ = filecmp.cmpfiles(a / "signals", b / "signals", signals, shallow=False)
    assert not mismatch
    assert (a / "labels.csv").read_bytes() != (c / "labels.csv").read_bytes()


def test_pathology_columns_agree_with_labels(dataset):
    _, rows = dataset
    for r in rows:
        assert bool(r["scar_territory"]) == (r["scar_cad"] == "1")
        assert 15 <= float(r["lvef"]) <= 78


def test_cli_writes_a_dataset_and_refuses_unknown_options(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "synth",
            "--n",
            "3",
            "--seed",
            "2",
            "--out",
            str(tmp_path / "d"),
            "--formats",
            "png,pdf",
            "--layouts",
            "6x2",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = read_labels(tmp_path / "d")
    assert len(rows) == 3 and {r["layout"] for r in rows} == {"6x2"}
    assert {r["format"] for r in rows} <= {"png", "pdf"}
    bad = runner.invoke(app, ["synth", "--n", "3", "--out", str(tmp_path / "e"), "--formats", "gif"])
    assert bad.exit_code == 2 and "unknown format gif" in bad.output


def test_layouts_follow_the_world_mix_and_keep_older_draws():
    """Every layout and strip lead of ``LAYOUT_MIX`` is drawn, 3x4+1 the most often (as in the
    world's pictures); a subset of the older layouts draws exactly as before."""
    records = [make_record(3, i) for i in range(300)]
    drawn = Counter((r.style.layout, r.style.strip_leads) for r in records)
    assert set(drawn) == set(LAYOUT_MIX)
    per_layout = Counter(r.style.layout for r in records)
    assert per_layout.most_common(1)[0][0] == "3x4+1"
    for r in records[:20]:
        old = make_record(3, r.index, layouts=("3x4+1", "6x2", "12x1"), world_pages=False)
        r = make_record(3, r.index, world_pages=False)  # the world's pages are drawn after these
        assert old.style.grid == r.style.grid and old.split == r.split
        assert old.style.layout in ("3x4+1", "6x2", "12x1") and old.style.rhythm_leads is None
