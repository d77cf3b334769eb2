"""``ecgscreen train``: the study's training recipe, reproducible from one config file.

Stages of a run (folder ``out``):

1. **Image model** — ``MultiTaskNet`` (or a single-task one) trained with AdamW, a linear
   warm-up then linear decay of the learning rate per step, the weighted sum of the tasks'
   cross-entropies (0.7 MS + 0.3 LVEF, inverse-frequency class weights from the training
   split), blur / brightness-contrast / motion-blur augmentation, early stopping on the
   validation loss. ``last.pt`` after every epoch (``--resume`` continues from it),
   ``best.pt`` at the lowest validation loss. Shuffling and augmentation draw from
   ``(seed, epoch)`` streams, so a resumed run sees the batches an uninterrupted one would.
2. **Clinical fusion** (``fusion: true``) — ``ClinicalFusion`` fitted on the *frozen*
   embeddings of the best image model (computed once, so this takes seconds on a CPU), started
   from the image heads so it begins as the image model; imputation means from the training
   split. Frozen rather than end-to-end: the image model stays the one Triton serves and the
   fusion head stays a separate, small file. ``epochs: 0`` with ``init_from: RUN`` adds a
   fusion head to an existing run.
3. **Calibration** — Platt scaling per task (image and fused), fitted on ``val``.
4. **Evaluation** — the best model on ``val`` (Youden thresholds, mean probabilities: both go
   into ``best.pt`` and later the model card) and on ``test`` at those thresholds, written to
   ``out/eval/{val,test}``.

``train`` runs the stages in that order, each a function of its own, after ``load_data``
has decoded the dataset once into a cache of canonical images.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from ..card import OperatingPoints, impute
from ..nets.multitask import ClinicalFusion, MultiTaskNet
from .augment import build_augment
from .calibration import fit_platt
from .checkpoint import load_checkpoint, run_model_from, save_checkpoint
from .config import TrainConfig
from .data import EcgDataset, Loader, Recordings, RunData, load_data
from .evaluate import evaluate_predictions
from .predictors import TorchPredictor

__all__ = [
    "Callbacks",
    "MultiTaskLoss",
    "consistency_loss",
    "class_weights",
    "lr_factor",
    "fit_image_model",
    "fit_fusion_head",
    "calibrate",
    "evaluate_run",
    "train",
]

log = logging.getLogger(__name__)


class Callbacks:
    """Progress hooks; the CLI draws them as rich progress bars. Defaults log epochs only."""

    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, **info: float) -> None:
        pass

    def epoch(self, record: dict[str, Any]) -> None:
        log.info("%s", json.dumps(record))


class MultiTaskLoss(nn.Module):
    """``sum_t w_t * CE_t(logits[:, 2t:2t+2], targets[:, t])`` with per-task class weights."""

    def __init__(self, weights: dict[str, float], class_weight: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.tasks = list(weights)
        self.weights = weights
        self.losses = nn.ModuleList(
            nn.CrossEntropyLoss(weight=None if class_weight is None else class_weight[t]) for t in self.tasks
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sum(
            self.weights[t] * loss(logits[:, 2 * i : 2 * i + 2], targets[:, i])
            for i, (t, loss) in enumerate(zip(self.tasks, self.losses, strict=True))
        )


def class_weights(targets: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights ``n / (2 n_c)`` of a 0/1 target vector."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=2)
    if (counts == 0).any():
        raise ValueError(f"the training split needs both classes; class counts {counts.tolist()}")
    return torch.tensor(counts.sum() / (2.0 * counts), dtype=torch.float32)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps to 1, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _loader(
    dataset: EcgDataset, batch_size: int, order: np.ndarray | None, workers: int, drop_last: bool = False
):
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=None if order is None else order.tolist(),
        num_workers=workers, drop_last=drop_last, persistent_workers=False,
    )  # fmt: skip


def _init_from(model: MultiTaskNet, source: str) -> None:
    """Transfer: the backbone of another run (all of it), and its heads for shared tasks."""
    ckpt = load_checkpoint(Path(source))
    state = ckpt["model"]["state_dict"]
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    try:
        model.backbone.load_state_dict(backbone, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"backbone of {source} does not fit {model.config['backbone']}: {exc}") from None
    for task in model.tasks:
        head = {k.removeprefix(f"{task}_head."): v for k, v in state.items() if k.startswith(f"{task}_head.")}
        if head:
            model.head(task).load_state_dict(head)
    log.info("initialised from %s (tasks there: %s)", source, ckpt["model"]["config"]["tasks"])


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def consistency_loss(a: torch.Tensor, b: torch.Tensor, weights: dict[str, float]) -> torch.Tensor:
    """Symmetric KL between two views' class probabilities, per task (``logits[:, 2t:2t+2]``),
    weighted like the tasks' cross-entropies: zero when both views get the same answer."""
    total = a.new_zeros(())
    for i, weight in enumerate(weights.values()):
        la = torch.log_softmax(a[:, 2 * i : 2 * i + 2], dim=1)
        lb = torch.log_softmax(b[:, 2 * i : 2 * i + 2], dim=1)
        kl = (la.exp() * (la - lb)).sum(dim=1) + (lb.exp() * (lb - la)).sum(dim=1)
        total = total + weight * 0.5 * kl.mean()
    return total


