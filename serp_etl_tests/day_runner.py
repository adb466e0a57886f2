"""One day's run of one provider, in a process of its own, for tests that kill it.

    python -m serp_etl_tests.day_runner PROVIDER DATA_DIR BASE_URL

Submits today's targets (``DATA_DIR/targets.toml``) to the API at ``BASE_URL``, collects them,
publishes the raw table and flattens it: what the Dagster assets do, without Dagster's start-up
time. ``SERP_ETL_CRASH_AT`` makes it die at a named point (``serp_etl.core.crash_points``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from serp_etl.core.http import RetryPolicy
from serp_etl.core.ledger import Ledger, ledger_path, utc_now
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo import pipeline as dataforseo_pipeline
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.tables import TABLES as DATAFORSEO_TABLES
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.providers.semscraper import pipeline as semscraper_pipeline
from serp_etl.providers.semscraper.client import SemScraperClient
from serp_etl.providers.semscraper.tables import TABLES as SEMSCRAPER_TABLES
from serp_etl.providers.semscraper.targets import load_scrapes
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD
from serp_etl.sandbox.semscraper.app import API_KEY

RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
TIMEOUT = httpx.Timeout(10, read=2)


def run(provider: str, data_dir: Path, base_url: str) -> None:
    partition = utc_now().date().isoformat()
    targets_file = data_dir / "targets.toml"
    warehouse = Warehouse(data_dir)
    with Ledger(ledger_path(data_dir)) as ledger:
        if provider == "dataforseo":
            tables = DATAFORSEO_TABLES
            with DataForSEOClient(base_url, LOGIN, PASSWORD, retry=RETRY,
                                  timeout=TIMEOUT) as client:
                dataforseo_pipeline.submit(client, ledger, partition, load_targets(targets_file))
                dataforseo_pipeline.collect(client, ledger, partition, deadline_seconds=1,
                                            poll_seconds=0.5)
        else:
            tables = SEMSCRAPER_TABLES
            with SemScraperClient(f"{base_url}/v1", API_KEY, retry=RETRY,
                                  timeout=TIMEOUT) as client:
                semscraper_pipeline.submit(client, ledger, partition, load_scrapes(targets_file))
                semscraper_pipeline.collect(client, ledger, partition, deadline_seconds=1,
                                            poll_seconds=0.5)
        tables.publish_responses(ledger, warehouse, partition)
    tables.publish_flattened(warehouse, partition)


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
