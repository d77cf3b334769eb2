"""Training for format invariance: paired views, the signal distortions, the consistency term."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from signal_datasets import signal_loader, tiny_config, write_signal_dataset

from ecgscreen.training.data import EcgDataset, Recordings, load_data
from ecgscreen.training.loop import consistency_loss, train
from ecgscreen.training.signal_augment import SIGNAL_AUGMENTS, distort_signal


@pytest.fixture(scope="module")
def paired_dataset(tmp_path_factory):
    return write_signal_dataset(tmp_path_factory.mktemp("paired"), 40, seed=3, recordings=True)


def test_consistency_is_zero_for_one_answer_and_grows_with_disagreement():
    weights = {"scar": 0.7, "lvef": 0.3}
    a = torch.tensor([[2.0, -1.0, 0.5, 0.1], [0.0, 1.0, -2.0, 2.0]])
    assert float(consistency_loss(a, a.clone(), weights)) == pytest.approx(0.0, abs=1e-7)
    near, far = a + torch.tensor([0.0, 0.2, 0.0, 0.0]), a + torch.tensor([0.0, 2.0, 0.0, 0.0])
    assert 0 < float(consistency_loss(a, near, weights)) < float(consistency_loss(a, far, weights))
    assert float(consistency_loss(a, far, weights)) == pytest.approx(float(consistency_loss(far, a, weights)))


def test_signal_distortions_are_seeded_keep_nan_and_refuse_unknown_names():
    signal = np.sin(np.linspace(0, 60, 5000, dtype=np.float32))[None].repeat(12, axis=0)
    signal[3, :1000] = np.nan
    spec = dict.fromkeys(SIGNAL_AUGMENTS, 1.0)
    one = distort_signal(signal, spec, np.random.default_rng(5))
    two = distort_signal(signal, spec, np.random.default_rng(5))
    np.testing.assert_array_equal(one, two)
    assert np.isnan(one[3, :900]).all() and one.shape == signal.shape
    assert not np.allclose(np.nan_to_num(one), np.nan_to_num(signal))
    assert np.nanmax(np.abs(distort_signal(signal, {}, np.random.default_rng(5)) - signal)) == 0
    with pytest.raises(ValueError, match="unknown signal augmentation"):
        distort_signal(signal, {"warp": 1.0}, np.random.default_rng(0))


def test_a_paired_item_holds_the_file_view_and_the_recording_view(paired_dataset):
    data = load_data(paired_dataset, ["scar", "lvef"], 64, signal_loader)
    dataset = EcgDataset(data.cache, data.labels, data.splits["train"], data.tasks,
                         recordings=Recordings(data.labels), signal_augment={"gain": 1.0, "time": 1.0})  # fmt: skip
    item = dataset[0]
    assert item["image"].shape == item["image_b"].shape == (3, 64, 64)
    assert not torch.equal(item["image"], item["image_b"])  # distorted, so not the same picture
    assert torch.equal(dataset[0]["image_b"], item["image_b"])  # seeded per (seed, epoch, row)


def test_paired_training_runs_and_needs_the_recordings(paired_dataset, signal_dataset, tmp_path):
    cfg = tiny_config(fusion=False, paired=True, consistency=1.0, epochs=1)
    train(
        cfg, paired_dataset, tmp_path / "run", loader=signal_loader, cache_dir=tmp_path / "cache", threads=1
    )
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert np.isfinite(history[0]["train_loss"])
    with pytest.raises(ValueError, match="synth --save-signals"):
        train(
            cfg,
            signal_dataset,
            tmp_path / "run2",
            loader=signal_loader,
            cache_dir=tmp_path / "cache2",
            threads=1,
        )
    with pytest.raises(ValueError, match="paired: true"):
        tiny_config(consistency=1.0)
