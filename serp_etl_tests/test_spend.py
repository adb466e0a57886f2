"""Every cent is accounted for: costs known for every task, the ledger reconciled with what the
provider billed, and budgets that stop posting before a day would exceed them."""

from __future__ import annotations

import orjson
import pytest

from serp_etl.core.money import BudgetExceeded, money
from serp_etl.providers.dataforseo import pipeline as dataforseo
from serp_etl.providers.dataforseo import quality as dataforseo_quality
from serp_etl.providers.dataforseo.targets import ImageTarget
from serp_etl.providers.semscraper import pipeline as semscraper
from serp_etl.providers.semscraper import quality as semscraper_quality
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.providers.semscraper.tables import TABLES as SEMSCRAPER_TABLES
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.state.ledger import Ledger
from serp_etl_tests.conftest import TODAY, Crash, CrashAfter, collect_today

DAY = TODAY


def ledger_cost(ledger, provider) -> float:
    return round(sum(t.cost for t in ledger.tasks(provider, DAY)), 8)


def test_tasks_recovered_from_tasks_ready_get_their_cost(client, ledger, sandbox, clock, targets):
    with pytest.raises(Crash):
        dataforseo.submit(CrashAfter(client, "post_tasks"), ledger, DAY, targets)
    clock.now += 120  # ready: found in tasks_ready, which carries no cost
    assert dataforseo.submit(client, ledger, DAY, targets).recovered == len(targets)
    collect_today(client, ledger, clock)
    assert None not in {t.cost for t in ledger.tasks("dataforseo", DAY)}
    assert ledger_cost(ledger, "dataforseo") == pytest.approx(sandbox.stats()["spent_usd"])


def test_a_normal_day_reconciles(client, ledger, clock, targets):
    dataforseo.submit(client, ledger, DAY, targets)
    clock.now += 60
    collect_today(client, ledger, clock)
    result = dataforseo_quality.spend_reconciled(client, ledger, DAY)
    assert result.passed, result.description
    assert result.metadata["billed_by_provider_usd"] == ledger_cost(ledger, "dataforseo")
    assert result.metadata["tasks_billed"] == len(targets)


def test_a_task_billed_for_the_day_that_the_ledger_does_not_know_fails_it(client, ledger, targets):
    dataforseo.submit(client, ledger, DAY, targets)
    stray = ImageTarget("https://example.com/stray.jpg", location_code=2840, language_code="en")
    client.post_tasks([stray.task(DAY)])  # billed, but in no ledger row
    result = dataforseo_quality.spend_reconciled(client, ledger, DAY)
    assert not result.passed and result.metadata["billed_unknown_to_ledger"] == 1
    assert "1 task" in result.description


def test_a_cost_that_differs_from_the_providers_fails_it(client, ledger, targets):
    dataforseo.submit(client, ledger, DAY, targets)
    ledger.execute("UPDATE tasks SET cost = cost * 2 WHERE tag = (SELECT min(tag) FROM tasks)")
    result = dataforseo_quality.spend_reconciled(client, ledger, DAY)
    assert not result.passed and result.metadata["cost_mismatches"] == 1


def test_the_dataforseo_budget_stops_posting_before_a_day_exceeds_it(
    client, ledger, sandbox, targets
):
    dataforseo.submit(client, ledger, DAY, targets[:2], budget_usd=0.01)
    spent = sandbox.stats()["spent_usd"]
    with pytest.raises(BudgetExceeded, match=r"budget 0.002 USD a day, \S+ USD spent today"):
        dataforseo.submit(client, ledger, DAY, targets, budget_usd=0.002)
    assert sandbox.stats()["spent_usd"] == spent  # nothing more was posted
    assert {t.state.value for t in ledger.tasks("dataforseo", DAY)} == {"posted", "intent"}


def test_the_balance_stops_posting(client, ledger, sandbox, targets, monkeypatch):
    monkeypatch.setattr(client, "user_data", lambda: {"money": {"balance": 0.0001}})
    with pytest.raises(BudgetExceeded, match="balance 0.0001 USD"):
        dataforseo.submit(client, ledger, DAY, targets)
    assert sandbox.stats()["billed_tasks"] == 0


# -- SemScraper -------------------------------------------------------------------------------


@pytest.fixture
def scrapers(tmp_path, clock):
    sandbox = SemScraperSandbox(tmp_path / "semscraper.sqlite", ready_seconds=20, clock=clock)
    with SemScraperClient(
        "http://sandbox.invalid/v1",
        API_KEY,
        clock=clock,
        sleep=clock.sleep,
        transport=__import__("httpx").WSGITransport(app=sandbox.app),
    ) as client:
        yield sandbox, client


SCRAPES = [Scrape(f"keyword {n}", "fr", "fr", depth=1 + n) for n in range(3)]


def semscraper_day(client, ledger, warehouse, clock):
    semscraper.submit(client, ledger, DAY, SCRAPES)
    clock.now += 60
    semscraper.collect(
        client, ledger, DAY, deadline_seconds=10, poll_seconds=5, clock=clock, sleep=clock.sleep
    )
    SEMSCRAPER_TABLES.publish_responses(ledger, warehouse, DAY)


