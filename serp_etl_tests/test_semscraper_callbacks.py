"""The callback receiver, served by uvicorn on loopback: only signed, finished SERPs of scrapes
this project created reach the SERP tables; anything else signed waits in a quarantine."""

from __future__ import annotations

import logging
import subprocess
import sys

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from serp_etl import catalog
from serp_etl.providers.semscraper.callbacks import CallbackReceiver
from serp_etl.providers.semscraper.settings import PROVIDER, signature
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.state.ledger import TaskState
from serp_etl_tests.conftest import serving_asgi

KEY = "hmac-key-of-the-account"
DAY = "2026-11-20"
SERP = {
    "id": "SERP_1",
    "status": "done",
    "keyword": "example keyword",
    "cost": "0.00002",
    "results": [{"type": "organic", "items": [{"rank_type": 1, "rank_serp": 1}]}],
}


@pytest.fixture
def receiver(ledger):
    receiver = CallbackReceiver(KEY, ledger.location, max_body=64 * 1024)
    with serving_asgi(receiver.app) as url:
        yield f"{url}/semscraper"


@pytest.fixture
def created(ledger):
    """SERP_1 is a scrape this project created on DAY, not collected yet."""
    ledger.record_intents(PROVIDER, DAY, {"t1": {"keyword": "example keyword"}})
    ledger.mark_posted(PROVIDER, "t1", "SERP_1", 0.00002, None, "pending")


def deliver(url: str, body: bytes, signed_with: str | None = KEY, **headers) -> httpx.Response:
    if signed_with is not None:
        headers.setdefault("X-Signature", signature(body, signed_with.encode()))
    return httpx.post(url, content=body, headers=headers)


def inbox_ids(ledger) -> list[str]:
    return [
        row.task_id
        for p in sorted(ledger.inbox_partitions(PROVIDER))
        for row in ledger.inbox(PROVIDER, p)
    ]


def test_a_signed_delivery_is_stored_and_its_scrape_marked_collected(receiver, ledger, created):
    body = orjson.dumps(SERP)
    answer = deliver(receiver, body)
    assert answer.status_code == 200
    assert answer.json()["echo"] == "SERP_1" and answer.json()["outcome"] == "stored"
    (row,) = list(ledger.inbox(PROVIDER, DAY))  # filed under its task's partition
    assert row.body == body and row.meta["source"] == "callback"
    (task,) = ledger.tasks(PROVIDER, DAY)
    assert task.state is TaskState.FETCHED  # polling will not fetch it again


def test_a_chunked_delivery_is_read_whole_and_verified(receiver, ledger, created):
    body = orjson.dumps(SERP)

    def chunks():
        yield body[:10]
        yield body[10:]

    answer = httpx.post(
        receiver, content=chunks(), headers={"X-Signature": signature(body, KEY.encode())}
    )
    assert answer.status_code == 200 and inbox_ids(ledger) == ["SERP_1"]


def test_a_replay_is_kept_once_and_keeps_its_first_fetch_time(receiver, ledger, created, warehouse):
    body = orjson.dumps(SERP)
    assert deliver(receiver, body).json()["outcome"] == "stored"
    first = ledger.tasks(PROVIDER, DAY)[0].fetched_at
    assert deliver(receiver, body).json()["outcome"] == "duplicate"
    TABLES.publish_responses(ledger, warehouse, DAY)
    assert deliver(receiver, body).json()["outcome"] == "duplicate"  # after publishing too
    assert ledger.tasks(PROVIDER, DAY)[0].fetched_at == first
    assert TABLES.publish_responses(ledger, warehouse, DAY).rows == 1


