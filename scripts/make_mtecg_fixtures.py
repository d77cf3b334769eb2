"""Build small checkpoints with the study's own code: the fixtures of ``ecgscreen import-mtecg``.

The study (Sci Rep 2024) trains its models with the package ``mtecg`` of
github:biodatlab/multitask-vision-ecg (read at commit 9b1df13). This script runs *that* code
-- its model classes, its datasets, its ``scripts/train.py`` / ``scripts/train_transferred.py``
data path, its configs, its ``save_configs`` and albumentations' ``A.save`` -- on a tiny
dataset written in the study's CSV format, and keeps what a real run leaves behind:
``model.ckpt`` (``trainer.save_checkpoint``), ``configs.json``, ``transform.json``,
``train_transform.json`` and, for the clinical models, ``imputer.joblib`` and
``imputer_threshold_dict.joblib``. Nothing of the study is copied into this project: the
study's code is imported from a checkout given on the command line.

Beside each folder ``VARIANT/`` (exactly what the study's code wrote) it writes the study's
own forward as an **oracle** that needs neither timm nor Lightning (``VARIANT.oracle.pt``,
TorchScript traced from the model the study's loader ``from_configs`` returns) and
``VARIANT.oracle.json`` (tasks, how the oracle's inputs are encoded, and reference
probabilities for ``canonical.png`` computed in the study's environment through its
``transform.json``).

How it was run (the project's own ``.venv`` is never touched)::

    git clone <github:biodatlab/multitask-vision-ecg> /tmp/mtecg-study   # commit 9b1df13
    python3.11 -m venv /tmp/mtecg-env
    echo "torch==2.13.0" > /tmp/mtecg-constraints.txt                  # keep the CPU torch
    /tmp/mtecg-env/bin/pip install -c /tmp/mtecg-constraints.txt torch==2.13.0 "numpy<2" \
        pytorch_lightning "torchmetrics==0.9.2" albumentations scikit-learn "pandas<3" joblib \
        transformers huggingface_hub safetensors pyyaml pillow "setuptools<80"
    /tmp/mtecg-env/bin/pip install --no-deps timm          # timm without torchvision
    .venv/bin/ecgscreen preprocess samples/ecg_6x2_scan.jpg --out /tmp/canon
    /tmp/mtecg-env/bin/python scripts/make_mtecg_fixtures.py --study /tmp/mtecg-study \
        --canonical /tmp/canon/ecg_6x2_scan.png --out tests/fixtures/mtecg

Versions used for the committed fixtures: torch 2.13.0+cpu, pytorch-lightning 2.6.6,
torchmetrics 0.9.2 (the study's pin; later releases need ``Accuracy(task=...)``), timm
1.0.31, albumentations 2.0.8, scikit-learn 1.9.1, pandas 2.3.3, transformers 5.24.0.

What differs from the study's GPU runs, and why it does not change what is tested:

* **torchvision** is replaced by an import-time stub. Its only build for torch 2.13 is
  CUDA-linked; timm imports it at module level but never uses it for a ResNet, and the
  study uses it only when ``use_timm`` is false (no config does that).
* **Narrow backbones.** ``timm.create_model`` is wrapped to pass ``channels`` and
  ``stem_width`` (a ResNet-D of the configs' depth at a fraction of its width). The key set
  is the study's; only the widths shrink, so each checkpoint is a few hundred kB.
  ``rnn_output_size`` is 8 instead of 512 for the same reason; ``latent_dim`` stays 512.
* **No ImageNet download.** ``pretrained=True`` (every config) is honoured with random,
  trained-looking BatchNorm parameters instead of ImageNet's (``_pretrained_like``).
* **16-mixed on a CPU.** The study's trainer uses ``precision="16-mixed"`` (its default)
  on a GPU; Lightning refuses that flag on a CPU. The same precision plugin Lightning
  builds for it, ``MixedPrecision("16-mixed")`` with a real ``GradScaler``, is passed
  explicitly with ``device="cpu"`` (torch >= 2.3 autocasts CPU convolutions to fp16 and
  scales the loss the same way), so the checkpoint carries the scaler's state under the
  same key a GPU run writes.
* **How a run ends.** The study's ``Trainer`` has ``StochasticWeightAveraging(1e-3)``,
  which adds one BatchNorm epoch after the last one with backward skipped; under
  ``16-mixed`` the ``GradScaler`` then finds no gradients and stops the run ("No inf checks
  were recorded for this optimizer") -- on a GPU as well, the plugin is the same. A
  16-mixed run of the study therefore only finishes when ``EarlyStopping`` (patience 5)
  ends it before SWA's last epoch. These runs keep the configs' 30 epochs and end the way
  ``EarlyStopping`` does (``trainer.should_stop``) after epoch 2, before SWA starts (epoch
  24). The full-precision variant runs its 2 epochs to the end, SWA's averaging and BatchNorm
  epoch included.
* ``accelerator="cpu"``, no Weights & Biases logger, ``batch_size=2``, ``num_workers=0``,
  ``device="cpu"``: the rest of ``Trainer(...)`` is the study's (callbacks
  ``ModelCheckpoint``, ``EarlyStopping`` and ``StochasticWeightAveraging(1e-3)``).
* ``scripts/configs/multi-task-old-format.json`` and ``multi-task-transferred.json`` lack
  the ``scheme`` key ``train_transferred.py`` reads; it is added as in ``configs-50-50``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.abc
import importlib.machinery
import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

STUDY_COMMIT = "9b1df13c21dffbac7287f33003ac0ae614c42e27"
CHANNELS = (2, 2, 4, 8)  # planes per stage (resnet34d: 64, 128, 256, 512)
STEM_WIDTH = 1  # resnet34d: 32
RNN_OUTPUT_SIZE = 8  # the study's configs: 512
STOP_AFTER_EPOCHS = 2
# Clinical profiles for the reference probabilities, in the study's encoding: age / 100
# (``load_ecg_dataframe``), the five categorical features as 0/1.
PROFILES = [
    {"age": 0.62, "female_gender": 1, "dm": 0, "ht": 1, "smoke": 0, "dlp": 1},
    {"age": 0.45, "female_gender": 0, "dm": 1, "ht": 0, "smoke": 1, "dlp": 0},
]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One checkpoint folder: the study's config file, the script that trains it, overrides."""

    name: str
    config: str
    script: str = "train"
    overrides: dict = dataclasses.field(default_factory=dict)
    save: str = "lightning"  # or the file name of a bare ``state_dict()``
    note: str = ""


