"""Training: the loss falls, runs are seeded, resume continues exactly, early stopping stops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from signal_datasets import signal_loader, tiny_config

from ecgscreen.training.checkpoint import load_checkpoint, load_run_model
from ecgscreen.training.config import TrainConfig, load_config, packaged_configs
from ecgscreen.training.loop import Callbacks, MultiTaskLoss, class_weights, lr_factor, train


class Interrupt(Exception):
    pass


class StopAfterFirstEpoch(Callbacks):
    def epoch(self, record):
        raise Interrupt


def run(tmp_path, dataset, name, callbacks=None, resume=False, **overrides):
    cfg = tiny_config(**{"fusion": False, "augment": "{}", **overrides})
    return train(cfg, dataset, tmp_path / name, loader=signal_loader, cache_dir=tmp_path / "cache",
                 resume=resume, callbacks=callbacks, threads=1)  # fmt: skip


def history(path):
    return json.loads((path / "history.json").read_text())


def test_loss_falls_and_the_run_is_complete(tiny_run):
    h = history(tiny_run)
    assert len(h) == 2 and h[1]["train_loss"] < h[0]["train_loss"]
    for name in (
        "best.pt",
        "last.pt",
        "config.yaml",
        "summary.json",
        "eval/val/metrics.json",
        "eval/test/roc.png",
    ):
        assert (tiny_run / name).is_file(), name
    best = load_checkpoint(tiny_run)
    assert set(best["thresholds"]) == {"scar", "lvef"} and best["fusion"] is not None
    assert 0 < best["population_average"]["scar"] < 1
    assert set(best["calibration"]["image"]) == {"scar", "lvef"} and set(best["calibration"]["fused"]) == {
        "scar",
        "lvef",
    }
    assert all(a > 0 for a, _ in best["calibration"]["image"].values())
    assert best["data"]["n"] == {"train": 24, "val": 8, "test": 8}
    test = json.loads((tiny_run / "eval/test/metrics.json").read_text())
    assert test["scar"]["threshold"] == pytest.approx(best["thresholds"]["scar"])
    assert set(test["fused"]) == {"scar", "lvef"}


def test_same_seed_same_first_epoch_loss(tmp_path, signal_dataset):
    run(tmp_path, signal_dataset, "a", epochs=1, augment="{blur: 0.5, motion_blur: 0.5}")
    run(tmp_path, signal_dataset, "b", epochs=1, augment="{blur: 0.5, motion_blur: 0.5}")
    run(tmp_path, signal_dataset, "c", epochs=1, seed=1, augment="{blur: 0.5, motion_blur: 0.5}")
    a, b, c = (history(tmp_path / n)[0]["train_loss"] for n in "abc")
    assert a == pytest.approx(b, rel=1e-6) and a != pytest.approx(c, rel=1e-3)


def test_resume_continues_as_if_never_interrupted(tmp_path, signal_dataset):
    run(tmp_path, signal_dataset, "whole", epochs=3)
    with pytest.raises(Interrupt):
        run(tmp_path, signal_dataset, "cut", StopAfterFirstEpoch(), epochs=3)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 0
    with pytest.raises(ValueError, match="--resume"):
        run(tmp_path, signal_dataset, "cut", epochs=3)
    run(tmp_path, signal_dataset, "cut", resume=True, epochs=3)
    whole, cut = history(tmp_path / "whole"), history(tmp_path / "cut")
    assert len(cut) == 3
    for w, c in zip(whole, cut, strict=True):
        assert c["train_loss"] == pytest.approx(w["train_loss"], rel=1e-4)
        assert c["val_loss"] == pytest.approx(w["val_loss"], rel=1e-4)
    with pytest.raises(ValueError, match="no .*last.pt"):
        run(tmp_path, signal_dataset, "fresh", resume=True)


def test_early_stopping_stops(tmp_path, signal_dataset):
    summary = run(tmp_path, signal_dataset, "stop", epochs=10, patience=1, min_delta=100.0)
    assert summary["epochs_run"] == 2 and summary["early_stopped"]
    assert history(tmp_path / "stop")[-1]["early_stop"] is True


def test_transfer_and_adding_a_fusion_head_to_a_run(tmp_path, signal_dataset, tiny_run):
    source = load_run_model(tiny_run).model
    cfg = tiny_config(fusion=True, epochs=0, init_from=str(tiny_run))
    train(
        cfg, signal_dataset, tmp_path / "fused", loader=signal_loader, cache_dir=tmp_path / "cache", threads=1
    )
    fused = load_run_model(tmp_path / "fused")
    for key, value in source.state_dict().items():  # image model untouched
        assert torch.equal(fused.model.state_dict()[key], value)
    assert fused.fusion is not None
    assert json.loads((tmp_path / "fused/eval/test/metrics.json").read_text())["fused"]
    single = tiny_config(fusion=False, epochs=1, tasks="[lvef]", init_from=str(tiny_run), lr=1e-12)
    train(
        single,
        signal_dataset,
        tmp_path / "lvef",
        loader=signal_loader,
        cache_dir=tmp_path / "cache",
        threads=1,
    )
    lvef = load_run_model(tmp_path / "lvef").model
    assert lvef.tasks == ("lvef",) and torch.allclose(lvef.lvef_head.weight, source.lvef_head.weight)


def test_configs_load_and_bad_ones_name_the_problem():
    assert {"demo", "multitask", "multitask_clinical", "single_ms", "single_lvef", "transfer"} <= set(
        packaged_configs()
    )
    for name in packaged_configs():
        cfg = load_config(name, ["init_from=somewhere"] if name == "transfer" else [])
        assert cfg.loss_weights() and sum(cfg.loss_weights().values()) == pytest.approx(1.0)
    assert load_config("multitask").loss_weights() == pytest.approx({"scar": 0.7, "lvef": 0.3})
    assert load_config("single_ms").tasks == ["scar"] and load_config("demo").backbone == "resnet18d_tiny"
    with pytest.raises(ValueError, match="init_from"):
        load_config("transfer")
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="resnet99"):
        load_config("demo", ["backbone=resnet99"])
    with pytest.raises(ValueError, match="key=value"):
        load_config("demo", ["epochs"])
    with pytest.raises(ValueError, match="no config file"):
        load_config("nonesuch")


def test_loss_weights_class_weights_and_schedule():
    assert class_weights(np.array([0, 0, 0, 1])).tolist() == pytest.approx([4 / 6, 2.0])
    with pytest.raises(ValueError, match=r"\[3, 0\]"):
        class_weights(np.array([0, 0, 0]))
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.2], [0.1, 0.3, -2.0, 1.0]])
    targets = torch.tensor([[0, 1], [1, 1]])
    ce = torch.nn.functional.cross_entropy
    loss = MultiTaskLoss({"scar": 0.7, "lvef": 0.3})(logits, targets)
    assert float(loss) == pytest.approx(
        float(0.7 * ce(logits[:, :2], targets[:, 0]) + 0.3 * ce(logits[:, 2:], targets[:, 1]))
    )
    factors = [lr_factor(s, 4, 20) for s in range(20)]
    assert (
        factors[0] == 0.25
        and factors[3] == 1.0
        and factors[4] == 1.0
        and factors[-1] == pytest.approx(1 / 16)
    )
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))


def test_cuda_request_without_cuda_is_refused(tmp_path, signal_dataset):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the GPU path is exercised where a GPU exists
    with pytest.raises(ValueError, match="CUDA"):
        train(tiny_config(), signal_dataset, tmp_path / "x", device="cuda", loader=signal_loader)


def test_cli_train(tmp_path, signal_dataset, monkeypatch):
    from typer.testing import CliRunner

    from ecgscreen.cli import app
    from ecgscreen.training.data import PipelineLoader

    # the CLI reads files with the intake pipeline; here the stored signals stand in for it
    monkeypatch.setattr(PipelineLoader, "__call__", lambda self, d, row, size: signal_loader(d, row, size))
    monkeypatch.setattr(PipelineLoader, "version", property(lambda self: "test-signals"))
    args = ["train", "--config", "demo", "--data", str(signal_dataset), "--out", str(tmp_path / "cli"),
            "--threads", "1", "--workers", "1"]  # fmt: skip
    sets = [
        "image_size=64",
        "epochs=1",
        "batch_size=4",
        "n_bootstrap=50",
        "fusion=false",
        "paired=false",
        "consistency=0",
    ]
    result = CliRunner().invoke(app, args + [a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert "epoch 1:" in result.output and (tmp_path / "cli" / "best.pt").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
