"""`ecgscreen digitize FILE... --out DIR [--format dcm|csv|npz]`: every good file's signal
written and readable, a bad file refused with the reason `preprocess` gives, the run going on,
exit code 1 when any file was refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from corpus import corrupt_png
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from ecgscreen.cli import app
from ecgscreen.imaging.pipeline import read_ecg
from ecgscreen.imaging.signal_io import read_signal_file
from ecgscreen.imaging.waveform_dicom import read_digitised
from ecgscreen.synth.generate import encode_record, make_record


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    files = {
        "rest.dcm": Path(get_testdata_file("waveform_ecg.dcm")).read_bytes(),
        "cart.pdf": encode_record(make_record(11, 0, formats=("pdf",), layouts=("3x4+1",))),
        "broken.png": corrupt_png(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


def _run(files: list[Path], out: Path, *options: str):
    result = CliRunner().invoke(app, ["digitize", *map(str, files), "--out", str(out), *options])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, lines


def test_dicom_output_for_each_good_file_and_the_refusal_of_a_corrupt_one(tmp_path):
    files = _inputs(tmp_path / "in")
    result, lines = _run(files, tmp_path / "out")
    assert result.exit_code == 1, result.output  # one file refused, as preprocess does
    assert [line["file"] for line in lines] == [str(f) for f in files]  # one JSON line per file
    rest, cart, broken = lines
    assert broken["error"] == "corrupt" and broken["status"] == 400 and broken["detail"]
    assert "broken.png: refused (corrupt)" in result.stderr
    assert "1 of 3 files refused" in result.stderr
    assert rest["source_format"] == "dicom-waveform" and cart["layout"] == "3x4+1"
    assert rest["outputs"] == [str(tmp_path / "out" / "rest.dcm")] and "elapsed_ms" in rest
    for line, source in ((rest, files[0]), (cart, files[1])):
        written = Path(line["outputs"][0]).read_bytes()
        signal, _ = read_ecg(source.read_bytes())
        back = read_digitised(written)
        np.testing.assert_array_equal(np.isnan(back.values), np.isnan(signal.values))
        finite = np.isfinite(signal.values)
        assert np.abs(back.values[finite] - signal.values[finite]).max() <= 1.25e-3 + 1e-6
    ds = pydicom.dcmread(io.BytesIO(Path(rest["outputs"][0]).read_bytes()))
    assert ds.PatientID == "642341" and ds.WaveformSequence[0].WaveformOriginality == "DERIVED"
    assert not (tmp_path / "out" / "broken.dcm").exists()


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_csv_and_npz_outputs_come_with_a_sidecar(tmp_path, fmt):
    files = _inputs(tmp_path / "in")[:2]
    result, lines = _run(files, tmp_path / "out", "--format", fmt)
    assert result.exit_code == 0, result.output
    for line, source in zip(lines, files, strict=True):
        data, meta = (Path(p) for p in line["outputs"])
        assert data.suffix == f".{fmt}" and meta.name == f"{source.stem}.json"
        sidecar = json.loads(meta.read_text())
        assert sidecar["sample_rate_hz"] == 500 and sidecar["source_format"] == line["source_format"]
        signal, _ = read_ecg(source.read_bytes())
        back = read_signal_file(data)
        np.testing.assert_array_equal(np.isnan(back.values), np.isnan(signal.values))


def test_two_inputs_with_the_same_name_write_two_outputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pdf, dcm = folder / "ecg.pdf", folder / "ecg.dcm"
    pdf.write_bytes(encode_record(make_record(11, 0, formats=("pdf",))))
    dcm.write_bytes(Path(get_testdata_file("waveform_ecg.dcm")).read_bytes())
    result, lines = _run([pdf, dcm], tmp_path / "out", "--format", "npz")
    assert result.exit_code == 0, result.output
    outputs = [line["outputs"][0] for line in lines]
    assert [Path(p).name for p in outputs] == ["ecg.npz", "ecg-dcm.npz"]
    assert read_signal_file(Path(outputs[1])).spans["V1"] == (0.0, 10.0)  # the waveform's


def test_an_unknown_format_is_a_usage_error(tmp_path):
    files = _inputs(tmp_path / "in")[:1]
    result, _ = _run(files, tmp_path / "out", "--format", "edf")
    assert result.exit_code == 2 and "unknown format 'edf'" in result.output
