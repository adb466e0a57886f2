"""The client against the sandbox over real loopback HTTP, and its money rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from serp_etl.providers.dataforseo import settings
from serp_etl.providers.dataforseo.client import (
    ApiError,
    DataForSEOClient,
    DataForSEOError,
    PostOutcomeUnknown,
)
from serp_etl.providers.dataforseo.responses import InvalidTaskId
from serp_etl.providers.dataforseo.settings import Outcome
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD
from serp_etl_tests.conftest import Scripted, make_client


def task(n: int, **extra) -> dict:
    return {
        "image_url": f"https://img.example/{n}.jpg",
        "location_code": 2840,
        "language_code": "en",
        "tag": f"tag-{n}",
        **extra,
    }


@pytest.fixture
def http_client(loopback, clock):
    with DataForSEOClient(loopback, LOGIN, PASSWORD, clock=clock, sleep=clock.sleep) as client:
        yield client


def test_the_whole_task_cycle_over_loopback_http(http_client, sandbox, clock):
    posted = http_client.post_tasks([task(1), task(2, priority=2)])
    assert [p.outcome for p in posted] == [Outcome.SUCCESS, Outcome.SUCCESS]
    assert [p.tag for p in posted] == ["tag-1", "tag-2"]
    assert [p.cost for p in posted] == [0.0006, 0.0012]

    not_ready = http_client.task_get(posted[0].task_id)
    assert not_ready.outcome is Outcome.NOT_READY and not_ready.status_code == 40602
    assert http_client.tasks_ready() == []

    clock.now += 60
    ready = http_client.tasks_ready()
    assert {r.task_id for r in ready} == {p.task_id for p in posted}
    assert {r.tag for r in ready} == {"tag-1", "tag-2"}

    fetched = http_client.task_get(posted[0].task_id)
    assert fetched.outcome in (Outcome.SUCCESS, Outcome.BILLED_EMPTY)
    assert fetched.tag == "tag-1" and fetched.cost == 0.0006
    assert b'"tasks"' in fetched.body
    assert [r.task_id for r in http_client.tasks_ready()] == [posted[1].task_id]  # collected

    now = datetime.fromtimestamp(clock.now, UTC)
    listed = list(http_client.id_list(now - timedelta(hours=1), now))
    assert {(t.task_id, t.tag) for t in listed} == {(p.task_id, p.tag) for p in posted}

    money = http_client.user_data()["money"]
    assert money["balance"] == pytest.approx(50.0 - 0.0018)
    assert sandbox.stats()["billed_tasks"] == 2


def test_unknown_and_expired_ids(http_client, clock):
    (posted,) = http_client.post_tasks([task(1)])
    unknown = http_client.task_get("00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 40401 and unknown.outcome is Outcome.PERMANENT
    clock.now += 31 * 86400
    expired = http_client.task_get(posted.task_id)
    assert expired.status_code == 40403 and expired.outcome is Outcome.PERMANENT


def test_hostile_task_ids_never_reach_the_url(http_client):
    for hostile in ["../../v3/appendix/user_data", "a" * 36, "", None, "1?x=1"]:
        with pytest.raises(InvalidTaskId):
            http_client.task_get(hostile)


def test_no_credentials_is_a_clear_error(loopback, clock):
    with (
        DataForSEOClient(loopback, "someone", "wrong", clock=clock, sleep=clock.sleep) as c,
        pytest.raises(ApiError, match="40100"),
    ):
        c.user_data()
    assert httpx.get(f"{loopback}{settings.USER_DATA}").status_code == 401


def test_one_invalid_task_does_not_fail_its_batch_mates(http_client):
    posted = http_client.post_tasks([task(1), task(2, image_url="not a url"), task(3, colour=1)])
    assert [p.status_code for p in posted] == [20100, 40501, 40506]
    assert [p.outcome for p in posted] == [Outcome.SUCCESS, Outcome.PERMANENT, Outcome.PERMANENT]


def test_batches_are_capped_at_100_by_the_client_and_the_sandbox(http_client, loopback):
    with pytest.raises(ValueError, match="1 to 100"):
        http_client.post_tasks([task(n) for n in range(101)])
    raw = httpx.post(
        f"{loopback}{settings.TASK_POST}",
        json=[task(n) for n in range(101)],
        auth=(LOGIN, PASSWORD),
    ).json()
    codes = [t["status_code"] for t in raw["tasks"]]
    assert codes[:100] == [20100] * 100 and codes[100] == 40006


def test_the_sandbox_enforces_the_rate_limit_with_40202(loopback):
    answers = [
        httpx.post(
            f"{loopback}{settings.ID_LIST}",
            auth=(LOGIN, PASSWORD),
            json=[
                {
                    "datetime_from": "2026-11-20 07:00:00 +00:00",
                    "datetime_to": "2026-11-20 08:00:00 +00:00",
                }
            ],
        ).json()["status_code"]
        for _ in range(11)
    ]
    assert answers == [20000] * 10 + [40202]


def test_the_client_limiter_stays_under_the_limit(http_client, clock):
    now = datetime.fromtimestamp(clock.now, UTC)
    for _ in range(12):
        list(http_client.id_list(now - timedelta(hours=1), now))
    # id_list allows 10 a minute: the 11th call waited for the window, none was refused.
    assert sum(clock.sleeps) >= 60


def ok_envelope(tasks):
    return httpx.Response(200, json={"status_code": 20000, "status_message": "Ok.", "tasks": tasks})


def test_free_gets_retry_transient_failures(sandbox, clock):
    transport = Scripted(
        httpx.ReadTimeout("slow"),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, content=b'{"tasks": [trunc'),
        httpx.Response(200, json={"status_code": 40202, "status_message": "Rate limit."}),
        ok_envelope([{"id": "x", "status_code": 20000, "result": [{"money": {"balance": 1}}]}]),
    )
    client = make_client(sandbox, clock, transport=transport, attempts=5)
    assert client.user_data() == {"money": {"balance": 1}}
    assert len(transport.requests) == 5


def test_free_gets_give_up_with_a_typed_error(sandbox, clock):
    transport = Scripted(*[httpx.Response(503)] * 3)
    client = make_client(sandbox, clock, transport=transport)
    with pytest.raises(DataForSEOError, match="gave up after 3 attempts"):
        client.tasks_ready()


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("no answer"),
        httpx.RemoteProtocolError("connection reset"),
        httpx.Response(500, text="oops"),
        httpx.Response(200, content=b"<html>proxy error</html>"),
    ],
)
def test_a_post_with_an_unknown_outcome_is_never_sent_again(sandbox, clock, failure):
    transport = Scripted(failure, ok_envelope([]))
    client = make_client(sandbox, clock, transport=transport)
    with pytest.raises(PostOutcomeUnknown):
        client.post_tasks([task(1)])
    assert len(transport.requests) == 1


def test_a_post_that_never_left_or_was_refused_whole_is_sent_again(sandbox, clock):
    created = ok_envelope(
        [
            {
                "id": "11111111-1111-0066-0000-000000000001",
                "status_code": 20100,
                "status_message": "Task Created.",
                "cost": 0.0006,
                "data": {"tag": "tag-1"},
            }
        ]
    )
    transport = Scripted(
        httpx.ConnectError("refused"),
        httpx.Response(200, json={"status_code": 40202, "status_message": "Rate limit."}),
        created,
    )
    client = make_client(sandbox, clock, transport=transport)
    (posted,) = client.post_tasks([task(1)])
    assert posted.outcome is Outcome.SUCCESS and len(transport.requests) == 3


def test_account_errors_at_posting_stop_with_the_code(sandbox, clock):
    transport = Scripted(
        httpx.Response(200, json={"status_code": 40210, "status_message": "Insufficient funds."})
    )
    client = make_client(sandbox, clock, transport=transport)
    with pytest.raises(ApiError, match="40210"):
        client.post_tasks([task(1)])


def test_locations_and_languages_over_loopback(http_client):
    locations = http_client.locations()
    assert {
        "location_code": 2840,
        "location_name": "United States",
        "location_code_parent": None,
        "country_iso_code": "US",
        "location_type": "Country",
    } in locations
    chicago = next(loc for loc in locations if loc["location_name"].startswith("Chicago"))
    assert chicago["location_code_parent"] == 2840 and chicago["location_type"] == "City"
    assert {"language_name": "Japanese", "language_code": "ja"} in http_client.languages()


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"location_name": "Atlantis", "language_code": "en"}, "location_name"),
        ({"location_code": 9999, "language_code": "en"}, "location_code"),
        ({"location_code": 2840, "language_name": "Klingon"}, "language_name"),
        ({"location_code": 2840, "language_code": "tlh"}, "language_code"),
    ],
)
def test_the_sandbox_refuses_unknown_locations_and_languages(http_client, sandbox, where, named):
    (posted,) = http_client.post_tasks([{"image_url": "https://img.example/1.jpg", **where}])
    assert posted.status_code == 40501 and named in posted.status_message
    assert sandbox.stats()["billed_tasks"] == 0


def test_the_sandbox_honours_names_and_codes(http_client, clock):
    posted = http_client.post_tasks(
        [
            {
                "image_url": f"https://img.example/{n}.jpg",
                "location_name": "Japan",
                "language_name": "Japanese",
            }
            for n in range(4)
        ]
    )
    clock.now += 60
    results = [
        orjson.loads(http_client.task_get(p.task_id).body)["tasks"][0]["result"] for p in posted
    ]
    found = [(r[0]["location_code"], r[0]["language_code"]) for r in results if r]
    assert found and set(found) == {(2392, "ja")}  # some SERPs may be empty (40102)