# Only the first variant keeps the configs' resnet34d; the others use resnet18d (the study's
# code takes any timm name): a checkpoint's size here is mostly per-tensor overhead, and
# resnet18d has half of resnet34d's tensors. LSTMs train in full precision: oneDNN has no
# fp16 LSTM on a CPU.
R18 = {"backbone": "resnet18d"}
FP32 = {"precision": "32-true", "num_epochs": 2}
VARIANTS = [
    Variant("multi-task", "multi-task.json", note="the study's model: resnet34d, bias_head true, 16-mixed"),
    Variant("single-task-scar", "single-task-scar.json", overrides=R18),
    Variant("single-task-lvef", "single-task-lvef.json", overrides=R18),
    Variant(
        "multi-task-old-format",
        "multi-task-old-format.json",
        "train_transferred",
        {**R18, "scheme": "pretrain"},
    ),
    Variant(
        "multi-task-transferred",
        "multi-task-transferred.json",
        "train_transferred",
        {**R18, "scheme": "transfer"},
        note="from_configs(multi-task-old-format) trained on, as train_transferred.py does",
    ),
    Variant("multi-task-clinical", "multi-task-clinical.json", overrides=R18, note="birnn, as configured"),
    Variant("single-task-scar-clinical", "single-task-scar-clinical.json", overrides=R18),
    Variant(
        "single-task-lvef-clinical",
        "single-task-lvef-clinical.json",
        overrides=R18,
        note='as published, its config says "task": "scar", so it is a scar model',
    ),
    Variant(
        "multi-task-clinical-lstm", "multi-task-clinical.json", overrides={**R18, **FP32, "rnn_type": "lstm"}
    ),
    Variant(
        "single-task-scar-clinical-bilstm",
        "single-task-scar-clinical.json",
        overrides={**R18, **FP32, "rnn_type": "bilstm", "bias_head": False},
        note="bilstm, bias_head false",
    ),
    Variant(
        "multi-task-clinical-rnn-state-dict",
        "multi-task-clinical.json",
        overrides={**R18, "rnn_type": "rnn"},
        save="model.pth",
        note="torch.save(model.state_dict()) instead of trainer.save_checkpoint, another file name",
    ),
    Variant(
        "multi-task-no-bias-fp32",
        "multi-task.json",
        overrides={**R18, **FP32, "bias_head": False},
        note="bias_head false (the classes' default), full precision to the end: SWA's weights, no scaler state",
    ),
]


