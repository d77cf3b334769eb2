"""``python -m bench layouts``: does intake read the layout of the world's pages?

The generator's printed pages (PNG, JPEG, DICOM SC, PDF; every layout, page design, grid,
resolution and acquisition as ``ecgscreen synth`` mixes them) go through the serving intake.
Per page: the layout it read (or its refusal) against the layout printed, the rhythm
strips' leads, whether a calibration pulse was found on every row where one was printed, and
whether a pulse reached a lead's signal (a 1 mV step held for 0.1 s within 0.4 s of a
lead's printed start or end, where the truth has none, in a lead the judge passed), and
whether an accepted page's read leads follow the recording at all (a misread page). Prints the confusion table, the
goals (layout right >= 99 %, pulse found where printed >= 98 %, never in a signal) and the
pages read wrong, by their design.

Options: ``--n N`` (default 600), ``--seed S`` (default 97), ``--workers W``.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ecgscreen.contract import SIGNAL_RATE_HZ
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.imaging.worker import settle_intake_process
from ecgscreen.leads import LAYOUTS, LEADS
from ecgscreen.synth.generate import encode_record, make_record

PRINTED = ("png", "jpeg", "dcm-sc", "pdf", "dcm-pdf")
PULSE_MV, PULSE_S, EDGE_S = 0.6, 0.1, 0.4
MISREAD_BELOW = 0.5  # a page's read leads follow the recording worse than this: misread


def _pulse_in_signal(reading, record) -> bool:
    """A step of >= 0.6 mV held for 0.1 s near a lead's printed edge, absent from the truth,
    in a lead the judge passed (a doubtful one is left blank: the network never sees it)."""
    signal = reading.signal
    step = int(PULSE_S * SIGNAL_RATE_HZ)
    edge = int(EDGE_S * SIGNAL_RATE_HZ)
    truth = record.signal
    ratio = truth.shape[1] / signal.values.shape[1]
    for i, lead in enumerate(LEADS):
        if reading.verdict.leads[lead].status != "read":
            continue
        values = signal.values[i]
        printed = np.flatnonzero(np.isfinite(values))
        if printed.size < step:
            continue
        for lo, hi in ((printed[0], printed[0] + edge), (printed[-1] - edge, printed[-1] + 1)):
            at = np.arange(max(0, lo), min(values.size, hi))
            window = values[at]
            reference = truth[i, (at * ratio).astype(int).clip(0, truth.shape[1] - 1)]
            truth_printed = truth[i, (printed * ratio).astype(int).clip(0, truth.shape[1] - 1)]
            error = np.abs((window - np.nanmedian(values)) - (reference - np.median(truth_printed)))
            run = np.convolve(error > PULSE_MV, np.ones(step), "valid")
            if run.size and run.max() >= step:
                return True
    return False


def follows_recording(reading, record) -> float:
    """The median, over the leads the judge passed, of each lead's correlation with the
    recording over the samples it printed (the best of shifts up to 20 ms): ~0.8-1 for a
    page read right, ~0.1 for one read along its grid or with its leads misplaced."""
    values, truth = reading.signal.values, record.signal
    ratio = truth.shape[1] / values.shape[1]
    shift = int(0.02 * SIGNAL_RATE_HZ)
    scores = []
    for i, lead in enumerate(LEADS):
        printed = np.flatnonzero(np.isfinite(values[i]))
        if reading.verdict.leads[lead].status != "read" or printed.size < 100:
            continue
        best = -1.0
        for s in range(-shift, shift + 1, 2):
            at = ((printed + s) * ratio).astype(int).clip(0, truth.shape[1] - 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.corrcoef(values[i, printed], truth[i, at])[0, 1]
            best = max(best, float(np.nan_to_num(r, nan=-1.0)))
        scores.append(best)
    return float(np.median(scores)) if scores else float("nan")


def read_one(args: tuple[int, int]) -> dict:
    seed, index = args
    record = make_record(seed, index, formats=PRINTED)
    design = record.style.design
    out = {
        "index": index,
        "format": record.file_format,
        "printed": record.style.layout,
        "strips": ";".join(record.style.strip_leads),
        "calibration": record.style.calibration,
        "style": f"{record.artefacts.kind}/{design.pulse}/{design.separators}/{record.style.grid}/{design.minor}",
    }
    try:
        reading = read_page(encode_record(record))
    except IntakeError as error:
        return {**out, "read": error.reason, "message": error.message}
    except Exception as error:  # noqa: BLE001 - a crash is a result here, counted and shown
        return {**out, "read": "CRASH", "message": f"{type(error).__name__}: {error}"}
    info = reading.info
    out["read"] = info.get("layout", "?")
    out["read_strips"] = ";".join(info.get("rhythm_leads") or ())
    refusal = reading.verdict.refusal
    out["refusal"] = refusal.reason if refusal else ""
    if record.file_format in ("pdf", "dcm-pdf"):  # read from the pulse's own polyline
        out["pulses_found"] = reading.signal.gain_source == "pulse"
    else:
        rows = reading.page.layout.rows if reading.page is not None else []
        out["pulses_found"] = bool(rows) and all(row.calibrated for row in rows)
    out["pulse_in_signal"] = _pulse_in_signal(reading, record)
    out["follows"] = follows_recording(reading, record) if not refusal else float("nan")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench layouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=97)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    jobs = [(args.seed, i) for i in range(args.n)]
    with ProcessPoolExecutor(args.workers, initializer=settle_intake_process) as pool:
        results = list(pool.map(read_one, jobs, chunksize=4))

    confusion: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        confusion[r["printed"]][r["read"]] += 1
    columns = sorted({r["read"] for r in results}, key=lambda c: (c not in LAYOUTS, c))
    print(
        f"\nlayout confusion on {len(results)} printed pages (seed {args.seed}): rows printed, columns read"
    )
    print(f"{'printed':9s}" + "".join(f"{c[:12]:>13s}" for c in columns))
    for layout in LAYOUTS:
        if layout in confusion:
            print(f"{layout:9s}" + "".join(f"{confusion[layout][c]:13d}" for c in columns))
    right = sum(r["read"] == r["printed"] and r.get("read_strips", "") == r["strips"] for r in results)
    layout_right = sum(r["read"] == r["printed"] for r in results)
    with_pulse = [r for r in results if r["calibration"] and "pulses_found" in r]
    found = sum(r["pulses_found"] for r in with_pulse)
    leaked = sum(r.get("pulse_in_signal", False) for r in results)
    n = len(results)
    print(f"\nlayout right: {layout_right}/{n} ({layout_right / n:.1%}); with the strips' leads: {right}/{n} "
          f"({right / n:.1%}; goal >= 99 %)")  # fmt: skip
    print(f"pulse found on every row where printed: {found}/{len(with_pulse)} "
          f"({found / max(1, len(with_pulse)):.1%}; goal >= 98 %)")  # fmt: skip
    print(f"a pulse read into a lead's signal: {leaked} page(s) (goal 0)")
    accepted = [r for r in results if "refusal" in r and not r["refusal"]]
    misread = [r for r in accepted if not r["follows"] >= MISREAD_BELOW]
    print(f"accepted but misread (read leads' median correlation with the recording < {MISREAD_BELOW}): "
          f"{len(misread)} of {len(accepted)} accepted (goal 0: a wrong answer is worse than a refusal)")  # fmt: skip
    wrong = [r for r in results if r["read"] != r["printed"] or r.get("read_strips", "") != r["strips"]]
    if wrong:
        print(f"\npages read wrong ({len(wrong)}):")
        for r in wrong:
            got = f"{r['read']} [{r.get('read_strips', '')}]"
            print(f"  {r['index']:5d} {r['format']:7s} {r['printed']:6s} [{r['strips']}] -> {got:22s} {r['style']}"
                  f"  {r.get('message', '')[:90]}")  # fmt: skip
    leaking = [r for r in results if r.get("pulse_in_signal")]
    if leaking:
        print(
            f"\npages with a pulse in a lead's signal ({len(leaking)}; the judge's verdict after the arrow):"
        )
        for r in leaking:
            print(
                f"  {r['index']:5d} {r['format']:7s} {r['printed']:6s} {r['style']} -> {r['refusal'] or 'accepted'}"
            )
    if misread:
        print(f"\npages accepted but misread ({len(misread)}; correlation, layout printed -> read):")
        for r in misread:
            print(
                f"  {r['index']:5d} {r['format']:7s} {r['follows']:5.2f} {r['printed']:6s} -> {r['read']:6s} {r['style']}"
            )
    missed = [r for r in with_pulse if not r["pulses_found"]]
    if missed:
        print(f"\npages with a pulse not found on some row ({len(missed)}):")
        for r in missed:
            print(f"  {r['index']:5d} {r['format']:7s} {r['printed']:6s} {r['style']}")


if __name__ == "__main__":
    main()
