"""The 12-lead signal of an ECG file as files: what ``ecgscreen digitize`` writes, and reads back.

Three formats, each with its reader next to its writer:
- ``dcm``: a DICOM 12-lead ECG Waveform object (``waveform_dicom``), NaN stored as 0 and the
  printed spans in its annotations;
- ``csv``: one row per sample, ``time_s`` and the 12 leads in mV, an empty cell where a lead
  holds no value;
- ``npz``: ``signal`` (12, N) float32 mV with NaN, ``sample_rate`` (Hz), ``leads``.
CSV and NPZ come with a JSON sidecar ``NAME.json``: the leads, sample rate, units, each lead's
printed span and confidence, the gain source, the warnings, and ``read_ecg``'s info record
(source format, layout, rotation, grid, quality). Nothing read from the file's text is in it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ..leads import LEADS
from ..pacs.multipart import part10
from .signal import EcgSignal
from .waveform_dicom import digitised_waveform

__all__ = ["FORMATS", "sidecar", "write_signal", "read_signal_file"]

FORMATS = ("dcm", "csv", "npz")
_EXTENSIONS = {"dcm": ".dcm", "csv": ".csv", "npz": ".npz"}
_INTENDED_USE = "research use only, not for diagnosis"


def sidecar(signal: EcgSignal, info: dict) -> dict:
    """The JSON sidecar of a CSV or NPZ signal: the signal's facts and the intake's info record
    (without its timing, which says nothing about the ECG)."""
    warnings = list(info.get("warnings", []))
    warnings += [w for w in signal.warnings if w not in warnings]
    record = {k: v for k, v in info.items() if k not in ("elapsed_ms", "warnings", "sample_rate_hz")}
    if "sample_rate_hz" in info:  # a waveform source's own rate; the signal is resampled
        record["source_sample_rate_hz"] = info["sample_rate_hz"]
    return {
        **record,
        "leads": list(LEADS),
        "sample_rate_hz": signal.sample_rate,
        "n_samples": int(signal.values.shape[1]),
        "units": "mV",
        "spans_s": {
            lead: [round(t, 6) for t in signal.spans[lead]] for lead in LEADS if lead in signal.spans
        },
        "confidence": {lead: signal.confidence.get(lead, 0.0) for lead in LEADS},
        "gain_source": signal.gain_source,
        "warnings": warnings,
        "intended_use": _INTENDED_USE,
    }


def _csv_bytes(signal: EcgSignal) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time_s", *LEADS])
    # 0.1 uV steps: finer than any printout or cart resolves; NaN becomes an empty cell.
    cells = np.char.mod("%.4f", np.nan_to_num(signal.values.T, nan=0.0)).astype(object)
    cells[np.isnan(signal.values.T)] = ""
    times = np.char.mod("%.4f", np.arange(signal.values.shape[1]) / signal.sample_rate)
    writer.writerows([time, *row] for time, row in zip(times.tolist(), cells.tolist(), strict=True))
    return buffer.getvalue().encode()


def write_signal(signal: EcgSignal, info: dict, source: bytes, stem: Path, fmt: str) -> list[Path]:
    """Write the signal ``read_ecg`` made of the file ``source`` as ``stem`` + the format's
    extension (and ``stem.json`` for CSV and NPZ); return the paths written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown signal format {fmt!r}; choose from {', '.join(FORMATS)}")
    target = stem.with_name(stem.name + _EXTENSIONS[fmt])
    if fmt == "dcm":
        target.write_bytes(part10(digitised_waveform(signal, info["source_format"], source)))
        return [target]
    if fmt == "csv":
        target.write_bytes(_csv_bytes(signal))
    else:
        np.savez_compressed(
            target,
            signal=signal.values.astype(np.float32),
            sample_rate=np.float64(signal.sample_rate),
            leads=np.array(LEADS),
        )
    meta = stem.with_name(stem.name + ".json")
    meta.write_text(json.dumps(sidecar(signal, info), indent=1) + "\n")
    return [target, meta]


def _from_sidecar(values: np.ndarray, sample_rate: float, meta: dict) -> EcgSignal:
    return EcgSignal(
        values.astype(np.float32),
        sample_rate,
        {lead: (float(t0), float(t1)) for lead, (t0, t1) in meta.get("spans_s", {}).items()},
        {lead: float(c) for lead, c in meta.get("confidence", {}).items()},
        meta.get("gain_source", "waveform"),
        list(meta.get("warnings", [])),
    )


def read_signal_file(path: Path) -> EcgSignal:
    """The signal in a CSV or NPZ file :func:`write_signal` wrote, with its sidecar's spans,
    confidence, gain source and warnings."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            if [str(lead) for lead in arrays["leads"]] != list(LEADS):
                raise ValueError(f"{path.name}: leads {list(arrays['leads'])} are not {list(LEADS)}")
            return _from_sidecar(arrays["signal"], float(arrays["sample_rate"]), meta)
    if path.suffix != ".csv":
        raise ValueError(f"{path.name}: expected a .csv or .npz signal file")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != ["time_s", *LEADS]:
        raise ValueError(f"{path.name}: the header is not time_s and the 12 leads")
    cells = np.array(rows[1:], dtype=object)
    values = np.where(cells[:, 1:] == "", "nan", cells[:, 1:]).astype(np.float64).T
    times = cells[:, 0].astype(np.float64)
    rate = meta.get("sample_rate_hz") or (1.0 / float(np.median(np.diff(times))))
    return _from_sidecar(values, float(rate), meta)