# -- the study's environment -------------------------------------------------------------------
class _Absent:
    """Any torchvision attribute: fine to import and to name, an error to use."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, item: str):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Absent(f"{self._name}.{item}")

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name} belongs to the torchvision stub")

    def __mro_entries__(self, bases):
        return (object,)


class _TorchvisionStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``import torchvision[.anything]`` with empty modules whose names are ``_Absent``."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__version__ = "0+stub"

        def absent(item: str, prefix: str = spec.name):
            if item.startswith("__"):
                raise AttributeError(item)
            return _Absent(f"{prefix}.{item}")

        module.__getattr__ = absent
        return module

    def exec_module(self, module) -> None:
        pass


def _pretrained_like(model) -> None:
    """Stand-in for ``pretrained=True``: trained-looking BatchNorm parameters and statistics.

    A fresh timm ResNet zeroes the last BatchNorm scale of every block (``zero_init_last``),
    so every residual branch would add nothing and an error inside a block could not show in
    the fixtures' outputs; pretrained weights have no such zeros.
    """
    import torch

    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.6 + 0.8 * torch.rand(n, generator=gen))
                module.bias.copy_(0.2 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))


def _import_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_study(study: Path) -> types.SimpleNamespace:
    """Import the study's modules without its ``mtecg/__init__.py`` (which pulls pdf2image,
    wfdb and the 1-D code) and its two training scripts without Weights & Biases."""
    sys.meta_path.insert(0, _TorchvisionStub())
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))  # only its logger uses it

    import timm

    create = timm.create_model

    def narrow_create_model(name, pretrained=False, **kwargs):
        model = create(name, pretrained=False, channels=CHANNELS, stem_width=STEM_WIDTH, **kwargs)
        if pretrained:
            _pretrained_like(model)
        return model

    timm.create_model = narrow_create_model

    package = types.ModuleType("mtecg")
    package.__path__ = [str(study / "mtecg")]
    sys.modules["mtecg"] = package
    import mtecg.constants
    import mtecg.datasets
    import mtecg.models
    import mtecg.models_1d
    import mtecg.utils

    for module in (mtecg.models, mtecg.models_1d, mtecg.datasets):
        for name in dir(module):
            if name[0].isupper():
                setattr(package, name, getattr(module, name))
    import mtecg.classifier

    return types.SimpleNamespace(
        models=mtecg.models,
        classifier=mtecg.classifier,
        constants=mtecg.constants,
        train=_import_file("study_train", study / "scripts" / "train.py"),
        train_transferred=_import_file("study_train_transferred", study / "scripts" / "train_transferred.py"),
        configs=study / "scripts" / "configs",
    )


# -- a tiny dataset in the study's CSV format --------------------------------------------------
def make_dataset(root: Path) -> tuple[Path, Path]:
    """Sixteen ECG-like JPEGs and the CSV ``load_ecg_dataframe`` reads (its raw column names,
    age in years, a few rows flagged ``impute`` with missing dm/ht/smoke/dlp)."""
    import numpy as np
    import pandas as pd
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(42)
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    splits = ["old_train"] * 4 + ["new_train"] * 4 + ["old_valid"] * 2 + ["new_valid"] * 2
    splits += ["old_train", "new_train", "old_valid", "new_valid"]
    rows = []
    for i, split in enumerate(splits):
        image = Image.new("RGB", (320, 160), "white")
        draw = ImageDraw.Draw(image)
        for lead in range(6):
            y0 = 14 + lead * 25
            points = [(x, y0 + 8 * np.sin(x / (6 + i)) + rng.normal(0, 2)) for x in range(0, 320, 4)]
            draw.line(points, fill=(0, 0, 0), width=1)
        image.save(image_dir / f"ecg{i:03d}_1.jpg", quality=90)
        impute = i % 5 == 4
        rows.append(
            {
                "File_name": f"ecg{i:03d}",
                "Run_num": 1,
                "Scar_cad": int(rng.random() < 0.5),
                "LVEF": float(rng.uniform(20, 75)),
                "Age": float(rng.integers(35, 85)),
                "Female": int(rng.random() < 0.4),
                "Diabetes": np.nan if impute else int(rng.random() < 0.3),
                "Hypertension": np.nan if impute else int(rng.random() < 0.6),
                "Smoke": np.nan if impute else int(rng.random() < 0.3),
                "Dyslipidemia": np.nan if impute else int(rng.random() < 0.5),
                "Impute": impute,
                "split": split,
            }
        )
    csv_path = root / "ecg.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    return image_dir, csv_path


# -- training, exactly along the study's path --------------------------------------------------
def _StopLikeEarlyStopping(epochs: int):
    """A callback that ends the run after ``epochs`` epochs the way ``EarlyStopping`` does."""
    import pytorch_lightning as pl

    class StopLikeEarlyStopping(pl.Callback):
        def on_validation_end(self, trainer, pl_module) -> None:
            if not trainer.sanity_checking and trainer.current_epoch + 1 >= epochs:
                trainer.should_stop = True

    return StopLikeEarlyStopping()


def train_variant(study, variant: Variant, image_dir: Path, csv_path: Path, build: Path, built: dict) -> Path:
    import albumentations as A
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, StochasticWeightAveraging
    from pytorch_lightning.plugins.precision import MixedPrecision

    script = getattr(study, variant.script)
    configs = json.loads((study.configs / variant.config).read_text())
    configs.update(
        parent_save_dir=str(build / variant.name),
        device="cpu",
        num_workers=0,
        batch_size=2,
    )
    if "rnn_output_size" in configs:
        configs["rnn_output_size"] = RNN_OUTPUT_SIZE
    configs.update(variant.overrides)
    if variant.name == "multi-task-transferred":
        configs["pretrained_model_path"] = str(built["multi-task-old-format"])
    pl.seed_everything(42, workers=True)

    train_loader, valid_loader = script.get_dataloaders(str(image_dir) + "/", str(csv_path), configs=configs)
    model = script.get_model(configs)
    if configs.get("scheme") == "transfer":
        model = model.from_configs(configs["pretrained_model_path"], train=True, device="cpu")

    precision = configs.get("precision", "16-mixed")
    callbacks = [
        ModelCheckpoint(
            filename=configs["backbone"] + "{val_acc:.2f}",
            save_top_k=1,
            verbose=True,
            monitor="val_loss",
            mode="min",
        ),
        EarlyStopping(monitor="val_loss", mode="min", patience=5),
        StochasticWeightAveraging(1e-3),
    ]
    if configs["num_epochs"] > STOP_AFTER_EPOCHS:  # see "How a run ends" above
        callbacks.append(_StopLikeEarlyStopping(STOP_AFTER_EPOCHS))
    amp = {}
    if precision == "16-mixed":  # see the module docstring
        amp["plugins"] = [MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu"))]
    else:
        amp["precision"] = precision
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        max_epochs=configs["num_epochs"],
        callbacks=callbacks,
        accumulate_grad_batches=configs.get("accumulate_grad_batches", 1),
        log_every_n_steps=1,
        default_root_dir=str(build / variant.name / "lightning"),
        enable_progress_bar=False,
        **amp,
    )
    trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=valid_loader)

    save_dir = Path(configs["parent_save_dir"]) / script.get_run_name(configs)
    if variant.save == "lightning":
        trainer.save_checkpoint(str(save_dir / "model.ckpt"))
    else:
        torch.save(model.state_dict(), save_dir / variant.save)
    model.save_configs(str(save_dir))
    A.save(script.get_train_transforms(configs["image_size"]), str(save_dir / "train_transform.json"))
    A.save(script.get_valid_transforms(configs["image_size"]), str(save_dir / "transform.json"))
    (save_dir / "build_configs.json").write_text(json.dumps(configs, indent=1))  # not committed
    return save_dir


# -- the oracle ---------------------------------------------------------------------------------
def load_study_model(study, save_dir: Path, variant: Variant, configs: dict):
    """The model as the study's own loader returns it (``from_configs``), or, for a bare state
    dict, the study's class built from ``configs.json`` with the tensors loaded strictly."""
    import torch

    model_class = study.train.MODEL_TYPE_TO_CLASS_MAPPING[configs["model_type"]]
    if variant.save == "lightning":
        return model_class.from_configs(str(save_dir), device="cpu")
    saved = json.loads((save_dir / "configs.json").read_text())
    model = model_class(**saved, device="cpu")
    model.load_state_dict(torch.load(save_dir / variant.save, map_location="cpu"), strict=True)
    return model.eval()


