"""``serp-etl sql``: one read-only query over the warehouse's views, rendered by DuckDB.

* ``table``: DuckDB's own box rendering (column types under the names, NULL as ``NULL``).
* ``csv``: a header, then each value as DuckDB writes it as text (booleans ``true``/``false``,
  exact decimals, timestamps with their offset); lists, structs and maps as JSON; NULL as an
  empty field.
* ``json``: an array of objects, each row rendered by DuckDB's ``to_json`` (every type it has,
  JSON columns as JSON values, not strings); NaN and infinities, which JSON cannot say, as null.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from serp_etl.catalog import query_connection
from serp_etl.core.warehouse import check_read_only

if TYPE_CHECKING:
    import duckdb

FORMATS = ("table", "csv", "json")
MAX_COLUMN_WIDTH = 60  # characters of a value in a table; csv and json keep every one
MAX_TABLE_ROWS = 10_000  # a table shows the first and last of more
BATCH_ROWS = 10_000  # csv and json are written a batch at a time: any result size


class EmptyQuery(ValueError):
    """A query with no statement in it: empty, or only comments."""


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run(data_dir: Path | str, sql: str, output_format: str, out: TextIO) -> None:
    """Run ``sql`` read-only and write its result to ``out`` (raises ``QueryRefused``,
    ``EmptyQuery`` or ``duckdb.Error``)."""
    connection = query_connection(data_dir)
    if not connection.extract_statements(sql):
        raise EmptyQuery("the query has no statement (it is empty, or only comments)")
    check_read_only(connection, sql)
    relation = connection.sql(sql)
    if relation is None:  # a statement without a result
        return
    if output_format == "json":
        _write_json(relation, out)
    elif output_format == "csv":
        _write_csv(relation, out)
    else:
        _write_table(relation, out)


def _write_table(relation: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    # DuckDB's renderer prints to sys.stdout: send it where the caller asked.
    previous, sys.stdout = sys.stdout, out
    try:
        relation.show(
            max_rows=MAX_TABLE_ROWS,
            max_width=10**6,
            max_col_width=MAX_COLUMN_WIDTH,
            null_value="NULL",
        )
    finally:
        sys.stdout = previous


_NESTED = ("[]", "STRUCT(", "MAP(", "UNION(")


def _write_csv(relation: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    expressions = []
    for name, kind in zip(relation.columns, map(str, relation.types), strict=True):
        column = _identifier(name)
        nested = kind.endswith("]") or kind.startswith(_NESTED)
        value = f"to_json({column})" if nested else column
        expressions.append(f"CAST({value} AS VARCHAR) AS {column}")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(relation.columns)
    for batch in relation.project(", ".join(expressions)).to_arrow_reader(BATCH_ROWS):
        writer.writerows(zip(*(column.to_pylist() for column in batch.columns), strict=True))


def _write_json(relation: duckdb.DuckDBPyRelation, out: TextIO) -> None:
    rows = relation.query("result", "SELECT to_json(result) FROM result")
    assert rows is not None  # a SELECT has a result
    out.write("[")
    first = True
    for batch in rows.to_arrow_reader(BATCH_ROWS):
        for row in batch.column(0).to_pylist():
            out.write(("" if first else ",\n") + _finite(row))
            first = False
    out.write("]\n")


def _finite(row: str) -> str:
    """``row`` with NaN and infinities (which DuckDB writes bare) as null: valid JSON."""
    if "NaN" not in row and "Infinity" not in row:
        return row
    value = json.loads(row, parse_constant=lambda _: None)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
