"""``python -m bench realworld``: the real-world dev pictures, read as a new user would.

The pictures in ``tests/fixtures/realworld/`` (screenshots, scans, phone photos and
ECG-Image-Kit renders of a real recording; ``labels.csv`` says what a person sees on each)
go through the serving intake (``imaging.pipeline.read_page``) and its reading judge. Per
picture: accepted, or the refusal reason; the layout found against the labelled one; the
rhythm leads found against the labelled ones; how many of the 12 leads the judge calls
``read``; the quality; the time. Each reading picture (``reading_picture.reading_png``) is
written to ``--out`` (default ``build/realworld/``) to be looked at next to the picture.

The summary line holds the goal of issue 21: every full 12-lead picture accepted with its
labelled layout, and the pictures without all 12 leads (``ecg00008.jpg``) refused.

Options: ``--out DIR``, ``--only NAME`` (repeatable).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.imaging.reading_picture import reading_png

__all__ = ["DEV_SET", "labels", "read_one", "main"]

DEV_SET = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "realworld"


def labels(folder: Path = DEV_SET) -> list[dict[str, str]]:
    """The rows of the dev set's ``labels.csv``."""
    with (folder / "labels.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def read_one(path: Path, out: Path | None = None) -> dict:
    """One picture through intake and the judge: ``accepted`` (bool), ``outcome`` (``"accepted"``
    or the refusal reason), ``layout``, ``rhythm_leads``, ``read`` (leads judged read),
    ``quality``, ``ms``; the reading picture is written to ``out`` when given."""
    start = time.perf_counter()
    try:
        reading = read_page(path.read_bytes())
    except IntakeError as error:
        ms = (time.perf_counter() - start) * 1000
        return {"accepted": False, "outcome": error.reason, "detail": str(error), "layout": "-",
                "rhythm_leads": "-", "read": None, "quality": None, "ms": ms}  # fmt: skip
    ms = (time.perf_counter() - start) * 1000
    info, refusal = reading.info, reading.verdict.refusal
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{path.stem}.reading.png").write_bytes(reading_png(reading))
    return {
        "accepted": refusal is None,
        "outcome": "accepted" if refusal is None else refusal.reason,
        "detail": "" if refusal is None else str(refusal),
        "layout": info.get("layout", "-"),
        "rhythm_leads": ";".join(info.get("rhythm_leads") or []),
        "read": len(reading.verdict.named("read")),
        "quality": reading.verdict.quality,
        "ms": ms,
    }


def _mark(found: str, labelled: str) -> str:
    return "" if found == labelled else " *"


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(prog="python -m bench realworld")
    parser.add_argument("--out", type=Path, default=Path("build/realworld"))
    parser.add_argument("--only", action="append", default=[], help="a picture's file name")
    args = parser.parse_args(argv)
    rows = [r for r in labels() if not args.only or r["file"] in args.only]
    print(f"{'picture':32s}{'outcome':18s}{'layout found/label':22s}{'strips found/label':22s}"
          f"{'read':>5s}{'quality':>8s}{'ms':>7s}")  # fmt: skip
    full = full_right = parts = parts_refused = 0
    for row in rows:
        got = read_one(DEV_SET / row["file"], args.out)
        is_full = row["is_full_12lead"] == "yes"
        right_layout = got["accepted"] and got["layout"] == row["layout"]
        if is_full:
            full += 1
            full_right += right_layout
        else:
            parts += 1
            parts_refused += not got["accepted"]
        layout = f"{got['layout']}/{row['layout'] if is_full else 'part'}"
        strips = f"{got['rhythm_leads'] or '-'}/{row['rhythm_leads'] or '-'}"
        if got["read"] is None:
            strips = "-"
        read = "" if got["read"] is None else f"{got['read']:d}"
        quality = "" if got["quality"] is None else f"{got['quality']:.2f}"
        wrong = (not right_layout) if is_full else got["accepted"]
        print(f"{row['file']:32s}{got['outcome'][:17]:18s}{layout[:21]:22s}{strips[:21]:22s}"
              f"{read:>5s}{quality:>8s}{got['ms']:7.0f}{'  <- goal' if wrong else ''}")  # fmt: skip
    print(
        f"full 12-lead pictures accepted with the labelled layout: {full_right}/{full}; "
        f"pictures without all 12 leads refused: {parts_refused}/{parts} (goal {full}/{full}, {parts}/{parts}); "
        f"reading pictures in {args.out}/"
    )
    return {"full": full, "full_right": full_right, "parts": parts, "parts_refused": parts_refused}


if __name__ == "__main__":
    main()
