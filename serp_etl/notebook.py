"""The warehouse from Python (a notebook, a script): read-only, any view as a pandas DataFrame.

    from serp_etl.notebook import open_warehouse

    with open_warehouse("data") as serp:
        serp.views()                                   # every view: name, kind, what one row is
        ranks = serp.read("my_ranks", target="tropical wallpaper")
        serp.sql("SELECT date, count(*) FROM serp_items WHERE provider = ? GROUP BY date",
                 ["semscraper"])

It reads through the same locked-down connection as ``serp-etl sql`` (``catalog``): nothing
can be written, and no file outside the warehouse read. Filters and parameters are bound,
never written into the SQL; view and column names are checked against the views file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Self

from serp_etl import catalog
from serp_etl.core.warehouse import default_data_dir

if TYPE_CHECKING:
    import pandas as pd


class UnknownName(KeyError):
    """A view or column the views file does not have, named with the ones it has."""


class WarehouseReader:
    def __init__(self, data_dir: Path | str | None = None) -> None:
        self.data_dir = Path(data_dir or default_data_dir())
        self._connection = catalog.query_connection(self.data_dir)

    def views(self) -> pd.DataFrame:
        """Every view (and table macro) of the warehouse: its name, kind and comment."""
        return self.sql("""
            SELECT view_name AS name, 'view' AS kind, comment FROM duckdb_views()
            WHERE NOT internal AND database_name = current_database()
            UNION ALL
            SELECT DISTINCT function_name, 'table macro', comment FROM duckdb_functions()
            WHERE function_type = 'table_macro' AND NOT internal
              AND database_name = current_database()
            ORDER BY name""")

    def columns(self, view: str) -> list[str]:
        names = [
            row[0]
            for row in self._connection.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND "
                "database_name = current_database() ORDER BY column_index",
                [view],
            ).fetchall()
        ]
        if not names:
            known = ", ".join(self.views().query("kind == 'view'")["name"])
            raise UnknownName(f"no view {view!r} in the warehouse; its views: {known}")
        return names

    def read(self, view: str, **equals: object) -> pd.DataFrame:
        """The rows of ``view`` whose columns equal ``equals`` (``date="2026-12-04"``)."""
        columns = self.columns(view)
        unknown = sorted(set(equals) - set(columns))
        if unknown:
            raise UnknownName(
                f"{view} has no column {', '.join(unknown)}; its columns: {', '.join(columns)}"
            )
        where = " AND ".join(f"{_identifier(name)} = ?" for name in equals) or "true"
        return self.sql(f"SELECT * FROM {_identifier(view)} WHERE {where}", list(equals.values()))

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """A query's rows, with bound ``params``."""
        return self._connection.execute(query, params or []).df()

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_warehouse(data_dir: Path | str | None = None) -> WarehouseReader:
    """The warehouse of ``data_dir`` (default: $SERP_ETL_DATA_DIR, else ./data), read-only."""
    return WarehouseReader(data_dir)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
