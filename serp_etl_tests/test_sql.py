"""serp-etl sql: read-only, confined to the warehouse, and able to print any value."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest

from serp_etl.cli import main
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests.conftest import imported

DAY = "2026-03-01"


@pytest.fixture
def data(tmp_path, capsys):
    data = tmp_path / "data"
    imported(data, DAY)
    with Ledger(ledger_path(data)):
        pass  # the ledger exists, as it does after any run
    capsys.readouterr()
    return data


def sql(capsys, data, query: str, *options: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data), "sql", query, *options])
    out, err = capsys.readouterr()
    return code, out, err


def warehouse_files(data) -> set:
    return {p for p in (data / "warehouse").rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "attack",
    [
        "COPY (SELECT 1) TO '{ledger}'",
        "COPY (SELECT * FROM dataforseo_responses) TO '{partition}/part-9.parquet'",
        "COPY dataforseo_responses TO '{partition}/injected.parquet' (FORMAT parquet)",
        "ATTACH '{data}/other.duckdb'",
        "EXPORT DATABASE '{data}/export'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('{data}/warehouse/../state/ledger.sqlite')",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "CREATE TABLE t AS SELECT 1",
        "INSTALL httpfs",
        "SELECT 1; COPY (SELECT 1) TO '{partition}/x.parquet'",
    ],
)
def test_a_query_that_would_write_or_read_outside_the_warehouse_is_refused(capsys, data, attack):
    ledger = ledger_path(data)
    before_ledger = ledger.read_bytes()
    before_files = warehouse_files(data)
    partition = data / "warehouse" / "dataforseo" / "responses" / f"date={DAY}"
    query = attack.format(ledger=ledger, partition=partition, data=data)
    code, out, err = sql(capsys, data, query)
    assert code != 0
    assert (
        len(err.strip().splitlines()) == 1
        and err.startswith("refused")
        or err.startswith("query failed")
    ), err
    assert ledger.read_bytes() == before_ledger
    assert warehouse_files(data) == before_files
    assert not (data / "other.duckdb").exists() and not (data / "export").exists()
    assert "root:" not in out


def test_reading_queries_still_work(capsys, data):
    code, out, _ = sql(
        capsys, data, "SELECT count(*) AS n FROM dataforseo_organic", "--format", "json"
    )
    assert code == 0 and json.loads(out) == [{"n": 4}]
    for query in [
        "DESCRIBE dataforseo_serps",
        "SHOW TABLES",
        "EXPLAIN SELECT 1",
        "SELECT * FROM query('SELECT 42')",
    ]:
        code, _, err = sql(capsys, data, query)
        assert code == 0, (query, err)


def test_the_refusal_names_the_statement(capsys, data):
    target = data / "x.csv"
    code, _, err = sql(capsys, data, f"COPY (SELECT 1) TO '{target}'")
    assert code == 2 and "COPY" in err and "read-only" in err and not target.exists()


def test_json_output_keeps_wide_and_nested_values(capsys, data):
    query = (
        "SELECT 170141183460469231731687303715884105727::HUGEINT AS huge, "
        "[1, 2] AS list, NULL::VARCHAR AS nothing, DATE '2026-03-01' AS day"
    )
    code, out, err = sql(capsys, data, query, "--format", "json")
    assert code == 0, err
    assert json.loads(out) == [
        {
            "huge": 170141183460469231731687303715884105727,
            "list": [1, 2],
            "nothing": None,
            "day": "2026-03-01",
        }
    ]


def test_the_table_shows_null_as_null_even_for_text(capsys, data):
    query = (
        "SELECT NULL::VARCHAR AS text, NULL::DOUBLE AS number, NULL::BIGINT[] AS list, "
        "'x' AS present"
    )
    code, out, err = sql(capsys, data, query)
    assert code == 0, err
    cells = [cell.strip() for cell in out.splitlines()[4].strip("│").split("│")]
    assert cells == ["NULL", "NULL", "NULL", "x"]
    assert not {"NaN", "nan", "<NA>", "None"} & set(out.split())


def test_csv_writes_lists_as_json_booleans_as_words_and_null_as_nothing(capsys, data):
    query = (
        "SELECT ['a', 'b,c'] AS list, true AS yes, false AS no, NULL::VARCHAR AS nothing, "
        "{'k': 1} AS struct, 1.50::DECIMAL(4, 2) AS price, "
        "TIMESTAMPTZ '2026-03-01 10:00:00+02' AS at"
    )
    code, out, err = sql(capsys, data, query, "--format", "csv")
    assert code == 0, err
    header, row = list(csv.reader(io.StringIO(out)))
    assert header == ["list", "yes", "no", "nothing", "struct", "price", "at"]
    assert json.loads(row[0]) == ["a", "b,c"] and row[1:4] == ["true", "false", ""]
    assert json.loads(row[4]) == {"k": 1} and row[5] == "1.50"
    assert row[6] == "2026-03-01 08:00:00+00"  # an instant, shown in UTC


def test_json_columns_are_json_and_nan_is_null(capsys, data):
    query = (
        "SELECT extra, 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, "
        "['nan'::DOUBLE, 1.5] AS list FROM dataforseo_serps"
    )
    code, out, err = sql(capsys, data, query, "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["nan"] is None and row["inf"] is None and row["list"] == [None, 1.5]
    code, out, _ = sql(
        capsys, data, "SELECT {'a': 1}::JSON AS doc, '[1]'::JSON AS arr", "--format", "json"
    )
    assert json.loads(out) == [{"doc": {"a": 1}, "arr": [1]}]  # values, not strings


@pytest.mark.parametrize("query", ["", "   ", "-- only a comment", "/* a comment */ ;"])
def test_an_empty_or_comment_only_query_is_a_clear_error(capsys, data, query):
    code, out, err = sql(capsys, data, query)
    assert code == 2 and out == ""
    assert err.strip() == "refused: the query has no statement (it is empty, or only comments)"


def test_date_times_are_instants_that_sort_in_time(capsys, data):
    code, out, err = sql(
        capsys,
        data,
        "SELECT typeof(datetime) AS kind, datetime, datetime_text FROM dataforseo_serps",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out) == [
        {
            "kind": "TIMESTAMP WITH TIME ZONE",
            "datetime": "2023-11-15 17:21:31+00",
            "datetime_text": None,
        }
    ]


def data_dir_snapshot(data) -> dict:
    """Every file under the data dir, with its size and content."""
    return {path: path.read_bytes() for path in data.rglob("*") if path.is_file()}


# Statements of every type DuckDB's parser returns (several of some), each aimed at the
# warehouse where it can be: what a query must never do.
EVERY_STATEMENT_TYPE = [
    "SELECT * FROM dataforseo_organic",
    "INSERT INTO dataforseo_organic SELECT * FROM dataforseo_organic",
    "UPDATE dataforseo_organic SET title = 'x'",
    "CREATE TABLE stolen AS SELECT * FROM dataforseo_responses",
    "CREATE MACRO m() AS 1",
    "DELETE FROM dataforseo_organic",
    "PREPARE p AS COPY (SELECT 1) TO '{partition}/p.parquet'",
    "EXECUTE p",
    "ALTER VIEW dataforseo_organic RENAME TO o",
    "BEGIN TRANSACTION",
    "COPY (SELECT * FROM dataforseo_organic) TO '{partition}/{tag}-part-9.parquet'",
    "COPY dataforseo_responses TO '{partition}/{tag}-part-8.parquet' (FORMAT parquet)",
    "ANALYZE",
    "SET VARIABLE x = 1",
    "SET disabled_filesystems = ''",
    "DROP VIEW dataforseo_organic",
    "EXPORT DATABASE '{partition}/export'",
    "PRAGMA enable_profiling",
    "COPY FROM DATABASE serp TO memory",
    "VACUUM",
    "CALL pragma_version()",
    "LOAD httpfs",
    "INSTALL httpfs",
    "ATTACH '{partition}/x.duckdb' AS x",
    "DETACH serp",
    "PIVOT dataforseo_organic ON type",
    "MERGE INTO dataforseo_organic USING dataforseo_organic AS s ON true WHEN MATCHED THEN DELETE",
]


def test_every_statement_type_is_covered():
    import duckdb

    connection = duckdb.connect()
    parsed = {
        connection.extract_statements(statement)[0].type.name for statement in EVERY_STATEMENT_TYPE
    }
    # EXPLAIN wraps each below. Never the parser's answer to SQL text: RELATION and
    # LOGICAL_PLAN (the API's), ANALYZE (parsed as VACUUM), VARIABLE_SET (SET), CREATE_FUNC
    # (CREATE), EXTENSION (LOAD), COPY_DATABASE (PRAGMA).
    never = {
        "INVALID",
        "EXPLAIN",
        "RELATION",
        "LOGICAL_PLAN",
        "ANALYZE",
        "VARIABLE_SET",
        "CREATE_FUNC",
        "EXTENSION",
        "COPY_DATABASE",
    }
    assert parsed == set(duckdb.StatementType.__members__) - never


WRAPS = [
    "{}",
    "EXPLAIN {}",
    "EXPLAIN ANALYZE {}",
    "EXPLAIN (FORMAT json) {}",
    "/* x */ explain analyse {}",
]


@pytest.mark.parametrize("statement", EVERY_STATEMENT_TYPE)
def test_no_statement_changes_any_file_of_the_data_dir(capsys, data, statement):
    from serp_etl.catalog import query_connection

    partition = data / "warehouse" / "dataforseo" / "organic" / f"date={DAY}"
    (part,) = partition.glob("*.parquet")
    sql(capsys, data, "SELECT 1")  # the views files exist before the snapshot
    before = data_dir_snapshot(data)
    reads = statement.startswith("SELECT")
    for wrap in WRAPS:
        query = wrap.format(statement.format(partition=partition, tag=part.name.split("-")[0]))
        code, _, err = sql(capsys, data, query)
        assert (code == 0) == reads, (query, err)
        # Past the refusal too: the connection itself can write nowhere.
        connection = query_connection(data)
        for attempt in (EVERY_STATEMENT_TYPE[6].format(partition=partition), query):
            # Refused by DuckDB, or by the read-only file system: either way, nothing written.
            with contextlib.suppress(Exception):
                connection.execute(attempt)
        connection.close()
        assert data_dir_snapshot(data) == before, query


def test_explain_analyze_of_a_copy_is_refused_by_name(capsys, data):
    partition = data / "warehouse" / "dataforseo" / "responses" / f"date={DAY}"
    code, _, err = sql(capsys, data, f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{partition}/x.parquet'")
    assert code == 2 and "explains only SELECT queries" in err and "COPY" in err
    code, out, err = sql(capsys, data, "EXPLAIN ANALYZE SELECT count(*) FROM dataforseo_organic")
    assert code == 0, err


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_query_where_there_is_no_warehouse_is_refused_and_creates_nothing(
    capsys, tmp_path, where
):
    data = tmp_path / "data"
    if where == "empty":
        data.mkdir()
    code, out, err = sql(capsys, data, "SELECT 1")
    assert code == 2 and not out
    assert err.startswith("refused: ") and "holds no warehouse" in err and "--data-dir" in err
    assert sorted(tmp_path.rglob("*")) == ([data] if where == "empty" else [])
