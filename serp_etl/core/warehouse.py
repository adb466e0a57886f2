"""Where the warehouse lives on disk, and what an analyst's query may be.

Layout: ``<data dir>/warehouse/<provider>/<table>/date=YYYY-MM-DD/<tag>-part-*.parquet`` (the
tag names the part's schema: ``core.parquet``); the view of ``<provider>/<table>`` is
``<provider>_<table>``, with ``date`` (a DATE) from the hive path, in ``<data dir>/serp.duckdb``
(``core.views``).
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from serp_etl.core.parquet import PART_FILE

if TYPE_CHECKING:
    import duckdb

DATA_DIR_ENV = "SERP_ETL_DATA_DIR"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# What an analyst's query may be. DESCRIBE and SHOW parse as SELECT. Everything else (COPY,
# ATTACH, EXPORT, SET, CREATE, INSTALL, PRAGMA, CALL...) is refused before it runs, with a clear
# message; should one slip through, the query connection can write nowhere anyway
# (``catalog.query_connection``).
READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


# SQL reading one partition's parts (the parameter: ``partition_glob``). Its parts may be of
# several schema generations (an import, after an upgrade, next to older parts): by name.
PARTITION_READ = "read_parquet(?, union_by_name = true)"


class QueryRefused(ValueError):
    """A query that is not read-only: it is never run."""


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for a check's query. DuckDB is imported on first use: a
    step process that publishes a large answer does not hold it at its peak of memory."""
    import duckdb

    return duckdb.connect(":memory:")


def check_partition(partition: str) -> str:
    """Partition keys become directory names and DATE values: accept nothing but a real
    calendar date written YYYY-MM-DD (2025-13-01 would turn every view's ``date`` into text)."""
    try:
        valid = bool(_DATE.fullmatch(partition)) and bool(date.fromisoformat(partition))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"partition must be a calendar date YYYY-MM-DD, got {partition!r}")
    return partition


class Warehouse:
    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "warehouse"

    def partition_file(self, provider: str, table: str, partition: str) -> Path:
        return self.partition_dir(provider, table, partition) / PART_FILE

    def partition_dir(self, provider: str, table: str, partition: str) -> Path:
        return self.root / provider / table / f"date={check_partition(partition)}"

    def partition_glob(self, provider: str, table: str, partition: str) -> str:
        """Every part file of one table's partition (flattening may write several; read them
        with ``PARTITION_READ``)."""
        return str(self.partition_file(provider, table, partition).with_name("*.parquet"))

    def partition_files(self, provider: str, tables, partition: str) -> dict[str, Path]:
        return {table: self.partition_file(provider, table, partition) for table in tables}

    def earliest_day(self) -> str | None:
        """The first date any provider's tasks or responses table holds, if any."""
        days = [d.name.removeprefix("date=")
                for d in self.root.glob("*/*/date=*")
                if d.parent.name in ("tasks", "responses")]
        return min(days, default=None)


# ``EXPLAIN [ANALYZE] [(options)]`` before the statement it explains (comments before it too).
_EXPLAIN = re.compile(r"\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*EXPLAIN\b\s*"
                      r"(?:ANALY[SZ]E\b\s*)?(?:\((?:[^()]|\([^()]*\))*\)\s*)?",
                      re.IGNORECASE | re.DOTALL)


def check_read_only(connection: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ``QueryRefused`` unless every statement of ``sql`` only reads. An ``EXPLAIN`` is
    judged by the statement it explains: ``EXPLAIN ANALYZE`` runs it."""
    for statement in connection.extract_statements(sql):
        kind = statement.type.name
        if kind == "EXPLAIN":
            explained = _EXPLAIN.match(statement.query)
            inner = (connection.extract_statements(statement.query[explained.end():])
                     if explained else [])
            if len(inner) != 1 or inner[0].type.name != "SELECT":
                what = inner[0].type.name if len(inner) == 1 else "a statement it cannot tell"
                raise QueryRefused(f"serp-etl sql explains only SELECT queries (EXPLAIN "
                                   f"ANALYZE runs what it explains); this one explains {what}")
        elif kind not in READ_ONLY_STATEMENTS:
            raise QueryRefused(f"serp-etl sql runs read-only queries (SELECT, DESCRIBE, SHOW, "
                               f"EXPLAIN of a SELECT); this one is {kind}")
