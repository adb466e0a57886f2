"""A SQLite file that several processes use at once (the ledger, the part index, the rate
limits): write-ahead log, a long busy timeout, each write in one immediate transaction."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self


class StateUnreadable(RuntimeError):
    """A state file that exists but holds no readable state (0 bytes, or not SQLite)."""


def _create_whole(path: Path) -> None:
    """Create ``path`` as an empty WAL database that is never seen empty: SQLite creates a file
    of 0 bytes and writes its header later, and a 0-byte ledger is refused as a lost one
    (``StateUnreadable``). So it is made aside and linked into place; of two creators, the
    second keeps the first's."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        db = sqlite3.connect(temp)
        db.execute("PRAGMA journal_mode=WAL")  # writes the header: the file is 4 KiB now
        db.close()
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        with suppress(FileExistsError):
            os.link(temp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temp.unlink(missing_ok=True)


class SharedSQLite:
    def __init__(self, path: Path | None, schema: str, *, synchronous: str = "FULL",
                 check_same_thread: bool = True, precious: bool = False) -> None:
        """Open ``path`` (None: in memory, for this object alone) and create ``schema``.
        ``synchronous`` NORMAL suits a cache, whose loss costs nothing but time. A
        ``precious`` file (the ledger) that exists but is empty or unreadable raises
        ``StateUnreadable``: it is never silently replaced by an empty one."""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if precious and not path.exists():
                _create_whole(path)
            if precious and path.stat().st_size == 0:
                raise StateUnreadable(
                    f"{path} is empty (0 bytes): the state that records every paid task was "
                    "lost or truncated (a bad copy, a volume not mounted). Restore it from a "
                    "backup. serp-etl does not start an empty one in its place: that would "
                    "post, and pay for, the day's tasks again.")
        self._db = sqlite3.connect(":memory:" if path is None else path, timeout=60,
                                   isolation_level=None, check_same_thread=check_same_thread)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(schema)
        except sqlite3.DatabaseError as error:
            self._db.close()
            if not precious:
                raise
            raise StateUnreadable(
                f"{path} is not a readable state file ({error}): restore it from a backup. "
                "serp-etl does not start an empty one in its place: that would post, and pay "
                "for, the day's tasks again.") from error

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
