"""Raw responses of one partition -> every flattened table of it, in parallel and streamed.

The raw partition is made of parts; of each, only the rows that are their task's latest
version are flattened. Each worker process takes every W-th row group of all the parts,
flattens it batch by batch and stages its own ``part-<k>.parquet`` of every table; nothing but
file names crosses between processes, so two workers on two cores nearly halve the time. Only
when every worker has succeeded are the staged files renamed into place, and parts a previous
run with more workers left behind are removed. Memory per worker is bounded by one batch and
the writer's buffer, however large the partition.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import suppress
from pathlib import Path, PurePath

import pyarrow as pa
import pyarrow.parquet as pq

from serp_etl.core.parquet import PartitionWriter, part_file, return_freed_memory
from serp_etl.storage.base import Storage, replace_all
from serp_etl.storage.local import LOCAL_FILES

# A batch of raw responses -> its flattened tables, in one or more pieces (each a table name ->
# rows; a large response comes in several, written as they come).
FlattenBatch = Callable[[pa.RecordBatch], Iterable[dict[str, pa.Table]]]
BATCH_ROWS = 64  # responses parsed at once: a few MB of JSON, tens of MB as Python objects
# A row group at least this large (a day with a very large answer) has what its reading and
# its rows' writing freed returned to the system (``return_freed_memory``) as it goes: a day of
# ordinary row groups would only pay to take the same pages back (bench/flatten_bench.py: 4-5%
# slower at 10,000 answers when every flush gave back).
LARGE_ROW_GROUP_BYTES = 32 * 1024 * 1024


def _prefer_jemalloc() -> None:
    # In worker processes only. Measured with bench/flatten_bench.py: a third less peak memory
    # than pyarrow's default mimalloc for this workload (many short-lived batches).
    with suppress(NotImplementedError):  # a pyarrow build without jemalloc keeps its default
        pa.set_memory_pool(pa.jemalloc_memory_pool())


# One row group of one raw part, and the rows of it to flatten (None: all of them).
Share = list[tuple[PurePath, int, list[int] | None]]


def _row_groups(parts: Mapping[PurePath, list[int] | None], storage: Storage) -> Share:
    """Every row group of every part, with the rows of it that ``parts`` keeps."""
    groups: Share = []
    for part, keep in parts.items():
        metadata = pq.ParquetFile(str(part), filesystem=storage.filesystem).metadata
        start = 0
        for index in range(metadata.num_row_groups):
            size = metadata.row_group(index).num_rows
            rows = None if keep is None else [r - start for r in keep if start <= r < start + size]
            if rows is None or rows:
                groups.append((part, index, rows))
            start += size
    return groups


def _flatten_share(
    share: Share,
    columns: list[str],
    worker: int,
    flatten: FlattenBatch,
    paths: Mapping[str, PurePath],
    schemas: Mapping[str, pa.Schema],
    owner: int,
    storage: Storage,
) -> tuple[dict[Path, PurePath], dict[str, int]]:
    """Flatten the row groups of ``share`` into staged ``part-<worker>`` files."""
    part_paths = {name: path.with_name(part_file(worker)) for name, path in paths.items()}
    # The flatten allocates millions of small containers that all live until the batch ends:
    # the cyclic collector would rescan them over and over for nothing (~40% of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        # No dictionaries: measured 14% faster to write at the same size (zstd already
        # compresses the repeated values a dictionary would).
        with PartitionWriter(
            part_paths, schemas, publish=False, dictionary_columns=[], owner=owner, storage=storage
        ) as writer:
            for part, row_group, rows in share:
                # One row group at a time: a streaming reader over many groups keeps growing.
                table = pq.ParquetFile(str(part), filesystem=storage.filesystem).read_row_group(
                    row_group, columns=columns
                )
                if rows is not None:
                    table = table.take(pa.array(rows, pa.int64()))
                large = table.nbytes >= LARGE_ROW_GROUP_BYTES
                if large:
                    return_freed_memory()  # the pages the reading decompressed
                for batch in table.to_batches(BATCH_ROWS):
                    for tables in flatten(batch):
                        writer.write(tables)
                        if large:
                            return_freed_memory()  # what a flush of its rows encoded
    finally:
        if collecting:
            gc.enable()
    return writer.staged, writer.rows


def _discard(staged_by_share: Iterable[Mapping[Path, PurePath]]) -> None:
    for staged in staged_by_share:
        for temp in staged:
            temp.unlink(missing_ok=True)


def flatten_partition(
    parts: Mapping[PurePath, list[int] | None],
    columns: list[str],
    flatten: FlattenBatch,
    paths: Mapping[str, PurePath],
    schemas: Mapping[str, pa.Schema],
    workers: int = 1,
    storage: Storage = LOCAL_FILES,
) -> dict[str, int]:
    """Flatten the raw ``parts`` (each with the rows to keep, None for all; no parts: no rows)
    into every table, in place of all it held; returns rows per table.

    ``paths`` gives each table's ``part-0.parquet``; worker k writes ``part-<k>.parquet``.
    """
    groups = _row_groups(parts, storage)
    workers = max(1, min(workers, len(groups)))  # a share per row group at most
    owner = os.getpid()  # this process publishes what every worker stages
    args = [
        (groups[k::workers], columns, k, flatten, paths, schemas, owner, storage)
        for k in range(workers)
    ]
    # pyarrow imports pandas (~400 modules, 0.2 s) on its first conversion of Python objects:
    # do it here, once, so forked workers inherit it instead of each paying for it.
    pa.array(["warm-up"])
    if workers == 1:
        results = [_flatten_share(*args[0])]
    else:
        # The calling process takes share 0 itself: one process fewer to start, and its
        # imports and caches are already warm.
        with ProcessPoolExecutor(max_workers=workers - 1, initializer=_prefer_jemalloc) as pool:
            futures = [pool.submit(_flatten_share, *a) for a in args[1:]]
            try:
                own = _flatten_share(*args[0])
            except BaseException:
                wait(futures)
                _discard(f.result()[0] for f in futures if f.exception() is None)
                raise
            wait(futures)
        failed = [error for f in futures if (error := f.exception()) is not None]
        if failed:
            # Nothing is published: remove what every share that did succeed had staged.
            _discard([own[0], *(f.result()[0] for f in futures if f.exception() is None)])
            raise failed[0]
        results = [own, *(f.result() for f in futures)]
    staged: dict[Path, PurePath] = {}
    rows = dict.fromkeys(paths, 0)
    for worker_staged, worker_rows in results:
        staged.update(worker_staged)
        for name, count in worker_rows.items():
            rows[name] += count
    # Every other part of the tables goes: earlier runs', imports', of any schema.
    storage.publish(staged, retire=replace_all)
    return rows
