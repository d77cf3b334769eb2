"""Labels, the canonical-image cache (parallel, keyed, reused, failure-tolerant), datasets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from signal_datasets import signal_loader, write_signal_dataset

from ecgscreen.imaging.canonical import signal_to_canonical, to_model_input
from ecgscreen.synth.generate import generate, make_record
from ecgscreen.training.data import EcgDataset, PipelineLoader, build_cache, loader_version, read_labels


class CountingLoader:
    """Counts its calls (in-process: workers=1)."""

    version = "counting-1"

    def __init__(self):
        self.calls = 0

    def __call__(self, data_dir, row, size):
        self.calls += 1
        return signal_loader(data_dir, row, size)


def failing_loader(data_dir, row, size):
    if row["path"] == "000002.npy":
        raise ValueError("unreadable page")
    return signal_loader(data_dir, row, size)


def waveform_loader(data_dir: Path, row: dict, size: int) -> np.ndarray:
    """DICOM 12-lead ECG Waveform Storage -> mV -> canonical image (pydicom reads it)."""
    ds = pydicom.dcmread(Path(data_dir) / row["path"])
    microvolts = ds.waveform_array(0)  # (samples, channels), sensitivity applied
    rate = float(ds.WaveformSequence[0].SamplingFrequency)
    return signal_to_canonical(microvolts.T / 1000.0, rate, size)


def test_labels_targets_clinical_and_splits(signal_dataset):
    labels = read_labels(signal_dataset)
    assert len(labels) == 40 and len(labels.sha256) == 64
    for i in (0, 7, 13):
        record = make_record(3, i, "easy")
        assert labels.targets("scar")[i] == int(record.patient.scar)
        assert labels.targets("lvef")[i] == int(record.patient.lvef < 50)
        assert labels.clinical()[i].tolist() == [float(record.patient.clinical[k]) for k in
                                                  ("age", "female_gender", "dm", "ht", "smoke", "dlp")]  # fmt: skip
    assert labels.split("val").tolist() == list(range(3, 40, 5))
    with pytest.raises(ValueError, match="'qt'"):
        labels.targets("qt")


def test_missing_clinical_values_are_nan(tmp_path):
    write_signal_dataset(tmp_path, 3, seed=1)
    rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
    rows[1]["dm"], rows[2]["age"] = "", ""
    with (tmp_path / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    clinical = read_labels(tmp_path).clinical()
    assert np.isnan(clinical[1, 2]) and np.isnan(clinical[2, 0]) and not np.isnan(clinical[0]).any()


def test_labels_need_the_study_columns(tmp_path):
    (tmp_path / "labels.csv").write_text("path,split\nx.png,train\n")
    with pytest.raises(ValueError, match="scar_cad"):
        read_labels(tmp_path)
    with pytest.raises(ValueError, match="no labels.csv"):
        read_labels(tmp_path / "nowhere")


def test_cache_holds_the_loader_output_and_is_reused(tmp_path, signal_dataset):
    labels = read_labels(signal_dataset)
    loader = CountingLoader()
    done = []
    cache = build_cache(labels, 64, loader, tmp_path, workers=1, progress=done.append)
    assert cache.images.shape == (40, 64, 64) and cache.images.dtype == np.uint8 and cache.ok.all()
    assert loader.calls == 40 and sum(done) == 40
    assert np.array_equal(cache.images[5], signal_loader(signal_dataset, labels.rows[5], 64))
    again = build_cache(labels, 64, loader, tmp_path, workers=1)
    assert loader.calls == 40 and again.path == cache.path  # nothing decoded twice
    other_size = build_cache(labels, 96, loader, tmp_path, workers=1)
    assert other_size.path != cache.path and loader.calls == 80
    loader.version = "counting-2"  # a new preprocessing version invalidates the cache
    assert build_cache(labels, 64, loader, tmp_path, workers=1).path != cache.path


def test_parallel_cache_equals_serial(tmp_path, signal_dataset):
    labels = read_labels(signal_dataset)
    serial = build_cache(labels, 64, signal_loader, tmp_path / "a", workers=1)
    parallel = build_cache(labels, 64, signal_loader, tmp_path / "b", workers=2)
    assert np.array_equal(np.asarray(serial.images), np.asarray(parallel.images))
    assert not list((tmp_path / "b").glob("*.tmp.npy"))  # the temporary file was renamed


def test_failed_rows_are_recorded_and_refused(tmp_path, signal_dataset):
    labels = read_labels(signal_dataset)
    cache = build_cache(labels, 64, failing_loader, tmp_path, workers=2)
    assert cache.ok.sum() == 39 and not cache.ok[2]
    assert "unreadable page" in cache.errors[2]
    reread = build_cache(labels, 64, failing_loader, tmp_path, workers=2)
    assert not reread.ok[2] and reread.errors == cache.errors
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        EcgDataset(cache, labels, [1, 2, 3])


def test_dataset_items_use_the_serving_normalisation(tmp_path, signal_dataset):
    from ecgscreen.training.augment import build_augment

    labels = read_labels(signal_dataset)
    cache = build_cache(labels, 64, signal_loader, tmp_path, workers=1)
    plain = EcgDataset(cache, labels, labels.split("train"), ("scar", "lvef"))
    item = plain[1]
    row = int(labels.split("train")[1])
    assert item["index"] == row and item["image"].shape == (3, 64, 64)
    assert torch.equal(item["image"], torch.from_numpy(to_model_input(np.asarray(cache.images[row]))))
    assert item["targets"].tolist() == [labels.targets("scar")[row], labels.targets("lvef")[row]]
    augment = build_augment({"blur": 1.0, "brightness_contrast": 1.0})
    aug = EcgDataset(cache, labels, labels.split("train"), ("lvef",), augment, seed=5)
    first = aug[1]["image"]
    assert not torch.equal(first, item["image"]) and torch.equal(first, aug[1]["image"])
    aug.set_epoch(1)
    assert not torch.equal(first, aug[1]["image"])
    assert aug[1]["targets"].tolist() == [labels.targets("lvef")[row]]


def test_dicom_waveform_files_through_an_injected_loader(tmp_path):
    generate(6, seed=4, out=tmp_path, formats=("dcm-waveform",), workers=1)
    labels = read_labels(tmp_path)
    cache = build_cache(labels, 96, waveform_loader, workers=2)
    assert cache.path.parent == tmp_path / ".cache" and cache.ok.all()
    for i in range(6):  # the stored waveform (1 uV steps) draws the generator's signal
        direct = signal_to_canonical(make_record(4, i, formats=("dcm-waveform",)).signal, 500, 96)
        assert np.abs(cache.images[i].astype(int) - direct).mean() < 1.0


def test_pipeline_loader_names_its_version_lazily():
    loader = PipelineLoader()
    assert loader_version(signal_loader) == "signal_datasets.signal_loader"
    assert loader_version(CountingLoader()) == "counting-1"
    try:
        import ecgscreen.imaging.pipeline  # noqa: F401
    except ImportError:  # the intake lands on another branch: only calling the loader needs it
        with pytest.raises(ImportError):
            _ = loader.version
    else:
        assert loader.version.startswith("pipeline-")
