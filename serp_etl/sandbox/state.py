"""What both sandboxes keep the same way: SQLite state shared by every process and thread, and
per-minute rate limits counted in it (as the live services count across clients)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

_CALLS = """
CREATE TABLE IF NOT EXISTS calls (account TEXT NOT NULL, bucket TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS calls_window ON calls (account, bucket, at);
"""


READY_SECONDS_ENV = "SERP_ETL_SANDBOX_READY_SECONDS"
# Set to 1: the DataForSEO sandbox's SERPs carry the odd undocumented item type and field.
DRIFT_ENV = "SERP_ETL_SANDBOX_DRIFT"


class SandboxState:
    def __init__(
        self, state_path: Path | str, schema: str, clock, ready_seconds: float | None
    ) -> None:
        # How long a posted task takes to be ready (default 2 s, or the environment's).
        self.ready_seconds = (
            float(os.environ.get(READY_SECONDS_ENV, "2"))
            if ready_seconds is None
            else ready_seconds
        )
        self.state_path = Path(state_path)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._local = threading.local()
        self.db().executescript(schema + _CALLS)

    def db(self) -> sqlite3.Connection:
        """This thread's connection: the loopback server answers on several threads."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.state_path, isolation_level=None, timeout=60)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def rate_limit_wait(self, account: str, bucket: str, per_minute: int) -> float | None:
        """Count this call against ``bucket``; if the last minute already had its fill, the
        call is refused and this returns the seconds until a slot frees (else None)."""
        now = self.clock()
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM calls WHERE at <= ?", (now - 60,))
            count, oldest = db.execute(
                "SELECT COUNT(*), MIN(at) FROM calls WHERE account = ? AND bucket = ?",
                (account, bucket),
            ).fetchone()
            if count >= per_minute:
                return oldest + 60 - now
            db.execute("INSERT INTO calls VALUES (?, ?, ?)", (account, bucket, now))
            return None
        finally:
            db.execute("COMMIT")
