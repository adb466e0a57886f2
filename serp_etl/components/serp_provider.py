"""A provider instance as a Dagster component: one ``defs.yaml`` per instance.

    # serp_etl/defs/dataforseo_client_b/defs.yaml
    type: serp_etl.components.SerpProviderComponent
    attributes:
      provider: dataforseo
      name: dataforseo_client_b          # its namespace (providers.instances)
      login_env: CLIENT_B_DATAFORSEO_LOGIN
      password_env: CLIENT_B_DATAFORSEO_PASSWORD
      budget: 5.0                        # a day, in the provider's currency (USD, EUR)
      schedule_hour: 7
    requirements:
      env: [CLIENT_B_DATAFORSEO_LOGIN, CLIENT_B_DATAFORSEO_PASSWORD]

Each instance has its own asset keys (``<name>/organic``), group, daily job and schedule,
late-results sensor, resource (credentials, budget, collection deadline), ledger scope
(tasks, submit lock, spend), section of the targets file (``[[<name>]]``) and, through its
credentials, rate-limit account; all share the data dir's one warehouse, views and report
folder. The project ships one instance per provider, under the providers' own names.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import dagster as dg
from pydantic import Field

from serp_etl.defs.alerts import alerts_asset
from serp_etl.defs.dataforseo_assets import DATAFORSEO
from serp_etl.defs.metadata import linked_to_code
from serp_etl.defs.provider_assets import ProviderAssets, build_provider_assets
from serp_etl.defs.reports import report_asset
from serp_etl.defs.resources import DataForSEOResource, ProviderResource, SemScraperResource
from serp_etl.defs.schedules import daily_job, daily_schedule
from serp_etl.defs.semscraper_assets import SEMSCRAPER
from serp_etl.defs.sensors import collect_job, late_results_sensor
from serp_etl.providers.dataforseo import settings as dataforseo
from serp_etl.providers.instances import check_instance
from serp_etl.providers.semscraper import settings as semscraper

SPECS = {dataforseo.PROVIDER: DATAFORSEO, semscraper.PROVIDER: SEMSCRAPER}


def instance_assets(spec: ProviderAssets) -> list[dg.AssetsDefinition]:
    """Every asset of one provider instance: its tasks, responses, flattened and reference
    tables, alerts and report."""
    return linked_to_code([*build_provider_assets(spec), alerts_asset(spec), report_asset(spec)])


class SerpProviderComponent(dg.Component, dg.Model, dg.Resolvable):
    """One instance of a SERP provider: its assets (tasks, responses, flattened tables,
    references, alerts, report), daily job and schedule, late-results sensor and resource."""

    provider: Literal["dataforseo", "semscraper"] = Field(description="The SERP API.")
    name: str | None = Field(
        default=None,
        description="The instance's name: the provider's own (the default instance) or "
        "<provider>_<suffix>. Its asset keys, views, ledger scope and targets section.",
    )
    login_env: str = Field(
        default=dataforseo.LOGIN_ENV, description="DataForSEO: the login's variable."
    )
    password_env: str = Field(
        default=dataforseo.PASSWORD_ENV, description="DataForSEO: the password's variable."
    )
    api_key_env: str = Field(
        default=semscraper.API_KEY_ENV, description="SemScraper: the API key's variable."
    )
    targets_file: str | None = Field(
        default=None, description="Defaults to <data dir>/targets.toml (section [[<name>]])."
    )
    budget: float | None = Field(
        default=None,
        description="At most this much a day, in the provider's currency (USD, EUR); the "
        "balance or credit is always checked.",
    )
    collect_deadline_seconds: float = Field(
        default=120, description="How long a run waits for results; the sensor does the rest."
    )
    schedule_hour: int = Field(default=6, ge=0, le=23, description="UTC hour of the run.")
    schedule_minute: int = Field(default=0, ge=0, le=59, description="Its minute.")
    callback_url: str | None = Field(
        default=None, description="SemScraper: where finished SERPs are delivered."
    )

    @property
    def instance(self) -> str:
        return check_instance(self.name or self.provider, self.provider)

    def spec(self) -> ProviderAssets:
        """The default instance's assets' spec, under this instance's name."""
        default = SPECS[self.provider]
        return dataclasses.replace(
            default, tables=default.tables.instance(self.instance), resource_key=self.instance
        )

    def resource(self) -> ProviderResource:
        if self.provider == dataforseo.PROVIDER:
            return DataForSEOResource(
                instance=self.instance,
                targets_file=self.targets_file,
                collect_deadline_seconds=self.collect_deadline_seconds,
                login_env=self.login_env,
                password_env=self.password_env,
                budget_usd=self.budget,
            )
        return SemScraperResource(
            instance=self.instance,
            targets_file=self.targets_file,
            collect_deadline_seconds=self.collect_deadline_seconds,
            api_key_env=self.api_key_env,
            budget_eur=self.budget,
            callback_url=self.callback_url,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        spec = self.spec()
        job = daily_job(spec)
        collect = collect_job(spec)
        return dg.Definitions(
            assets=instance_assets(spec),
            jobs=[job, collect],
            schedules=[daily_schedule(job, self.schedule_hour, self.schedule_minute)],
            sensors=[late_results_sensor(spec, collect)],
            resources={self.instance: self.resource()},
        )
