"""A SQLite file that several processes use at once (the ledger, the part index, the rate
limits): write-ahead log, a long busy timeout, each write in one immediate transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self


class SharedSQLite:
    def __init__(self, path: Path | None, schema: str, *, synchronous: str = "FULL",
                 check_same_thread: bool = True) -> None:
        """Open ``path`` (None: in memory, for this object alone) and create ``schema``.
        ``synchronous`` NORMAL suits a cache, whose loss costs nothing but time."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else path, timeout=60,
                                   isolation_level=None, check_same_thread=check_same_thread)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(schema)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One immediate transaction: everything in it lands, or nothing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