def test_a_normal_semscraper_day_reconciles(scrapers, ledger, warehouse, clock):
    sandbox, client = scrapers
    semscraper_day(client, ledger, warehouse, clock)
    result = semscraper_quality.spend_reconciled(ledger, warehouse, DAY)
    assert result.passed, result.description
    assert result.metadata["billed_by_provider_eur"] == pytest.approx(sandbox.stats()["spent_eur"])


def test_a_scrape_billed_for_the_day_that_no_intent_claimed_fails_it(
    scrapers, ledger, warehouse, clock
):
    _, client = scrapers
    semscraper_day(client, ledger, warehouse, clock)
    (created,), _ = client.create([Scrape("keyword 0", "fr", "fr", depth=1)])
    clock.now += 60
    (serp,) = client.retrieve([created["id"]])
    ledger.record_candidates("semscraper", [created])
    ledger.keep_candidate_bodies("semscraper", {created["id"]: orjson.dumps(serp)})
    result = semscraper_quality.spend_reconciled(ledger, warehouse, DAY)
    assert not result.passed and result.metadata["billed_unknown_to_ledger"] == 1


def test_a_day_paid_before_the_ledger_was_lost_fails_it(
    scrapers, ledger, warehouse, clock, tmp_path
):
    """The raw table holds SERPs of the day that the (new, or restored) ledger never posted:
    SemScraper billed them, and the check counts them."""
    sandbox, client = scrapers
    semscraper_day(client, ledger, warehouse, clock)
    with Ledger(tmp_path / "new-ledger.sqlite") as new:
        result = semscraper_quality.spend_reconciled(new, warehouse, DAY)
    assert not result.passed
    assert result.metadata["billed_unknown_to_ledger"] == len(SCRAPES)
    assert result.metadata["billed_by_provider_eur"] == pytest.approx(sandbox.stats()["spent_eur"])
    assert "in the raw table" in result.description


def test_a_finished_scrape_of_the_days_target_unknown_to_the_ledger_fails_it(
    scrapers, ledger, warehouse, clock
):
    """Paid again by another tool (or a lost ledger), finished, not retrieved: only the
    account's list knows it."""
    _, client = scrapers
    semscraper_day(client, ledger, warehouse, clock)
    assert semscraper_quality.spend_reconciled(
        ledger, warehouse, DAY, client.completed_not_retrieved()
    ).passed
    (created,), _ = client.create([SCRAPES[1]])
    clock.now += 60
    result = semscraper_quality.spend_reconciled(
        ledger, warehouse, DAY, client.completed_not_retrieved()
    )
    assert not result.passed and result.metadata["billed_unknown_to_ledger"] == 1
    assert created["id"] in result.description


def test_scrapes_another_tool_created_on_the_account_show_in_the_credits_fall(
    scrapers, ledger, warehouse, clock
):
    """Created by another ledger, data dir or tool on the same account, of other targets, and
    retrieved there: not in this raw table, not in the finished list; only the credit fell."""
    sandbox, client = scrapers
    semscraper_day(client, ledger, warehouse, clock)
    assert semscraper_quality.spend_reconciled(
        ledger, warehouse, DAY, client.completed_not_retrieved(), client.credit()
    ).passed
    others, _ = client.create([Scrape(f"their keyword {n}", "fr", "fr") for n in range(2)])
    clock.now += 60
    client.retrieve([scrape["id"] for scrape in others])
    result = semscraper_quality.spend_reconciled(
        ledger, warehouse, DAY, client.completed_not_retrieved(), client.credit()
    )
    assert not result.passed
    theirs = round(sum(float(scrape["cost"]) for scrape in others), 8)
    assert result.metadata["credit_movement"]["unexplained_eur"] == pytest.approx(theirs)
    assert f"the credit fell by {money(theirs, 'EUR')} more" in result.description
    assert result.metadata["billed_by_provider_eur"] == pytest.approx(sandbox.stats()["spent_eur"])


def test_a_check_of_a_past_day_does_not_stretch_its_credit_window(
    scrapers, ledger, warehouse, clock
):
    """Weeks later, other days' spending is not this day's: its check reads no credit."""
    _, client = scrapers
    semscraper_day(client, ledger, warehouse, clock)
    past = "2026-01-02"
    semscraper_quality.spend_reconciled(ledger, warehouse, past, [], client.credit())
    assert ledger.balances("semscraper", past) == []


def test_a_top_up_during_the_day_makes_the_credits_movement_say_nothing(ledger):
    for balance in (10.0, 9.9, 60.0, 59.0):
        ledger.note_balance("semscraper", DAY, balance)
    movement = semscraper_quality.credit_movement(ledger, DAY)
    assert movement["topped_up"] and movement["unexplained_eur"] == 0.0


def test_the_semscraper_budget_counts_what_the_day_already_spent(scrapers, ledger):
    sandbox, client = scrapers
    semscraper.submit(client, ledger, DAY, SCRAPES[:1], budget_eur=0.0001)
    with pytest.raises(BudgetExceeded, match="0.00002 EUR spent today|2e-05 EUR spent today"):
        semscraper.submit(client, ledger, DAY, SCRAPES, budget_eur=0.0001)
    assert sandbox.stats()["billed_scrapes"] == 1
