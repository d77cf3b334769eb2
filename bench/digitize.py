"""``python -m bench digitize``: how faithfully intake reads the signal off a printout.

A fresh seed of the generator, each ECG written in every printed format (``synth.
renditions``); each file is digitised by the serving intake and held to the recording with
the PhysioNet Challenge 2024 metric (``imaging.fidelity``: per-lead SNR in dB after the best
shift within +-0.1 s and a constant offset; a record scores its leads' mean). The table gives
the median per acquisition class against the goals (vector PDF 25 dB, clean raster 20,
scan 15, photo 10), and two yardsticks for rasters: the score of the recording itself
smoothed by a Gaussian of 3 ms (the generator's muscle noise is white up to 250 Hz, finer
than any printout at 25 mm/s can draw), and the score of the recording reduced to one value
per pixel column of the record's raster (``dpi``; 10 ms a column at 100 dpi and 25 mm/s)
and interpolated back: what a perfect reader of that raster could reach.

A second table gives the Challenge's own definition (no shift, no offset: ``aligned=False``)
per style of page: acquisition, grid palette, where the pulse is, lead separators, minor
grid, resolution, paper and page furniture (the generator's world pages; ``--first-page``
for the first page design only).

Options: ``--n N`` (default 300), ``--seed S`` (default 37), ``--workers W``, ``--first-page``.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ecgscreen.contract import SIGNAL_RATE_HZ
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.fidelity import lead_snr_db, signal_snr_db
from ecgscreen.imaging.pipeline import read_ecg
from ecgscreen.imaging.worker import settle_intake_process
from ecgscreen.synth.renditions import ACQUISITION_OF, renditions_of

GOALS_DB = {"vector PDF": 25.0, "clean raster": 20.0, "scan": 15.0, "photo": 10.0}
YARDSTICK_SIGMA_S = 0.003
YARDSTICKS = ("yardstick", "column yardstick")


def _styles(record) -> dict[str, str]:
    """The page's style, by each of the attributes the per-style table groups on."""
    design = record.style.design
    dpi = "<= 96 dpi" if record.dpi <= 96 else ("100-150 dpi" if record.dpi <= 150 else ">= 200 dpi")
    return {
        "grid": record.style.grid + ("" if design.minor == "solid" else f" ({design.minor} 1 mm)"),
        "pulse": design.pulse if record.style.calibration else "no pulse",
        "separators": design.separators,
        "resolution": dpi,
        "paper": design.paper + (", screenshot crop" if design.crop_mm else ""),
        "furniture": "header/QR/frame"
        if design.frame or {"qr", "barcode"} & set(design.furniture)
        else "plain",
    }


def record_scores(job: tuple[int, int, bool]) -> dict[str, float | str]:
    """Mean lead SNR of record ``index`` per rendition (or the refusal reason), the same by
    the Challenge's definition under ``"challenge:<rendition>"``, the yardstick (the
    recording smoothed) under ``"yardstick"`` and the page's styles under ``"styles"``."""
    seed, index, world_pages = job
    record, files = renditions_of(seed, index, tuple(ACQUISITION_OF), world_pages)
    scores: dict = {"styles": _styles(record)}
    for name, data in files.items():
        try:
            signal, _ = read_ecg(data)
        except IntakeError as error:
            scores[name] = error.reason
            continue
        scores[name] = float(np.mean(list(signal_snr_db(record.signal, SIGNAL_RATE_HZ, signal).values())))
        strict = signal_snr_db(record.signal, SIGNAL_RATE_HZ, signal, aligned=False)
        scores[f"challenge:{name}"] = float(np.mean(list(strict.values())))
    smooth = gaussian_filter1d(record.signal, YARDSTICK_SIGMA_S * SIGNAL_RATE_HZ, axis=1)
    scores["yardstick"] = _mean_snr(record.signal, smooth)
    scores["column yardstick"] = _mean_snr(record.signal, _per_pixel_column(record))
    return scores