@pytest.mark.parametrize(
    ("delivered", "reason"),
    [
        ({**SERP, "id": "NOT_OURS"}, "not a scrape of this project"),
        ({"id": "SERP_1", "status": "pending"}, "not a finished SERP"),
        ({"id": "SERP_1", "status": "done", "results": "none"}, "not a finished SERP"),
    ],
)
def test_what_was_not_asked_for_is_quarantined_not_stored(
    receiver, ledger, created, warehouse, delivered, reason
):
    answer = deliver(receiver, orjson.dumps(delivered))
    assert answer.status_code == 200 and answer.json()["outcome"] == "quarantined"
    assert inbox_ids(ledger) == []
    (task,) = ledger.tasks(PROVIDER, DAY)
    assert task.state is TaskState.POSTED  # its real SERP will still be collected
    (held,) = ledger.quarantined(PROVIDER)
    assert reason in held.reason and held.body == orjson.dumps(delivered)
    TABLES.publish_quarantine(ledger, warehouse)
    rows = pq.read_table(warehouse.root / PROVIDER / "quarantine").to_pylist()
    assert [r["reason"] for r in rows] == [held.reason] and ledger.quarantined(PROVIDER) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Signature": signature(orjson.dumps(SERP), b"someone else's key")},  # forged
        {"X-Signature": ""},
        {"X-Signature": "zz" * 32},
        {"X-Signature": signature(orjson.dumps({**SERP, "cost": "0"}), KEY.encode())},  # tampered
    ],
)
def test_forged_or_wrong_signatures_are_refused(receiver, ledger, headers):
    answer = deliver(receiver, orjson.dumps(SERP), signed_with=None, **headers)
    assert answer.status_code == 401 and answer.text == "Invalid signature"
    assert inbox_ids(ledger) == [] and ledger.quarantined(PROVIDER) == []


def test_a_missing_signature_is_refused(receiver, ledger):
    answer = deliver(receiver, orjson.dumps(SERP), signed_with=None)
    assert answer.status_code == 401 and inbox_ids(ledger) == []


def test_a_signed_body_that_is_not_json_is_a_400(receiver, ledger):
    answer = deliver(receiver, b'{"id": "SERP_1", "results": [')
    assert answer.status_code == 400 and "not JSON" in answer.text
    answer = deliver(receiver, b'{"id": "../../etc", "results": []}')
    assert answer.status_code == 400 and "valid 'id'" in answer.text
    assert inbox_ids(ledger) == []


def test_an_oversized_body_is_refused_before_its_signature_is_checked(receiver, ledger):
    huge = orjson.dumps({**SERP, "padding": "x" * 100_000})
    assert deliver(receiver, huge).status_code == 413
    assert deliver(receiver, huge, signed_with=None).status_code == 413  # a cap, then a MAC
    assert inbox_ids(ledger) == []


def test_only_posts_are_accepted(receiver):
    assert httpx.get(receiver).status_code == 405


def test_a_receiver_needs_a_key(ledger):
    with pytest.raises(ValueError, match="SEMSCRAPER_HMAC_KEY"):
        CallbackReceiver("", ledger.location)


def test_each_delivery_is_one_log_line_without_body_or_key(receiver, ledger, created, caplog):
    with caplog.at_level(logging.INFO, logger="serp_etl.callbacks"):
        deliver(receiver, orjson.dumps(SERP))
        deliver(receiver, orjson.dumps(SERP), signed_with="wrong")
    lines = [r.getMessage() for r in caplog.records if r.name == "serp_etl.callbacks"]
    assert len(lines) == 2
    assert (
        "SERP_1" in lines[0] and "stored" in lines[0] and str(len(orjson.dumps(SERP))) in lines[0]
    )
    assert "invalid signature" in lines[1]
    assert not any(KEY in line or "example keyword" in line for line in lines)


def test_the_receiver_does_not_depend_on_the_sandbox():
    code = (
        "import sys, serp_etl.providers.semscraper.callbacks; "
        "sys.exit(any(m.startswith('serp_etl.sandbox') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_delivered_serp_reaches_the_raw_and_flattened_tables(
    receiver, ledger, warehouse, created
):
    assert deliver(receiver, orjson.dumps(SERP)).status_code == 200
    raw = TABLES.publish_responses(ledger, warehouse, DAY)
    assert raw.rows == 1
    rows = TABLES.publish_flattened(warehouse, DAY)
    assert rows == {"serps": 1, "items": 1}
    with catalog.connect(warehouse.data_dir) as con:
        assert con.execute("SELECT task_id, cost, source FROM semscraper_responses").fetchall() == [
            ("SERP_1", 0.00002, "callback")
        ]
