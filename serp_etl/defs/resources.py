"""Resources: where the data lives, and how to reach each provider (or its built-in sandbox).

Which one a run talks to is its mode (``serp_etl.core.mode``): ``sandbox`` or ``live``, from the
resource's ``mode`` or ``$SERP_ETL_MODE``. Credentials are read from the environment when the
run starts, not from run config: run config for any other field (``poll_seconds``, say) then
cannot drop them, and secrets never appear in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx
from dagster_duckdb import DuckDBResource
from pydantic import Field

from serp_etl.catalog import current_views, refresh_views
from serp_etl.core.http import (
    DEFAULT_MAX_RESPONSE_MB,
    RateLimiter,
    account_key,
    rate_limits_location,
)
from serp_etl.core.mode import Mode, ModeError, claim_mode
from serp_etl.core.targets import TARGETS_FILE
from serp_etl.core.views import VIEWS_FILE, ViewsError
from serp_etl.core.warehouse import Warehouse, default_data_dir
from serp_etl.providers.credentials import run_mode
from serp_etl.providers.dataforseo import settings as dataforseo_settings
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.targets import ImageTarget, load_targets
from serp_etl.providers.semscraper import settings as semscraper_settings
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.providers.semscraper.targets import load_scrapes
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import API_KEY as SEMSCRAPER_SANDBOX_KEY
from serp_etl.sandbox.semscraper.app import SemScraperSandbox
from serp_etl.state.database import StateUnreadable
from serp_etl.state.ledger import Ledger, open_ledger

SANDBOX_URL = "http://sandbox.invalid"


class MissingCredential(ModeError):
    """Live mode, and a credential it needs is not set."""


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
        try:
            ledger = open_ledger(self.data_dir)
        except StateUnreadable as error:
            # Lost state is not a passing failure: the steps' RetryPolicy must not repeat it.
            raise dg.Failure(description=str(error), allow_retries=False) from error
        with ledger:
            yield ledger

    def refresh_views(self, log) -> dict:
        """After publishing: the views file (``catalog``) rewritten if a table or a schema
        appeared; its path, as metadata. A failure is told, not raised: the data is published
        and safe, and ``serp-etl sql`` says the same when it tries."""
        try:
            path = refresh_views(self.data_dir)
        except ViewsError as error:
            log.warning(f"the views file was not refreshed: {error}")
            return {}
        return {"views_file": dg.MetadataValue.path(str(path))}


def credential(configured: str | None, env_var: str) -> str:
    """A credential from the resource's config if set there, else from ``env_var``."""
    value = configured or dg.EnvVar(env_var).get_value()
    if not value:
        raise MissingCredential(
            f"live mode needs {env_var}: set it in the environment of the "
            "run (or SERP_ETL_MODE=sandbox for the built-in API)"
        )
    return value


class ProviderResource(dg.ConfigurableResource):
    """What every provider's resource holds: its mode, targets and collection pace."""

    mode: Mode | None = Field(
        default=None,
        description="'sandbox' (built-in API, no money) or 'live'; defaults to "
        "$SERP_ETL_MODE, else sandbox when no credential is set.",
    )
    targets_file: str | None = Field(
        default=None, description=f"Defaults to <data dir>/{TARGETS_FILE}."
    )
    collect_deadline_seconds: float = Field(
        default=120,
        description="How long a run's collection waits for tasks to become "
        "ready; the late-results sensor collects what comes later.",
    )
    poll_seconds: float = Field(default=60, description="Pause between polls.")
    max_response_mb: int = Field(
        default=DEFAULT_MAX_RESPONSE_MB,
        description="Refuse (and name) any answer larger than this, rather than run out of memory.",
    )

    def credential_env_vars(self) -> tuple[str, ...]:
        """The environment variables this instance's credentials are read from."""
        raise NotImplementedError

    def resolved_mode(self) -> Mode:
        return run_mode(self.mode, self.credential_env_vars())

    def targets_path(self, data_dir: str) -> Path:
        return Path(self.targets_file or Path(data_dir) / TARGETS_FILE)

    def effective_poll_seconds(self) -> float:
        # Sandbox tasks are ready within seconds: a minute between polls would only add waiting.
        if self.resolved_mode() is Mode.SANDBOX:
            return min(self.poll_seconds, 1.0)
        return self.poll_seconds

    def _open_mode(self, data_dir: str, log, live_credentials) -> tuple[Mode, tuple]:
        """The run's mode, its credentials when live, and the data dir claimed for it: all
        checked before any call to an API."""
        try:
            mode = self.resolved_mode()
            credentials = live_credentials() if mode is Mode.LIVE else ()
            claim_mode(data_dir, mode)
        except (ModeError, StateUnreadable) as error:
            # Configuration or lost state, not a passing failure: the steps' RetryPolicy must
            # not repeat it.
            raise dg.Failure(description=str(error), allow_retries=False) from error
        if mode is Mode.SANDBOX:
            log.info(
                f"mode sandbox: the built-in {type(self).__name__.removesuffix('Resource')}"
                " API answers (deterministic data, no money spent)"
            )
        return mode, credentials

    @staticmethod
    def _limiter(
        data_dir: str, provider: str, identity: str, limits: dict[str, int]
    ) -> RateLimiter:
        """The account's limiter, shared with every other run and process of the data dir."""
        return RateLimiter(rate_limits_location(data_dir), account_key(provider, identity), limits)


