"""The digitised signal as CSV / NPZ with a JSON sidecar: written and read back unchanged
(NaN where a lead was not printed), the sidecar carries the intake's facts and no timing."""

from __future__ import annotations

import csv
import json
from functools import lru_cache

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from ecgscreen.imaging.pipeline import read_ecg
from ecgscreen.imaging.signal_io import read_signal_file, sidecar, write_signal
from ecgscreen.leads import LEADS
from ecgscreen.synth.generate import encode_record, make_record


@lru_cache(maxsize=1)
def printed() -> tuple:
    data = encode_record(make_record(11, 0, formats=("pdf",), layouts=("3x4+1",)))
    signal, info = read_ecg(data)
    info["elapsed_ms"] = 12.3  # as preprocess adds it: not a fact about the ECG
    return data, signal, info


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_csv_and_npz_round_trip_with_their_sidecar(tmp_path, fmt):
    data, signal, info = printed()
    written = write_signal(signal, info, data, tmp_path / "ecg", fmt)
    assert [p.name for p in written] == [f"ecg.{fmt}", "ecg.json"]
    back = read_signal_file(written[0])
    np.testing.assert_array_equal(np.isnan(back.values), np.isnan(signal.values))
    assert np.isnan(signal.values).any() and back.sample_rate == 500
    tolerance = 5e-5 + 1e-6 if fmt == "csv" else 0.0  # CSV keeps 0.1 uV (and float32 its own ulp)
    finite = np.isfinite(signal.values)
    assert np.abs(back.values[finite] - signal.values[finite]).max() <= tolerance
    assert back.spans == signal.spans and back.confidence == signal.confidence
    assert back.gain_source == signal.gain_source == "pulse"


def test_the_csv_has_time_and_the_twelve_leads_and_leaves_unprinted_cells_empty(tmp_path):
    data, signal, info = printed()
    path = write_signal(signal, info, data, tmp_path / "ecg", "csv")[0]
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["time_s", *LEADS] and len(rows) == 1 + signal.values.shape[1]
    assert rows[2][0] == "0.0020"  # 500 Hz
    # At 1 s only I, II and III are printed (plus the rhythm strip's lead II).
    at_one_second = dict(zip(rows[0], rows[1 + 500], strict=True))
    assert at_one_second["I"] and at_one_second["II"] and at_one_second["III"]
    assert at_one_second["V1"] == "" and at_one_second["aVR"] == ""


def test_the_sidecar_says_what_the_intake_found_without_timing():
    data, signal, info = printed()
    meta = sidecar(signal, info)
    assert meta["leads"] == list(LEADS) and meta["sample_rate_hz"] == 500 and meta["units"] == "mV"
    assert meta["spans_s"]["V1"] == [5.0, 7.5] and meta["gain_source"] == "pulse"
    assert meta["source_format"] == "pdf" and meta["layout"] == "3x4+1"
    assert set(meta["confidence"]) == set(LEADS) and "elapsed_ms" not in meta
    assert "research use" in meta["intended_use"]
    json.dumps(meta)  # plain JSON


def test_a_waveform_sources_own_rate_does_not_replace_the_signals_rate():
    data = open(get_testdata_file("waveform_ecg.dcm"), "rb").read()
    signal, info = read_ecg(data)
    meta = sidecar(signal, info)
    assert meta["sample_rate_hz"] == 500 and meta["source_sample_rate_hz"] == 1000
    assert meta["n_samples"] == 5000


def test_unknown_formats_and_files_are_refused(tmp_path):
    data, signal, info = printed()
    with pytest.raises(ValueError, match="unknown signal format 'mat'"):
        write_signal(signal, info, data, tmp_path / "ecg", "mat")
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(ValueError, match="expected a .csv or .npz"):
        read_signal_file(tmp_path / "other.txt")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        read_signal_file(tmp_path / "bad.csv")
