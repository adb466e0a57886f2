"""One day's run of one provider, in a process of its own, for tests that kill it.

    python -m serp_etl_tests.day_runner PROVIDER DATA_DIR BASE_URL [NOW]

Submits the day's targets (``DATA_DIR/targets.toml``) to the API at ``BASE_URL``, collects them,
publishes the raw table and flattens it: what the Dagster assets do, without Dagster's start-up
time, with the account's limiter shared through the data dir as the resources share it. The day
is today's, or that of ``NOW`` (an ISO date-time: a soak test's simulated day).
``SERP_ETL_CRASH_AT`` makes it die at a named point (``serp_etl.core.crash_points``).
"""

from __future__ import annotations

import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path

import httpx

from serp_etl.core.http import RateLimiter, RetryPolicy, account_key, rate_limits_location
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo import pipeline as dataforseo_pipeline
from serp_etl.providers.dataforseo import settings as dataforseo_settings
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.tables import TABLES as DATAFORSEO_TABLES
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.providers.semscraper import pipeline as semscraper_pipeline
from serp_etl.providers.semscraper import settings as semscraper_settings
from serp_etl.providers.semscraper.client import SemScraperClient
from serp_etl.providers.semscraper.tables import TABLES as SEMSCRAPER_TABLES
from serp_etl.providers.semscraper.targets import load_scrapes
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD
from serp_etl.sandbox.semscraper.app import API_KEY
from serp_etl.state.ledger import Ledger, ledger_path, utc_now

RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
TIMEOUT = httpx.Timeout(10, read=2)


def run(
    provider: str,
    data_dir: Path,
    base_url: str,
    now: datetime | None = None,
    deadline_seconds: float = 1,
    poll_seconds: float = 0.5,
) -> None:
    now = now or utc_now()
    partition = now.date().isoformat()
    targets_file = data_dir / "targets.toml"
    warehouse = Warehouse(data_dir)
    pace = {"deadline_seconds": deadline_seconds, "poll_seconds": poll_seconds}
    with Ledger(ledger_path(data_dir)) as ledger:
        if provider == "dataforseo":
            tables = DATAFORSEO_TABLES
            limiter = RateLimiter(
                rate_limits_location(data_dir),
                account_key(provider, LOGIN),
                dataforseo_settings.CALLS_PER_MINUTE,
            )
            with (
                closing(limiter),
                DataForSEOClient(
                    base_url, LOGIN, PASSWORD, retry=RETRY, timeout=TIMEOUT, limiter=limiter
                ) as client,
            ):
                dataforseo_pipeline.submit(
                    client,
                    ledger,
                    partition,
                    load_targets(targets_file),
                    now=now,
                    warehouse=warehouse,
                )
                dataforseo_pipeline.collect(client, ledger, partition, **pace)
        else:
            tables = SEMSCRAPER_TABLES
            limiter = RateLimiter(
                rate_limits_location(data_dir),
                account_key(provider, API_KEY),
                semscraper_settings.CALLS_PER_MINUTE,
            )
            with (
                closing(limiter),
                SemScraperClient(
                    f"{base_url}/v1", API_KEY, retry=RETRY, timeout=TIMEOUT, limiter=limiter
                ) as client,
            ):
                semscraper_pipeline.submit(
                    client,
                    ledger,
                    partition,
                    load_scrapes(targets_file),
                    now=now,
                    warehouse=warehouse,
                )
                semscraper_pipeline.collect(client, ledger, partition, **pace)
        tables.publish_responses(ledger, warehouse, partition)
    tables.publish_flattened(warehouse, partition)


if __name__ == "__main__":
    run(
        sys.argv[1],
        Path(sys.argv[2]),
        sys.argv[3],
        datetime.fromisoformat(sys.argv[4]) if len(sys.argv) > 4 else None,
    )
