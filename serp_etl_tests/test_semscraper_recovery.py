"""SemScraper recovery after lost answers and crashes: billed == targets, whatever is lost.

The API has no tag: a scrape whose create answer was lost is found again by its target in the
completed-not-retrieved list. Retrieving it removes it from that list, so every candidate is
recorded before it is retrieved, and a later run resumes from that record.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from serp_etl.providers.semscraper import pipeline
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient, SemScraperError
from serp_etl.providers.semscraper.pipeline import PROVIDER, SubmitIncomplete
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.state.ledger import TaskState
from serp_etl_tests.conftest import Crash, CrashAfter
from serp_etl_tests.fault_proxy import FaultProxy

TARGETS = [Scrape(f"keyword {n}", "fr", "fr", depth=1 + n % 3) for n in range(10)]
CREATE = {"method": "POST", "path": "/serp/google"}
RETRIEVE = {"method": "GET", "path": "/serp/google", "query": "ids="}


@pytest.fixture
def sandbox(tmp_path, clock):
    return SemScraperSandbox(tmp_path / "semscraper.sqlite", ready_seconds=20, clock=clock)


@pytest.fixture
def proxy(sandbox):
    with FaultProxy(sandbox.app) as proxy:
        yield proxy


@pytest.fixture
def client(proxy, clock):
    with SemScraperClient(f"{proxy.url}/v1", API_KEY, clock=clock, sleep=clock.sleep) as client:
        yield client


def today(clock) -> tuple[str, datetime]:
    now = datetime.fromtimestamp(clock.now, UTC)
    return now.date().isoformat(), now


def ledger_ids(ledger) -> set[str]:
    return {t.task_id for t in ledger.tasks(PROVIDER) if t.task_id}


def test_lost_create_then_lost_retrieves_never_create_a_second_scrape(
    client, proxy, ledger, sandbox, clock
):
    day, now = today(clock)
    proxy.add("reset_after", **CREATE)
    with pytest.raises(SubmitIncomplete):
        pipeline.submit(client, ledger, day, TARGETS, now=now)
    assert sandbox.stats()["billed_scrapes"] == 10

    clock.now += 60  # all done, all listed
    proxy.add("reset_after", **RETRIEVE, times=None)  # every retrieve answer is lost
    with pytest.raises(SemScraperError):
        pipeline.submit(client, ledger, day, TARGETS, now=now)
    proxy.clear()

    report = pipeline.submit(client, ledger, day, TARGETS, now=now)
    assert report.posted == 0 and report.recovered == 10
    assert sandbox.stats()["billed_scrapes"] == 10
    created = {r["id"] for r in sandbox._rows()}
    assert ledger_ids(ledger) == created  # every billed scrape has its ledger row
    assert {t.state for t in ledger.tasks(PROVIDER, day)} == {TaskState.FETCHED}
    assert len(list(ledger.inbox(PROVIDER, day))) == 10  # stored: not retrieved twice


def test_recovery_lists_once_and_retrieves_a_hundred_ids_a_call(
    client, proxy, ledger, sandbox, clock
):
    day, now = today(clock)
    targets = [Scrape(f"kw {n}", "fr", "fr") for n in range(100)]
    proxy.add("reset_after", **CREATE)
    with pytest.raises(SubmitIncomplete):
        pipeline.submit(client, ledger, day, targets, now=now)
    clock.now += 60
    proxy.forwarded.clear()
    report = pipeline.submit(client, ledger, day, targets, now=now)
    assert report.recovered == 100 and sandbox.stats()["billed_scrapes"] == 100
    gets = sum(n for (method, _), n in proxy.forwarded.items() if method == "GET")
    assert gets <= 4  # the locations (targets are checked), status, the list, one retrieve


def test_a_crash_on_day_two_never_claims_day_ones_scrapes(client, ledger, sandbox, clock):
    day_one, now_one = today(clock)
    pipeline.submit(client, ledger, day_one, TARGETS[:3], now=now_one)  # posted, not collected
    clock.now += 86400
    day_two, now_two = today(clock)
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "create"), ledger, day_two, TARGETS[:3], now=now_two)
    clock.now += 60
    for _ in range(2):  # twice in a row: the second run has nothing left to do
        report = pipeline.submit(client, ledger, day_two, TARGETS[:3], now=now_two)
    assert sandbox.stats()["billed_scrapes"] == 6
    one = {t.task_id for t in ledger.tasks(PROVIDER, day_one)}
    two = {t.task_id for t in ledger.tasks(PROVIDER, day_two)}
    assert len(one) == len(two) == 3 and not one & two
    assert report.posted == 0


def test_scrapes_of_two_crashed_days_each_go_to_their_own_day(client, ledger, sandbox, clock):
    day_one, now_one = today(clock)
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "create"), ledger, day_one, TARGETS[:2], now=now_one)
    clock.now += 86400
    day_two, now_two = today(clock)
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "create"), ledger, day_two, TARGETS[:2], now=now_two)
    clock.now += 60
    # Day two's recovery retrieves day one's scrapes too (same targets: the list cannot tell
    # them apart), keeps them, and leaves them for day one.
    pipeline.submit(client, ledger, day_two, TARGETS[:2], now=now_two)
    pipeline.submit(client, ledger, day_one, TARGETS[:2], now=now_two)
    assert sandbox.stats()["billed_scrapes"] == 4
    for day in (day_one, day_two):
        rows = list(ledger.inbox(PROVIDER, day))
        assert len(rows) == 2
        assert all(f'"created_at":"{day}T'.encode() in row.body for row in rows)
    assert {t.state for t in ledger.tasks(PROVIDER)} == {TaskState.FETCHED}


def test_a_hostile_id_in_a_create_answer_never_reaches_the_ledger(ledger, clock, tmp_path):
    import httpx

    def answer(request):
        if request.url.path.endswith("/billing/credit"):
            return httpx.Response(200, json={"status": "success", "data": [{"balance": 10}]})
        if request.url.path.endswith("/location"):
            return httpx.Response(
                200,
                json={
                    "status": "success",
                    "data": [
                        {"location": "fr", "language": "fr", "host": "google.fr", "name": "France"}
                    ],
                },
            )
        return httpx.Response(
            200,
            json={
                "status": "success",
                "data": [{"id": "../../etc/passwd", "status": "pending", "cost": 2e-5}],
            },
        )

    with SemScraperClient(
        "http://x.invalid/v1",
        API_KEY,
        transport=httpx.MockTransport(answer),
        clock=clock,
        sleep=clock.sleep,
    ) as hostile:
        day, now = today(clock)
        with pytest.raises(SubmitIncomplete, match="not a SemScraper id"):
            pipeline.submit(hostile, ledger, day, TARGETS[:1], now=now)
    (task,) = ledger.tasks(PROVIDER, day)
    assert task.state is TaskState.INTENT and task.task_id is None  # looked up by target later
