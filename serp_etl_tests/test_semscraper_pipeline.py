"""SemScraper submit and collect: never a second paid scrape of a target on a date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from serp_etl.core.money import BudgetExceeded
from serp_etl.providers.semscraper import pipeline
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.providers.semscraper.pipeline import PROVIDER
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.state.ledger import TaskState
from serp_etl_tests.conftest import TODAY, Crash, CrashAfter

DAY = TODAY
SCRAPES = [
    Scrape("example keyword", "fr", "fr", depth=2),
    Scrape("mots clés", "fr", "fr", device="mobile"),
    Scrape("keyword research", "us", "en", depth=3, priority=5),
]


@pytest.fixture
def sandbox(tmp_path, clock):
    return SemScraperSandbox(tmp_path / "semscraper.sqlite", ready_seconds=20, clock=clock)


@pytest.fixture
def client(sandbox, clock):
    with SemScraperClient(
        "http://sandbox.invalid/v1",
        API_KEY,
        transport=httpx.WSGITransport(app=sandbox.app),
        clock=clock,
        sleep=clock.sleep,
    ) as client:
        yield client


def collect_all(client, ledger, clock, **kwargs):
    return pipeline.collect(
        client,
        ledger,
        DAY,
        deadline_seconds=120,
        poll_seconds=10,
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )


def test_each_target_is_scraped_once_and_a_rerun_creates_nothing(client, ledger, sandbox):
    first = pipeline.submit(client, ledger, DAY, SCRAPES)
    assert first.posted == 3 and first.estimated_cost_eur == pytest.approx(0.00012)
    second = pipeline.submit(client, ledger, DAY, SCRAPES)
    assert second.posted == 0 and second.already_posted == 3
    assert sandbox.stats()["billed_scrapes"] == 3


def test_a_crash_after_creating_holds_then_recovers_without_a_second_scrape(
    client, ledger, sandbox, clock
):
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "create"), ledger, DAY, SCRAPES)
    assert sandbox.stats()["billed_scrapes"] == 3

    in_flight = pipeline.submit(client, ledger, DAY, SCRAPES)  # not done yet: cannot tell
    assert in_flight.posted == 0 and in_flight.held == 3
    assert "held, so that none is created twice" in in_flight.messages[0]

    clock.now += 60
    recovered = pipeline.submit(client, ledger, DAY, SCRAPES)
    assert recovered.recovered == 3 and recovered.posted == 0
    assert sandbox.stats()["billed_scrapes"] == 3
    # Finding them retrieved them: their SERPs are stored, nothing is left to collect.
    assert {t.state for t in ledger.tasks(PROVIDER, DAY)} == {TaskState.FETCHED}
    assert len(list(ledger.inbox(PROVIDER, DAY))) == 3
    report = collect_all(client, ledger, clock)
    assert report.ended == {} and report.pending == 0


def test_intents_never_created_are_created_once_nothing_is_in_flight(client, ledger, sandbox):
    key = pipeline.scrape_key(DAY, SCRAPES[0])
    ledger.record_intents(PROVIDER, DAY, {key: SCRAPES[0].body()})
    report = pipeline.submit(client, ledger, DAY, SCRAPES)
    assert report.recovered == 0 and report.posted == 3
    assert sandbox.stats()["billed_scrapes"] == 3


def test_the_budget_stops_creating_before_a_run_exceeds_it(client, ledger, sandbox):
    with pytest.raises(
        BudgetExceeded,
        match=r"about 0.00012 EUR; credit 100.50 EUR, budget "
        r"0.0001 EUR",
    ):
        pipeline.submit(client, ledger, DAY, SCRAPES, budget_eur=0.0001)
    assert sandbox.stats()["billed_scrapes"] == 0


def test_collect_waits_keeps_html_and_skips_callback_deliveries(client, ledger, clock):
    pipeline.submit(client, ledger, DAY, SCRAPES)
    early = pipeline.collect(
        client, ledger, DAY, deadline_seconds=5, poll_seconds=5, clock=clock, sleep=clock.sleep
    )
    assert early.ended == {} and early.pending == 3

    delivered = ledger.tasks(PROVIDER, DAY)[0].task_id
    ledger.store_response(
        PROVIDER,
        DAY,
        delivered,
        TABLES.version(b"{}", {"source": "callback"}),
        b"{}",
        TaskState.FETCHED,
    )
    clock.now += 60
    report = collect_all(client, ledger, clock, keep_html=True)
    assert report.ended == {"fetched": 2} and report.pending == 0
    rows = {r.task_id: r for r in ledger.inbox(PROVIDER, DAY)}
    assert rows[delivered].meta["source"] == "callback"  # not fetched again
    others = [r for i, r in rows.items() if i != delivered]
    assert all(r.meta["html"].startswith("<!doctype html>") for r in others)


def test_a_past_day_creates_nothing_and_says_why(client, ledger, sandbox):
    past = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    report = pipeline.submit(client, ledger, past, SCRAPES)
    assert report.posted == 0 and "past day" in report.closed_reason
    assert sandbox.stats()["billed_scrapes"] == 0 and ledger.tasks(PROVIDER, past) == []


def test_a_past_day_recovers_a_crashed_create_and_ends_the_rest_unposted(
    client, ledger, sandbox, clock
):
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "create"), ledger, DAY, SCRAPES[:2])
    never_sent = pipeline.scrape_key(DAY, SCRAPES[2])
    ledger.record_intents(PROVIDER, DAY, {never_sent: SCRAPES[2].body()})
    clock.now += 86400 + 3600  # past the half hour after midnight that still pays for DAY
    tomorrow = datetime.fromtimestamp(clock.now, UTC)
    report = pipeline.submit(client, ledger, DAY, SCRAPES, now=tomorrow)
    assert report.recovered == 2 and report.posted == 0
    assert sandbox.stats()["billed_scrapes"] == 2
    states = {t.tag: t.state for t in ledger.tasks(PROVIDER, DAY)}
    assert states.pop(never_sent) is TaskState.UNPOSTED
    assert set(states.values()) == {TaskState.FETCHED}
