"""The warehouse on object storage (``SERP_ETL_STORAGE_URL=s3://...``, moto's S3 on loopback):
the same contract as the data dir's, with every state database; parts made visible a day at a
time by create-only commits; killed and racing publishers; the daily job, queries, checks and
imports on a bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serp_etl import catalog
from serp_etl.cli import main
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.resources import DataForSEOResource, SemScraperResource
from serp_etl.providers.semscraper.settings import PROVIDER
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.state.ledger import TaskState
from serp_etl.storage.objects import COMMITS, ObjectStorage
from serp_etl_tests.conftest import FIXTURES, TODAY, billed, materialize_day
from serp_etl_tests.default_instances import dataforseo_assets, semscraper_assets

DAY = "2026-04-01"


def serp(task_id: str, title: str) -> bytes:
    return orjson.dumps(
        {
            "id": task_id,
            "status": "done",
            "keyword": "k",
            "device": "desktop",
            "location": "fr",
            "language": "fr",
            "depth": 1,
            "cost": "0.00002",
            "results": [
                {
                    "type": "organic",
                    "items": [
                        {"rank_type": 1, "rank_serp": 1, "domain": "a.example", "title": title}
                    ],
                }
            ],
        }
    )


def store(ledger, task_id: str, title: str, fetched_at: datetime) -> None:
    body = serp(task_id, title)
    meta = {
        "fetched_at": fetched_at.isoformat(),
        "status": "done",
        "cost": 2e-05,
        "source": "api",
        "html": None,
    }
    ledger.store_response(
        PROVIDER, DAY, task_id, TABLES.version(body, meta), body, TaskState.FETCHED
    )


def titles(warehouse: Warehouse) -> list[str]:
    return sorted(
        title
        for part in warehouse.parts(PROVIDER, "items", DAY)
        for title in pq.read_table(str(part), filesystem=warehouse.filesystem)
        .column("title")
        .to_pylist()
    )


def view_rows(data_dir: Path, sql: str) -> list[tuple]:
    with catalog.connect(data_dir) as connection:
        return connection.execute(sql).fetchall()


def test_publish_commit_and_read_hold_on_every_state_and_storage(
    ledger, state_location, storage_location, tmp_path, monkeypatch
):
    if isinstance(state_location, str):  # the part index lives with the rest of the state
        monkeypatch.setenv("SERP_ETL_STATE_URL", state_location)
    warehouse = Warehouse(tmp_path)
    assert warehouse.storage.shared == (storage_location is not None)
    first = datetime(2026, 4, 1, 8, tzinfo=UTC)
    for task_id in ("S1", "S2"):
        store(ledger, task_id, f"{task_id} first", first)
    report = TABLES.publish_responses(ledger, warehouse, DAY)
    assert (report.rows, report.added) == (2, 2)
    assert TABLES.publish_responses(ledger, warehouse, DAY).added == 0  # nothing twice
    TABLES.publish_flattened(warehouse, DAY)
    assert titles(warehouse) == ["S1 first", "S2 first"]
    # A correction: a new version in the raw layer, the tables show the latest.
    store(ledger, "S1", "S1 fixed", first + timedelta(hours=2))
    assert TABLES.publish_responses(ledger, warehouse, DAY).added == 1
    TABLES.publish_flattened(warehouse, DAY)
    TABLES.publish_flattened(warehouse, DAY)  # a rerun replaces, never adds
    assert titles(warehouse) == ["S1 fixed", "S2 first"]
    assert len(warehouse.parts(PROVIDER, RAW_TABLE, DAY)) == 2  # appended, never rewritten
    catalog.refresh_views(tmp_path)
    assert view_rows(tmp_path, "SELECT title FROM semscraper_items ORDER BY 1") == [
        ("S1 fixed",),
        ("S2 first",),
    ]
    assert view_rows(
        tmp_path, "SELECT count(*), count(DISTINCT content_hash) FROM semscraper_responses"
    ) == [(3, 3)]
    assert (tmp_path / "state" / "parts.sqlite").exists() == (not isinstance(state_location, str))


@pytest.fixture
def bucket_warehouse(s3_url, tmp_path, monkeypatch) -> Warehouse:
    monkeypatch.setenv("SERP_ETL_STORAGE_URL", s3_url)
    return Warehouse(tmp_path)


def objects(warehouse: Warehouse) -> set[str]:
    return set(warehouse.filesystem.find(str(warehouse.root)))


def test_a_publisher_killed_before_its_commit_changes_nothing_a_reader_sees(
    ledger, bucket_warehouse, tmp_path, monkeypatch
):
    warehouse = bucket_warehouse
    store(ledger, "S1", "first", datetime(2026, 4, 1, 8, tzinfo=UTC))
    TABLES.publish_responses(ledger, warehouse, DAY)
    TABLES.publish_flattened(warehouse, DAY)
    catalog.refresh_views(tmp_path)
    seen = view_rows(tmp_path, "SELECT title FROM semscraper_items")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between its uploads and its commit")

    before = objects(warehouse)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(ObjectStorage, "_commit", killed)
        TABLES.publish_flattened(warehouse, DAY)
    orphans = objects(warehouse) - before
    assert orphans and all("/items/" in o or "/date=" in o for o in orphans)  # uploaded...
    assert titles(warehouse) == ["first"]  # ...but no reader sees them
    assert view_rows(tmp_path, "SELECT title FROM semscraper_items") == seen
    assert catalog.views.current(warehouse, catalog.view_definitions(warehouse.data_dir))
    # A later publish of the day leaves young uploads alone (a live publisher's), and removes
    # them once they are a day old.
    TABLES.publish_flattened(warehouse, DAY)
    assert orphans <= objects(warehouse)
    old = Warehouse(
        tmp_path,
        ObjectStorage(warehouse.storage.url, tmp_path, warehouse.filesystem, stale_seconds=0),
    )
    TABLES.publish_flattened(old, DAY)
    assert not orphans & objects(warehouse)
    assert titles(warehouse) == ["first"]


def test_racing_publishers_leave_one_whole_day(ledger, bucket_warehouse, monkeypatch):
    warehouse = bucket_warehouse
    store(ledger, "S1", "first", datetime(2026, 4, 1, 8, tzinfo=UTC))
    TABLES.publish_responses(ledger, warehouse, DAY)
    TABLES.publish_flattened(warehouse, DAY)
    # Each publisher reads the day's commit, then another commits before it does.
    real_latest = ObjectStorage._latest
    raced = []

    def read_then_lose_the_race(self, provider, day):
        found = real_latest(self, provider, day)
        if not raced:
            raced.append(True)
            other = Warehouse(warehouse.data_dir)
            TABLES.publish_flattened(other, DAY)  # a whole table, committed first
            store(ledger, "S2", "second", datetime(2026, 4, 1, 9, tzinfo=UTC))
            TABLES.publish_responses(ledger, other, DAY)  # and a new raw part
        return found

    with monkeypatch.context() as patch:
        patch.setattr(ObjectStorage, "_latest", read_then_lose_the_race)
        TABLES.publish_flattened(warehouse, DAY)
    assert raced
    commits = warehouse.filesystem.ls(str(warehouse.root / PROVIDER / COMMITS / f"date={DAY}"))
    assert len(commits) == 5  # responses, flat, the racers' two, then this one's on top
    # The flattened table is one whole table (not the racer's and this one's together); the
    # racer's raw part is still there.
    assert titles(warehouse) == ["first"]
    assert len(warehouse.parts(PROVIDER, RAW_TABLE, DAY)) == 2
    TABLES.publish_flattened(warehouse, DAY)
    assert titles(warehouse) == ["first", "second"]


def test_replaced_parts_stay_readable_a_while_for_readers_of_the_commit_before(
    ledger, bucket_warehouse, tmp_path
):
    warehouse = bucket_warehouse
    store(ledger, "S1", "first", datetime(2026, 4, 1, 8, tzinfo=UTC))
    TABLES.publish_responses(ledger, warehouse, DAY)
    TABLES.publish_flattened(warehouse, DAY)
    read_before = warehouse.parts(PROVIDER, "items", DAY)  # a reader's view of the day
    TABLES.publish_flattened(warehouse, DAY)  # replaces every flattened part
    assert set(read_before).isdisjoint(warehouse.parts(PROVIDER, "items", DAY))
    for part in read_before:  # still there for the reader
        assert pq.read_table(str(part), filesystem=warehouse.filesystem).num_rows == 1
    # Once their time is up, the next publish of the day removes them.
    expiring = Warehouse(
        tmp_path,
        ObjectStorage(
            warehouse.storage.url, tmp_path, warehouse.filesystem, retired_grace_seconds=0
        ),
    )
    TABLES.publish_flattened(expiring, DAY)
    assert not any(warehouse.filesystem.exists(str(part)) for part in read_before)
    assert titles(warehouse) == ["first"]


def test_readers_name_the_days_parts_from_the_commit_not_a_listing(bucket_warehouse, ledger):
    warehouse = bucket_warehouse
    store(ledger, "S1", "first", datetime(2026, 4, 1, 8, tzinfo=UTC))
    TABLES.publish_responses(ledger, warehouse, DAY)
    TABLES.publish_flattened(warehouse, DAY)
    stray = warehouse.partition_dir(PROVIDER, "items", DAY) / "s00000000-part-9.parquet"
    with warehouse.filesystem.open(str(stray), "wb") as out:
        pq.write_table(pa.table({"title": ["not committed"]}), out)
    assert stray not in warehouse.parts(PROVIDER, "items", DAY)
    sources = warehouse.partition_source(PROVIDER, "items", DAY)
    assert isinstance(sources, list) and not any("part-9" in s for s in sources)
    assert titles(warehouse) == ["first"]


def run_both(data_dir: Path) -> list:
    return [
        materialize_day(data_dir, assets, {key: resource})
        for assets, key, resource in [
            (
                dataforseo_assets,
                "dataforseo",
                DataForSEOResource(collect_deadline_seconds=30, poll_seconds=1),
            ),
            (
                semscraper_assets,
                "semscraper",
                SemScraperResource(collect_deadline_seconds=30, poll_seconds=1),
            ),
        ]
    ]


def test_the_daily_job_on_postgres_and_a_bucket_bills_once_and_reads_everywhere(
    data_dir, s3_url, postgres_url, monkeypatch, capsys, tmp_path_factory
):
    monkeypatch.setenv("SERP_ETL_STORAGE_URL", s3_url)
    monkeypatch.setenv("SERP_ETL_STATE_URL", postgres_url)
    monkeypatch.setenv("SERP_ETL_DEPLOYMENT", "multi-host")  # allowed: nothing on this disk
    for result in run_both(data_dir):
        assert result.success
        checks = [e for e in result.get_asset_check_evaluations()]
        assert checks and all(c.passed for c in checks), [
            (c.check_name, c.description) for c in checks if not c.passed
        ]
    assert billed(data_dir) == (6, 3)
    assert not (data_dir / "warehouse").exists()  # every part is in the bucket
    for result in run_both(data_dir):  # a rerun: nothing posted, nothing added
        assert result.success
    assert billed(data_dir) == (6, 3)
    # serp-etl sql from a third directory, sharing only the settings: every row once.
    elsewhere = tmp_path_factory.mktemp("analyst")
    capsys.readouterr()
    assert (
        main(
            [
                "--data-dir",
                str(elsewhere),
                "sql",
                "SELECT count(*), count(DISTINCT task_id) FROM dataforseo_serps",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1:] == ["6,6"]
    assert (
        main(
            [
                "--data-dir",
                str(elsewhere),
                "sql",
                "SELECT count(*) FROM semscraper_responses",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1:] == ["3"]


def test_serp_etl_sql_cannot_write_to_the_bucket(data_dir, s3_url, monkeypatch, capsys):
    monkeypatch.setenv("SERP_ETL_STORAGE_URL", s3_url)
    assert all(result.success for result in run_both(data_dir))
    warehouse = Warehouse(data_dir)
    before = {
        info["name"]: info["ETag"]
        for info in warehouse.filesystem.find(str(warehouse.root), detail=True).values()
    }
    part = warehouse.parts("dataforseo", "organic", TODAY)[0]
    target = f"serpwarehouse://{part.relative_to(warehouse.root)}"
    for attack in [
        f"COPY (SELECT 1 AS n) TO '{target}' (FORMAT parquet)",
        f"EXPLAIN ANALYZE COPY (SELECT 1 AS n) TO '{target}' (FORMAT parquet)",
        f"COPY (SELECT 1 AS n) TO '{warehouse.uri(part)}' (FORMAT parquet)",
    ]:
        assert main(["--data-dir", str(data_dir), "sql", attack]) != 0
    assert {
        info["name"]: info["ETag"]
        for info in warehouse.filesystem.find(str(warehouse.root), detail=True).values()
    } == before
    from serp_etl.core.read_only_fs import ReadOnlyWarehouse, WarehouseIsReadOnly

    with pytest.raises(WarehouseIsReadOnly):
        ReadOnlyWarehouse(str(warehouse.root), warehouse.filesystem).open(
            str(part.relative_to(warehouse.root)), "wb"
        )


@pytest.mark.parametrize("state", ["sqlite", "postgres"])
def test_an_import_lands_once_on_every_state_and_storage(
    data_dir, storage_location, state, request, monkeypatch
):
    if state == "postgres":
        monkeypatch.setenv("SERP_ETL_STATE_URL", request.getfixturevalue("postgres_url"))
    example = str(FIXTURES / "dataforseo_reference_example.json")
    for _ in range(2):
        assert (
            main(["--data-dir", str(data_dir), "import", "dataforseo", example, "--date", DAY]) == 0
        )
    assert view_rows(data_dir, f"SELECT count(*) FROM dataforseo_serps WHERE date = '{DAY}'") == [
        (1,)
    ]
    assert view_rows(data_dir, "SELECT count(*) FROM dataforseo_responses") == [(1,)]
    assert (data_dir / "warehouse").exists() == (storage_location is None)


def test_a_storage_url_that_is_not_s3_is_a_clear_error(tmp_path, monkeypatch):
    from serp_etl.storage.location import StorageSettingInvalid

    for url in ("gs://bucket/x", "s3://", "/some/dir"):
        monkeypatch.setenv("SERP_ETL_STORAGE_URL", url)
        with pytest.raises(StorageSettingInvalid, match="SERP_ETL_STORAGE_URL"):
            Warehouse(tmp_path)


def test_large_inbox_bodies_wait_in_the_bucket_not_in_postgres(
    postgres_url, s3_url, tmp_path, monkeypatch
):
    from serp_etl.state.ledger import open_ledger
    from serp_etl.storage import bodies

    monkeypatch.setenv("SERP_ETL_STATE_URL", postgres_url)
    monkeypatch.setenv("SERP_ETL_STORAGE_URL", s3_url)
    warehouse = Warehouse(tmp_path)
    large = orjson.loads(serp("S1", "large"))
    large["results"][0]["items"] *= 20000  # ~1.3 MB
    large_body = orjson.dumps(large)
    assert len(large_body) >= bodies.INBOX_OBJECT_BYTES
    inbox_objects = str(warehouse.root / bodies.INBOX)
    with open_ledger(tmp_path) as ledger:
        meta = {
            "fetched_at": "2026-04-01T08:00:00+00:00",
            "status": "done",
            "cost": 2e-05,
            "source": "api",
            "html": None,
        }
        for task_id, body in (("S1", large_body), ("S2", serp("S2", "small"))):
            ledger.store_response(
                PROVIDER, DAY, task_id, TABLES.version(body, meta), body, TaskState.FETCHED
            )
        stored = dict(ledger.execute("SELECT task_id, length(body) FROM inbox").all())
        assert stored["S1"] == 0 and stored["S2"] > 0  # the large one is an object
        assert len(warehouse.filesystem.find(inbox_objects)) == 1
        assert {row.task_id: row.body for row in ledger.inbox(PROVIDER, DAY)}["S1"] == large_body
        TABLES.publish_responses(ledger, warehouse, DAY)
        assert warehouse.filesystem.find(inbox_objects) == []  # let go with its row
        raw = pq.read_table(
            str(warehouse.parts(PROVIDER, RAW_TABLE, DAY)[0]), filesystem=warehouse.filesystem
        )
        assert large_body.decode() in raw.column("body").to_pylist()
        # An object a crash left without its row goes once it is a day old.
        orphan = bodies.InboxBodies(warehouse.filesystem, warehouse.root).put(
            PROVIDER, "S9", large_body
        )
        ledger.clear_inbox(PROVIDER, DAY, [])
        assert warehouse.filesystem.exists(orphan)
        monkeypatch.setattr(bodies, "ORPHAN_SECONDS", 0)
        ledger.clear_inbox(PROVIDER, DAY, [])
        assert not warehouse.filesystem.exists(orphan)
