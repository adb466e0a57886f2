"""What is known of each published part, so that an import does not open every part of its day.

A part is never changed in place: a new version of it is a new file (a rename over the name,
with its own size and modification time). So its row count, and for a raw part the versions
(task_id, content_hash) it holds, are read from its footer and columns once, and kept here,
keyed by its path, size and modification time; a part whose file no longer matches is read
again. The index is a cache in ``<data dir>/state/parts.sqlite``: deleting it loses nothing.
Without it, the 200th import into a day would open the footers of the 199 before it, table by
table: N imports into one day would cost N² work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow.parquet as pq

from serp_etl.core.shared_sqlite import SharedSQLite
from serp_etl.core.warehouse import Warehouse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parts (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    versioned INTEGER NOT NULL  -- whether part_versions holds its versions
);
CREATE TABLE IF NOT EXISTS part_versions (
    path TEXT NOT NULL,
    task_id TEXT NOT NULL,
    content_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS part_versions_by_path ON part_versions (path);
"""
# A raw part's versions: (task_id, content_hash) pairs, read from its columns.
ReadVersions = Callable[[Path], list[tuple[str, str]]]


class PartIndex(SharedSQLite):
    def __init__(self, root: Path, path: Path) -> None:
        """Parts under ``root`` (the warehouse), indexed in the SQLite file ``path``."""
        self.root = root
        super().__init__(path, _SCHEMA, synchronous="NORMAL")  # a cache: the files are the truth

    def _indexed(self, parts: list[Path]) -> list[tuple[Path, str, os.stat_result,
                                                         tuple[int, int] | None]]:
        """Each part with its key, its stat, and (rows, versioned) if indexed as it is now.
        One query a directory: a day's parts are read together."""
        entries: dict[str, tuple[int, int, int, int]] = {}
        for directory in {part.parent for part in parts}:
            low, high = _range(self._key(directory))
            entries.update((key, tuple(rest)) for key, *rest in self._db.execute(
                "SELECT path, size, mtime_ns, rows, versioned FROM parts"
                " WHERE path >= ? AND path < ?", (low, high)))
        found = []
        for part in parts:
            key, stat = self._key(part), part.stat()
            entry = entries.get(key)
            current = entry is not None and entry[:2] == (stat.st_size, stat.st_mtime_ns)
            found.append((part, key, stat, (entry[2], entry[3]) if current else None))
        return found

    def _key(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def rows(self, parts: Iterable[Path]) -> dict[Path, int]:
        """Each part's row count."""
        counts: dict[Path, int] = {}
        with self._transaction():
            for part, key, stat, indexed in self._indexed(list(parts)):
                if indexed is not None:
                    counts[part] = indexed[0]
                    continue
                counts[part] = pq.ParquetFile(part).metadata.num_rows
                self._db.execute("DELETE FROM part_versions WHERE path = ?", (key,))
                self._db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, 0)",
                                 (key, stat.st_size, stat.st_mtime_ns, counts[part]))
        return counts

    def versions(self, parts: Iterable[Path], read: ReadVersions) -> set[tuple[str, str]]:
        """Every (task_id, content_hash) the raw ``parts`` hold; ``read`` reads those of a part
        not indexed yet."""
        found: set[tuple[str, str]] = set()
        parts = list(parts)
        with self._transaction():
            stored: dict[str, list[tuple[str, str]]] = {}
            for directory in {part.parent for part in parts}:
                for key, task_id, digest in self._db.execute(
                        "SELECT path, task_id, content_hash FROM part_versions"
                        " WHERE path >= ? AND path < ?", _range(self._key(directory))):
                    stored.setdefault(key, []).append((task_id, digest))
            for part, key, stat, indexed in self._indexed(parts):
                if indexed is not None and indexed[1]:
                    found.update(stored.get(key, ()))
                    continue
                pairs = read(part)
                found.update(pairs)
                self._db.execute("DELETE FROM part_versions WHERE path = ?", (key,))
                self._db.executemany("INSERT INTO part_versions VALUES (?, ?, ?)",
                                     [(key, task_id, digest) for task_id, digest in pairs])
                self._db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, 1)",
                                 (key, stat.st_size, stat.st_mtime_ns, len(pairs)))
        return found


def _range(directory: str) -> tuple[str, str]:
    """Keys of the files directly or deeper under ``directory``: ``[low, high)``."""
    return directory + os.sep, directory + chr(ord(os.sep) + 1)


def open_index(warehouse: Warehouse) -> PartIndex:
    return PartIndex(warehouse.root, warehouse.data_dir / "state" / "parts.sqlite")