class DataForSEOResource(ProviderResource):
    """A DataForSEO instance: its name, credentials ($DATAFORSEO_LOGIN, $DATAFORSEO_PASSWORD
    unless named otherwise), budget and collection."""

    instance: str = Field(
        default=dataforseo_settings.PROVIDER,
        description="The provider instance (serp_etl.providers.instances): its ledger scope, "
        "its section of the targets file, its tasks' tags.",
    )
    login: str | None = Field(default=None, description="Defaults to $<login_env>.")
    password: str | None = Field(default=None, description="Defaults to $<password_env>.")
    login_env: str = Field(
        default=dataforseo_settings.LOGIN_ENV, description="Where the login is read from."
    )
    password_env: str = Field(
        default=dataforseo_settings.PASSWORD_ENV, description="Where the password is read from."
    )
    base_url: str = dataforseo_settings.PRODUCTION_URL
    budget_usd: float | None = Field(
        default=None,
        description="Refuse to post tasks that would take a day's spend past "
        "this (the account's balance is always checked).",
    )
    poll_seconds: float = Field(
        default=60, description="Pause between tasks_ready polls (the API allows 20 a minute)."
    )

    def targets(self, data_dir: str) -> list[ImageTarget]:
        return load_targets(self.targets_path(data_dir), self.instance)

    def credential_env_vars(self) -> tuple[str, ...]:
        return (self.login_env, self.password_env)

    def _credentials(self) -> tuple[str, str]:
        return (
            credential(self.login, self.login_env),
            credential(self.password, self.password_env),
        )

    @contextmanager
    def client(self, data_dir: str, log) -> Iterator[DataForSEOClient]:
        mode, credentials = self._open_mode(data_dir, log, self._credentials)
        login, password = credentials or (LOGIN, PASSWORD)
        limiter = self._limiter(
            data_dir, dataforseo_settings.PROVIDER, login, dataforseo_settings.CALLS_PER_MINUTE
        )
        if mode is Mode.SANDBOX:
            sandbox = DataForSEOSandbox(Path(data_dir) / "sandbox" / "dataforseo.sqlite")
            client = DataForSEOClient(
                SANDBOX_URL,
                login,
                password,
                limiter=limiter,
                transport=httpx.WSGITransport(app=sandbox.app),
                max_response_mb=self.max_response_mb,
            )
        else:
            client = DataForSEOClient(
                self.base_url,
                login,
                password,
                limiter=limiter,
                max_response_mb=self.max_response_mb,
            )
        with closing(limiter), client:
            yield client


