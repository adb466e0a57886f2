"""The raw layer: every distinct version of a response, as received, appended, never rewritten;
the flattened tables built from each task's latest version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from serp_etl.core.raw import RAW_TABLE
from serp_etl.providers.semscraper.settings import PROVIDER
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.state.ledger import TaskState

DAY = "2026-04-01"
SERP = {
    "id": "S1",
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
            "items": [{"rank_type": 1, "rank_serp": 1, "domain": "a.example", "title": "first"}],
        }
    ],
}


def store(
    ledger, serp_bytes: bytes, fetched_at: datetime, task_id: str = "S1", source: str = "api"
) -> bool:
    meta = {
        "fetched_at": fetched_at.isoformat(),
        "status": "done",
        "cost": 2e-05,
        "source": source,
        "html": None,
    }
    return ledger.store_response(
        PROVIDER, DAY, task_id, TABLES.version(serp_bytes, meta), serp_bytes, TaskState.FETCHED
    )


def raw_dir(warehouse):
    return warehouse.partition_file(PROVIDER, RAW_TABLE, DAY).parent


def raw_rows(warehouse) -> list[dict]:
    return pq.read_table(raw_dir(warehouse)).sort_by("fetched_at").to_pylist()


def titles(warehouse) -> list[str]:
    return (
        pq.read_table(warehouse.partition_file(PROVIDER, "items", DAY).parent)
        .column("title")
        .to_pylist()
    )


def test_a_corrected_response_is_a_new_version_and_the_tables_show_the_latest(ledger, warehouse):
    first = datetime(2026, 4, 1, 8, tzinfo=UTC)
    store(ledger, orjson.dumps(SERP), first)
    TABLES.publish_responses(ledger, warehouse, DAY)
    fixed = {
        **SERP,
        "results": [
            {
                "type": "organic",
                "items": [
                    {"rank_type": 1, "rank_serp": 1, "domain": "a.example", "title": "fixed"}
                ],
            }
        ],
    }
    store(ledger, orjson.dumps(fixed), first + timedelta(hours=2), source="import:fixed.json")
    report = TABLES.publish_responses(ledger, warehouse, DAY)
    assert (report.rows, report.added) == (2, 1)
    rows = raw_rows(warehouse)
    assert [r["source"] for r in rows] == ["api", "import:fixed.json"]
    assert rows[0]["content_hash"] != rows[1]["content_hash"]
    TABLES.publish_flattened(warehouse, DAY)
    assert titles(warehouse) == ["fixed"]


def test_identical_content_adds_nothing_and_parts_are_never_rewritten(ledger, warehouse):
    moment = datetime(2026, 4, 1, 8, tzinfo=UTC)
    store(ledger, orjson.dumps(SERP), moment)
    TABLES.publish_responses(ledger, warehouse, DAY)
    (first_part,) = raw_dir(warehouse).glob("*.parquet")
    written = first_part.stat().st_mtime_ns, first_part.stat().st_ino
    store(ledger, orjson.dumps(SERP), moment + timedelta(days=1), source="import:again.json")
    assert TABLES.publish_responses(ledger, warehouse, DAY).added == 0
    for n in range(3):
        store(ledger, orjson.dumps({**SERP, "id": f"T{n}"}), moment, task_id=f"T{n}")
        TABLES.publish_responses(ledger, warehouse, DAY)
    parts = sorted(raw_dir(warehouse).glob("*.parquet"))
    assert len(parts) == 4 and len(raw_rows(warehouse)) == 4
    assert (first_part.stat().st_mtime_ns, first_part.stat().st_ino) == written


def test_a_crash_between_publishing_and_clearing_the_inbox_adds_nothing_twice(
    ledger, warehouse, monkeypatch
):
    store(ledger, orjson.dumps(SERP), datetime(2026, 4, 1, 8, tzinfo=UTC))
    monkeypatch.setattr(ledger, "clear_inbox", lambda *args: None)  # died before clearing
    TABLES.publish_responses(ledger, warehouse, DAY)
    monkeypatch.undo()
    assert len(list(ledger.inbox(PROVIDER, DAY))) == 1
    assert TABLES.publish_responses(ledger, warehouse, DAY).added == 0
    assert len(raw_rows(warehouse)) == 1 and list(ledger.inbox(PROVIDER, DAY)) == []


def test_the_body_is_the_bytes_received_and_repairs_are_named(ledger, warehouse):
    dirty = orjson.dumps(SERP).replace(b'"first"', b'"fir\x01st \\ud83d"')
    store(ledger, dirty, datetime(2026, 4, 1, 8, tzinfo=UTC))
    not_utf8 = orjson.dumps({**SERP, "id": "S2"}).replace(b'"first"', b'"f\xffrst"')
    store(ledger, not_utf8, datetime(2026, 4, 1, 8, tzinfo=UTC), task_id="S2")
    TABLES.publish_responses(ledger, warehouse, DAY)
    rows = {r["task_id"]: r for r in raw_rows(warehouse)}
    assert rows["S1"]["body"].encode() == dirty and rows["S1"]["body_bytes"] is None
    assert rows["S1"]["repairs"] == ["control_character", "lone_surrogate"]
    assert rows["S2"]["body_bytes"] == not_utf8 and rows["S2"]["repairs"] == ["invalid_utf8"]
    TABLES.publish_flattened(warehouse, DAY)
    assert set(titles(warehouse)) == {"f\ufffdrst", "fir\x01st \ufffd"}


def test_a_raw_file_of_an_earlier_version_is_read_and_kept(ledger, warehouse):
    legacy = pa.table(
        {
            "task_id": ["S1"],
            "fetched_at": [datetime(2026, 4, 1, 8, tzinfo=UTC)],
            "status": ["done"],
            "cost": [2e-05],
            "source": ["api"],
            "html": pa.nulls(1, pa.string()),
            "body": [orjson.dumps(SERP).decode()],
        }
    )
    path = warehouse.partition_file(PROVIDER, RAW_TABLE, DAY)
    path.parent.mkdir(parents=True)
    pq.write_table(legacy, path)
    store(ledger, orjson.dumps(SERP), datetime(2026, 4, 2, tzinfo=UTC), source="import:x")
    assert TABLES.publish_responses(ledger, warehouse, DAY).added == 0  # the same content
    TABLES.publish_flattened(warehouse, DAY)
    assert titles(warehouse) == ["first"]
    (row,) = raw_rows(warehouse)
    assert row["content_hash"] and row["body"] == orjson.dumps(SERP).decode()
