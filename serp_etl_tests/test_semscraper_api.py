"""The SemScraper client against its sandbox over real loopback HTTP: every endpoint."""

from __future__ import annotations

import httpx
import pytest

from serp_etl.providers.semscraper import settings
from serp_etl.providers.semscraper.callbacks import CallbackReceiver
from serp_etl.providers.semscraper.client import (
    ApiError,
    InvalidScrape,
    InvalidScrapeId,
    PostOutcomeUnknown,
    Scrape,
    SemScraperClient,
)
from serp_etl.providers.semscraper.settings import signature
from serp_etl.sandbox.semscraper.app import API_KEY, HMAC_KEY, SemScraperSandbox
from serp_etl.sandbox.wsgi import serving
from serp_etl_tests.conftest import Scripted, serving_asgi


@pytest.fixture
def sandbox(tmp_path, clock):
    return SemScraperSandbox(
        tmp_path / "sandbox" / "semscraper.sqlite", ready_seconds=20, clock=clock
    )


@pytest.fixture
def served(sandbox):
    with serving(sandbox.app) as url:
        yield f"{url}/v1"  # the live API's shape: https://api.semscraper.com/v1


@pytest.fixture
def api(served, clock):
    with SemScraperClient(served, API_KEY, clock=clock, sleep=clock.sleep) as client:
        yield client


def test_every_endpoint_over_loopback(api, sandbox, clock):
    locations = api.locations()
    assert {"location": "fr", "language": "fr", "host": "google.fr", "name": "France"} in locations

    created, answer = api.create(
        [
            Scrape("example keyword", "fr", "fr", depth=5),
            Scrape("mot clé", "fr", "fr", device="mobile", priority=10),
        ]
    )
    assert [c["status"] for c in created] == ["pending", "pending"]
    assert answer["currency"] == "EUR" and answer["total_cost"] == pytest.approx(0.00012)
    assert api.credit() == pytest.approx(100.50 - 0.00012)

    clock.now += 12  # priority 10 is done after 2 s; priority 1 processes from 10 s to 20 s
    assert {(s["status"], s.get("fetched")) for s in api.status() if s["count"]} == {
        ("done", False),
        ("processing", None),
    }
    listed = api.completed_not_retrieved()
    assert [s["id"] for s in listed] == [created[1]["id"]] and listed[0]["cost"] == "0.00002"

    clock.now += 60
    serps = api.retrieve([c["id"] for c in created])
    assert {s["status"] for s in serps} == {"done"}
    deep = next(s for s in serps if s["keyword"] == "example keyword")
    assert {b["type"] for b in deep["results"]} >= {"organic"}
    assert max(i["page"] for b in deep["results"] for i in b["items"]) == 5
    assert api.completed_not_retrieved() == []  # retrieved: no longer listed

    html = api.retrieve([created[0]["id"]], output="html")
    assert html[0]["html"].startswith("<!doctype html>")
    assert api.payment_methods()[1]["master"] is True
    assert sandbox.stats()["billed_scrapes"] == 2


def test_results_are_deterministic_and_span_the_block_types(api, clock):
    kinds = set()
    for n in range(8):
        created, _ = api.create([Scrape(f"keyword {n}", "fr", "fr", depth=2)])
        clock.now += 60
        (serp,) = api.retrieve([created[0]["id"]])
        kinds |= {b["type"] for b in serp["results"]}
        again, _ = api.create([Scrape(f"keyword {n}", "fr", "fr", depth=2)])
        clock.now += 60
        assert api.retrieve([again[0]["id"]])[0]["results"] == serp["results"]
    assert kinds >= {"organic", "people_also_ask", "videos", "images"}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"depth": 11}, "depth"),
        ({"depth": 0}, "depth"),
        ({"priority": 11}, "priority"),
        ({"device": "tablet"}, "device"),
        ({"keyword": " "}, "keyword"),
        ({"callback_url": "ftp://x"}, "callback_url"),
    ],
)
def test_out_of_range_values_are_refused_before_any_call(fields, named):
    arguments = {"keyword": "k", "location": "fr", "language": "fr", **fields}
    with pytest.raises(InvalidScrape, match=named):
        Scrape(**arguments)


