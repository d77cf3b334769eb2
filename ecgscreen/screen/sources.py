"""What to screen: every file under a folder, the files a list names, or a ``labels.csv``'s.

Each file gets a *key*, the path written in the results CSV and matched on resume: relative
to the folder, or exactly as the list / ``labels.csv`` writes it (relative to the list's own
folder, or absolute).
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["Source", "find_sources"]

Source = tuple[str, Path]  # (key, file)


def _walk(folder: Path, skip: set[Path]) -> list[Source]:
    """Regular files under ``folder``, sorted; hidden ones, CSV files (lists, results, labels:
    never an ECG) and whatever lies in ``skip`` (files or folders: this run's outputs) left out."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() == ".csv":
            continue
        resolved = path.resolve()
        if path.is_file() and not any(resolved == s or resolved.is_relative_to(s) for s in skip):
            found.append((relative.as_posix(), path))
    return found


def _listed(list_file: Path) -> list[str]:
    """The paths in a ``labels.csv`` (its ``path`` column) or a list (one per line, ``#``
    comments and blank lines ignored)."""
    text = list_file.read_text(encoding="utf-8-sig")
    if list_file.suffix.lower() == ".csv":
        rows = csv.DictReader(text.splitlines())
        if "path" not in (rows.fieldnames or []):
            raise ValueError(
                f"{list_file} has no 'path' column (columns: {', '.join(rows.fieldnames or [])})"
            )
        return [row["path"] for row in rows if row.get("path")]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def find_sources(source: Path, skip: tuple[Path, ...] = ()) -> list[Source]:
    """The files ``source`` stands for, in a stable order; ``ValueError`` when it is none of
    the three kinds or names no file. Listed files that do not exist are kept: their rows
    say so."""
    source = Path(source)
    if source.is_dir():
        found = _walk(source, {p.resolve() for p in skip})
    elif source.is_file():
        found = [(key, (source.parent / key) if not Path(key).is_absolute() else Path(key))
                 for key in dict.fromkeys(_listed(source))]  # fmt: skip
    else:
        raise ValueError(f"{source} does not exist (give a folder, a list file or a labels.csv)")
    if not found:
        raise ValueError(f"{source} names no file to screen")
    return found
