"""The views file: any DuckDB client opens it; a view reads every schema generation of its
table as today's schema; a one-day query reads that day; readers never block a writer."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serp_etl import catalog
from serp_etl.cli import main
from serp_etl.core import views
from serp_etl.core.parquet import publish_table, schema_tag
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.schema import FLAT_SCHEMAS
from serp_etl_tests.conftest import imported
from serp_etl_tests.test_semscraper_flatten import RETRIEVED

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]


def test_the_views_file_opens_in_any_duckdb_client(tmp_path):
    data = tmp_path / "data"
    imported(data, DAYS[0])
    path = data / views.VIEWS_FILE
    with duckdb.connect(str(path), read_only=True) as client:  # as a BI tool would
        names = {
            row[0]
            for row in client.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        assert {"dataforseo_serps", "dataforseo_organic", "dataforseo_responses"} <= names
        assert client.execute("SELECT count(*) FROM dataforseo_organic").fetchone() == (4,)
    assert not list(data.glob(".serp.duckdb*"))  # no temp file or WAL left behind


def test_a_reader_never_blocks_a_writer_and_sees_new_days_without_a_refresh(tmp_path):
    data = tmp_path / "data"
    imported(data, DAYS[0])
    reader = duckdb.connect(str(data / views.VIEWS_FILE), read_only=True)
    written = (data / views.VIEWS_FILE).stat().st_mtime_ns
    imported(data, DAYS[1])  # a new day of the same tables: the views' globs find it
    assert (data / views.VIEWS_FILE).stat().st_mtime_ns == written
    assert reader.execute("SELECT count(DISTINCT date) FROM dataforseo_serps").fetchone() == (2,)
    semscraper = tmp_path / "retrieved.json"
    semscraper.write_bytes(orjson.dumps(RETRIEVED))
    assert (
        main(["--data-dir", str(data), "import", "semscraper", str(semscraper), "--date", DAYS[1]])
        == 0
    )  # new tables, while the reader holds the file: a new file
    assert (data / views.VIEWS_FILE).stat().st_mtime_ns != written
    with catalog.connect(data) as fresh:
        assert fresh.execute("SELECT count(*) FROM semscraper_serps").fetchone()[0] > 0
    assert reader.execute("SELECT count(*) FROM dataforseo_serps").fetchone() == (2,)
    reader.close()


def old_organic(rows: int) -> pa.Table:
    """organic as an earlier serp-etl wrote it: ``timestamp`` as text, no ``timestamp_text``
    and no ``rating_max`` (a column added later), a column since dropped."""
    schema = FLAT_SCHEMAS["organic"]
    keep = [f for f in schema if f.name not in ("timestamp", "timestamp_text", "rating_max")]
    columns = {f.name: pa.nulls(rows, f.type) for f in keep}
    columns["task_id"] = pa.array([f"old-{n}" for n in range(rows)])
    columns["item_index"] = pa.array(range(rows), pa.int32())
    columns["timestamp"] = pa.array(
        ["2026-01-02 10:00:00 +02:00", "2026-01-01 23:00:00 +00:00", None][:rows]
    )
    columns["dropped_since"] = pa.array(["kept"] * rows)
    return pa.table(columns)


def test_every_schema_generation_reads_as_todays_schema(tmp_path):
    data = tmp_path / "data"
    imported(data, DAYS[2])
    warehouse = Warehouse(data)
    # A day an earlier serp-etl wrote, untagged, and one of another tagged generation.
    legacy = warehouse.partition_dir("dataforseo", "organic", DAYS[0]) / "part-0.parquet"
    legacy.parent.mkdir(parents=True)
    pq.write_table(old_organic(3), legacy)
    other = publish_table(
        warehouse.partition_file("dataforseo", "organic", DAYS[1]), old_organic(2)
    )
    assert other.name.startswith(schema_tag(old_organic(2).schema))
    catalog.refresh_views(data)
    with catalog.connect(data) as con:
        kinds = dict(
            con.execute(
                "SELECT column_name, column_type FROM (DESCRIBE dataforseo_organic)"
            ).fetchall()
        )
        assert kinds["timestamp"] == "TIMESTAMP WITH TIME ZONE"
        assert kinds["extra"] == "JSON" and kinds["date"] == "DATE"
        rows = con.execute(
            "SELECT date, task_id, timestamp, timestamp_text, rating_max, dropped_since "
            "FROM dataforseo_organic WHERE task_id LIKE 'old-%' ORDER BY timestamp, date"
        ).fetchall()
        assert len(rows) == 5  # 3 rows of the untagged day, 2 of the other generation
        # In time order: 23:00 UTC on the 1st before 10:00 (+02:00) on the 2nd, as text would
        # not have it; the text kept where its offset says more than the instant.
        assert [(row[2], row[3]) for row in rows] == [
            (datetime(2026, 1, 1, 23, tzinfo=UTC), None)
        ] * 2 + [(datetime(2026, 1, 2, 8, tzinfo=UTC), "2026-01-02 10:00:00 +02:00")] * 2 + [
            (None, None)
        ]
        assert {row[4] for row in rows} == {None} and {row[5] for row in rows} == {"kept"}
        new = con.execute(
            "SELECT count(*), count(dropped_since) FROM dataforseo_organic WHERE date = ?",
            [DAYS[2]],
        ).fetchone()
        assert new == (4, 0)


def test_a_one_day_query_reads_that_day_and_one_part_a_generation(tmp_path):
    data = tmp_path / "data"
    for day in DAYS:
        imported(data, day)
    warehouse = Warehouse(data)
    organic = sorted((warehouse.root / "dataforseo" / "organic").rglob("*.parquet"))
    first, _, last = organic
    catalog.refresh_views(data)
    # The middle day's part is no Parquet at all now: a query that opened it would fail.
    broken = warehouse.partition_dir("dataforseo", "organic", DAYS[1])
    (part,) = broken.glob("*.parquet")
    part.write_bytes(b"not parquet")
    with catalog.connect(data) as con:
        assert con.execute(
            "SELECT count(*) FROM dataforseo_organic WHERE date = ?", [DAYS[2]]
        ).fetchone() == (4,)
        with pytest.raises(duckdb.Error):
            con.execute("SELECT count(*) FROM dataforseo_organic").fetchone()
    assert first.exists() and last.exists()


def test_a_warehouse_path_duckdb_would_read_as_a_pattern_is_refused_clearly(tmp_path):
    data = tmp_path / "data[1]"
    imported(data, DAYS[0])  # the import itself lands; only the views cannot be written
    with pytest.raises(views.ViewsError, match=r"glob pattern \(\[\]\)"):
        catalog.refresh_views(data)


def test_a_moved_data_dir_gets_views_of_its_new_place(tmp_path):
    data = tmp_path / "data"
    imported(data, DAYS[0])
    moved = tmp_path / "elsewhere"
    shutil.move(data, moved)
    with catalog.connect(moved) as con:
        assert con.execute("SELECT count(*) FROM dataforseo_organic").fetchone() == (4,)
