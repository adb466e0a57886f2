"""Data-quality checks over one partition. Plain functions: the Dagster checks call them."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from serp_etl.core.flatten import EXTRA_COLUMN, INVALID_COLUMN
from serp_etl.core.ledger import Ledger, TaskState
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.schema import FLAT_SCHEMAS, ITEM_TABLES
from serp_etl.providers.dataforseo.settings import PROVIDER, Outcome


@dataclass(frozen=True)
class QualityResult:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def collection_complete(ledger: Ledger, partition: str) -> QualityResult:
    """Every posted task of the partition has been collected."""
    pending = ledger.tasks(PROVIDER, partition, {TaskState.POSTED})
    intents = ledger.tasks(PROVIDER, partition, {TaskState.INTENT})
    codes: dict[str, int] = {}
    for task in pending:
        key = str(task.status_code)
        codes[key] = codes.get(key, 0) + 1
    passed = not pending and not intents
    description = ("every posted task is collected" if passed else
                   f"{len(pending)} posted tasks not collected yet, {len(intents)} unresolved "
                   "intents; the next materialization collects them")
    return QualityResult(passed, description,
                         {"pending": len(pending), "unresolved_intents": len(intents),
                          "pending_by_last_status": codes})


def _file(warehouse: Warehouse, table: str, partition: str) -> str:
    return warehouse.partition_glob(PROVIDER, table, partition)


def items_accounted_for(warehouse: Warehouse, partition: str) -> QualityResult:
    """Each successful response has a serps row, and each SERP's items all landed somewhere."""
    item_tables = [*ITEM_TABLES, "other_items"]
    with duckdb.connect(":memory:") as con:
        union = " UNION ALL ".join("SELECT task_id FROM read_parquet(?)" for _ in item_tables)
        mismatched = con.execute(
            f"WITH items AS (SELECT task_id, count(*) AS n FROM ({union}) GROUP BY task_id) "
            "SELECT count(*) FROM read_parquet(?) AS s LEFT JOIN items AS i USING (task_id) "
            "WHERE s.items_count IS DISTINCT FROM coalesce(i.n, 0)",
            [*(_file(warehouse, t, partition) for t in item_tables),
             _file(warehouse, "serps", partition)],
        ).fetchone()[0]
        missing_serps = con.execute(
            "SELECT count(*) FROM read_parquet(?) AS r WHERE r.outcome = ? AND r.task_id NOT IN "
            "(SELECT task_id FROM read_parquet(?))",
            [_file(warehouse, RAW_TABLE, partition), str(Outcome.SUCCESS),
             _file(warehouse, "serps", partition)],
        ).fetchone()[0]
    passed = mismatched == 0 and missing_serps == 0
    return QualityResult(
        passed,
        "every item of every SERP is in a table" if passed else
        f"{mismatched} SERPs whose item rows differ from items_count, "
        f"{missing_serps} successful responses without a serps row",
        {"serps_with_item_mismatch": mismatched, "responses_without_serp": missing_serps},
    )


def schema_drift(warehouse: Warehouse, partition: str) -> QualityResult:
    """Fields, values or item types the declared schema does not know (all kept, not lost)."""
    counts: dict[str, int] = {}
    with duckdb.connect(":memory:") as con:
        for table, schema in FLAT_SCHEMAS.items():
            if EXTRA_COLUMN not in schema.names:
                continue
            extra, invalid = con.execute(
                f"SELECT count({EXTRA_COLUMN}), count({INVALID_COLUMN}) FROM read_parquet(?)",
                [_file(warehouse, table, partition)],
            ).fetchone()
            if extra:
                counts[f"{table}.{EXTRA_COLUMN}"] = extra
            if invalid:
                counts[f"{table}.{INVALID_COLUMN}"] = invalid
        other = dict(con.execute(
            "SELECT coalesce(type, '(none)'), count(*) FROM read_parquet(?) GROUP BY 1",
            [_file(warehouse, "other_items", partition)],
        ).fetchall())
    passed = not counts and not other
    return QualityResult(
        passed,
        "every field and item type is declared" if passed else
        "undeclared fields, wrong-typed values or item types were kept in extra, "
        "invalid_values and other_items: consider declaring them",
        {"rows_with_unknowns": counts, "undocumented_item_types": other},
    )
