"""The router's memory: one small SQLite file, so a restart neither skips nor repeats an ECG.

Two tables:

* ``cursor``: how far each feed has read (Orthanc's last change sequence number).
* ``instances``: every object the router took on, by SOP Instance UID, with where to fetch it
  again and its status:

  ``pending``  received (C-STORE) or found, not finished yet;
  ``failed``   the last attempt failed for a reason that may pass (the PACS, the gateway or
               Triton down, a 5xx); ``next_attempt`` says when to try again, ``attempts``
               how often it was tried;
  ``done``     results stored;
  ``refused``  will never work (not an ECG, a file intake refuses): recorded once, not retried.

A feed moves its cursor past a change only once the change's object is ``done``, ``refused``
or saved as ``failed``/``pending``, in the same transaction: nothing falls between the two.
Writes come from several threads (workers, the C-STORE handler): one connection, one lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["State", "Instance", "STATUSES"]

STATUSES = ("pending", "failed", "done", "refused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    feed TEXT PRIMARY KEY,
    position TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    origin TEXT NOT NULL,              -- orthanc | qido | scp
    spool_path TEXT,                   -- a received file waiting on disk (C-STORE)
    status TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'done', 'refused')),
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    arrived REAL NOT NULL,             -- when it reached the PACS or the router (epoch s)
    updated REAL NOT NULL,
    next_attempt REAL,
    results INTEGER                    -- objects stored back (done)
);
CREATE INDEX IF NOT EXISTS instances_due ON instances (status, next_attempt);
"""


@dataclass(frozen=True)
class Instance:
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    origin: str
    spool_path: str | None
    status: str
    reason: str | None
    attempts: int
    arrived: float
    updated: float
    next_attempt: float | None
    results: int | None


class State:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a crash loses no committed answer
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work (nested calls join the outer one)."""
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- cursors ---------------------------------------------------------------------------------

    def cursor(self, feed: str, default: str = "") -> str:
        with self._lock:
            row = self._db.execute("SELECT position FROM cursor WHERE feed = ?", (feed,)).fetchone()
        return row["position"] if row else default

    def set_cursor(self, feed: str, position: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO cursor (feed, position) VALUES (?, ?) "
                "ON CONFLICT (feed) DO UPDATE SET position = excluded.position",
                (feed, str(position)),
            )

    # -- instances -------------------------------------------------------------------------------

    def get(self, sop_instance_uid: str) -> Instance | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)
            ).fetchone()
        return Instance(**row) if row else None

    def known(self, sop_instance_uids: list[str]) -> set[str]:
        """Which of these the router has already taken on (any status)."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(sop_instance_uids), 500):
                chunk = sop_instance_uids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT sop_instance_uid FROM instances WHERE sop_instance_uid IN ({marks})", chunk
                )
                found.update(row[0] for row in rows)
        return found

    def add(
        self,
        sop_instance_uid: str,
        study_uid: str,
        series_uid: str,
        sop_class_uid: str,
        origin: str,
        arrived: float | None = None,
        spool_path: str | None = None,
        refused_reason: str | None = None,
    ) -> bool:
        """Take an object on as ``pending`` (or, with ``refused_reason``, record it as refused
        without trying); False, and nothing changes, if it is known already."""
        now = time.time()
        status = "pending" if refused_reason is None else "refused"
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO instances (sop_instance_uid, study_uid, series_uid, sop_class_uid, origin, "
                "spool_path, status, reason, attempts, arrived, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (sop_instance_uid, study_uid, series_uid, sop_class_uid, origin, spool_path, status,
                 refused_reason, arrived or now, now),
            )  # fmt: skip
            return cursor.rowcount == 1

    def done(self, sop_instance_uid: str, results: int) -> None:
        self._finish(sop_instance_uid, "done", None, results)

    def refused(self, sop_instance_uid: str, reason: str) -> None:
        self._finish(sop_instance_uid, "refused", reason, None)

    def _finish(self, sop_instance_uid: str, status: str, reason: str | None, results: int | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE instances SET status = ?, reason = ?, results = ?, attempts = attempts + 1, "
                "updated = ?, next_attempt = NULL, spool_path = NULL WHERE sop_instance_uid = ?",
                (status, reason, results, time.time(), sop_instance_uid),
            )

    def failed(self, sop_instance_uid: str, reason: str, backoff_s: float) -> int:
        """Record a failed attempt; it is due again in ``backoff_s``. The attempt count."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "UPDATE instances SET status = 'failed', reason = ?, attempts = attempts + 1, updated = ?, "
                "next_attempt = ? WHERE sop_instance_uid = ?",
                (reason, now, now + backoff_s, sop_instance_uid),
            )
            row = db.execute(
                "SELECT attempts FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)
            ).fetchone()
        return int(row["attempts"]) if row else 0

    def due(self, limit: int = 100, now: float | None = None) -> list[Instance]:
        """Work waiting: ``pending`` ones, and ``failed`` ones whose backoff has passed."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM instances WHERE status = 'pending' OR (status = 'failed' AND next_attempt <= ?) "
                "ORDER BY arrived LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Instance(**row) for row in rows]

    def oldest_waiting(self) -> float | None:
        """Arrival time of the oldest object not finished yet (pending or failed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(arrived) FROM instances WHERE status IN ('pending', 'failed')"
            ).fetchone()
        return row[0]

    def waiting(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM instances WHERE status IN ('pending', 'failed')"
            ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM instances GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | {row[0]: row[1] for row in rows}

    def listing(self, status: str, limit: int = 50) -> list[Instance]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM instances WHERE status = ? ORDER BY updated DESC LIMIT ?", (status, limit)
            ).fetchall()
        return [Instance(**row) for row in rows]
