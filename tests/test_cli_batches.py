"""One file never stops a batch: `ecgscreen preprocess` and `ecgscreen digitize` report a file
on which intake itself fails (a bug) as `internal`, a file that cannot be read as
`file_unreadable`, and go on with the rest (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import good_ecg
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from ecgscreen.cli import app
from ecgscreen.imaging import pipeline


@pytest.fixture
def batch(tmp_path, monkeypatch) -> list[Path]:
    """Four files; intake raises a plain RuntimeError on the second (the way the `TypeError`
    of issue 21 did, which no input can cause once it is fixed), the third cannot be read."""
    folder = tmp_path / "in"
    folder.mkdir()
    files = {
        "rest.dcm": Path(get_testdata_file("waveform_ecg.dcm")).read_bytes(),
        "creased.png": good_ecg("png", index=1),
        "gone.png": good_ecg("png"),
        "scan.png": good_ecg("png"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    poison, gone = files["creased.png"], folder / "gone.png"
    read_page = pipeline.read_page  # under both commands (read_ecg and preprocess call it)

    def failing_read_page(data, *args, **kwargs):
        if data == poison:
            raise RuntimeError("a bug in intake")
        return read_page(data, *args, **kwargs)

    read_bytes = Path.read_bytes

    def unreadable(path):
        if path == gone:
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    monkeypatch.setattr(pipeline, "read_page", failing_read_page)
    monkeypatch.setattr(Path, "read_bytes", unreadable)
    return [folder / name for name in files]


@pytest.mark.parametrize("command", ["preprocess", "digitize"])
def test_a_file_intake_fails_on_is_reported_as_internal_and_the_run_goes_on(batch, tmp_path, command):
    result = CliRunner().invoke(app, [command, *map(str, batch), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output  # files failed: said by the exit code, after all ran
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["file"] for line in lines] == [str(path) for path in batch]  # one line per file
    rest, creased, gone, scan = lines
    assert creased["error"] == "internal" and creased["status"] == 500
    assert "RuntimeError" in creased["detail"] and "a bug in intake" not in creased["detail"]
    assert (
        gone["error"] == "file_unreadable" and gone["status"] == 400 and "Permission denied" in gone["detail"]
    )
    assert "error" not in rest and "error" not in scan  # the files after the failures were done
    assert rest["source_format"] == "dicom-waveform" and scan["layout"]
    assert "2 of 4 files refused" in result.stderr


def test_preprocess_writes_the_reading_picture_of_answered_and_refused_pages(tmp_path):
    from ecgscreen.synth.not_ecg import not_ecg_corpus

    scrambled = next(data for name, data, _ in not_ecg_corpus() if name == "four-leads-scrambled")
    text = next(data for name, data, _ in not_ecg_corpus() if name == "text-page")
    files = {"good.png": good_ecg("png"), "scrambled.png": scrambled, "text.png": text}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    reading = tmp_path / "reading"
    result = CliRunner().invoke(
        app,
        [
            "preprocess",
            *(str(tmp_path / n) for n in files),
            "--out",
            str(tmp_path / "out"),
            "--reading",
            str(reading),
        ],
    )
    assert result.exit_code == 1, result.output
    lines = {Path(line["file"]).name: line for line in map(json.loads, result.stdout.splitlines())}
    assert lines["good.png"]["leads"]["II"]["status"] in ("read", "doubtful", "missing")
    assert lines["scrambled.png"]["error"] == "unreadable" and lines["text.png"]["error"] == "not_an_ecg"
    # A page read but refused still shows what was read; a page with nothing read has no picture.
    assert sorted(p.name for p in reading.iterdir()) == ["good.reading.png", "scrambled.reading.png"]
