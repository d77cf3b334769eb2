"""``screen``: the files of an archive through Triton, ``concurrency`` at a time, each answer
appended to the results CSV as it arrives, with a progress bar and a summary.

Files already in the CSV are skipped (resume). A file that cannot be read, or is larger than
intake's limit, is refused here without a call; Triton's refusals keep intake's reason. Files
Triton did not answer (down, overloaded) get no row and are counted: run again to retry them.
Heatmaps and DICOM results are drawn in worker threads, off the event loop. Anything
unexpected on one file (a bug) gives that file an ``error`` row with reason ``internal``, and
the run goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..card import ModelCard
from ..imaging.errors import INTERNAL, IntakeError
from ..imaging.limits import DEFAULT_LIMITS
from .client import PER_CONNECTION, ScreenClient, Unanswered
from .ledger import Ledger
from .outputs import refusal_fields, row_fields, write_dicom, write_heatmaps, write_reading
from .sources import Source

__all__ = ["Summary", "screen"]


@dataclass
class Summary:
    total: int  # files the source names
    skipped: int  # already in the CSV
    outcomes: Counter = field(default_factory=Counter)  # ok / refused / error, this run
    refusals: Counter = field(default_factory=Counter)  # reason -> files, this run
    positives: Counter = field(default_factory=Counter)  # task -> calls at the threshold, this run
    unanswered: list[str] = field(default_factory=list)  # keys without a row: run again
    seconds: float = 0.0

    @property
    def screened(self) -> int:
        return sum(self.outcomes.values())

    @property
    def rate(self) -> float:
        return self.screened / self.seconds if self.seconds else 0.0


def _refused_here(data: bytes | None, error: OSError | None) -> dict | None:
    """The CSV fields of a file refused before any call: unreadable, or over intake's limit."""
    if error is not None:
        status = 404 if isinstance(error, FileNotFoundError) else 400
        detail = f"the file cannot be read ({error.strerror or type(error).__name__})"
        return {"outcome": "refused", "status": status, "reason": "unreadable", "detail": detail}
    if len(data) > DEFAULT_LIMITS.max_bytes:
        limit = DEFAULT_LIMITS.max_bytes / 2**20
        too_large = IntakeError(
            "too_large", f"the file is {len(data) / 2**20:.1f} MiB; the limit is {limit:.0f} MiB"
        )
        return refusal_fields(too_large)
    return None


def _read(path: Path) -> tuple[bytes | None, OSError | None]:
    try:
        return path.read_bytes(), None
    except OSError as error:
        return None, error


async def _screen(todo: list[Source], ledger: Ledger, card: ModelCard, url: str, concurrency: int,
                  explain_dir: Path | None, dicom_dir: Path | None, reading_dir: Path | None,
                  summary: Summary, advance) -> None:  # fmt: skip
    tasks = tuple(card.tasks)
    connections = -(-concurrency // PER_CONNECTION)
    client = ScreenClient(url, tasks, pictures=bool(explain_dir or dicom_dir), connections=connections)
    try:
        if not await client.ready():
            raise RuntimeError(f"Triton at {url} is not reachable or its ensemble is not ready")
        if (answered := await client.answered_tasks()) != tasks:
            raise RuntimeError(f"the model card says the model answers {list(tasks)}, Triton's ensemble "
                               f"answers {list(answered)}: give the card of the served model (--model-dir)")  # fmt: skip
        queue = iter(todo)

        async def one(key: str, path: Path, lane: int) -> dict | None:
            """The file's CSV row, or None when Triton did not answer it."""
            data, problem = await asyncio.to_thread(_read, path)
            refused = _refused_here(data, problem)
            if refused is None:
                try:
                    answer = await client.screen(data, lane)
                except IntakeError as error:
                    refused = refusal_fields(error)
                except Unanswered:
                    return None
            if reading_dir and data is not None:
                await asyncio.to_thread(write_reading, reading_dir, key, data)
            if refused is not None:
                return {"path": key, **refused}
            row = {"path": key, **row_fields(answer, card)}
            if explain_dir:
                await asyncio.to_thread(write_heatmaps, explain_dir, key, answer, tasks)
            if dicom_dir:
                await asyncio.to_thread(write_dicom, dicom_dir, key, data, answer, card, tasks)
            return row

        async def worker(lane: int) -> None:
            for key, path in queue:  # one shared iterator: each file goes to one worker
                try:
                    row = await one(key, path, lane)
                except Exception as exc:  # a bug on one file: reported for it, the run goes on
                    failure = IntakeError(INTERNAL, f"screening failed unexpectedly ({type(exc).__name__}); "
                                                    "please report it")  # fmt: skip
                    row = {"path": key, **refusal_fields(failure)}
                if row is None:
                    summary.unanswered.append(key)
                    advance(None)
                    continue
                if row["outcome"] == "ok":
                    for task in tasks:
                        summary.positives[task] += row[f"{task}_call"]
                else:
                    summary.refusals[row["reason"]] += 1
                ledger.append(row)
                summary.outcomes[row["outcome"]] += 1
                advance(row["outcome"])

        await asyncio.gather(*(worker(lane) for lane in range(max(1, concurrency))))
    finally:
        await client.close()


def screen(sources: list[Source], out: Path, card: ModelCard, url: str, concurrency: int = 8,
           explain_dir: Path | None = None, dicom_dir: Path | None = None, advance=None,
           on_start=None, reading_dir: Path | None = None) -> Summary:  # fmt: skip
    """Screen ``sources`` into the CSV ``out``; ``on_start(todo)`` is called with the number of
    files this run sends, ``advance(outcome)`` after each (``None``: not answered)."""
    if not card.image_only_answer:
        raise ValueError(f"model {card.name} answers only with clinical features (a clinical model of the "
                         "study): screen it through the gateway's /predict instead")  # fmt: skip
    with Ledger(out) as ledger:
        todo = [(key, path) for key, path in sources if key not in ledger.done]
        summary = Summary(total=len(sources), skipped=len(sources) - len(todo))
        if on_start:
            on_start(len(todo))
        start = time.perf_counter()
        if todo:  # nothing left: no need for Triton at all
            asyncio.run(_screen(todo, ledger, card, url, concurrency, explain_dir, dicom_dir, reading_dir,
                                summary, advance or (lambda outcome: None)))  # fmt: skip
        summary.seconds = time.perf_counter() - start
    return summary
