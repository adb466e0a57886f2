"""Where the warehouse lives, and what an analyst's query may be.

Layout: ``<root>/<provider>/<table>/date=YYYY-MM-DD/<tag>-part-*.parquet`` (the tag names the
part's schema: ``core.parquet``), the root being ``<data dir>/warehouse`` or a bucket
(``serp_etl.storage``); the view of ``<provider>/<table>`` is ``<provider>_<table>``, with
``date`` (a DATE) from the hive path, in ``<data dir>/serp.duckdb`` (``core.views``).
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from serp_etl.core.parquet import PART_FILE
from serp_etl.storage.base import Storage
from serp_etl.storage.location import open_storage

if TYPE_CHECKING:
    import duckdb

DATA_DIR_ENV = "SERP_ETL_DATA_DIR"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# What an analyst's query may be. DESCRIBE and SHOW parse as SELECT. Everything else (COPY,
# ATTACH, EXPORT, SET, CREATE, INSTALL, PRAGMA, CALL...) is refused before it runs, with a clear
# message; should one slip through, the query connection can write nowhere anyway
# (``catalog.query_connection``).
READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


# SQL reading one partition's parts (the parameter: ``partition_source``). Its parts may be of
# several schema generations (an import, after an upgrade, next to older parts): by name.
PARTITION_READ = "read_parquet(?, union_by_name = true)"


class QueryRefused(ValueError):
    """A query that is not read-only: it is never run."""


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def scratch_connection(filesystem=None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for a check's query, reading ``filesystem`` (an fsspec
    one) where it is not the local one. DuckDB is imported on first use: a step process that
    publishes a large answer does not hold it at its peak of memory."""
    import duckdb

    connection = duckdb.connect(":memory:")
    if filesystem is not None:
        connection.register_filesystem(filesystem)
    return connection


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
    """The warehouse of a data dir: its parts in ``storage`` (``SERP_ETL_STORAGE_URL``), its
    views and caches in the data dir."""

    def __init__(self, data_dir: Path | str, storage: Storage | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.storage = storage or open_storage(self.data_dir)
        self.root = self.storage.root
        self.filesystem = self.storage.filesystem  # for pyarrow's and DuckDB's reads

    @property
    def absolute_root(self) -> PurePath:
        """The root as readers name it: the bucket's path, or the data dir's resolved."""
        return self.root if self.storage.shared else Path(self.root).resolve()

    def partition_file(self, provider: str, table: str, partition: str) -> PurePath:
        return self.partition_dir(provider, table, partition) / PART_FILE

    def partition_dir(self, provider: str, table: str, partition: str) -> PurePath:
        return self.root / provider / table / f"date={check_partition(partition)}"

    def parts(self, provider: str, table: str, partition: str) -> list[PurePath]:
        """The published parts of one table's partition, in name order."""
        return self.storage.parts(self.partition_dir(provider, table, partition))

    def partition_source(self, provider: str, table: str, partition: str) -> str | list[str]:
        """Every part of one table's partition as DuckDB reads them with ``PARTITION_READ``
        on ``scratch_connection(warehouse.filesystem)`` (flattening may write several)."""
        if not self.storage.shared:  # a glob: one listing by DuckDB itself
            return str(self.partition_file(provider, table, partition).with_name("*.parquet"))
        return [self.storage.uri(part) for part in self.parts(provider, table, partition)]

    def partition_files(self, provider: str, tables, partition: str) -> dict[str, PurePath]:
        return {table: self.partition_file(provider, table, partition) for table in tables}

    def uri(self, path: PurePath) -> str:
        return self.storage.uri(path)

    def earliest_day(self) -> str | None:
        """The first date any provider's tasks or responses table holds, if any."""
        days = [
            day
            for provider in self.storage.providers()
            for table in ("tasks", "responses")
            for day in self.storage.days(provider, table)
        ]
        return min(days, default=None)


# ``EXPLAIN [ANALYZE] [(options)]`` before the statement it explains (comments before it too).
_EXPLAIN = re.compile(
    r"\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*EXPLAIN\b\s*"
    r"(?:ANALY[SZ]E\b\s*)?(?:\((?:[^()]|\([^()]*\))*\)\s*)?",
    re.IGNORECASE | re.DOTALL,
)


def check_read_only(connection: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ``QueryRefused`` unless every statement of ``sql`` only reads. An ``EXPLAIN`` is
    judged by the statement it explains: ``EXPLAIN ANALYZE`` runs it."""
    for statement in connection.extract_statements(sql):
        kind = statement.type.name
        if kind == "EXPLAIN":
            explained = _EXPLAIN.match(statement.query)
            inner = (
                connection.extract_statements(statement.query[explained.end() :])
                if explained
                else []
            )
            if len(inner) != 1 or inner[0].type.name != "SELECT":
                what = inner[0].type.name if len(inner) == 1 else "a statement it cannot tell"
                raise QueryRefused(
                    f"serp-etl sql explains only SELECT queries (EXPLAIN "
                    f"ANALYZE runs what it explains); this one explains {what}"
                )
        elif kind not in READ_ONLY_STATEMENTS:
            raise QueryRefused(
                f"serp-etl sql runs read-only queries (SELECT, DESCRIBE, SHOW, "
                f"EXPLAIN of a SELECT); this one is {kind}"
            )
