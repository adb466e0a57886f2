"""Atomic Parquet publishing: a reader sees the old file or the new one, never half a file.

Every published file's name starts with its schema's tag (``s<8 hex>-part-0.parquet``): the
files of one table written with one schema are one glob, which the warehouse's views read
without opening every file's footer to learn its columns (``core.views``). Files of an earlier
serp-etl, without a tag, keep their names (``part-*.parquet``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePath

import pyarrow as pa
import pyarrow.parquet as pq

from serp_etl.storage.base import Retire, Storage
from serp_etl.storage.local import LOCAL_FILES, fsync_dir

PART_FILE = "part-0.parquet"
LEGACY_PREFIX = "part-"  # an untagged part, written before schema tags
_TAG = re.compile(r"s[0-9a-f]{8}-")
# Batches are buffered per writer up to this size, then written as row groups: fewer, larger
# row groups cost less to encode and read faster, and the bound keeps memory flat.
ROW_GROUP_BYTES = 32 * 1024 * 1024


def return_freed_memory() -> None:
    """Give what Arrow's allocator holds freed back to the system (microseconds). Its default,
    mimalloc, keeps freed pages for reuse; after a 100 MB body's buffers (a page encoded or
    decompressed) they stayed resident under everything allocated next: bench/big_response.py
    peaked ~70 MB higher without it (520 MB, 451 with)."""
    pa.default_memory_pool().release_unused()


def read_part(path: PurePath, columns: list[str] | None = None, filesystem=None) -> pa.Table:
    """One Parquet file whole (or ``columns`` of it). Not ``pq.read_table``: for one file it
    still imports pyarrow.dataset and builds a dataset (discovery, a fragment) at every call; a
    one-document ``serp-etl import`` took 3% less CPU without (bench: farm-bench, 10 pairs)."""
    with pq.ParquetFile(str(path), filesystem=filesystem) as part:
        return part.read(columns=columns)


def part_file(index: int) -> str:
    return f"part-{index}.parquet"


def schema_tag(schema: pa.Schema) -> str:
    """A short name of the columns and types of ``schema`` (not their nullability)."""
    text = "\n".join(f"{field.name}:{field.type}" for field in schema)
    return "s" + hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def untagged_name(name: str) -> str:
    """A part's name without its schema tag: ``s1a2b3c4d-part-0.parquet`` -> ``part-0.parquet``."""
    return name[len("s12345678-") :] if _TAG.match(name) else name


def tagged(path: PurePath, schema: pa.Schema) -> PurePath:
    """Where a part of ``path``'s name, written with ``schema``, is published."""
    return path.with_name(f"{schema_tag(schema)}-{untagged_name(path.name)}")


def tag_of(name: str) -> str | None:
    """The schema tag of a part's name; None for an untagged (earlier serp-etl) part."""
    return name[: len("s12345678")] if _TAG.match(name) else None


def _temp_path_for(path: PurePath, owner: int, directory: Path) -> Path:
    # A dot-prefixed name that does not end in .parquet: globs over the warehouse never see it.
    # It carries the pid of the process that will publish it: while that one lives, no sweep
    # touches it.
    return directory / f".{path.name}.{owner}.{uuid.uuid4().hex[:8]}.tmp"


STALE_TEMP_SECONDS = 24 * 3600


def _writer_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def sweep_temp_files(directory: Path, owner: int | None = None) -> int:
    """Remove temp files that a writer killed mid-publish left in ``directory`` (their writer's
    process is gone, or they are a day old); a live writer's are left alone, but for those of
    ``owner`` (a publisher whose workers were stopped). Returns how many were removed."""
    removed = 0
    if not directory.is_dir():
        return removed
    now = time.time()
    # A temp DuckDB file (the views) may have left its write-ahead log beside it.
    for temp in [*directory.glob(".*.tmp"), *directory.glob(".*.tmp.wal")]:
        parts = temp.name[1:].removesuffix(".wal").rsplit(".", 3)  # name, pid, random, "tmp"
        pid = int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None
        try:
            old = now - temp.stat().st_mtime > STALE_TEMP_SECONDS
        except FileNotFoundError:
            continue
        if old or (pid is not None and (pid == owner or _writer_gone(pid))):
            temp.unlink(missing_ok=True)
            removed += 1
    return removed


def publish_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a temp file, fsync, rename): a reader never sees
    half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


