"""One rate limit per provider account, shared by every process, and Retry-After obeyed."""

from __future__ import annotations

import httpx
import pytest

from serp_etl.core.http import RateLimiter, RetryPolicy
from serp_etl.providers.dataforseo import settings as dataforseo_settings
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.semscraper import settings as semscraper_settings
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl_tests.fault_proxy import FaultProxy

ONCE = RetryPolicy(attempts=1)  # a refusal raises at once: none may happen
SEMSCRAPER_LIMITS = {
    "GET": semscraper_settings.GET_CALLS_PER_MINUTE,
    "POST": semscraper_settings.POST_CALLS_PER_MINUTE,
}


def shared(tmp_path, clock, limits) -> RateLimiter:
    """What each process of one account opens: the same file, its own connection."""
    return RateLimiter(
        tmp_path / "rate_limits.sqlite", "account", limits, clock=clock, sleep=clock.sleep
    )


def semscraper_client(url, limiter, clock, retry=ONCE) -> SemScraperClient:
    return SemScraperClient(
        f"{url}/v1", API_KEY, limiter=limiter, retry=retry, clock=clock, sleep=clock.sleep
    )


def test_limiter_windows_and_pauses(tmp_path, clock):
    limiter = shared(tmp_path, clock, {"b": 3, "c": 3})
    assert [limiter.acquire("b") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("b") == 60  # the window is full until the first call leaves it
    clock.now += 30
    assert [limiter.acquire("b"), limiter.acquire("b")] == [0, 0]  # slots freed as it slid
    assert limiter.acquire("b") == 30
    other = shared(tmp_path, clock, {"b": 3, "c": 3})  # another process of the account
    other.pause("c", 45)  # told by the API to wait 45 s
    assert limiter.acquire("c") == 45  # this process waits it out too
    assert limiter.acquire("c") == 0


def test_two_processes_of_one_account_stay_under_semscrapers_limit(tmp_path, clock):
    sandbox = SemScraperSandbox(tmp_path / "api.sqlite", clock=clock)
    with FaultProxy(sandbox.app) as proxy:
        first = semscraper_client(proxy.url, shared(tmp_path, clock, SEMSCRAPER_LIMITS), clock)
        second = semscraper_client(proxy.url, shared(tmp_path, clock, SEMSCRAPER_LIMITS), clock)
        for _ in range(75):  # 150 GETs in all: 100 a minute allowed
            first.credit()
            second.credit()
    assert sum(clock.sleeps) >= 60  # the 101st waited for the window instead of a 429


def test_two_collectors_share_the_tasks_ready_limit(tmp_path, clock):
    sandbox = DataForSEOSandbox(tmp_path / "api.sqlite", clock=clock)
    limits = dataforseo_settings.CALLS_PER_MINUTE
    with FaultProxy(sandbox.app) as proxy:
        clients = [
            DataForSEOClient(
                proxy.url,
                LOGIN,
                PASSWORD,
                retry=ONCE,
                clock=clock,
                sleep=clock.sleep,
                limiter=shared(tmp_path, clock, limits),
            )
            for _ in range(2)
        ]
        for _ in range(15):  # 30 calls: the API allows 20 a minute (40202 beyond)
            for client in clients:
                client.tasks_ready()
    assert sum(clock.sleeps) >= 60


def patient_semscraper(url, tmp_path, clock) -> SemScraperClient:
    """A client of the account's shared limits that tries each call three times."""
    return semscraper_client(
        url,
        shared(tmp_path, clock, SEMSCRAPER_LIMITS),
        clock,
        retry=RetryPolicy(attempts=3, base_delay=0.01),
    )


def test_retry_after_is_obeyed(tmp_path, clock):
    sandbox = SemScraperSandbox(tmp_path / "api.sqlite", clock=clock)
    with FaultProxy(sandbox.app) as proxy:
        proxy.add(
            "status_before", path="/billing/credit", status=429, headers={"Retry-After": "30"}
        )
        client = patient_semscraper(proxy.url, tmp_path, clock)
        started = clock.now
        assert client.credit() == pytest.approx(100.5)
    assert clock.now - started >= 30  # not re-sent within the window it was given
    assert proxy.forwarded[("GET", "/v1/billing/credit")] == 1


def test_a_429_on_a_paid_call_waits_and_sends_it_again_once(tmp_path, clock):
    sandbox = SemScraperSandbox(tmp_path / "api.sqlite", clock=clock)
    with FaultProxy(sandbox.app) as proxy:
        proxy.add(
            "status_before",
            method="POST",
            path="/serp/google",
            status=429,
            headers={"Retry-After": "12"},
        )
        client = patient_semscraper(proxy.url, tmp_path, clock)
        started = clock.now
        created, _ = client.create([Scrape("k", "fr", "fr")])
    assert len(created) == 1 and sandbox.stats()["billed_scrapes"] == 1
    assert clock.now - started >= 12


def test_dataforseo_task_post_refused_with_429_waits_and_posts_once(tmp_path, clock):
    sandbox = DataForSEOSandbox(tmp_path / "api.sqlite", clock=clock)
    with FaultProxy(sandbox.app) as proxy:
        proxy.add(
            "status_before",
            method="POST",
            path="/v3/serp/google/search_by_image/",
            status=429,
            headers={"Retry-After": "9"},
        )
        client = DataForSEOClient(
            proxy.url,
            LOGIN,
            PASSWORD,
            clock=clock,
            sleep=clock.sleep,
            retry=RetryPolicy(attempts=3, base_delay=0.01),
            limiter=shared(tmp_path, clock, dataforseo_settings.CALLS_PER_MINUTE),
        )
        started = clock.now
        (posted,) = client.post_tasks(
            [{"image_url": "https://x.example/1.jpg", "location_code": 2840, "language_code": "en"}]
        )
    assert posted.task_id and sandbox.stats()["billed_tasks"] == 1
    assert clock.now - started >= 9


def test_a_retry_after_beyond_reason_fails_the_call_clearly(tmp_path, clock):
    sandbox = SemScraperSandbox(tmp_path / "api.sqlite", clock=clock)
    with FaultProxy(sandbox.app) as proxy:
        proxy.add(
            "status_before", path="/billing/credit", status=503, headers={"Retry-After": "7200"}
        )
        client = patient_semscraper(proxy.url, tmp_path, clock)
        with pytest.raises(Exception, match="7200"):
            client.credit()
    assert sum(clock.sleeps) < 1


def test_the_sandbox_says_when_to_retry(tmp_path, clock):
    sandbox = SemScraperSandbox(tmp_path / "api.sqlite", clock=clock)
    with FaultProxy(sandbox.app) as proxy:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        answers = [httpx.get(f"{proxy.url}/v1/billing/credit", headers=headers) for _ in range(101)]
    assert answers[-1].status_code == 429
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
