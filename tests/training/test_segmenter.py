"""The segmenter's recipe: generator pairs, crops at the served scale, the loss, a resumable run
whose loss falls, and the evaluation's per-class and per-acquisition IoU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ecgscreen.contract import SEGMENTER_CLASSES, SEGMENTER_PX_PER_MM
from ecgscreen.synth import masks
from ecgscreen.training.segment_data import (
    MIN_INK_ON_TRACE,
    CropSampler,
    PageCache,
    ink_on_trace,
    make_pair,
    rescale_classes,
    to_segmenter_scale,
    write_pages,
)
from ecgscreen.training.segmenter import (
    load_segmenter,
    load_segmenter_config,
    segmenter_loss,
    torch_predictor,
    train_segmenter,
)

TRACE = SEGMENTER_CLASSES.index("trace")
GRID = SEGMENTER_CLASSES.index("grid")


def test_contract_classes_are_the_generator_masks_classes():
    assert SEGMENTER_CLASSES == masks.CLASSES


def fake_page(rng: np.random.Generator, h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A pink page with a red grid every 10 px and a black wavy trace: image and classes."""
    image = np.full((h, w, 3), (250, 235, 235), dtype=np.uint8)
    classes = np.zeros((h, w), dtype=np.uint8)
    image[::10], image[:, ::10] = (240, 150, 150), (240, 150, 150)
    classes[::10], classes[:, ::10] = GRID, GRID
    phase = rng.uniform(0, 6)
    for x in range(w):
        y = int(h / 2 + 20 * np.sin(x / 9 + phase))
        image[y : y + 2, x] = (20, 20, 20)
        classes[y : y + 2, x] = TRACE
    return image, classes


def write_fake_cache(folder, n: int = 4, seed: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with (folder / "pages.jsonl").open("w") as out:
        for index in range(n):
            image, classes = fake_page(rng)
            np.save(folder / f"{index}.image.npy", image)
            np.save(folder / f"{index}.classes.npy", classes)
            entry = {"seed": seed, "index": index, "image": f"{index}.image.npy", "classes": f"{index}.classes.npy",
                     "px_per_mm": SEGMENTER_PX_PER_MM, "acquisition": "clean", "format": "png"}  # fmt: skip
            out.write(json.dumps(entry) + "\n")


def test_a_generator_pair_is_what_intake_decodes_with_its_exact_mask():
    pair = make_pair(3, 0)
    assert pair.image.shape[:2] == pair.classes.shape and pair.image.dtype == np.uint8
    assert pair.acquisition in ("clean", "scan", "photo")
    assert (pair.classes == TRACE).mean() > 0.002
    assert ink_on_trace(pair.image, pair.classes) >= MIN_INK_ON_TRACE  # the ink is where the mask says
    image, classes = to_segmenter_scale(pair)
    width_mm = pair.image.shape[1] / pair.px_per_mm
    assert abs(image.shape[1] - width_mm * SEGMENTER_PX_PER_MM) <= 1 and classes.shape == image.shape[:2]


def test_reducing_a_mask_keeps_a_one_pixel_trace_unbroken():
    classes = np.zeros((60, 90), dtype=np.uint8)
    classes[30, :] = TRACE  # one pixel wide, reduced by 1.5: nearest neighbour drops a third of it
    reduced = rescale_classes(classes, (60, 40))
    assert (reduced == TRACE).any(axis=0).all()
    assert rescale_classes(classes, (90, 60)) is classes


def test_crops_have_the_asked_size_and_follow_their_masks(tmp_path):
    write_fake_cache(tmp_path / "pages")
    sampler = CropSampler(PageCache(tmp_path / "pages"), crop=48, seed=3)
    pages, classes = sampler.batch(5)
    assert pages.shape == (5, 48, 48, 3) and pages.dtype == np.uint8
    assert classes.shape == (5, 48, 48) and classes.dtype == np.int64
    grey = pages.astype(float).mean(axis=3)
    assert grey[classes == TRACE].mean() < grey[classes == 0].mean() - 80
    with pytest.raises(ValueError, match="crop 8"):
        CropSampler(PageCache(tmp_path / "pages"), crop=8)


def test_pulse_crops_are_placed_over_a_pulse(tmp_path):
    write_fake_cache(tmp_path / "pages")
    pulse = SEGMENTER_CLASSES.index("pulse")
    for index in range(4):  # a pulse in the top left corner of each page, far from most crops
        classes = np.load(tmp_path / "pages" / f"{index}.classes.npy")
        classes[5:25, 3:8] = pulse
        np.save(tmp_path / "pages" / f"{index}.classes.npy", classes)
    cache = PageCache(tmp_path / "pages")
    _, placed = CropSampler(cache, crop=40, scale_jitter=1.0, pulse_crops=1.0, seed=3).batch(12)
    _, uniform = CropSampler(cache, crop=40, scale_jitter=1.0, pulse_crops=0.0, seed=3).batch(12)
    assert all((c == pulse).any() for c in placed)
    assert sum((c == pulse).any() for c in uniform) < 12


def test_loss_is_lower_for_the_right_answer():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 4] = TRACE
    right = torch.nn.functional.one_hot(target, len(SEGMENTER_CLASSES)).permute(0, 3, 1, 2).float() * 8
    weights = torch.ones(len(SEGMENTER_CLASSES))
    good = segmenter_loss(right, target, weights, [TRACE], 1.0)
    bad = segmenter_loss(right.flip(2), target, weights, [TRACE], 1.0)
    assert good < 0.05 < bad