def study_tasks(model, configs: dict) -> list[str]:
    head_keys = {k.split(".")[0] for k in model.state_dict()}
    if {"scar_head", "lvef_head"} <= head_keys:
        return ["scar", "lvef"]
    return [configs["task"]]


def trace_oracle(study_model, tasks: list[str], clinical: bool, size: int):
    """TorchScript of the study's forward, returning the positive-class softmax per task
    (the study's ``ECGClassifier._get_output_dict``) as ``(B, len(tasks))``."""
    import torch
    from torch import nn

    class Oracle(nn.Module):
        # The LightningModule stays out of the module tree (the tracer would query its
        # ``trainer``); its frozen tensors become the trace's constants.
        def __init__(self, model) -> None:
            super().__init__()
            object.__setattr__(self, "model", model.requires_grad_(False))

        def probabilities(self, out):
            logits = [out[t] for t in tasks] if isinstance(out, dict) else [out]
            return torch.stack([torch.softmax(x, dim=1)[:, 1] for x in logits], dim=1)

    class ImageOracle(Oracle):
        def forward(self, image):
            return self.probabilities(self.model(image))

    class ClinicalOracle(Oracle):
        def forward(self, image, numerical, categorical):
            return self.probabilities(self.model((image, numerical, categorical)))

    gen = torch.Generator().manual_seed(0)

    def example(batch: int):
        image = torch.randn(batch, 3, size, size, generator=gen)
        if not clinical:
            return (image,)
        numerical = torch.rand(batch, 1, 1, generator=gen)
        categorical = torch.randint(0, 2, (batch, 1, 5), generator=gen)
        return image, numerical, categorical

    wrapper = (ClinicalOracle if clinical else ImageOracle)(study_model.eval()).eval()
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, example(2), check_trace=False)
        for batch in (1, 3):  # the trace must not have frozen the batch size
            inputs = example(batch)
            diff = (traced(*inputs) - wrapper(*inputs)).abs().max().item()
            if diff > 1e-6:
                raise RuntimeError(
                    f"traced oracle differs from the study's forward by {diff} at batch {batch}"
                )
    return traced


