"""A warehouse of several days of both sandboxes, as the daily runs would leave it: each day's
tasks posted on that day (the sandboxes' clocks moved there), collected, and every table
published. For the analysis views and the daily report."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx

from serp_etl import catalog
from serp_etl.core.targets import TARGETS_FILE
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo import pipeline as dataforseo_pipeline
from serp_etl.providers.dataforseo.tables import TABLES as DATAFORSEO
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.providers.semscraper import pipeline as semscraper_pipeline
from serp_etl.providers.semscraper.client import SemScraperClient
from serp_etl.providers.semscraper.tables import TABLES as SEMSCRAPER
from serp_etl.providers.semscraper.targets import load_scrapes
from serp_etl.sandbox.dataforseo.app import DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests.conftest import EXAMPLE_TARGETS, FakeClock, make_client

# Three days before today's, so that none is today's (the pipelines take each as "now").
DAYS = [(datetime.now(UTC).date() - timedelta(days=n)).isoformat() for n in (4, 3, 2)]


def build(data_dir: Path, days: list[str] = DAYS, drift: bool = False) -> Warehouse:
    """Run both providers' day, for each of ``days``, into ``data_dir``; the warehouse. With
    ``drift``, DataForSEO sends the odd undocumented item type."""
    warehouse = Warehouse(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # The views read what is mine from the data dir's targets file, as a run's would.
    shutil.copyfile(EXAMPLE_TARGETS, data_dir / TARGETS_FILE)
    clock = FakeClock(0)
    sandboxes = data_dir.parent / "sandboxes"
    dataforseo = DataForSEOSandbox(
        sandboxes / "dataforseo.sqlite", ready_seconds=30, clock=clock, drift=drift
    )
    semscraper = SemScraperSandbox(sandboxes / "semscraper.sqlite", ready_seconds=30, clock=clock)
    pace = {"deadline_seconds": 600, "poll_seconds": 10, "clock": clock, "sleep": clock.sleep}
    with (
        Ledger(ledger_path(data_dir)) as ledger,
        make_client(dataforseo, clock) as images,
        SemScraperClient(
            "http://sandbox.invalid",
            API_KEY,
            clock=clock,
            sleep=clock.sleep,
            transport=httpx.WSGITransport(app=semscraper.app),
        ) as keywords,
    ):
        for day in days:
            now = datetime.combine(datetime.fromisoformat(day), time(6), UTC)
            clock.now = now.timestamp()
            dataforseo_pipeline.submit(images, ledger, day, load_targets(EXAMPLE_TARGETS), now=now)
            semscraper_pipeline.submit(
                keywords, ledger, day, load_scrapes(EXAMPLE_TARGETS), now=now
            )
            dataforseo_pipeline.collect(images, ledger, day, **pace)
            semscraper_pipeline.collect(keywords, ledger, day, **pace)
            for tables in (DATAFORSEO, SEMSCRAPER):
                tables.publish_tasks(ledger, warehouse, day)
                tables.publish_responses(ledger, warehouse, day)
                tables.publish_flattened(warehouse, day)
    catalog.refresh_views(data_dir)
    return warehouse
