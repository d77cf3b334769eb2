"""``ecgscreen screen``: what it reads, the results CSV (columns, resume, a killed run), and an
archive screened against the real embedded Triton (answers equal Triton's, refusals keep
intake's reason, heatmaps and DICOM results written)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tritonclient.grpc as grpcclient
from corpus import good_ecg
from PIL import Image
from typer.testing import CliRunner

from ecgscreen.card import ModelCard
from ecgscreen.cli import app
from ecgscreen.contract import ENSEMBLE_INPUT, ENSEMBLE_NAME, ENSEMBLE_PROBABILITY, MODEL_NAME
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.limits import DEFAULT_LIMITS
from ecgscreen.screen.client import Answer
from ecgscreen.screen.ledger import COLUMNS, Ledger
from ecgscreen.screen.outputs import refusal_fields, row_fields
from ecgscreen.screen.runner import screen
from ecgscreen.screen.sources import find_sources
from ecgscreen.serving.triton import DEFAULT_REPOSITORY

CARD = ModelCard.load(DEFAULT_REPOSITORY / MODEL_NAME)


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# -- sources -----------------------------------------------------------------------------------


def test_a_folder_is_searched_recursively_without_hidden_files_csvs_or_outputs(tmp_path):
    for name in ("b.png", "a/c.pdf", "a/deeper/d.dcm", ".hidden.png", "a/.cache/e.png", "labels.csv",
                 "out/heatmap.png"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = find_sources(tmp_path, skip=(tmp_path / "out",))
    assert [key for key, _ in found] == ["a/c.pdf", "a/deeper/d.dcm", "b.png"]
    assert all(path == tmp_path / key for key, path in found)


def test_a_list_file_and_a_labels_csv_name_their_files(tmp_path):
    (tmp_path / "list.txt").write_text("# an archive\n\nx/1.png\n/abs/2.pdf\nx/1.png\n")
    assert find_sources(tmp_path / "list.txt") == [
        ("x/1.png", tmp_path / "x/1.png"),
        ("/abs/2.pdf", Path("/abs/2.pdf")),
    ]
    (tmp_path / "labels.csv").write_text("path,scar_cad\n000001.png,1\n000002.pdf,0\n")
    assert [k for k, _ in find_sources(tmp_path / "labels.csv")] == ["000001.png", "000002.pdf"]
    (tmp_path / "other.csv").write_text("file,scar\n1.png,1\n")
    with pytest.raises(ValueError, match="no 'path' column"):
        find_sources(tmp_path / "other.csv")
    with pytest.raises(ValueError, match="does not exist"):
        find_sources(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="names no file"):
        find_sources(tmp_path / "empty")


# -- the results CSV ---------------------------------------------------------------------------


def test_the_csv_keeps_finished_rows_and_drops_one_a_kill_cut_short(tmp_path):
    out = tmp_path / "results.csv"
    with Ledger(out) as ledger:
        ledger.append({"path": "a.png", "outcome": "ok", "status": 200, "scar_probability": "0.5"})
        ledger.append({"path": "b.pdf", "outcome": "refused", "status": 415, "reason": "unsupported_format"})
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    with out.open("a") as f:
        f.write("c.dcm,ok,200,,0.12")  # the row being written when the process was killed
    with Ledger(out) as ledger:
        assert ledger.done == {"a.png": "ok", "b.pdf": "refused"}
        ledger.append({"path": "c.dcm", "outcome": "ok", "status": 200})
    assert [r["path"] for r in rows(out)] == ["a.png", "b.pdf", "c.dcm"]
    (tmp_path / "foreign.csv").write_text("path,prob\na.png,0.3\n")
    with pytest.raises(ValueError, match="not an ecgscreen results file"):
        Ledger(tmp_path / "foreign.csv")
    (tmp_path / "cut.csv").write_text("path,outc")  # killed while writing the header
    with Ledger(tmp_path / "cut.csv") as ledger:
        assert ledger.done == {}
    assert (tmp_path / "cut.csv").read_text() == ",".join(COLUMNS) + "\n"


def test_row_fields_call_at_the_cards_thresholds_and_give_the_studys_risk_bands():
    threshold = CARD.threshold("scar")
    answer = Answer({"scar": threshold + 1e-4, "lvef": 0.75}, {"source_format": "pdf", "layout": "6x2",
                    "quality": 0.97, "warnings": ["a", "b"]})  # fmt: skip
    fields = row_fields(answer, CARD)
    assert fields["scar_call"] == 1 and fields["lvef_call"] == int(0.75 >= CARD.threshold("lvef"))
    assert fields["scar_risk"] == ("low" if threshold < 0.3 else "medium") and fields["lvef_risk"] == "high"
    assert fields["warnings"] == "a; b" and fields["layout"] == "6x2" and fields["outcome"] == "ok"
    below = row_fields(Answer({"scar": threshold - 1e-4, "lvef": 0.1}, {}), CARD)
    assert below["scar_call"] == 0 and below["lvef_risk"] == "low"
    refused = refusal_fields(IntakeError("pdf_encrypted", "the PDF is encrypted"))
    assert refused == {
        "outcome": "refused",
        "status": 422,
        "reason": "pdf_encrypted",
        "detail": "the PDF is encrypted",
    }
    assert refusal_fields(IntakeError("internal", "bug"))["outcome"] == "error"


# -- against the real Triton -------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("archive")
    (folder / "2024" / "ward").mkdir(parents=True)
    (folder / "2024" / "ward" / "scan.png").write_bytes(good_ecg("png"))
    (folder / "2024" / "cart.pdf").write_bytes(good_ecg("pdf", index=1))
    (folder / "waveform.dcm").write_bytes(good_ecg("dcm-waveform", index=2))
    png = good_ecg("png", index=3)
    (folder / "truncated.png").write_bytes(png[: len(png) * 6 // 10])
    (folder / "notes.txt").write_bytes(b"this is not an ECG\n" * 20)
    (folder / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(DEFAULT_LIMITS.max_bytes))
    return folder


def triton_probabilities(triton, data: bytes) -> dict[str, float]:
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    tensor = grpcclient.InferInput(ENSEMBLE_INPUT, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    names = list(ENSEMBLE_PROBABILITY.values())
    result = client.infer(
        ENSEMBLE_NAME, [tensor], outputs=[grpcclient.InferRequestedOutput(n) for n in names]
    )
    return {task: float(result.as_numpy(name)[0, 0]) for task, name in ENSEMBLE_PROBABILITY.items()}


@pytest.mark.integration
def test_an_archive_is_screened_into_one_row_per_file(triton, archive, tmp_path):
    out, explain, dicom = tmp_path / "results.csv", tmp_path / "heatmaps", tmp_path / "dicom"
    reading = tmp_path / "reading"
    summary = screen(find_sources(archive), out, CARD, triton.grpc_url, concurrency=3,
                     explain_dir=explain, dicom_dir=dicom, reading_dir=reading)  # fmt: skip
    pictures = sorted(str(p.relative_to(reading)) for p in reading.rglob("*.reading.png"))
    assert pictures == [
        "2024/cart.pdf.reading.png",
        "2024/ward/scan.png.reading.png",
        "waveform.dcm.reading.png",
    ]
    table = {row["path"]: row for row in rows(out)}
    assert list(rows(out)[0]) == list(COLUMNS)
    assert set(table) == {
        "2024/ward/scan.png",
        "2024/cart.pdf",
        "waveform.dcm",
        "truncated.png",
        "notes.txt",
        "huge.png",
    }
    refused = {k: (r["outcome"], r["status"], r["reason"]) for k, r in table.items() if r["outcome"] != "ok"}
    assert refused == {
        "truncated.png": ("refused", "400", "truncated"),
        "notes.txt": ("refused", "415", "unsupported_format"),
        "huge.png": ("refused", "413", "too_large"),
    }
    assert all(table[k]["detail"] and not table[k]["scar_probability"] for k in refused)
    for key in ("2024/ward/scan.png", "2024/cart.pdf", "waveform.dcm"):
        row, expected = table[key], triton_probabilities(triton, (archive / key).read_bytes())
        for task in ("scar", "lvef"):
            assert float(row[f"{task}_probability"]) == pytest.approx(expected[task], abs=2e-6)
            assert int(row[f"{task}_call"]) == int(expected[task] >= CARD.threshold(task))
        assert row["status"] == "200" and float(row["quality"]) > 0.5 and row["layout"]
        for task in ("scar", "lvef"):
            with Image.open(explain / f"{key}.{task}.png") as picture:
                assert picture.size == (768, 816)  # the gateway's /explain picture
            assert pydicom.dcmread(dicom / f"{key}.{task}.sc.dcm").Modality == "OT"
        sr = pydicom.dcmread(dicom / f"{key}.sr.dcm")
        assert sr.Modality == "SR" and sr.ContentQualification == "RESEARCH"
    assert table["2024/cart.pdf"]["source_format"] == "pdf" and table["waveform.dcm"]["layout"] == "waveform"
    assert summary.outcomes == {"ok": 3, "refused": 3} and summary.skipped == 0 and not summary.unanswered
    assert summary.refusals == {"truncated": 1, "unsupported_format": 1, "too_large": 1}
    assert summary.positives["scar"] == sum(int(table[k]["scar_call"] or 0) for k in table)

    before = out.read_bytes()
    again = screen(find_sources(archive), out, CARD, triton.grpc_url)  # resume: nothing left
    assert again.skipped == 6 and again.screened == 0 and out.read_bytes() == before


@pytest.mark.integration
def test_a_killed_run_resumes_losing_only_the_files_in_flight(triton, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(14):
        (archive / f"{i:02d}.png").write_bytes(good_ecg("png", index=i % 4))
    out = tmp_path / "results.csv"
    command = [sys.executable, "-m", "ecgscreen.cli", "screen", str(archive), "--out", str(out),
               "--url", triton.grpc_url, "--concurrency", "1"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 4):
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    written = rows(out)
    assert 3 <= len(written) < 14, "the run was not stopped midway"
    summary = screen(find_sources(archive), out, CARD, triton.grpc_url, concurrency=2)
    final = rows(out)
    assert sorted(r["path"] for r in final) == [f"{i:02d}.png" for i in range(14)]  # each once
    assert final[: len(written)] == written  # what the killed run wrote stays as it was
    assert summary.skipped == len(written) and summary.screened == 14 - len(written)


@pytest.mark.integration
def test_the_command_says_what_is_wrong(triton, tmp_path):
    result = CliRunner().invoke(app, ["screen", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and f"{tmp_path / 'nowhere'} does not exist" in result.output
    (tmp_path / "a.png").write_bytes(good_ecg("png"))
    result = CliRunner().invoke(
        app, ["screen", str(tmp_path), "--out", str(tmp_path / "r.csv"), "--url", "127.0.0.1:1"]
    )
    assert result.exit_code == 2 and "not reachable" in result.output
    result = CliRunner().invoke(
        app, ["screen", str(tmp_path), "--out", str(tmp_path / "r.csv"), "--url", triton.grpc_url]
    )
    assert result.exit_code == 0, result.output
    assert "ok this run" in result.output and rows(tmp_path / "r.csv")[0]["outcome"] == "ok"


@pytest.mark.integration
def test_files_in_flight_spread_over_several_connections(triton):
    """A Kubernetes Service balances connections: 8 files in flight use 2 of them, not 1."""
    import asyncio

    import psutil

    from ecgscreen.screen.client import PER_CONNECTION, ScreenClient

    port = int(triton.grpc_url.rsplit(":", 1)[1])
    data = good_ecg("dcm-waveform")

    async def run() -> tuple[int, set[float]]:
        client = ScreenClient(triton.grpc_url, tuple(CARD.tasks), connections=8 // PER_CONNECTION)
        try:
            answers = await asyncio.gather(*(client.screen(data, lane) for lane in range(8)))
            mine = [c for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == port]
            return len([c for c in mine if c.status == psutil.CONN_ESTABLISHED]), {
                a.probability["scar"] for a in answers
            }
        finally:
            await client.close()

    connections, answers = asyncio.run(run())
    assert connections == 2 and len(answers) == 1