def reference_probabilities(study, study_model, save_dir: Path, tasks, clinical: bool, canonical: Path):
    """The study's inference path on ``canonical``: PIL RGB -> ``A.load(transform.json)`` ->
    the model -> softmax, as ``ECGClassifier.predict`` does for an image (its ``predict``
    dispatch itself is unusable in the published code: a path is caught by the 1-D branch)."""
    import albumentations as A
    import numpy as np
    import torch
    from PIL import Image

    transform = A.load(str(save_dir / "transform.json"))
    image = transform(image=np.array(Image.open(canonical).convert("RGB")))["image"].unsqueeze(0)
    classifier = study.classifier.ECGClassifier.__new__(study.classifier.ECGClassifier)
    profiles = PROFILES if clinical else [None]
    out = []
    with torch.no_grad():
        for profile in profiles:
            if profile is None:
                logits = study_model(image)
            else:
                features = classifier._prepare_clinical_features(profile)  # the study's encoding
                logits = study_model(
                    (image, features["numerical_features"], features["categorical_features"])
                )
            logits = logits if isinstance(logits, dict) else {tasks[0]: logits}
            probs = {t: float(torch.softmax(logits[t], dim=1)[0, 1]) for t in tasks}
            out.append({"clinical": profile, "probability": probs})
    return out


