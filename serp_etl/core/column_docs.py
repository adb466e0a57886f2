"""What each column holds, in words: where its value comes from in the provider's response (its
JSON path) and what the provider's reference says it means. The Dagster UI shows them as
column descriptions (``defs.metadata``).

A flattened table's columns are described from its ``TableSpec`` (the path of every column is
known there) and the provider's field meanings; the columns every provider shares (the raw
layer's, the ledger's, ``extra``, ``invalid_values``, ``date``) are described once, here.
"""

from __future__ import annotations

from collections.abc import Mapping

from serp_etl.core.flatten import EXTRA_COLUMN, INVALID_COLUMN, LINEAGE_COLUMN, TableSpec

DATE = (
    "The day of the partition (UTC), from the data's path date=YYYY-MM-DD: the day the "
    "tasks were posted for, or the day an import was filed under."
)
EXTRA = (
    f"{EXTRA_COLUMN}: fields of this object the declared schema does not know, as JSON "
    "{name: value} (schema drift, kept rather than dropped); NULL when there are none."
)
INVALID = (
    f"{INVALID_COLUMN}: values of declared fields that did not have the declared type, "
    "as JSON {column: value} (the column itself is NULL then); NULL when there are none."
)
LINEAGE = (
    f"{LINEAGE_COLUMN}: the version of the response this row was flattened from, its "
    "content_hash in the provider's responses table (where the row came from, and in "
    "which load: the loads view); NULL in tables flattened before serp-etl kept it."
)

# Columns of the raw layer (``core.raw``), the quarantine and the ledger, shared by providers.
SHARED: dict[str, str] = {
    "task_id": "The provider's id of the task (DataForSEO tasks[].id, SemScraper data[].id).",
    "content_hash": "Hash of the body (timing fields left out) naming this version of the "
    "response: a changed body is a new version, the same body is not.",
    "fetched_at": "When this version was received (UTC).",
    "loaded_at": "When the load that wrote this version into the warehouse ran (UTC): a "
    "collection's publish or an import; every version of one load shares it (the "
    "loads view). NULL for versions written before serp-etl recorded it.",
    "source": "How it arrived: api, callback, recovery, or import:<file>.",
    "repairs": "What decoding had to repair to read the body (a lone surrogate, a control "
    "character, a BOM, ...); NULL for clean JSON.",
    "body": "The response as received, as text (the JSON of the task or SERP).",
    "body_bytes": "The bytes received, only when they were not valid UTF-8.",
    "received_at": "When the delivery was received (UTC).",
    "reason": "Why the delivery was set aside instead of stored as a SERP.",
    "tag": "serp-etl's key of the task: provider, day and a hash of the target; one task "
    "per target and day.",
    "state": "Where the task stands: intent, posted, rejected, unposted, fetched, empty, "
    "failed, expired, undecodable or exhausted (README: task states).",
    "status_code": "The provider's status code of the task (DataForSEO tasks[].status_code).",
    "status_message": "The provider's message for the task (or why serp-etl ended it).",
    "cost": "What the provider billed for the task (DataForSEO USD, SemScraper EUR).",
    "intent_at": "When serp-etl recorded that it would post the task (UTC), before posting.",
    "posted_at": "When the provider accepted the task (UTC).",
}


def describe_spec(
    root: TableSpec,
    json_path: str,
    meanings: Mapping[tuple[str, ...], str],
    key: tuple[str, ...],
    keys: Mapping[str, str],
    where: str = "",
) -> dict[str, dict[str, str]]:
    """Table name -> column -> description, for ``root`` (whose objects are at ``json_path``
    of the response, ``where`` saying which) and every child table under it. ``meanings``
    holds the reference's words by field path from ``key``; ``keys`` describes the root's
    key columns."""
    described: dict[str, dict[str, str]] = {}
    _describe(root, json_path, f" ({where})" if where else "", meanings, key, dict(keys), described)
    return described


def _describe(
    spec: TableSpec,
    json_path: str,
    where: str,
    meanings: Mapping[tuple[str, ...], str],
    key: tuple[str, ...],
    keys: dict[str, str],
    described: dict[str, dict[str, str]],
) -> None:
    columns = {name: keys[name] for name, _ in spec.keys}
    for column in spec.columns:
        path = f"{json_path}.{'.'.join(column.path)}{where}"
        meaning = meanings.get(key + column.path)
        if column.source:
            columns[column.name] = (
                f"{path} as the provider wrote it, where its offset says "
                f"more than the instant in {column.source}; else NULL."
            )
        else:
            columns[column.name] = f"{path}: {meaning}." if meaning else f"{path}."
    columns[EXTRA_COLUMN] = EXTRA
    columns[INVALID_COLUMN] = INVALID
    columns[LINEAGE_COLUMN] = LINEAGE
    described[spec.name] = columns
    for child_path, child in spec.children:
        index = child.keys[-1][0]
        array = f"{json_path}.{'.'.join(child_path)}[]"
        child_keys = {**keys, index: f"Position of the element in {array}{where} (0-based)."}
        _describe(child, array, where, meanings, key + child_path, child_keys, described)
