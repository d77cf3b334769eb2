"""``python -m bench refusals``: does the service refuse what it cannot read, and only that?

Three tables, all through the serving intake and its reading judge (``imaging.judge``):

1. **The not-an-ECG corpus** (``synth.not_ecg``): noise, text, a lab table, blank paper, ECG
   paper without trace, flat lines, random walks, sine waves and EEG-like channels laid out
   like a printout, a line chart, a photo, scribbles, half a page, one rhythm strip, two rows,
   a page with four leads that no heart drew. Each must be refused with its reason (goal 100 %).
2. **The generator's ECGs** (a fresh seed, every format, layout and acquisition as
   ``ecgscreen synth`` mixes them): the share refused, by acquisition and layout (goal <= 2 %);
   each lead's status against the truth (a lead is read right when its SNR against the
   recording is >= 5 dB; goal >= 95 % agreement); and how well ``quality`` separates good
   readings from poor ones (AUROC against a record's mean SNR >= 5 dB).

Options: ``--n N`` (default 600), ``--seed S`` (default 71), ``--workers W``.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ecgscreen.contract import SIGNAL_RATE_HZ
from ecgscreen.imaging.errors import IntakeError
from ecgscreen.imaging.fidelity import signal_snr_db
from ecgscreen.imaging.pipeline import read_page
from ecgscreen.imaging.worker import settle_intake_process
from ecgscreen.leads import LEADS
from ecgscreen.synth.generate import encode_record, make_record
from ecgscreen.synth.not_ecg import not_ecg_corpus

GOOD_LEAD_DB = 5.0


def corpus_table() -> float:
    """Print the corpus' refusals; the share refused with the right reason."""
    print(f"{'picture':26s}{'expected':16s}{'got':16s}")
    right = 0
    corpus = not_ecg_corpus()
    for name, data, reason in corpus:
        try:
            reading = read_page(data)
            got = reading.verdict.refusal.reason if reading.verdict.refusal else "ANSWERED"
        except IntakeError as error:
            got = error.reason
        right += got == reason
        print(f"{name:26s}{reason:16s}{got:16s}{'' if got == reason else '  <- wrong'}")
    share = right / len(corpus)
    print(f"refused with the right reason: {right}/{len(corpus)} ({share:.0%}; goal 100 %)")
    return share


def _acquisition(record) -> str:
    if record.file_format == "dcm-waveform":
        return "waveform"
    if record.file_format in ("pdf", "dcm-pdf"):
        return "vector PDF"
    return record.artefacts.kind  # clean, scan, photo


def judge_record(job: tuple[int, int]) -> dict:
    """One generator record through intake and the judge, held to its recording."""
    seed, index = job
    record = make_record(seed, index)
    out = {"acquisition": _acquisition(record), "layout": record.style.layout}
    try:
        reading = read_page(encode_record(record))
    except IntakeError as error:
        return {**out, "refused": error.reason}
    verdict = reading.verdict
    snr = signal_snr_db(record.signal, SIGNAL_RATE_HZ, reading.signal)
    out.update(
        refused=verdict.refusal.reason if verdict.refusal else None,
        quality=verdict.quality,
        snr=float(np.mean([snr.get(lead, -99.0) for lead in LEADS])),
        leads=[
            (verdict.leads[lead].status == "read", snr.get(lead, -99.0) >= GOOD_LEAD_DB) for lead in LEADS
        ],
    )
    return out


def generator_tables(results: list[dict]) -> dict[str, float]:
    n = len(results)
    refused = [r for r in results if r["refused"]]
    print(f"\n{n} generator ECGs: {len(refused)} refused ({len(refused) / n:.1%}; goal <= 2 %)")
    groups: dict[str, list] = defaultdict(list)
    for r in results:
        groups[f"{r['acquisition']} / {r['layout']}"].append(r)
    print(f"{'acquisition / layout':28s}{'ECGs':>6s}{'refused':>9s}  reasons")
    for name in sorted(groups):
        rows = groups[name]
        reasons = Counter(r["refused"] for r in rows if r["refused"])
        shown = ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        print(f"{name:28s}{len(rows):6d}{sum(reasons.values()):9d}  {shown}")
    judged = [pair for r in results if "leads" in r for pair in r["leads"]]
    agree = sum(read == good for read, good in judged) / max(1, len(judged))
    table = Counter(judged)
    print(
        f"\nleads judged against the truth (read right = SNR >= {GOOD_LEAD_DB:g} dB): agreement {agree:.1%} (goal >= 95 %)"
    )
    print(f"{'':24s}{'truth: right':>14s}{'truth: wrong':>14s}")
    for status, read in (("judged read", True), ("judged not read", False)):
        print(f"{status:24s}{table[(read, True)]:14d}{table[(read, False)]:14d}")
    # The threshold of doubtful leads: how good are the readings with 0, 1, 2, 3+ of them?
    print(f"\n{'doubtful or missing leads':28s}{'ECGs':>6s}{'mean SNR dB':>13s}{'leads right':>13s}")
    for k, label in ((0, "0"), (1, "1"), (2, "2"), (3, "3 or more")):
        rows = [r for r in results if "leads" in r and min(3, sum(not read for read, _ in r["leads"])) == k]
        if rows:
            right = np.mean([good for r in rows for _, good in r["leads"]])
            print(f"{label:28s}{len(rows):6d}{np.median([r['snr'] for r in rows]):13.1f}{right:13.1%}")
    scored = [r for r in results if "quality" in r]
    auroc = float("nan")
    good = np.array([r["snr"] >= GOOD_LEAD_DB for r in scored])
    if 0 < good.sum() < len(good):
        from sklearn.metrics import roc_auc_score

        auroc = float(roc_auc_score(good, [r["quality"] for r in scored]))
    print(
        f"quality vs a record's mean SNR >= {GOOD_LEAD_DB:g} dB: AUROC {auroc:.3f} ({good.mean():.0%} of records good)"
    )
    return {"refused": len(refused) / n, "agreement": agree, "auroc": auroc}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench refusals")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=71)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    corpus_table()
    with ProcessPoolExecutor(args.workers, initializer=settle_intake_process) as pool:
        results = list(pool.map(judge_record, [(args.seed, i) for i in range(args.n)], chunksize=4))
    generator_tables(results)


if __name__ == "__main__":
    main()
