"""The raw layer: fetched responses move from the ledger's inbox into one Parquet file per
partition, ``<provider>/responses/date=D/part-0.parquet``.

The move is a merge: the new file holds the old file's rows plus the inbox rows it lacked (one
row per task id, the first one fetched wins), and it is published atomically *before* the inbox
rows are deleted. A crash at any point leaves every response in the file, the inbox, or both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from serp_etl.core.crash_points import crash_point
from serp_etl.core.ledger import InboxRow, Ledger
from serp_etl.core.parquet import PartitionWriter
from serp_etl.core.warehouse import Warehouse

RAW_TABLE = "responses"
# Row groups of about this many responses: flattening workers share a partition by row group.
RAW_ROW_GROUP_ROWS = 128


def raw_writer(path: Path, schema: pa.Schema) -> PartitionWriter:
    """Every write() of RAW_ROW_GROUP_ROWS rows becomes one row group; only the small columns
    get a dictionary (bodies and ids are all distinct)."""
    small = [name for name in schema.names if name not in ("task_id", "body")]
    return PartitionWriter({RAW_TABLE: path}, {RAW_TABLE: schema}, row_group_bytes=0,
                           dictionary_columns=small)


@dataclass(frozen=True)
class RawReport:
    rows: int  # rows in the published file
    added: int  # of which new from the inbox


def _batch(rows: list[InboxRow], schema: pa.Schema) -> pa.Table:
    columns = {name: [] for name in schema.names}
    for row in rows:
        record = {**row.meta, "task_id": row.task_id, "body": row.body.decode("utf-8")}
        for name, column in columns.items():
            column.append(record.get(name))
    if "fetched_at" in columns:
        columns["fetched_at"] = [datetime.fromisoformat(v) for v in columns["fetched_at"]]
    return pa.Table.from_pydict(columns, schema=schema)


def publish_raw(
    ledger: Ledger, warehouse: Warehouse, provider: str, partition: str, schema: pa.Schema
) -> RawReport:
    path = warehouse.partition_file(provider, RAW_TABLE, partition)
    seen: set[str] = set()
    drained: list[str] = []
    added = 0
    with raw_writer(path, schema) as writer:
        if path.exists():
            for batch in pq.ParquetFile(path).iter_batches(batch_size=RAW_ROW_GROUP_ROWS):
                table = pa.Table.from_batches([batch]).cast(schema)
                seen.update(table.column("task_id").to_pylist())
                writer.write({RAW_TABLE: table})
        pending: list[InboxRow] = []
        for row in ledger.inbox(provider, partition):
            drained.append(row.task_id)
            if row.task_id in seen:
                continue
            seen.add(row.task_id)
            pending.append(row)
            if len(pending) == RAW_ROW_GROUP_ROWS:
                writer.write({RAW_TABLE: _batch(pending, schema)})
                added += len(pending)
                pending.clear()
        if pending:
            writer.write({RAW_TABLE: _batch(pending, schema)})
            added += len(pending)
    crash_point("raw.published")
    # Only now that the file holding them is published may the inbox let go of them.
    ledger.clear_inbox(provider, partition, drained)
    return RawReport(rows=len(seen), added=added)