def write_fixture(study, variant: Variant, save_dir: Path, out: Path, canonical: Path) -> dict:
    import torch

    configs = json.loads((save_dir / "build_configs.json").read_text())
    study_model = load_study_model(study, save_dir, variant, configs)
    tasks = study_tasks(study_model, configs)
    clinical = "clinical" in configs["model_type"]
    oracle = trace_oracle(study_model, tasks, clinical, configs["image_size"])
    target = out / variant.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(save_dir.iterdir()):
        if path.is_file() and path.name != "build_configs.json":
            shutil.copy2(path, target / path.name)
    torch.jit.save(oracle, str(out / f"{variant.name}.oracle.pt"))
    record = {
        "variant": variant.name,
        "note": variant.note,
        "study_commit": STUDY_COMMIT,
        "study_config": f"scripts/configs/{variant.config}",
        "training_script": f"scripts/{variant.script}.py",
        "overrides": {k: v for k, v in configs.items() if k in variant.overrides},
        "checkpoint": "model.ckpt (trainer.save_checkpoint)"
        if variant.save == "lightning"
        else f"{variant.save} (torch.save(model.state_dict()))",
        "model_class": type(study_model).__name__,
        "backbone": {"name": configs["backbone"], "channels": list(CHANNELS), "stem_width": STEM_WIDTH},
        "tasks": tasks,
        "oracle": {
            "file": f"{variant.name}.oracle.pt",
            "inputs": ["image FP32 [B,3,S,S]: the study's transform.json applied to an RGB uint8 image"]
            + (
                [
                    "numerical FP32 [B,1,1]: age / 100",
                    "categorical INT64 [B,1,5]: female_gender, dm, ht, smoke, dlp",
                ]
                if clinical
                else []
            ),
            "output": f"FP32 [B,{len(tasks)}]: positive-class softmax of {', '.join(tasks)}",
        },
        "reference": {
            "image": "canonical.png",
            "results": reference_probabilities(study, study_model, save_dir, tasks, clinical, canonical),
        },
        "versions": _versions(),
    }
    (out / f"{variant.name}.oracle.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _versions() -> dict:
    from importlib.metadata import version

    names = ["torch", "pytorch-lightning", "torchmetrics", "timm", "albumentations", "scikit-learn", "pandas"]
    return {name: version(name) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--study", type=Path, required=True, help="checkout of biodatlab/multitask-vision-ecg"
    )
    parser.add_argument(
        "--canonical", type=Path, required=True, help="a canonical ECG image (ecgscreen preprocess)"
    )
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/mtecg"))
    parser.add_argument("--build", type=Path, default=Path("/tmp/mtecg-build"), help="scratch folder")
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    args = parser.parse_args()

    study = load_study(args.study.resolve())
    if args.build.exists():
        shutil.rmtree(args.build)
    image_dir, csv_path = make_dataset(args.build / "data")
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(args.canonical, args.out / "canonical.png")
    built: dict[str, Path] = {}
    wanted = set(args.only or [v.name for v in VARIANTS])
    for variant in VARIANTS:
        needed = variant.name in wanted or (
            variant.name == "multi-task-old-format" and "multi-task-transferred" in wanted
        )
        if not needed:
            continue
        built[variant.name] = save_dir = train_variant(study, variant, image_dir, csv_path, args.build, built)
        if variant.name in wanted:
            record = write_fixture(study, variant, save_dir, args.out, args.out / "canonical.png")
            files = [*(args.out / variant.name).iterdir(), *args.out.glob(f"{variant.name}.oracle.*")]
            size = sum(p.stat().st_size for p in files)
            print(
                f"{variant.name}: {record['model_class']} {record['tasks']} {size / 1e3:.0f} kB", flush=True
            )


if __name__ == "__main__":
    main()