class PartitionWriter:
    """Streams record batches of several tables into temp files, then publishes them all.

    Memory stays flat however many batches go through: each table keeps one open
    ``ParquetWriter`` and at most ``row_group_bytes`` of buffered rows are held in all. Every
    table in ``schemas`` gets a file, empty or not, so a rerun always replaces what an earlier
    run wrote and a view never lacks a column. With ``publish=False`` the fsynced temp files
    are left for the caller in ``staged`` (temp -> final), to publish with others at once.
    """

    def __init__(
        self,
        paths: Mapping[str, PurePath],
        schemas: Mapping[str, pa.Schema],
        *,
        storage: Storage = LOCAL_FILES,
        retire: Retire | None = None,
        row_group_bytes: int = ROW_GROUP_BYTES,
        publish: bool = True,
        dictionary_columns: list[str] | None = None,
        statistics_columns: list[str] | None = None,
        owner: int | None = None,
        data_page_version: str = "1.0",
        return_memory: bool = False,
    ) -> None:
        self._paths = dict(paths)
        self._storage = storage
        self._retire = retire
        # None: pyarrow's default (try a dictionary for every column). Columns of unique values
        # (response bodies) only pay for a dictionary that is then thrown away.
        self._use_dictionary = True if dictionary_columns is None else dictionary_columns
        # None: statistics for every column. Min/max statistics copy whole values: for a column
        # of response bodies they cost several times a body's size and serve no query.
        self._statistics = True if statistics_columns is None else statistics_columns
        # "2.0" pages cost one copy of a page less to write (a "1.0" page joins its levels and
        # values into one more buffer): for a column of 100 MB response bodies, 100 MB of
        # peak memory. Every reader we serve (DuckDB, pyarrow) reads both.
        self._data_page_version = data_page_version
        # For very large values (response bodies): what a flush encoded is given back at once
        # (``return_freed_memory``) instead of staying resident under what comes next.
        self._return_memory = return_memory
        self._schemas = dict(schemas)
        self._row_group_bytes = row_group_bytes
        self._publish = publish
        # Who publishes the files: this process, or (workers staging for another) that one.
        self._owner = owner or os.getpid()
        self._temps: dict[str, Path] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._buffers: dict[str, list[pa.Table]] = {name: [] for name in self._paths}
        self._buffered_bytes = 0
        self.rows: dict[str, int] = dict.fromkeys(self._paths, 0)
        self.staged: dict[Path, PurePath] = {}

    def __enter__(self) -> PartitionWriter:
        staging = {
            directory: self._storage.staging_dir(directory)
            for directory in {path.parent for path in self._paths.values()}
        }
        for directory in staging.values():
            sweep_temp_files(directory)
        for name, path in self._paths.items():
            temp = _temp_path_for(path, self._owner, staging[path.parent])
            self._temps[name] = temp
            self._writers[name] = pq.ParquetWriter(
                temp,
                self._schemas[name],
                compression="zstd",
                use_dictionary=self._use_dictionary,
                write_statistics=self._statistics,
                data_page_version=self._data_page_version,
            )
        return self

    def write(self, tables: Mapping[str, pa.Table]) -> None:
        for name, table in tables.items():
            if table.num_rows:
                self._buffers[name].append(table)
                self._buffered_bytes += table.nbytes
                self.rows[name] += table.num_rows
        if self._buffered_bytes >= self._row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        for name, buffered in self._buffers.items():
            if buffered:
                self._writers[name].write_table(pa.concat_tables(buffered))
                buffered.clear()
        self._buffered_bytes = 0
        if self._return_memory:
            return_freed_memory()

    def abort(self) -> None:
        """Close every temp file and remove it: nothing is published."""
        self.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
        finally:
            for writer in self._writers.values():
                writer.close()
        if exc_type is not None:
            for temp in self._temps.values():
                temp.unlink(missing_ok=True)
            return
        for name, temp in self._temps.items():
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
            self.staged[temp] = tagged(self._paths[name], self._schemas[name])
        if self._publish:
            self._storage.publish(self.staged, self._retire)


def publish_table(path: PurePath, table: pa.Table, storage: Storage = LOCAL_FILES) -> PurePath:
    """Write one table as the part named ``path`` (tagged with its schema), atomically, in
    place of any earlier version of that part (of any schema); returns its path (on object
    storage, the name before its upload's random tail)."""

    def same_part(name: str) -> bool:
        return untagged_name(name) == untagged_name(path.name)

    with PartitionWriter(
        {"t": path}, {"t": table.schema}, storage=storage, retire=same_part
    ) as writer:
        writer.write({"t": table})
    return tagged(path, table.schema)
