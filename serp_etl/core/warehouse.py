"""Where the warehouse lives on disk, and DuckDB views over it.

Layout: ``<data dir>/warehouse/<provider>/<table>/date=YYYY-MM-DD/part-0.parquet``; the view of
``<provider>/<table>`` is ``<provider>_<table>``, with ``date`` (a DATE) from the hive path.

Views live in an in-memory DuckDB connection: no long-lived ``.duckdb`` file, so the Dagster UI,
a run and an analyst never fight over DuckDB's single-writer lock.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

from serp_etl.core.parquet import PART_FILE

DATA_DIR_ENV = "SERP_ETL_DATA_DIR"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def check_partition(partition: str) -> str:
    """Partition keys become directory names: accept nothing but YYYY-MM-DD."""
    if not _DATE.match(partition):
        raise ValueError(f"partition must be a date YYYY-MM-DD, got {partition!r}")
    return partition


class Warehouse:
    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "warehouse"

    def partition_file(self, provider: str, table: str, partition: str) -> Path:
        return self.root / provider / table / f"date={check_partition(partition)}" / PART_FILE

    def partition_glob(self, provider: str, table: str, partition: str) -> str:
        """Every part file of one table's partition (flattening may write several)."""
        return str(self.partition_file(provider, table, partition).with_name("*.parquet"))

    def partition_files(self, provider: str, tables, partition: str) -> dict[str, Path]:
        return {table: self.partition_file(provider, table, partition) for table in tables}

    def tables(self) -> dict[str, Path]:
        """View name -> table directory, for every table with at least one partition file."""
        found: dict[str, Path] = {}
        if not self.root.is_dir():
            return found
        for provider_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for table_dir in sorted(p for p in provider_dir.iterdir() if p.is_dir()):
                if any(table_dir.glob(f"date=*/{PART_FILE}")):
                    found[f"{provider_dir.name}_{table_dir.name}"] = table_dir
        return found

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory connection with one view per table of the warehouse."""
        connection = duckdb.connect(":memory:")
        for view, table_dir in self.tables().items():
            # The relational API takes the path as a value: no path is pasted into SQL text.
            relation = connection.read_parquet(
                str(table_dir / "date=*" / "*.parquet"),
                hive_partitioning=True,
                union_by_name=True,
            )
            relation.create_view(view)
        return connection
