"""Atomic Parquet publishing: a reader sees the old file or the new one, never half a file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PART_FILE = "part-0.parquet"


def _temp_path_for(path: Path) -> Path:
    # A dot-prefixed name that does not end in .parquet: globs over the warehouse never see it.
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(temp: Path, final: Path) -> None:
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, final)
    _fsync_dir(final.parent)


class PartitionWriter:
    """Streams record batches of several tables into temp files, then publishes them all.

    Memory stays flat however many batches go through: each table keeps one open
    ``ParquetWriter``. Every table in ``schemas`` gets a file, empty or not, so a rerun always
    replaces what an earlier run wrote and a view never lacks a column.
    """

    def __init__(self, paths: Mapping[str, Path], schemas: Mapping[str, pa.Schema]) -> None:
        self._paths = dict(paths)
        self._schemas = dict(schemas)
        self._temps: dict[str, Path] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {name: 0 for name in self._paths}

    def __enter__(self) -> PartitionWriter:
        for name, path in self._paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = _temp_path_for(path)
            self._temps[name] = temp
            self._writers[name] = pq.ParquetWriter(temp, self._schemas[name], compression="zstd")
        return self

    def write(self, tables: Mapping[str, pa.Table]) -> None:
        for name, table in tables.items():
            if table.num_rows:
                self._writers[name].write_table(table)
                self.rows[name] += table.num_rows

    def __exit__(self, exc_type, exc, tb) -> None:
        for writer in self._writers.values():
            writer.close()
        if exc_type is None:
            for name, temp in self._temps.items():
                _commit(temp, self._paths[name])
        else:
            for temp in self._temps.values():
                temp.unlink(missing_ok=True)


def publish_table(path: Path, table: pa.Table) -> None:
    """Write one table to ``path`` atomically."""
    with PartitionWriter({"t": path}, {"t": table.schema}) as writer:
        writer.write({"t": table})
