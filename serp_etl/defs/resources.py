"""Resources: where the data lives, and how to reach each provider (or its built-in sandbox)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import dagster as dg
import httpx
from pydantic import Field

from serp_etl.core.ledger import Ledger, ledger_path
from serp_etl.core.targets import TARGETS_FILE
from serp_etl.core.warehouse import Warehouse, default_data_dir
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.settings import PRODUCTION_URL
from serp_etl.providers.dataforseo.targets import ImageTarget, load_targets
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.providers.semscraper.settings import PRODUCTION_URL as SEMSCRAPER_URL
from serp_etl.providers.semscraper.targets import load_scrapes
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import API_KEY as SEMSCRAPER_SANDBOX_KEY
from serp_etl.sandbox.semscraper.app import SemScraperSandbox

SANDBOX_URL = "http://sandbox.invalid"


class WarehouseResource(dg.ConfigurableResource):
    """The data dir: Parquet warehouse, ledger, sandbox state and the targets file."""

    data_dir: str = Field(
        default_factory=lambda: str(default_data_dir()),
        description="Defaults to $SERP_ETL_DATA_DIR, else ./data.",
    )
    flatten_workers: int = Field(default=2, description="Processes that flatten responses.")

    def warehouse(self) -> Warehouse:
        return Warehouse(self.data_dir)

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        with Ledger(ledger_path(Path(self.data_dir))) as ledger:
            yield ledger


class DataForSEOResource(dg.ConfigurableResource):
    """DataForSEO credentials and collection settings.

    Without a login, every call goes to the built-in sandbox, in-process: same client, same
    HTTP semantics, no money spent.
    """

    login: str | None = Field(default=None, description="DATAFORSEO_LOGIN; unset = sandbox.")
    password: str | None = Field(default=None, description="DATAFORSEO_PASSWORD.")
    base_url: str = PRODUCTION_URL
    targets_file: str | None = Field(
        default=None, description=f"Defaults to <data dir>/{TARGETS_FILE}.")
    collect_deadline_seconds: float = Field(
        default=900, description="How long collection waits for tasks to become ready.")
    poll_seconds: float = Field(
        default=60, description="Pause between tasks_ready polls (the API allows 20 a minute).")

    @property
    def uses_sandbox(self) -> bool:
        return not self.login

    def targets(self, data_dir: str) -> list[ImageTarget]:
        return load_targets(Path(self.targets_file or Path(data_dir) / TARGETS_FILE))

    def effective_poll_seconds(self) -> float:
        # Sandbox tasks are ready within seconds: a minute between polls would only add waiting.
        return min(self.poll_seconds, 1.0) if self.uses_sandbox else self.poll_seconds

    @contextmanager
    def client(self, data_dir: str, log) -> Iterator[DataForSEOClient]:
        if self.uses_sandbox:
            log.info("DATAFORSEO_LOGIN is not set: using the built-in DataForSEO sandbox "
                     "(deterministic data, no money spent)")
            sandbox = DataForSEOSandbox(Path(data_dir) / "sandbox" / "dataforseo.sqlite")
            client = DataForSEOClient(SANDBOX_URL, LOGIN, PASSWORD,
                                      transport=httpx.WSGITransport(app=sandbox.app))
        else:
            client = DataForSEOClient(self.base_url, self.login, self.password or "")
        with client:
            yield client


def dataforseo_resource() -> DataForSEOResource:
    """Real credentials through EnvVar when they are set (so they never land in run config)."""
    if os.environ.get("DATAFORSEO_LOGIN"):
        return DataForSEOResource(login=dg.EnvVar("DATAFORSEO_LOGIN"),
                                  password=dg.EnvVar("DATAFORSEO_PASSWORD"))
    return DataForSEOResource()


class SemScraperResource(dg.ConfigurableResource):
    """SemScraper credentials, budget and collection settings.

    Without an API key, every call goes to the built-in sandbox, in-process.
    """

    api_key: str | None = Field(default=None, description="SEMSCRAPER_API_KEY; unset = sandbox.")
    base_url: str = SEMSCRAPER_URL
    targets_file: str | None = Field(
        default=None, description=f"Defaults to <data dir>/{TARGETS_FILE}.")
    budget_eur: float | None = Field(
        default=None, description="Refuse to create a day's scrapes costing more than this.")
    callback_url: str | None = Field(
        default=None, description="Where SemScraper delivers finished SERPs (serp-etl "
                                  "callbacks serve); polling collects whatever it missed.")
    keep_html: bool = Field(default=False, description="Also keep each SERP's HTML (audit).")
    collect_deadline_seconds: float = Field(
        default=900, description="How long collection waits for scrapes to be done.")
    poll_seconds: float = Field(default=30, description="Pause between polls.")

    @property
    def uses_sandbox(self) -> bool:
        return not self.api_key

    def targets(self, data_dir: str) -> list[Scrape]:
        scrapes = load_scrapes(Path(self.targets_file or Path(data_dir) / TARGETS_FILE))
        if self.callback_url:
            scrapes = [replace(s, callback_url=self.callback_url) for s in scrapes]
        return scrapes

    def effective_poll_seconds(self) -> float:
        return min(self.poll_seconds, 1.0) if self.uses_sandbox else self.poll_seconds

    @contextmanager
    def client(self, data_dir: str, log) -> Iterator[SemScraperClient]:
        if self.uses_sandbox:
            log.info("SEMSCRAPER_API_KEY is not set: using the built-in SemScraper sandbox "
                     "(deterministic data, no money spent)")
            sandbox = SemScraperSandbox(Path(data_dir) / "sandbox" / "semscraper.sqlite")
            client = SemScraperClient(SANDBOX_URL, SEMSCRAPER_SANDBOX_KEY,
                                      transport=httpx.WSGITransport(app=sandbox.app))
        else:
            client = SemScraperClient(self.base_url, self.api_key)
        with client:
            yield client


def semscraper_resource() -> SemScraperResource:
    """The API key through EnvVar when it is set (so it never lands in run config)."""
    if os.environ.get("SEMSCRAPER_API_KEY"):
        return SemScraperResource(api_key=dg.EnvVar("SEMSCRAPER_API_KEY"))
    return SemScraperResource()
