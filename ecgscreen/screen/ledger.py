"""The results CSV: one row per file, appended and flushed as each answer arrives.

A killed run loses at most the files that were in flight: every finished row is on disk. On
resume the rows already there are kept, a last row cut short by the kill is dropped, and their
files are skipped. Rows are final answers only: a file Triton could not answer (unavailable,
timed out) gets no row, so the next run tries it again.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["COLUMNS", "Ledger"]

COLUMNS = (
    "path",
    "outcome",  # ok | refused (the file: intake's reason) | error (intake failed on it: a bug)
    "status",  # 200, or the HTTP status the gateway would answer for this refusal
    "reason",  # intake's refusal reason (empty when ok)
    "scar_probability",
    "scar_call",  # 1 at or above the model card's threshold
    "scar_risk",  # low | medium | high (the study's bands)
    "lvef_probability",
    "lvef_call",
    "lvef_risk",
    "source_format",
    "layout",
    "quality",
    "warnings",  # "; "-separated
    "detail",  # what intake said about a refused file
)


class Ledger:
    """``path`` opened for appending rows; ``done`` holds the keys already answered."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.done: dict[str, str] = {}  # key -> outcome
        if self.path.exists() and self._recover():
            self._file = self.path.open("a", newline="", encoding="utf-8")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", newline="", encoding="utf-8")
            self._file.write(",".join(COLUMNS) + "\n")
            self._file.flush()
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS, lineterminator="\n")

    def _recover(self) -> bool:
        """Read the rows already written (``False``: nothing to keep, start the file anew)."""
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if not complete:
            return False
        if len(complete) != len(data):  # the row a kill cut short: its file runs again
            with self.path.open("r+b") as file:
                file.truncate(len(complete))
        rows = csv.reader(io.StringIO(complete.decode("utf-8")))
        header = next(rows, None)
        if header is None or tuple(header) != COLUMNS:
            raise ValueError(
                f"{self.path} is not an ecgscreen results file of this version (columns "
                f"{header}); give another --out"
            )
        for row in rows:
            if len(row) == len(COLUMNS):
                self.done[row[0]] = row[1]
        return True

    def append(self, row: Mapping[str, object]) -> None:
        self._writer.writerow({column: row.get(column, "") for column in COLUMNS})
        self._file.flush()
        self.done[str(row["path"])] = str(row["outcome"])

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
