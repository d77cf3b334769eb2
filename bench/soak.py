"""``python -m bench soak [--minutes M] [--clients 8] [--bad-share 0.1]``: the whole service
(``ecgscreen serve``, started here) under steady mixed traffic for M minutes.

Prints throughput, latency percentiles of the good requests, every answer that was not the
expected one by kind, and the resident memory (RSS) of every process of the service: at the
start, over the second minute (the baseline: the first is warm-up) and over the last minute,
with the growth between the two. RSS is sampled every 10 s and a window's value is its peak:
a process's working set swings with the files in flight (a preprocessing stub holds a 1 MB
PNG and its images for a moment), a leak lifts the peaks. What it asks of a healthy service:
no good request fails, every bad request gets a 4xx, no process grows more than 10 % after
the first minute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .serve import ServeProcess, rss_bytes
from .traffic import Answer, Traffic, bad_requests, mix, percentiles
from .triton import bench_files

__all__ = ["SoakReport", "soak", "main"]

MAX_GROWTH = 0.10  # of each process's resident memory after the baseline


@dataclass
class SoakReport:
    seconds: float
    answers: list[Answer]
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # (s, "label (pid)" -> RSS)
    window_s: float = 60.0  # the baseline window follows the first one (warm-up); the end is the last

    def peaks(self, since: float, until: float) -> dict[str, int]:
        """Each process's peak RSS among the samples taken in ``(since, until]`` seconds."""
        out: dict[str, int] = {}
        for t, sample in self.samples:
            if since < t <= until:
                for name, value in sample.items():
                    out[name] = max(out.get(name, 0), value)
        return out

    @property
    def rss(self) -> dict[str, dict[str, int]]:
        """``start`` (the first sample), ``baseline`` and ``end`` (window peaks)."""
        w = self.window_s
        return {
            "start": self.samples[0][1] if self.samples else {},
            "baseline": self.peaks(w, 2 * w),
            "end": self.peaks(self.seconds - w, self.seconds + 1),
        }

    @property
    def good(self) -> list[Answer]:
        return [a for a in self.answers if a.good]

    @property
    def bad(self) -> list[Answer]:
        return [a for a in self.answers if not a.good]

    @property
    def failed_good(self) -> list[Answer]:
        return [a for a in self.good if a.status != 200]

    @property
    def bad_not_4xx(self) -> list[Answer]:
        return [a for a in self.bad if not (a.status and 400 <= a.status < 500 and a.json_error_shape)]

    def errors(self) -> Counter:
        """Every answer other than 200, by (request kind, status, reason): a bad request's 4xx
        is expected; anything here for ``good`` is a failure."""
        return Counter((a.kind, a.status, a.error or a.failure) for a in self.answers if a.status != 200)

    def growth(self) -> dict[str, float]:
        """Each process's RSS growth from the baseline window to the last (processes alive in
        both; a process restarted meanwhile is another one, with another pid)."""
        first, last = self.rss["baseline"], self.rss["end"]
        return {name: last[name] / first[name] - 1 for name in first if name in last and first[name]}

    def lines(self) -> list[str]:
        good, bad = self.good, self.bad
        ms = percentiles([a.latency_s * 1000 for a in good if a.status == 200])
        out = [
            f"{len(self.answers)} requests in {self.seconds:.0f} s: {len(self.answers) / self.seconds:.2f}/s "
            f"({len(good)} good, {len(bad)} bad)",
            f"good requests: {len(good) - len(self.failed_good)} answered 200, {len(self.failed_good)} failed; "
            f"latency p50 {ms[50]:.0f} ms, p95 {ms[95]:.0f} ms, p99 {ms[99]:.0f} ms",
            f"bad requests: {len(bad) - len(self.bad_not_4xx)} of {len(bad)} answered 4xx in the JSON error shape",
            "answers other than 200 (request, status, reason): "
            + (", ".join(f"{k}: {n}" for k, n in sorted(self.errors().items(), key=str)) or "none"),
        ]
        minutes = int(self.seconds // 60)
        if minutes > 2:  # where a growth happened: warming up, or steadily
            peaks = [self.peaks(60 * m, 60 * (m + 1)) for m in range(minutes)]
            out.append("RSS peak (MiB) in minute " + " ".join(f"{m + 1:>4d}" for m in range(minutes)))
            for name in sorted(peaks[-1]):
                values = " ".join(f"{p[name] / 2**20:4.0f}" if name in p else "   -" for p in peaks)
                out.append(f"  {name:34s}      {values}")
        moments = [m for m in ("start", "baseline", "end") if m in self.rss]
        growth = self.growth()
        out.append(
            "RSS (MiB):" + " " * 25 + "  ".join(f"{m:>8s}" for m in moments) + "   growth since baseline"
        )
        for name in sorted(self.rss.get("start", {}) | self.rss.get("end", {})):
            values = "  ".join(
                f"{self.rss[m][name] / 2**20:8.1f}" if name in self.rss[m] else f"{'-':>8s}" for m in moments
            )
            change = f"{growth[name] * 100:+.1f} %" if name in growth else ""
            out.append(f"  {name:34s} {values}   {change}")
        return out


def _rss(service: ServeProcess) -> dict[str, int]:
    out = {}
    for pid, name in service.pids().items():
        if (value := rss_bytes(pid)) is not None:
            out[f"{name} ({pid})"] = value
    return out


def soak(service: ServeProcess, seconds: float, clients: int = 8, bad_share: float = 0.1,
         window_s: float = 60.0, sample_every_s: float = 10.0, say=print) -> SoakReport:  # fmt: skip
    """Drive ``service`` (started) for ``seconds``, sampling every process's RSS."""
    good = bench_files()
    traffic = Traffic(service.url, mix(good, bad_requests(good[2]), bad_share), clients=clients)
    report = SoakReport(seconds, [], window_s=window_s)
    start = time.monotonic()
    report.samples.append((0.0, _rss(service)))
    traffic.start()
    next_note, next_sample = start + 30, start + sample_every_s
    while (now := time.monotonic()) < start + seconds:
        if now >= next_sample:
            report.samples.append((now - start, _rss(service)))
            next_sample += sample_every_s
        if now >= next_note:
            done = traffic.snapshot()
            failed = sum(1 for a in done if a.good and a.status != 200)
            say(f"  {now - start:5.0f} s: {len(done)} answers, {failed} good ones failed", flush=True)
            next_note += 30
        time.sleep(0.5)
    report.samples.append((time.monotonic() - start, _rss(service)))
    report.answers = traffic.stop()
    report.seconds = time.monotonic() - start
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bad-share", type=float, default=0.1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ecgscreen-soak-") as tmp:
        service = ServeProcess(Path(tmp) / "serve.log").start()
        try:
            print(f"ecgscreen serve ready at {service.url}; {args.clients} clients, "
                  f"{args.bad_share:.0%} bad requests, {args.minutes:g} min", flush=True)  # fmt: skip
            report = soak(service, args.minutes * 60, args.clients, args.bad_share)
        finally:
            stopped = service.stop()
        for line in report.lines():
            print(line)
        print(f"ecgscreen serve stopped {stopped:.1f} s after Ctrl-C")
        growth = report.growth()
        worst = max(growth.values(), default=0.0)
        verdict = not report.failed_good and not report.bad_not_4xx and worst <= MAX_GROWTH
        print(f"{'PASS' if verdict else 'FAIL'}: {len(report.failed_good)} good requests failed, "
              f"{len(report.bad_not_4xx)} bad ones not 4xx, largest RSS growth {worst * 100:+.1f} %")  # fmt: skip
