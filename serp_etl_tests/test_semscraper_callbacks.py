"""The callback receiver over loopback HTTP: only signed SERPs get in, each exactly once."""

from __future__ import annotations

import httpx
import orjson
import pytest

from serp_etl.core.ledger import TaskState
from serp_etl.providers.semscraper.callbacks import CallbackReceiver, signature
from serp_etl.providers.semscraper.settings import PROVIDER
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.sandbox.wsgi import serving

KEY = "hmac-key-of-the-account"
SERP = {"id": "SERP_1", "status": "done", "keyword": "example keyword", "cost": "0.00002",
        "results": [{"type": "organic", "items": [{"rank_type": 1, "rank_serp": 1}]}]}


@pytest.fixture
def receiver(ledger):
    receiver = CallbackReceiver(KEY, ledger.path, max_body=64 * 1024)
    with serving(receiver.app) as url:
        yield f"{url}/semscraper"


def deliver(url: str, body: bytes, signed_with: str | None = KEY, **headers) -> httpx.Response:
    if signed_with is not None:
        headers.setdefault("X-Signature", signature(body, signed_with.encode()))
    return httpx.post(url, content=body, headers=headers)


def inbox_ids(ledger) -> list[str]:
    partitions = [r[0] for r in ledger._db.execute("SELECT DISTINCT partition_date FROM inbox")]
    return [row.task_id for p in partitions for row in ledger.inbox(PROVIDER, p)]


def test_a_signed_delivery_is_stored_and_its_scrape_marked_collected(receiver, ledger):
    ledger.record_intents(PROVIDER, "2026-11-20", {"t1": {"keyword": "example keyword"}})
    ledger.mark_posted(PROVIDER, "t1", "SERP_1", 0.00002, None, "pending")
    body = orjson.dumps(SERP)
    answer = deliver(receiver, body)
    assert answer.status_code == 200
    assert answer.json()["echo"] == "SERP_1" and answer.json()["duplicate"] is False
    (row,) = list(ledger.inbox(PROVIDER, "2026-11-20"))  # filed under its task's partition
    assert row.body == body and row.meta["source"] == "callback"
    (task,) = ledger.tasks(PROVIDER, "2026-11-20")
    assert task.state is TaskState.FETCHED  # polling will not fetch it again


def test_a_replayed_delivery_is_kept_once(receiver, ledger):
    body = orjson.dumps(SERP)
    assert deliver(receiver, body).json()["duplicate"] is False
    assert deliver(receiver, body).json()["duplicate"] is True
    assert inbox_ids(ledger) == ["SERP_1"]


@pytest.mark.parametrize("headers", [
    {"X-Signature": signature(orjson.dumps(SERP), b"someone else's key")},  # forged
    {"X-Signature": ""},
    {"X-Signature": "zz" * 32},
    {"X-Signature": signature(orjson.dumps({**SERP, "cost": "0"}), KEY.encode())},  # tampered
])
def test_forged_or_wrong_signatures_are_refused(receiver, ledger, headers):
    answer = deliver(receiver, orjson.dumps(SERP), signed_with=None, **headers)
    assert answer.status_code == 401 and answer.text == "Invalid signature"
    assert inbox_ids(ledger) == []


def test_a_missing_signature_is_refused(receiver, ledger):
    answer = deliver(receiver, orjson.dumps(SERP), signed_with=None)
    assert answer.status_code == 401 and inbox_ids(ledger) == []


def test_invalid_json_with_a_valid_signature_is_a_400(receiver, ledger):
    answer = deliver(receiver, b'{"id": "SERP_1", "results": [')
    assert answer.status_code == 400 and answer.text == "Invalid JSON"
    answer = deliver(receiver, b'{"id": "../../etc", "results": []}')
    assert answer.status_code == 400 and "valid 'id'" in answer.text
    assert inbox_ids(ledger) == []


def test_an_oversized_body_is_refused_before_it_is_read(receiver, ledger):
    huge = orjson.dumps({**SERP, "padding": "x" * 100_000})
    answer = deliver(receiver, huge)
    assert answer.status_code == 413 and inbox_ids(ledger) == []


def test_only_posts_are_accepted(receiver):
    assert httpx.get(receiver).status_code == 405


def test_a_receiver_needs_a_key(ledger):
    with pytest.raises(ValueError, match="SEMSCRAPER_HMAC_KEY"):
        CallbackReceiver("", ledger.path)


def test_a_delivered_serp_reaches_the_raw_and_flattened_tables(receiver, ledger, warehouse):
    ledger.record_intents(PROVIDER, "2026-11-20", {"t1": {"keyword": "example keyword"}})
    ledger.mark_posted(PROVIDER, "t1", "SERP_1", 0.00002, None, "pending")
    assert deliver(receiver, orjson.dumps(SERP)).status_code == 200
    raw = TABLES.publish_responses(ledger, warehouse, "2026-11-20")
    assert raw.rows == 1
    rows = TABLES.publish_flattened(warehouse, "2026-11-20")
    assert rows == {"serps": 1, "items": 1}
    with warehouse.connect() as con:
        assert con.execute("SELECT task_id, cost, source FROM semscraper_responses").fetchall() \
            == [("SERP_1", 0.00002, "callback")]
