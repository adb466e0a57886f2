"""Processes that submit overlapping DataForSEO targets at once, sharing one state store.

``race(...)`` starts ``processes`` spawned processes that wait at one barrier, then each posts
its window of ``image_targets(total)``: neighbouring windows overlap, so every target is
wanted by several processes at the same moment. Only the submit lock keeps them from paying
for one target twice.
"""

from __future__ import annotations

import multiprocessing
from contextlib import closing
from datetime import datetime

from serp_etl.core.http import RateLimiter, RetryPolicy, account_key
from serp_etl.providers.dataforseo import pipeline
from serp_etl.providers.dataforseo import settings as dataforseo_settings
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.targets import ImageTarget
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD
from serp_etl.state.ledger import Ledger


def image_targets(total: int) -> list[ImageTarget]:
    return [
        ImageTarget(
            f"https://images.example.com/race/{number}.jpg", location_code=2840, language_code="en"
        )
        for number in range(total)
    ]


def submit_window(
    state,
    rate_limits,
    base_url: str,
    partition: str,
    now: datetime,
    window: tuple[int, int],
    total: int,
    barrier,
) -> None:
    targets = image_targets(total)[window[0] : window[1]]
    limiter = RateLimiter(
        rate_limits, account_key("dataforseo", LOGIN), dataforseo_settings.CALLS_PER_MINUTE
    )
    with (
        closing(limiter),
        Ledger(state) as ledger,
        DataForSEOClient(
            base_url,
            LOGIN,
            PASSWORD,
            limiter=limiter,
            retry=RetryPolicy(attempts=5, base_delay=0.05),
        ) as client,
    ):
        barrier.wait()
        # A small batch: each process posts several times, interleaved with the others.
        pipeline.submit(client, ledger, partition, targets, now=now)


def race(
    state,
    rate_limits,
    base_url: str,
    partition: str,
    now: datetime,
    *,
    processes: int = 8,
    total: int = 275,
    window: int = 100,
) -> list[int]:
    """Run the race; returns each process's exit code."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    step = (total - window) // (processes - 1)
    workers = [
        context.Process(
            target=submit_window,
            args=(
                state,
                rate_limits,
                base_url,
                partition,
                now,
                (i * step, i * step + window),
                total,
                barrier,
            ),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    return [worker.exitcode for worker in workers]
