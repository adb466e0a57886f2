"""What is known of each published part, so that an import does not open every part of its day.

A part is never changed in place: a new version of it is a new file (a rename over the name,
with its own size and modification time; on object storage, a new object name). So its row
count, and for a raw part the versions (task_id, content_hash) it holds, are read from its
footer and columns once, and kept here, keyed by its path, size and modification time; a part
whose file no longer matches is read again. The index is a cache in
``<data dir>/state/parts.sqlite``, or in ``SERP_ETL_STATE_URL``'s database with the rest of the
state (every host of a deployment reads a part once): deleting it loses nothing. Without it,
the 200th import into a day would open the footers of the 199 before it, table by table: N
imports into one day would cost N² work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from serp_etl.core.warehouse import Warehouse
from serp_etl.state.database import TEXT, Database, is_url
from serp_etl.state.location import state_location
from serp_etl.storage.base import Storage

_SCHEMA = sa.MetaData()
sa.Table(
    "parts",
    _SCHEMA,
    sa.Column("path", TEXT, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("versioned", sa.Integer, nullable=False),  # whether part_versions holds them
)
sa.Table(
    "part_versions",
    _SCHEMA,
    sa.Column("path", TEXT, nullable=False),
    sa.Column("task_id", TEXT, nullable=False),
    sa.Column("content_hash", TEXT, nullable=False),
    sa.Index("part_versions_by_path", "path"),
)
_REPLACE_PART = (
    "INSERT INTO parts VALUES (:path, :size, :mtime_ns, :rows, :versioned)"
    " ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
    " rows = excluded.rows, versioned = excluded.versioned"
)
# A raw part's versions: (task_id, content_hash) pairs, read from its columns through the
# storage's file system (None: the local one).
ReadVersions = Callable[[PurePath, Any], list[tuple[str, str]]]


class PartIndex(Database):
    def __init__(self, storage: Storage, location: Path | str) -> None:
        """Parts of ``storage`` (the warehouse's), indexed in the SQLite file or the database
        ``location``. A SQLite file serves one data dir: parts are keyed by their path under the
        warehouse; a shared database may serve several: by their full path or URL."""
        self.storage = storage
        self.root = storage.root
        self._prefix = f"{storage.url.rstrip('/')}/" if is_url(location) else ""
        super().__init__(location, _SCHEMA, synchronous="NORMAL")  # a cache: files are truth

    def _indexed(
        self, parts: list[PurePath]
    ) -> list[tuple[PurePath, str, tuple[int, int], tuple[int, int] | None]]:
        """Each part with its key, (size, mtime), and (rows, versioned) if indexed as it is now.
        One query a directory: a day's parts are read together."""
        entries: dict[str, tuple[int, int, int, int]] = {}
        for directory in {part.parent for part in parts}:
            low, high = _range(self._key(directory))
            entries.update(
                (key, tuple(rest))
                for key, *rest in self.execute(
                    "SELECT path, size, mtime_ns, rows, versioned FROM parts"
                    " WHERE path >= :low AND path < :high",
                    {"low": low, "high": high},
                )
            )
        found = []
        for part in parts:
            key, stat = self._key(part), self.storage.size(part)
            entry = entries.get(key)
            current = entry is not None and entry[:2] == stat
            found.append((part, key, stat, (entry[2], entry[3]) if entry and current else None))
        return found

    def _key(self, path: PurePath) -> str:
        return self._prefix + str(path.relative_to(self.root))

    def rows(self, parts: Iterable[PurePath]) -> dict[PurePath, int]:
        """Each part's row count."""
        counts: dict[PurePath, int] = {}
        with self.transaction():
            for part, key, stat, indexed in self._indexed(list(parts)):
                if indexed is not None:
                    counts[part] = indexed[0]
                    continue
                counts[part] = pq.ParquetFile(
                    str(part), filesystem=self.storage.filesystem
                ).metadata.num_rows
                self.execute("DELETE FROM part_versions WHERE path = :path", {"path": key})
                self.execute(
                    _REPLACE_PART,
                    {
                        "path": key,
                        "size": stat[0],
                        "mtime_ns": stat[1],
                        "rows": counts[part],
                        "versioned": 0,
                    },
                )
        return counts

    def versions(self, parts: Iterable[PurePath], read: ReadVersions) -> set[tuple[str, str]]:
        """Every (task_id, content_hash) the raw ``parts`` hold; ``read`` reads those of a part
        not indexed yet."""
        found: set[tuple[str, str]] = set()
        parts = list(parts)
        with self.transaction():
            stored: dict[str, list[tuple[str, str]]] = {}
            for directory in {part.parent for part in parts}:
                low, high = _range(self._key(directory))
                for key, task_id, digest in self.execute(
                    "SELECT path, task_id, content_hash FROM part_versions"
                    " WHERE path >= :low AND path < :high",
                    {"low": low, "high": high},
                ):
                    stored.setdefault(key, []).append((task_id, digest))
            for part, key, stat, indexed in self._indexed(parts):
                if indexed is not None and indexed[1]:
                    found.update(stored.get(key, ()))
                    continue
                pairs = read(part, self.storage.filesystem)
                found.update(pairs)
                self.execute("DELETE FROM part_versions WHERE path = :path", {"path": key})
                if pairs:
                    self.execute(
                        "INSERT INTO part_versions VALUES (:path, :task_id, :digest)",
                        [
                            {"path": key, "task_id": task_id, "digest": digest}
                            for task_id, digest in pairs
                        ],
                    )
                self.execute(
                    _REPLACE_PART,
                    {
                        "path": key,
                        "size": stat[0],
                        "mtime_ns": stat[1],
                        "rows": len(pairs),
                        "versioned": 1,
                    },
                )
        return found


def _range(directory: str) -> tuple[str, str]:
    """Keys of the files directly or deeper under ``directory``: ``[low, high)``."""
    return directory + os.sep, directory + chr(ord(os.sep) + 1)


def open_index(warehouse: Warehouse) -> PartIndex:
    return PartIndex(warehouse.storage, state_location(warehouse.data_dir, "parts"))