def _mean_snr(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(np.mean([lead_snr_db(t, e, SIGNAL_RATE_HZ) for t, e in zip(truth, estimate, strict=True)]))


def _per_pixel_column(record) -> np.ndarray:
    """The recording as a raster of ``record.dpi`` can hold it: the mean over each pixel
    column's time, linearly interpolated back to the sample rate."""
    column_s = 25.4 / record.dpi / record.style.paper_speed
    t = np.arange(record.signal.shape[1]) / SIGNAL_RATE_HZ
    column = np.floor(t / column_s).astype(int)
    counts = np.bincount(column)
    centres = (np.arange(counts.size) + 0.5) * column_s
    out = np.empty_like(record.signal)
    for i, lead in enumerate(record.signal):
        means = np.bincount(column, weights=lead) / np.maximum(counts, 1)
        out[i] = np.interp(t, centres[counts > 0], means[counts > 0])
    return out


def measure(
    n: int, seed: int, workers: int | None = None, progress=None, world_pages: bool = True
) -> list[dict]:
    with ProcessPoolExecutor(workers or os.cpu_count() or 1, initializer=settle_intake_process) as pool:
        out = []
        for scores in pool.map(record_scores, [(seed, i, world_pages) for i in range(n)], chunksize=2):
            out.append(scores)
            if progress:
                progress(1)
    return out


def by_acquisition(results: list[dict]) -> dict[str, dict]:
    """Per acquisition class: the record scores and the refusals."""
    groups: dict[str, dict] = defaultdict(lambda: {"snr": [], "refused": []})
    for scores in results:
        for name, value in scores.items():
            if name in YARDSTICKS or name == "styles" or name.startswith("challenge:"):
                continue
            group = groups[ACQUISITION_OF[name]]
            (group["refused"] if isinstance(value, str) else group["snr"]).append(value)
    return dict(groups)


def report(results: list[dict]) -> bool:
    groups = by_acquisition(results)
    print(f"{'acquisition':14s}{'median dB':>10s}{'p10 dB':>8s}{'goal':>6s}{'files':>7s}{'refused':>9s}")
    passed = True
    for name, goal in GOALS_DB.items():
        g = groups.get(name, {"snr": [], "refused": []})
        median = float(np.median(g["snr"])) if g["snr"] else float("nan")
        p10 = float(np.percentile(g["snr"], 10)) if g["snr"] else float("nan")
        passed &= median >= goal
        print(f"{name:14s}{median:10.1f}{p10:8.1f}{goal:6.0f}{len(g['snr']):7d}{len(g['refused']):9d}")
    yardstick = np.median([r["yardstick"] for r in results])
    print(
        f"{'yardstick':14s}{yardstick:10.1f}   (the recording itself, smoothed by {YARDSTICK_SIGMA_S * 1000:g} ms)"
    )
    column = np.median([r["column yardstick"] for r in results])
    print(f"{'yardstick':14s}{column:10.1f}   (the recording as one value per pixel column of its raster)")
    print("all goals met: " + ("PASS" if passed else "FAIL"))
    by_style(results)
    return passed


def by_style(results: list[dict]) -> None:
    """Median Challenge SNR (no alignment) of the raster files per style of page and
    acquisition, and how many of them were refused."""
    rows: dict[tuple[str, str], dict] = defaultdict(lambda: {"snr": [], "refused": 0})
    for scores in results:
        for name, value in scores.items():
            if name in YARDSTICKS or name == "styles" or name.startswith("challenge:"):
                continue
            kind = ACQUISITION_OF[name]
            for attribute, style in [("acquisition", kind), *scores["styles"].items()]:
                if attribute != "acquisition" and kind == "vector PDF":
                    continue  # the styles of a raster page
                row = rows[(attribute, style)]
                if isinstance(value, str):
                    row["refused"] += 1
                else:
                    row["snr"].append(scores[f"challenge:{name}"])
    print("\nChallenge SNR (no alignment, NaN as 0), median per style; rasters unless named")
    print(f"{'style':40s}{'median dB':>10s}{'files':>7s}{'refused':>9s}")
    for (attribute, style), row in sorted(rows.items()):
        median = float(np.median(row["snr"])) if row["snr"] else float("nan")
        print(f"{attribute + ': ' + style:40s}{median:10.1f}{len(row['snr']):7d}{row['refused']:9d}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench digitize")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=37)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--first-page", action="store_true", help="only the generator's first page design")
    args = parser.parse_args(argv)
    from rich.progress import Progress

    pages = "the first page design" if args.first_page else "the world's page designs"
    print(f"{args.n} ECGs (seed {args.seed}) x {len(ACQUISITION_OF)} printed formats, {pages}")
    with Progress() as bar:
        task = bar.add_task("digitising", total=args.n)
        results = measure(
            args.n, args.seed, args.workers, lambda k: bar.advance(task, k), not args.first_page
        )
    report(results)
