"""The raw layer: every distinct version of every response, as received, partitioned by day.

``<provider>/responses/date=D/`` holds part files that are only ever added, never rewritten:
publishing moves the ledger's inbox into a new part with the versions the partition lacks
(``task_id`` + ``content_hash``: identical content adds nothing), and only once that part is
published may the inbox let go of them. A crash at any point leaves every response in a part,
the inbox, or both, and the next publish adds nothing twice.

Each row keeps the body as received (``body``; when the bytes were not UTF-8, the text has
U+FFFD for them and ``body_bytes`` holds them as they were), where it came from (``source``,
``fetched_at``) and what reading it needed to repair (``repairs``, see ``core.jsondecode``).
The flattened tables are built from each task's latest version (``latest_rows``).
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serp_etl.core.crash_points import crash_point
from serp_etl.core.parquet import PartitionWriter, publish_table, read_part, tag_of
from serp_etl.core.part_index import open_index
from serp_etl.core.warehouse import Warehouse
from serp_etl.state.ledger import InboxRow, Ledger, utc_now
from serp_etl.storage.base import Storage
from serp_etl.storage.local import LOCAL_FILES

RAW_TABLE = "responses"
# Row groups of about this many responses: flattening workers share a partition by row group.
RAW_ROW_GROUP_ROWS = 128
HashBody = Callable[[bytes], str]  # a body -> the content hash that names its version

_TIMESTAMP = pa.timestamp("us", tz="UTC")
# The raw table's own columns, around each provider's: key and version first, body last.
VERSION_FIELDS = [
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("fetched_at", _TIMESTAMP, nullable=False),
]
BODY_FIELDS = [
    pa.field("loaded_at", _TIMESTAMP),  # the load that wrote it: one publish, or one import
    pa.field("source", pa.string()),  # api, callback, recovery, import:<file>, ...
    pa.field("repairs", pa.list_(pa.string())),  # what decoding had to repair, if anything
    pa.field("body", pa.string(), nullable=False),  # as received
    pa.field("body_bytes", pa.binary()),  # the bytes received, when they were not UTF-8
]


def raw_schema(provider_fields: list[pa.Field]) -> pa.Schema:
    return pa.schema([*VERSION_FIELDS, *provider_fields, *BODY_FIELDS])


def raw_writer(
    path: PurePath,
    schema: pa.Schema,
    publish: bool = True,
    owner: int | None = None,
    storage: Storage = LOCAL_FILES,
) -> PartitionWriter:
    """Every write() of RAW_ROW_GROUP_ROWS rows becomes one row group; only the small columns
    get a dictionary (bodies, ids and hashes are all distinct), and statistics (the bodies'
    would copy each one several times over); in version 2 data pages, which write a body with
    one copy of it less, and what each write encoded given back at once."""
    unique = {"task_id", "content_hash", *_LARGE}
    small = [name for name in schema.names if name not in unique]
    statistics = [name for name in schema.names if name not in _LARGE]
    return PartitionWriter(
        {RAW_TABLE: path},
        {RAW_TABLE: schema},
        row_group_bytes=0,
        dictionary_columns=small,
        statistics_columns=statistics,
        data_page_version="2.0",
        return_memory=True,
        publish=publish,
        owner=owner,
        storage=storage,
    )


_LARGE = ("body", "body_bytes", "envelope", "html")


@dataclass(frozen=True)
class RawReport:
    rows: int  # versions in the partition
    added: int  # of which new from the inbox


def new_part_name() -> str:
    # Names sort by publication time; the random tail keeps two publishers apart.
    return f"part-{utc_now():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"


def raw_rows_table(
    rows: list[tuple[str, dict, bytes]], schema: pa.Schema, loaded_at: datetime
) -> pa.Table:
    """``(task_id, meta, body)`` rows, written by the load of ``loaded_at``, as a raw table:
    the body as received."""
    columns: dict[str, list] = {name: [] for name in schema.names if name not in _BODY}
    for task_id, meta, _ in rows:
        record = {**meta, "task_id": task_id, "loaded_at": loaded_at}
        for name, column in columns.items():
            column.append(record.get(name))
    columns["fetched_at"] = [datetime.fromisoformat(v) for v in columns["fetched_at"]]
    table = pa.Table.from_pydict(
        columns, schema=pa.schema([f for f in schema if f.name not in _BODY])
    )
    try:
        # Each body wrapped, not copied, into Arrow (a 100 MB body would otherwise be held
        # twice), and checked as UTF-8 there: no Python str of it. (Validation, not a cast:
        # a process's first cast costs a tenth of a second to set Arrow's casts up.)
        text = pa.chunked_array([_wrapped_text(body) for _, _, body in rows], pa.string())
        exact = pa.chunked_array([pa.nulls(len(rows), pa.binary())])
    except pa.ArrowInvalid:  # some body is not UTF-8: its text gets U+FFFD, its bytes kept
        decoded = [_utf8(body) for _, _, body in rows]
        text = pa.chunked_array([pa.array([t for t, _ in decoded], pa.string())])
        exact = pa.chunked_array([pa.array([b for _, b in decoded], pa.binary())])
    body_columns = {"body": text, "body_bytes": exact}
    return pa.table(
        [body_columns[f.name] if f.name in _BODY else table.column(f.name) for f in schema],
        schema=schema,
    )


_BODY = ("body", "body_bytes")


def _wrapped_text(body: bytes) -> pa.StringArray:
    """``body`` as a one-value string array over the same memory; ArrowInvalid if it is not
    UTF-8."""
    offsets = pa.py_buffer(np.array([0, len(body)], np.int32).tobytes())
    text = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(body)])
    text.validate(full=True)
    return text


def _utf8(body: bytes) -> tuple[str, bytes | None]:
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        return body.decode("utf-8", "replace"), body


def upgrade_part(path: PurePath, schema: pa.Schema, hash_body: HashBody) -> PurePath:
    """Rewrite, once, a part written by an earlier serp-etl: columns it lacks are added (null,
    but content_hash, computed from its bodies) in today's order. Returns its new path (its
    name carries its new schema's tag). Such parts are only ever in a data dir's warehouse:
    object storage came after schema tags."""
    table = read_part(path)
    columns = {}
    for field in schema:
        if field.name in table.column_names:
            columns[field.name] = table.column(field.name).cast(field.type)
        elif field.name == "content_hash":
            columns[field.name] = pa.array(
                [hash_body(body.encode()) for body in table.column("body").to_pylist()], pa.string()
            )
        else:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
    return publish_table(path, pa.table(columns, schema=schema))


def _versions(parts: Iterable[PurePath], filesystem) -> pa.Table:
    """task_id, content_hash and fetched_at of every row, with its part and row number."""
    tables = []
    for index, part in enumerate(parts):
        table = read_part(
            part, columns=["task_id", "content_hash", "fetched_at"], filesystem=filesystem
        )
        tables.append(
            table.append_column("part", pa.repeat(index, table.num_rows)).append_column(
                "row", pa.array(range(table.num_rows), pa.int64())
            )
        )
    if not tables:
        return pa.table({"task_id": [], "content_hash": []})
    return pa.concat_tables(tables)


def stored_versions(
    warehouse: Warehouse, provider: str, partition: str, schema: pa.Schema, hash_body: HashBody
) -> set[tuple[str, str]]:
    """(task_id, content_hash) of every version the raw partition holds, each part read once
    (``core.part_index``); a part of an earlier serp-etl is upgraded first."""
    parts = [
        part
        if tag_of(part.name) or "content_hash" in pq.read_schema(part).names
        else upgrade_part(part, schema, hash_body)
        for part in warehouse.parts(provider, RAW_TABLE, partition)
    ]
    with open_index(warehouse) as index:
        return index.versions(parts, part_versions)


def part_versions(part: PurePath, filesystem=None) -> list[tuple[str, str]]:
    """The (task_id, content_hash) of every row of a raw part."""
    table = read_part(part, columns=["task_id", "content_hash"], filesystem=filesystem)
    return list(
        zip(
            table.column("task_id").to_pylist(),
            table.column("content_hash").to_pylist(),
            strict=True,
        )
    )


def latest_rows(parts: list[PurePath], filesystem=None) -> dict[PurePath, list[int] | None]:
    """For each part, the rows that are their task's latest version (by fetch time, then
    content hash); None where every row is."""
    versions = _versions(parts, filesystem)
    if not versions.num_rows:
        return dict.fromkeys(parts)
    ordered = versions.sort_by(
        [("task_id", "ascending"), ("fetched_at", "descending"), ("content_hash", "descending")]
    )
    ids = ordered.column("task_id")
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_pylist()
    keep = [True, *first]
    latest = ordered.filter(pa.array(keep))
    chosen: dict[int, list[int]] = {}
    for part, row in zip(
        latest.column("part").to_pylist(), latest.column("row").to_pylist(), strict=True
    ):
        chosen.setdefault(part, []).append(row)
    result: dict[PurePath, list[int] | None] = {}
    for index, part in enumerate(parts):
        rows = sorted(chosen.get(index, []))
        total = pq.ParquetFile(str(part), filesystem=filesystem).metadata.num_rows
        result[part] = None if len(rows) == total else rows
    return result


def publish_raw(
    ledger: Ledger,
    warehouse: Warehouse,
    provider: str,
    partition: str,
    schema: pa.Schema,
    hash_body: HashBody,
) -> RawReport:
    directory = warehouse.partition_dir(provider, RAW_TABLE, partition)
    loaded_at = utc_now()  # this publish is one load (the loads view)
    seen = stored_versions(warehouse, provider, partition, schema, hash_body)
    stored = len(seen)
    drained: list[tuple[str, str]] = []
    batch: list[InboxRow] = []
    added = 0
    # The inbox is read row group by row group: its bodies are never all in memory at once.
    with contextlib.ExitStack() as stack:
        writer = None
        for row in itertools.chain(ledger.inbox(provider, partition), [None]):
            if row is not None:
                key = (row.task_id, row.meta["content_hash"])
                drained.append(key)
                if key in seen:
                    continue
                seen.add(key)
                batch.append(row)
            full = len(batch) == RAW_ROW_GROUP_ROWS or (row is None and batch)
            # A day with nothing collected yet gets an empty part: every view and check finds
            # its table.
            if writer is None and (
                full or (row is None and not warehouse.parts(provider, RAW_TABLE, partition))
            ):
                writer = stack.enter_context(
                    raw_writer(directory / new_part_name(), schema, storage=warehouse.storage)
                )
            if full:
                assert writer is not None  # made just above for a full batch
                writer.write(
                    {
                        RAW_TABLE: raw_rows_table(
                            [(r.task_id, r.meta, r.body) for r in batch], schema, loaded_at
                        )
                    }
                )
                added += len(batch)
                batch = []
    crash_point("raw.published")
    # Only now that a published part holds them may the inbox let go of them.
    ledger.clear_inbox(provider, partition, drained)
    return RawReport(rows=stored + added, added=added)


QUARANTINE_TABLE = "quarantine"
QUARANTINE_DESCRIPTION = (
    "One row per delivery set aside instead of stored as a SERP (a signed callback for an "
    "unknown id or an unfinished SERP, say): when it arrived, why, and its body as received. "
    "Kept, never dropped."
)
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("received_at", _TIMESTAMP, nullable=False),
        pa.field("task_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("body", pa.string(), nullable=False),  # as received (U+FFFD for non-UTF-8 bytes)
    ]
)


def publish_quarantine(ledger: Ledger, warehouse: Warehouse, provider: str) -> int:
    """Move quarantined deliveries into ``<provider>/quarantine/date=<received>/``, a new part
    per day; returns how many."""
    held = ledger.quarantined(provider)
    by_day: dict[str, list] = {}
    for item in held:
        by_day.setdefault(item.received_at[:10], []).append(item)
    for day, items in by_day.items():
        table = pa.table(
            {
                "received_at": [datetime.fromisoformat(i.received_at) for i in items],
                "task_id": [i.task_id for i in items],
                "reason": [i.reason for i in items],
                "content_hash": [i.content_hash for i in items],
                "body": [i.body.decode("utf-8", "replace") for i in items],
            },
            schema=QUARANTINE_SCHEMA,
        )
        publish_table(
            warehouse.partition_dir(provider, QUARANTINE_TABLE, day) / new_part_name(),
            table,
            warehouse.storage,
        )
        ledger.release_quarantined(provider, [i.content_hash for i in items])
    return len(held)