def test_400_errors_surface_the_api_message(api, served):
    with pytest.raises(ApiError, match="unknown location 'zz'"):
        api.create([Scrape("k", "zz", "fr")])
    with pytest.raises(ValueError, match="1 to 100"):
        api.create([Scrape(f"k{n}", "fr", "fr") for n in range(101)])
    raw = httpx.post(
        f"{served}{settings.SERPS}",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json=[
            {
                "search_engine": "google_search",
                "keyword": f"k{n}",
                "device": "desktop",
                "depth": 1,
                "location": "fr",
                "language": "fr",
            }
            for n in range(101)
        ],
    )
    assert raw.status_code == 400 and "at most 100" in raw.json()["message"]


def test_hostile_ids_never_reach_the_query(api):
    for hostile in ["a,b", "../x", "", "id&output=html", None]:
        with pytest.raises(InvalidScrapeId):
            api.retrieve([hostile])


def test_bearer_auth_is_required(served, clock):
    with (
        SemScraperClient(served, "wrong", clock=clock, sleep=clock.sleep) as client,
        pytest.raises(ApiError, match="401"),
    ):
        client.credit()


def test_rate_limits_are_enforced_and_the_client_stays_under_them(served, api, clock):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    codes = [
        httpx.get(f"{served}{settings.CREDIT}", headers=headers).status_code for _ in range(101)
    ]
    assert codes == [200] * 100 + [429]
    clock.now += 61
    for _ in range(101):
        api.credit()
    assert sum(clock.sleeps) >= 60  # the 101st call waited for the window: none was refused


def test_callbacks_are_signed_and_delivered_once(tmp_path, clock, ledger):
    receiver = CallbackReceiver(HMAC_KEY, ledger.location)
    with serving_asgi(receiver.app) as hook:
        sandbox = SemScraperSandbox(tmp_path / "semscraper.sqlite", ready_seconds=20, clock=clock)
        client = SemScraperClient(
            "http://sandbox.invalid",
            API_KEY,
            transport=httpx.WSGITransport(app=sandbox.app),
            clock=clock,
            sleep=clock.sleep,
        )
        created, _ = client.create([Scrape("k", "fr", "fr", callback_url=f"{hook}/hook")])
        ledger.record_intents(settings.PROVIDER, "2026-11-20", {"t": {"keyword": "k"}})
        ledger.mark_posted(settings.PROVIDER, "t", created[0]["id"], 2e-05, None, "pending")
        assert sandbox.deliver_due_callbacks() == 0  # not done yet
        clock.now += 60
        assert sandbox.deliver_due_callbacks() == 1
        assert sandbox.deliver_due_callbacks() == 0  # delivered once
        (row,) = list(ledger.inbox(settings.PROVIDER, "2026-11-20"))
        assert row.task_id == created[0]["id"]
        assert sandbox.stats()["callbacks_delivered"] == 1


def test_the_sandbox_signs_like_the_reference(sandbox, clock):
    received = []

    def hook(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200, json={"status": "ok"})

    sandbox._callback_transport = httpx.MockTransport(hook)
    client = SemScraperClient(
        "http://sandbox.invalid",
        API_KEY,
        transport=httpx.WSGITransport(app=sandbox.app),
        clock=clock,
        sleep=clock.sleep,
    )
    client.create([Scrape("k", "fr", "fr", callback_url="https://example.com/hook")])
    clock.now += 60
    sandbox.deliver_due_callbacks()
    (request,) = received
    assert request.headers["X-Signature"] == signature(request.content, HMAC_KEY.encode())


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("no answer"), httpx.Response(502, text="bad gateway")]
)
def test_a_create_whose_answer_was_lost_is_never_sent_again(clock, failure):
    transport = Scripted(failure, httpx.Response(200, json={"status": "success", "data": []}))
    client = SemScraperClient(
        "http://x.invalid/v1", API_KEY, transport=transport, clock=clock, sleep=clock.sleep
    )
    with pytest.raises(PostOutcomeUnknown):
        client.create([Scrape("k", "fr", "fr")])
    assert len(transport.requests) == 1


def test_a_create_refused_whole_or_never_sent_is_sent_again(clock):
    created = {"status": "success", "data": [{"id": "S1", "status": "pending"}]}
    transport = Scripted(
        httpx.ConnectError("refused"),
        httpx.Response(429, json={"message": "slow down"}),
        httpx.Response(200, json=created),
    )
    client = SemScraperClient(
        "http://x.invalid/v1", API_KEY, transport=transport, clock=clock, sleep=clock.sleep
    )
    assert client.create([Scrape("k", "fr", "fr")])[0] == created["data"]
    assert len(transport.requests) == 3