def _epoch(model, batches, criterion, device, cb, optimizer=None, scheduler=None, consistency=0.0) -> float:
    """One pass; returns the mean loss. A batch with ``image_b`` (paired views) is one forward
    of both halves: the loss is the mean of both views' cross-entropies plus ``consistency``
    times their ``consistency_loss``."""
    training = optimizer is not None
    model.train(training)
    total, count = 0.0, 0
    with torch.set_grad_enabled(training):
        for batch in batches:
            x, y = batch["image"].to(device), batch["targets"].to(device)
            if "image_b" in batch:
                logits = model(torch.cat([x, batch["image_b"].to(device)]))
                a, b = logits[: len(x)], logits[len(x) :]
                loss = 0.5 * (criterion(a, y) + criterion(b, y))
                if consistency > 0:
                    loss = loss + consistency * consistency_loss(a, b, criterion.weights)
            else:
                loss = criterion(model(x), y)
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
            cb.advance(1, loss=total / count)
    return total / max(count, 1)


def _phases(cb: Callbacks):
    """``cb`` as a ``progress(phase, total)`` that returns the per-item callback."""

    def start(phase: str, total: int):
        cb.start(phase, total)
        return lambda k: cb.advance(k)

    return start


def fit_image_model(
    cfg: TrainConfig, data: RunData, out: Path, dev: torch.device, resume: bool, cb
) -> dict[str, Any]:
    """Stage 1: train the image model, epoch by epoch, into ``last.pt`` / ``best.pt``
    (resuming from ``last.pt``); return the run's state (history, best validation loss)."""
    torch.manual_seed(cfg.seed)
    model = MultiTaskNet(cfg.backbone, data.tasks, cfg.embed_dim, cfg.image_size)
    if cfg.init_from:
        _init_from(model, cfg.init_from)
    model.to(dev)
    train_targets = data.targets("train")
    cw = (
        {t: class_weights(train_targets[:, i]).to(dev) for i, t in enumerate(data.tasks)}
        if cfg.class_weights
        else None
    )
    criterion = MultiTaskLoss(cfg.loss_weights(), cw)
    recordings = None
    if cfg.paired:
        recordings = Recordings(data.labels)
        if not recordings.available():
            raise ValueError(
                f"paired: true needs the recordings in {recordings.folder} (ecgscreen synth --save-signals)"
            )
    train_set = EcgDataset(
        data.cache, data.labels, data.splits["train"], data.tasks, build_augment(cfg.augment), cfg.seed,
        recordings, cfg.signal_augment,
    )  # fmt: skip
    val_set = EcgDataset(data.cache, data.labels, data.splits["val"], data.tasks)
    drop_last = len(train_set) > cfg.batch_size
    steps = len(train_set) // cfg.batch_size if drop_last else 1
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    warmup, total = int(round(cfg.warmup_epochs * steps)), max(1, cfg.epochs * steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total))
    state: dict[str, Any] = {
        "epoch": -1,
        "best_val_loss": float("inf"),
        "bad_epochs": 0,
        "history": [],
        "finished": False,
    }

    if resume:
        last = load_checkpoint(out / "last.pt")
        model.load_state_dict(last["model"]["state_dict"])
        optimizer.load_state_dict(last["optimizer"])
        scheduler.load_state_dict(last["scheduler"])
        state = {k: last[k] for k in state}
        log.info("resuming %s after epoch %d", out, state["epoch"])

    def payload(with_optimizer: bool) -> dict[str, Any]:
        p = {"model": {"config": model.config, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
             "fusion": None, "train_config": cfg.to_dict(), "data": data.summary, **state}  # fmt: skip
        if with_optimizer:
            p.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict())
        return p

    if cfg.epochs == 0 and not (out / "best.pt").exists():
        save_checkpoint(out / "best.pt", payload(False))
    for epoch in range(state["epoch"] + 1, cfg.epochs):
        if state["finished"]:
            break
        start = time.perf_counter()
        train_set.set_epoch(epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_set))
        cb.start(f"epoch {epoch + 1}/{cfg.epochs}", steps)
        train_loss = _epoch(model, _loader(train_set, cfg.batch_size, order, cfg.num_workers, drop_last),
                            criterion, dev, cb, optimizer, scheduler, cfg.consistency)  # fmt: skip
        cb.start("validating", -(-len(val_set) // cfg.eval_batch_size))
        val_loss = _epoch(
            model, _loader(val_set, cfg.eval_batch_size, None, cfg.num_workers), criterion, dev, cb
        )
        improved = val_loss < state["best_val_loss"] - cfg.min_delta
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        state["best_val_loss"] = min(state["best_val_loss"], val_loss)
        state["epoch"] = epoch
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": scheduler.get_last_lr()[0],
                  "seconds": round(time.perf_counter() - start, 2), "best": improved}  # fmt: skip
        state["history"].append(record)
        stop = cfg.patience > 0 and state["bad_epochs"] >= cfg.patience  # patience 0: never stop early
        state["finished"] = stop or epoch == cfg.epochs - 1
        if stop:
            record["early_stop"] = True
        if improved:
            save_checkpoint(out / "best.pt", payload(False))
        save_checkpoint(out / "last.pt", payload(True))
        cb.epoch(record)  # after saving: what is reported is on disk
    (out / "history.json").write_text(json.dumps(state["history"], indent=1) + "\n")
    return state


def _fit_fusion(
    cfg: TrainConfig, model: MultiTaskNet, feats: dict[str, tuple], device, cb
) -> tuple[ClinicalFusion, list]:
    """Fit ``ClinicalFusion`` on frozen embeddings; keep the state with the lowest val loss."""
    torch.manual_seed(cfg.seed)
    fusion = ClinicalFusion(tasks=model.tasks, embed_dim=model.config["embed_dim"])
    emb, clin, y = feats["train"]
    fusion.set_statistics(torch.from_numpy(clin))
    means = fusion.clinical_mean.numpy()
    fusion.init_from_image_heads(model)
    fusion.to(device)
    weights = cfg.loss_weights()
    cw = (
        {t: class_weights(y[:, i]).to(device) for i, t in enumerate(model.tasks)}
        if cfg.class_weights
        else None
    )
    criterion = MultiTaskLoss({t: weights[t] for t in model.tasks}, cw)
    optimizer = torch.optim.AdamW(_param_groups(fusion, 1e-4), lr=cfg.fusion_lr)
    # imputed once: every missing feature is its training mean from here on
    tensors = {
        k: [torch.from_numpy(a).to(device) for a in (e, impute(c, means), t)]
        for k, (e, c, t) in feats.items()
    }
    best, best_state, bad, history = float("inf"), None, 0, []
    rng = np.random.default_rng([cfg.seed, 7])
    cb.start("fusion", cfg.fusion_epochs)
    for epoch in range(cfg.fusion_epochs):
        fusion.train()
        e, c, t = tensors["train"]
        for s in np.array_split(rng.permutation(len(e)), max(1, len(e) // cfg.fusion_batch_size)):
            cs = c[s]
            drop = torch.from_numpy(rng.random(cs.shape) < cfg.fusion_feature_dropout).to(device)
            cs = torch.where(drop, fusion.clinical_mean.expand_as(cs), cs)
            loss = criterion(fusion(e[s], cs), t[s])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        fusion.eval()
        with torch.no_grad():
            e, c, t = tensors["val"]
            val = float(criterion(fusion(e, c), t))
        history.append({"fusion_epoch": epoch, "val_loss": val})
        cb.advance(1, loss=val)
        if val < best - cfg.min_delta:
            best, bad = val, 0
            best_state = {k: v.detach().cpu().clone() for k, v in fusion.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.fusion_patience:
                break
    fusion.load_state_dict(best_state)
    return fusion.cpu().eval(), history


def fit_fusion_head(
    cfg: TrainConfig, data: RunData, best: dict[str, Any], predictor: TorchPredictor, dev, cb
) -> None:
    """Stage 2: fit the clinical fusion head on the best image model's frozen embeddings of
    every split; store it (and its history) in ``best``."""
    feats: dict[str, tuple] = {}
    for name, idx in data.splits.items():
        cb.start(f"embedding {name}", int(idx.size))
        _, emb = predictor.embed(data.images(name), lambda k: cb.advance(k))
        feats[name] = (emb, data.clinical(name), data.targets(name))
    fusion, history = _fit_fusion(cfg, predictor.run.model.to(dev), feats, dev, cb)
    best["fusion"] = {"config": fusion.config, "state_dict": fusion.state_dict()}
    best["fusion_history"] = history


def calibrate(data: RunData, predictor: TorchPredictor, cb: Callbacks) -> dict[str, Any]:
    """Stage 3: Platt scaling per task (image and fused), fitted on the validation split."""
    idx = data.splits["val"]
    cb.start("calibrating on val", int(idx.size))
    preds = predictor.predict(data.images("val"), data.clinical("val"), lambda k: cb.advance(k))
    out: dict[str, Any] = {"method": "Platt scaling on the validation split"}
    for kind, probabilities in (("image", preds.image), ("fused", preds.fused)):
        if probabilities:
            out[kind] = {}
            for t in data.tasks:
                p = np.clip(probabilities[t], 1e-7, 1 - 1e-7)
                out[kind][t] = list(fit_platt(np.log(p / (1 - p)), data.labels.targets(t)[idx]))
    return out


def evaluate_run(
    cfg: TrainConfig, data: RunData, best: dict[str, Any], predictor: TorchPredictor, out: Path, cb
) -> dict[str, Any]:
    """Stage 4: metrics on ``val`` (Youden: the operating points go into ``best``) and on
    ``test`` at those thresholds, with reports in ``out/eval/<split>``."""
    results = {}
    for name in ("val", "test"):
        idx = data.splits[name]
        if idx.size == 0:
            continue
        cb.start(f"evaluating {name}", int(idx.size))
        preds = predictor.predict(data.images(name), data.clinical(name), lambda k: cb.advance(k))
        rule = "youden" if name == "val" else "model"
        results[name] = evaluate_predictions(
            data.labels, idx, preds, out / "eval" / name, rule, best.get("thresholds"), None, cfg.n_bootstrap,
            cfg.seed, name, str(out), best.get("fused_thresholds"),
        )  # fmt: skip
        if name == "val":
            best.update(OperatingPoints.from_validation(results["val"]).model_dump(exclude_none=True))
    return results


def train(
    cfg: TrainConfig,
    data_dir: Path,
    out: Path,
    device: str = "cpu",
    resume: bool = False,
    loader: Loader | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    callbacks: Callbacks | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run every stage of a training run into ``out``; return the run's summary.

    ``threads``: torch CPU threads (default: one per core). Fewer help when other processes
    share the cores: torch's threads wait on each other at every operation.
    """
    cb = callbacks or Callbacks()
    out = Path(out)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    dev = torch.device(device)
    if (out / "last.pt").exists() and not resume:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not (out / "last.pt").exists():
        raise ValueError(f"--resume: no {out / 'last.pt'} to resume from")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads or os.cpu_count() or 1)

    data = load_data(data_dir, cfg.tasks, cfg.image_size, loader, cache_dir, workers, _phases(cb))
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    state = fit_image_model(cfg, data, out, dev, resume, cb)

    best = load_checkpoint(out / "best.pt")

    def predictor() -> TorchPredictor:  # the best model with what the stages so far added
        return TorchPredictor(run_model_from(best, str(out / "best.pt")), device, cfg.eval_batch_size)

    if cfg.fusion:
        fit_fusion_head(cfg, data, best, predictor(), dev, cb)
    if data.splits["val"].size:
        best["calibration"] = calibrate(data, predictor(), cb)
    results = evaluate_run(cfg, data, best, predictor(), out, cb)
    save_checkpoint(out / "best.pt", {k: v for k, v in best.items() if k != "format"})
    summary = {"run": str(out), "epochs_run": len(state["history"]), "best_val_loss": state["best_val_loss"],
               "early_stopped": bool(state["history"] and state["history"][-1].get("early_stop")),
               "metrics": {n: {t: r[t] for t in data.tasks} for n, r in results.items()}}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
