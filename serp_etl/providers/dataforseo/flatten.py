"""task_get/advanced responses -> the flattened DataForSEO tables. Pure functions, no I/O."""

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from serp_etl.core.flatten import flatten_table
from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import Undecodable, decode, json_text
from serp_etl.providers.dataforseo.schema import (
    ITEM_TABLES,
    OTHER_ITEMS_SCHEMA,
    SERPS,
)
from serp_etl.providers.dataforseo.settings import ITEMS_PATH, SKELETON_ABOVE_BYTES

# A second result in one task has never been seen for SERP endpoints; should one appear, it is
# kept in the serps row's ``extra`` column under this key instead of being dropped.
ADDITIONAL_RESULTS_KEY = "additional_results"


def task_of(envelope: dict, task_id: str) -> dict | None:
    """The task object for ``task_id`` inside a task_get envelope."""
    for task in envelope.get("tasks") or ():
        if type(task) is dict and task.get("id") == task_id:
            return task
    return None


def flatten_responses(
    responses: Iterable[tuple[str, str | bytes | memoryview]],
) -> dict[str, pa.Table]:
    """Flatten ``(task_id, task_get body)`` pairs into every DataForSEO table; bodies are
    decoded leniently (``core.jsondecode``), and one that is not JSON contributes no rows (the
    raw layer keeps it)."""
    envelopes = []
    for task_id, body in responses:
        try:
            envelope, _ = decode(body.encode() if isinstance(body, str) else body)
        except Undecodable:
            continue
        envelopes.append((task_id, envelope))
    return flatten_envelopes(envelopes)


def flatten_envelopes(envelopes: Iterable[tuple[str, object]]) -> dict[str, pa.Table]:
    """Flatten ``(task_id, decoded task_get envelope)`` pairs into every DataForSEO table.

    Returns a table for every name in ``FLAT_SCHEMAS``, empty ones included. Responses without
    a result (not ready, empty SERP, errors) contribute no rows: the raw layer keeps them.
    """
    serp_ids: list[str] = []
    serps: list[dict] = []
    items: list[tuple[str, int, object]] = []  # task id, position, item
    for task_id, envelope in envelopes:
        task = task_of(envelope, task_id) if type(envelope) is dict else None
        results = None if task is None else task.get("result")
        if type(results) is not list or not results or type(results[0]) is not dict:
            continue
        result = results[0]
        serp = {key: value for key, value in result.items() if key != "items"}
        if len(results) > 1:
            serp[ADDITIONAL_RESULTS_KEY] = results[1:]
        serp_ids.append(task_id)
        serps.append(serp)
        found = result.get("items")
        if type(found) is list:
            items.extend((task_id, position, item) for position, item in enumerate(found))
        elif found is not None:
            serp["items"] = found  # not a list: lands in extra rather than vanishing
    return {**flatten_table(SERPS, [serp_ids], serps), **flatten_items(items)}


def flatten_items(items: Iterable[tuple[str, int, object]]) -> dict[str, pa.Table]:
    """``(task_id, position, item)`` -> the item tables: each documented type's own (with its
    nested tables), the rest in other_items."""
    # task ids, positions, items
    item_rows: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in ITEM_TABLES}
    other: tuple[list, ...] = ([], [], [], [], [], [])
    for task_id, position, item in items:
        kind = item.get("type") if type(item) is dict else None
        # A "type" that is not a string (a list, an object) is an unknown type, not a crash.
        rows = item_rows.get(kind) if isinstance(kind, str) else None
        if rows is not None:
            rows[0].append(task_id)
            rows[1].append(position)
            rows[2].append(item)
        else:
            _append_other(other, task_id, position, item)
    tables: dict[str, pa.Table] = {}
    for name, (ids, positions, typed) in item_rows.items():
        tables.update(flatten_table(ITEM_TABLES[name], [ids, positions], typed))
    # Every field but the last, lineage (``with_lineage`` sets it).
    columns = [
        pa.array(column, type=f.type)
        for column, f in zip(other, list(OTHER_ITEMS_SCHEMA)[:-1], strict=True)
    ]
    tables["other_items"] = pa.Table.from_arrays(
        [*columns, pa.nulls(len(other[0]), pa.string())], schema=OTHER_ITEMS_SCHEMA
    )
    return tables


def _append_other(other, task_id: str, position: int, item) -> None:
    is_dict = type(item) is dict
    kind = item.get("type") if is_dict else None
    ranks = [item.get(k) if is_dict else None for k in ("rank_group", "rank_absolute")]
    other[0].append(task_id)
    other[1].append(position)
    other[2].append(kind if type(kind) is str else None)
    for column, rank in zip(other[3:5], ranks, strict=True):
        column.append(rank if type(rank) is int and abs(rank) < 2**63 else None)
    other[5].append(json_text(item))


def flatten_raw_batch(batch: pa.RecordBatch) -> Iterator[dict[str, pa.Table]]:
    """Flatten a batch of the raw ``responses`` table (needs its task_id and body columns), in
    pieces: its ordinary responses at once, then each body over ``SKELETON_ABOVE_BYTES``
    a chunk of items at a time, so a 100 MB SERP's rows are written as they are made."""
    ids = batch.column("task_id").to_pylist()
    pairs = list(zip(ids, utf8_slices(batch.column("body")), strict=True))
    yield flatten_responses(p for p in pairs if len(p[1]) <= SKELETON_ABOVE_BYTES)
    for task_id, body in pairs:
        if len(body) > SKELETON_ABOVE_BYTES:
            yield from _flatten_large(task_id, body)


ITEMS_PER_CHUNK = 2000


def _flatten_large(task_id: str, body: memoryview) -> Iterator[dict[str, pa.Table]]:
    """One large response: its skeleton (the items emptied) decoded whole, then its items,
    ITEMS_PER_CHUNK at a time: a 100 MB SERP is never all Python objects at once. An item that
    is not JSON on its own is left out (items_accounted_for reports it; raw keeps it)."""
    found = array_spans(body, ITEMS_PATH)
    if found is None:
        yield flatten_responses([(task_id, body)])
        return
    (start, end), elements = found
    yield flatten_responses([(task_id, bytes(body[:start]) + b"[]" + bytes(body[end:]))])
    for first in range(0, len(elements), ITEMS_PER_CHUNK):
        chunk = []
        for position in range(first, min(first + ITEMS_PER_CHUNK, len(elements))):
            item_start, item_end = elements[position]
            try:
                chunk.append((task_id, position, decode(body[item_start:item_end])[0]))
            except Undecodable:
                continue
        yield flatten_items(chunk)


def utf8_slices(column: pa.StringArray) -> list[memoryview]:
    """Each value of a string column as a zero-copy view of its UTF-8 bytes: orjson parses
    them without Python ``str`` objects ever being made."""
    _, offset_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(
        offset_buffer, dtype=np.int32, count=len(column) + 1, offset=column.offset * 4
    ).tolist()
    data = memoryview(data_buffer or b"")
    return [data[start:end] for start, end in zip(offsets[:-1], offsets[1:], strict=True)]
