"""Data-quality checks every provider shares. Plain functions: the Dagster checks call them."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from serp_etl.core.flatten import EXTRA_COLUMN, INVALID_COLUMN
from serp_etl.core.ledger import Ledger, TaskState
from serp_etl.core.provider import ProviderTables
from serp_etl.core.warehouse import Warehouse

OTHER_ITEMS = "other_items"


@dataclass(frozen=True)
class QualityResult:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def collection_complete(ledger: Ledger, provider: str, partition: str) -> QualityResult:
    """Every posted task of the partition has been collected."""
    pending = ledger.tasks(provider, partition, {TaskState.POSTED})
    intents = ledger.tasks(provider, partition, {TaskState.INTENT})
    by_status: dict[str, int] = {}
    for task in pending:
        key = str(task.status_code if task.status_code is not None else task.status_message)
        by_status[key] = by_status.get(key, 0) + 1
    passed = not pending and not intents
    description = ("every posted task is collected" if passed else
                   f"{len(pending)} posted tasks not collected yet, {len(intents)} unresolved "
                   "intents; the next materialization collects them")
    return QualityResult(passed, description,
                         {"pending": len(pending), "unresolved_intents": len(intents),
                          "pending_by_last_status": by_status})


def schema_drift(tables: ProviderTables, warehouse: Warehouse, partition: str) -> QualityResult:
    """Fields, values or item types the declared schema does not know (all kept, not lost)."""
    counts: dict[str, int] = {}
    other: dict[str, int] = {}
    with duckdb.connect(":memory:") as con:
        for table, schema in tables.flat_schemas.items():
            files = warehouse.partition_glob(tables.name, table, partition)
            if table == OTHER_ITEMS:
                other = dict(con.execute(
                    "SELECT coalesce(type, '(none)'), count(*) FROM read_parquet(?) GROUP BY 1",
                    [files]).fetchall())
                continue
            if EXTRA_COLUMN not in schema.names:
                continue
            extra, invalid = con.execute(
                f"SELECT count({EXTRA_COLUMN}), count({INVALID_COLUMN}) FROM read_parquet(?)",
                [files]).fetchone()
            if extra:
                counts[f"{table}.{EXTRA_COLUMN}"] = extra
            if invalid:
                counts[f"{table}.{INVALID_COLUMN}"] = invalid
    passed = not counts and not other
    return QualityResult(
        passed,
        "every field and item type is declared" if passed else
        "undeclared fields, wrong-typed values or item types were kept in extra, "
        "invalid_values or other_items: consider declaring them",
        {"rows_with_unknowns": counts, "undocumented_item_types": other},
    )
