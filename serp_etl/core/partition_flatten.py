"""Raw responses of one partition -> every flattened table of it, streamed in batches.

Batches of raw rows go to a small process pool (the flatten is pure Python: a second process
on a 2-core machine nearly halves the time) with a bounded number in flight, so memory stays
flat however large the partition is. Results come back in order, so output is deterministic.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from serp_etl.core.parquet import PartitionWriter

FlattenBatch = Callable[[pa.RecordBatch], dict[str, pa.Table]]
BATCH_ROWS = 256


def raw_batches(raw_file: Path, columns: list[str], batch_rows: int = BATCH_ROWS
                ) -> Iterator[pa.RecordBatch]:
    if raw_file.exists():
        yield from pq.ParquetFile(raw_file).iter_batches(batch_size=batch_rows, columns=columns)


def _without_gc(flatten: FlattenBatch, batch: pa.RecordBatch) -> dict[str, pa.Table]:
    # The flatten allocates millions of small containers and frees none until the batch ends:
    # the cyclic collector would rescan them over and over for nothing (~40% of the time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return flatten(batch)
    finally:
        if enabled:
            gc.enable()


def _ordered_map(flatten: FlattenBatch, batches: Iterator[pa.RecordBatch], workers: int
                 ) -> Iterator[dict[str, pa.Table]]:
    if workers <= 1:
        for batch in batches:
            yield _without_gc(flatten, batch)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        in_flight: deque[Future] = deque()
        for batch in batches:
            in_flight.append(pool.submit(_without_gc, flatten, batch))
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def flatten_partition(
    batches: Iterator[pa.RecordBatch],
    flatten: FlattenBatch,
    paths: Mapping[str, Path],
    schemas: Mapping[str, pa.Schema],
    workers: int = 1,
) -> dict[str, int]:
    """Flatten every batch and publish each table's file atomically; returns rows per table."""
    with PartitionWriter(paths, schemas) as writer:
        for tables in _ordered_map(flatten, batches, workers):
            writer.write(tables)
    return writer.rows
