"""DataForSEO's own data-quality check. Plain functions: the Dagster checks call them."""

from __future__ import annotations

import duckdb

from serp_etl.core.quality import OTHER_ITEMS, QualityResult
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.schema import ITEM_TABLES
from serp_etl.providers.dataforseo.settings import PROVIDER, Outcome


def _file(warehouse: Warehouse, table: str, partition: str) -> str:
    return warehouse.partition_glob(PROVIDER, table, partition)


def items_accounted_for(warehouse: Warehouse, partition: str) -> QualityResult:
    """Each successful response has a serps row, and each SERP's items all landed somewhere."""
    item_tables = [*ITEM_TABLES, OTHER_ITEMS]
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