def test_packaged_config_loads_and_unknown_keys_are_named(tmp_path):
    config = load_segmenter_config("segmenter")
    assert config.variant == "small" and len(config.class_weights) == len(SEGMENTER_CLASSES)
    with pytest.raises(ValueError, match="colour"):
        load_segmenter_config("segmenter", colour=1)
    with pytest.raises(ValueError, match="dice_classes"):
        load_segmenter_config("segmenter", dice_classes=["ink"])


def test_a_few_steps_lower_the_loss_and_the_run_resumes(tmp_path):
    write_fake_cache(tmp_path / "pages")
    config = load_segmenter_config(
        "segmenter", variant="tiny", n_pages=4, crop=48, batch_size=4, steps=60, warmup_steps=5, lr=1e-2,
        log_every=10, checkpoint_every=30, val_pages=0,
    )  # fmt: skip
    lines = []
    train_segmenter(config, tmp_path / "pages", tmp_path / "run", threads=1, say=lines.append, max_seconds=0)
    _, meta = load_segmenter(tmp_path / "run")
    assert meta["step"] == 30 and not meta["finished"]  # stopped after its first checkpoint
    train_segmenter(config, tmp_path / "pages", tmp_path / "run", threads=1, say=lines.append)
    model, meta = load_segmenter(tmp_path / "run")
    assert "resumed at step 30 of 60" in lines
    assert meta["step"] == 60 and meta["finished"] and meta["crops_seen"] == 240
    losses = [record["loss"] for record in meta["history"]]
    assert losses[-1] < 0.7 * losses[0]
    image, _ = fake_page(np.random.default_rng(9))
    assert torch_predictor(model)(image).shape == image.shape[:2]


def test_too_few_cached_pages_is_refused(tmp_path):
    write_fake_cache(tmp_path / "pages", n=2)
    config = load_segmenter_config("segmenter", variant="tiny", n_pages=3, val_pages=0)
    with pytest.raises(ValueError, match="caches 2 pages"):
        train_segmenter(config, tmp_path / "pages", tmp_path / "run")


def test_a_mask_beside_its_picture_is_told_apart_from_one_on_it():
    image, classes = fake_page(np.random.default_rng(2))
    assert ink_on_trace(image, classes) > 0.9
    assert ink_on_trace(image, np.roll(classes, 6, axis=0)) < MIN_INK_ON_TRACE


def test_pages_that_cannot_be_paired_are_listed_as_rejected_and_not_redrawn(tmp_path, monkeypatch):
    from ecgscreen.training import segment_data

    calls = []

    def fails(seed, index):
        calls.append(index)
        raise ValueError("the mask does not follow its picture")

    monkeypatch.setattr(segment_data, "make_pair", fails)
    write_pages(tmp_path, 1, 2)
    write_pages(tmp_path, 1, 2)
    assert calls == [0, 1]
    cache_lines = (tmp_path / "pages.jsonl").read_text().splitlines()
    assert [json.loads(line)["rejected"] for line in cache_lines] == [
        "the mask does not follow its picture"
    ] * 2
