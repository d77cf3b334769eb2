"""What ``ecgscreen screen`` shows: a progress bar with the rate, ETA and outcomes so far, and
the summary at the end (counts, refusals by reason, positive calls per task)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..contract import TASK_NAMES
from .runner import Summary

__all__ = ["ScreenProgress", "print_summary"]


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} ECG/s" if speed else "  -   ECG/s", style="cyan")


class ScreenProgress:
    """A rich progress bar driven by ``screen``'s ``on_start`` / ``advance`` callbacks."""

    def __init__(self, console: Console) -> None:
        self.counts: Counter = Counter()
        self.bar = Progress(
            TextColumn("[bold]screening"), BarColumn(), MofNCompleteColumn(), _Rate(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[counts]}"),
            console=console, speed_estimate_period=60,
        )  # fmt: skip
        self.task = None

    def on_start(self, todo: int) -> None:
        self.task = self.bar.add_task("screening", total=todo, counts="")

    def advance(self, outcome: str | None) -> None:
        self.counts[outcome or "no answer"] += 1
        counts = "  ".join(f"{name} {n}" for name, n in sorted(self.counts.items()))
        self.bar.update(self.task, advance=1, counts=counts)

    def __enter__(self) -> ScreenProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)


def print_summary(console: Console, summary: Summary, out: Path) -> None:
    table = Table(title=f"screened into {out}", show_header=False)
    table.add_row("files in the source", str(summary.total))
    table.add_row("already in the CSV (skipped)", str(summary.skipped))
    for outcome in ("ok", "refused", "error"):
        table.add_row(f"{outcome} this run", str(summary.outcomes[outcome]))
    for task, n in summary.positives.items():
        share = n / summary.outcomes["ok"] if summary.outcomes["ok"] else 0.0
        table.add_row(f"positive: {TASK_NAMES[task]}", f"{n} ({share:.0%} of answered)")
    table.add_row("rate", f"{summary.rate:.1f} ECG/s ({summary.screened} in {summary.seconds:.1f} s)")
    console.print(table)
    if summary.refusals:
        reasons = Table("refusal reason", "files", title="refused this run")
        for reason, n in summary.refusals.most_common():
            reasons.add_row(reason, str(n))
        console.print(reasons)
    if summary.unanswered:
        console.print(f"[yellow]{len(summary.unanswered)} files got no answer from Triton (down or overloaded); "
                      "run the same command again to screen them[/yellow]")  # fmt: skip