class SemScraperResource(ProviderResource):
    """A SemScraper instance: its name, API key ($SEMSCRAPER_API_KEY unless named otherwise),
    budget and collection settings."""

    instance: str = Field(
        default=semscraper_settings.PROVIDER,
        description="The provider instance (serp_etl.providers.instances): its ledger scope, "
        "its section of the targets file.",
    )
    api_key: str | None = Field(default=None, description="Defaults to $<api_key_env>.")
    api_key_env: str = Field(
        default=semscraper_settings.API_KEY_ENV, description="Where the API key is read from."
    )
    base_url: str = semscraper_settings.PRODUCTION_URL
    budget_eur: float | None = Field(
        default=None,
        description="Refuse to create scrapes that would take a day's spend "
        "past this (the credit is always checked).",
    )
    callback_url: str | None = Field(
        default=None,
        description="Where SemScraper delivers finished SERPs (serp-etl "
        "callbacks serve); polling collects whatever it missed.",
    )
    keep_html: bool = Field(default=False, description="Also keep each SERP's HTML (audit).")
    poll_seconds: float = Field(default=30, description="Pause between polls.")

    def targets(self, data_dir: str) -> list[Scrape]:
        scrapes = load_scrapes(self.targets_path(data_dir), self.instance)
        if self.callback_url:
            scrapes = [replace(s, callback_url=self.callback_url) for s in scrapes]
        return scrapes

    def credential_env_vars(self) -> tuple[str, ...]:
        return (self.api_key_env,)

    def _credentials(self) -> tuple[str]:
        return (credential(self.api_key, self.api_key_env),)

    @contextmanager
    def client(self, data_dir: str, log) -> Iterator[SemScraperClient]:
        mode, credentials = self._open_mode(data_dir, log, self._credentials)
        (api_key,) = credentials or (SEMSCRAPER_SANDBOX_KEY,)
        limiter = self._limiter(
            data_dir, semscraper_settings.PROVIDER, api_key, semscraper_settings.CALLS_PER_MINUTE
        )
        if mode is Mode.SANDBOX:
            sandbox = SemScraperSandbox(Path(data_dir) / "sandbox" / "semscraper.sqlite")
            client = SemScraperClient(
                SANDBOX_URL,
                api_key,
                limiter=limiter,
                transport=httpx.WSGITransport(app=sandbox.app),
                max_response_mb=self.max_response_mb,
            )
        else:
            client = SemScraperClient(
                self.base_url, api_key, limiter=limiter, max_response_mb=self.max_response_mb
            )
        with closing(limiter), client:
            yield client


class WarehouseDuckDBResource(DuckDBResource):
    """dagster-duckdb's ``DuckDBResource`` on the warehouse's views file, read-only: for your
    own assets that read the warehouse (every table and ready-made view, with their comments).
    Each connection opens the views file as it is then (refreshed first if it is behind, as
    ``serp-etl sql`` does); nothing can be written through it.

        @dg.asset(deps=[dg.AssetKey(["semscraper", "items"])])
        def top_domains(warehouse_duckdb: WarehouseDuckDBResource) -> dg.MaterializeResult:
            with warehouse_duckdb.get_connection() as connection:
                rows = connection.execute("SELECT domain, count(*) FROM serp_items "
                                          "GROUP BY domain ORDER BY 2 DESC LIMIT 10").fetchall()
            return dg.MaterializeResult(metadata={"top": dg.MetadataValue.json(rows)})
    """

    database: str = Field(
        default_factory=lambda: str(Path(default_data_dir()) / VIEWS_FILE),
        description="The views file, <data dir>/serp.duckdb (defaults to $SERP_ETL_DATA_DIR's).",
    )
    connection_config: dict[str, Any] = Field(
        default={"access_mode": "READ_ONLY"},
        description="DuckDB settings of each connection; read-only by default.",
    )

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        data_dir = Path(self.database).parent
        current_views(data_dir)
        with super().get_connection() as connection:
            filesystem = Warehouse(data_dir).filesystem
            if filesystem is not None:  # the views read the bucket through it
                connection.register_filesystem(filesystem)
            connection.execute("SET TimeZone = 'UTC'")  # as serp-etl sql shows timestamps
            yield connection


# Each provider instance's own resource comes with it (its component, keyed by its name).
defs = dg.Definitions(
    resources={
        "warehouse": WarehouseResource(),
        # For your own assets that read the warehouse (README, "Your own assets").
        "warehouse_duckdb": WarehouseDuckDBResource(),
    },
)
