"""Every way a paid call's answer can be lost, for both providers: the next run finds what was
created, and billed == targets."""

from __future__ import annotations

import httpx
import pytest

from serp_etl.core.http import RetryPolicy
from serp_etl.providers.dataforseo import pipeline as dataforseo
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.providers.semscraper import pipeline as semscraper
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.state.ledger import TaskState
from serp_etl_tests.conftest import EXAMPLE_TARGETS, TODAY
from serp_etl_tests.fault_proxy import AFTER, BEFORE, FaultProxy

RETRY = RetryPolicy(attempts=3, base_delay=0.01)
TIMEOUT = httpx.Timeout(10, read=0.5)
FAULTS = [(kind, {}) for kind in BEFORE + AFTER] + [
    ("status_before", {"status": 429, "headers": {"Retry-After": "3"}}),
    ("status_after", {"status": 500}),
]


def provider_case(name, tmp_path, clock):
    if name == "dataforseo":
        sandbox = DataForSEOSandbox(tmp_path / "api.sqlite", ready_seconds=0, clock=clock)
        targets = load_targets(EXAMPLE_TARGETS)

        def client(url):
            return DataForSEOClient(
                url, LOGIN, PASSWORD, retry=RETRY, timeout=TIMEOUT, clock=clock, sleep=clock.sleep
            )

        return sandbox, dataforseo, targets, client, "/v3/serp/google/search_by_image/task_post"
    sandbox = SemScraperSandbox(tmp_path / "api.sqlite", ready_seconds=0, clock=clock)
    targets = [Scrape(f"keyword {n}", "fr", "fr") for n in range(4)]

    def client(url):
        return SemScraperClient(
            f"{url}/v1", API_KEY, retry=RETRY, timeout=TIMEOUT, clock=clock, sleep=clock.sleep
        )

    return sandbox, semscraper, targets, client, "/serp/google"


@pytest.mark.parametrize("provider", ["dataforseo", "semscraper"])
@pytest.mark.parametrize(("kind", "options"), FAULTS)
def test_a_lost_or_refused_paid_call_is_never_paid_twice(
    tmp_path, clock, ledger, provider, kind, options
):
    sandbox, pipeline, targets, make_client, path = provider_case(provider, tmp_path, clock)
    billed = "billed_tasks" if provider == "dataforseo" else "billed_scrapes"
    with FaultProxy(sandbox.app) as proxy:
        proxy.add(kind, method="POST", path=path, **options)
        with make_client(proxy.url) as client:
            try:
                pipeline.submit(client, ledger, TODAY, targets)
            except Exception as error:  # noqa: BLE001 - whatever it is, the rerun must cope
                print(f"first run: {type(error).__name__}: {error}")
        assert proxy.met[kind] == 1
        clock.now += 60
        with make_client(proxy.url) as client:
            report = pipeline.submit(client, ledger, TODAY, targets)
    assert sandbox.stats()[billed] == len(targets)
    assert report.posted + report.recovered + report.already_posted == len(targets)
    assert all(t.state is not TaskState.INTENT for t in ledger.tasks(provider, TODAY))


def test_a_task_get_answer_truncated_in_transit_every_run_ends_undecodable(tmp_path, clock, ledger):
    """The connection closes before the body's announced length, run after run: the task ends
    undecodable after MAX_ATTEMPTS runs, and no run waits its whole deadline for it."""
    from serp_etl.state.ledger import MAX_ATTEMPTS

    sandbox, pipeline, targets, make_client, _ = provider_case("dataforseo", tmp_path, clock)
    targets = targets[:1]
    with FaultProxy(sandbox.app) as proxy:
        with make_client(proxy.url) as client:
            pipeline.submit(client, ledger, TODAY, targets)
        proxy.add(
            "truncate_after",
            method="GET",
            path="/v3/serp/google/search_by_image/task_get/",
            times=None,
        )
        for run in range(1, MAX_ATTEMPTS + 1):
            with make_client(proxy.url) as client:
                started = clock.now
                pipeline.collect(
                    client,
                    ledger,
                    TODAY,
                    deadline_seconds=600,
                    poll_seconds=60,
                    clock=clock,
                    sleep=clock.sleep,
                )
            assert clock.now - started < 60, run  # it never waited for the deadline
            (task,) = ledger.tasks("dataforseo", TODAY)
            if run < MAX_ATTEMPTS:
                assert task.state is TaskState.POSTED and task.attempts == run, run
    assert task.state is TaskState.UNDECODABLE
    assert "truncated" in task.status_message or "incomplete" in task.status_message
