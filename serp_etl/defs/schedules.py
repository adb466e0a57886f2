"""Each provider instance's daily job and its schedule (``components.serp_provider`` makes
them for every instance the defs folder declares)."""

from __future__ import annotations

import dagster as dg

from serp_etl.defs.dataforseo_assets import DATAFORSEO
from serp_etl.defs.provider_assets import ProviderAssets
from serp_etl.defs.semscraper_assets import SEMSCRAPER


def daily_job(spec: ProviderAssets) -> dg.UnresolvedAssetJobDefinition:
    name = spec.tables.name
    return dg.define_asset_job(
        f"{name}_daily",
        selection=dg.AssetSelection.groups(name),
        description=f"The day of {name}: post its tasks, collect them, flatten them, then "
        "its alerts and report.",
    )


def daily_schedule(job: dg.UnresolvedAssetJobDefinition, hour: int, minute: int = 0):
    """At ``hour``:``minute`` UTC, the job for that day's partition (see partitions.py): the
    schedule Dagster builds for a partitioned asset job (its type is not public)."""
    return dg.build_schedule_from_partitioned_job(
        job, hour_of_day=hour, minute_of_hour=minute, name=f"{job.name}_schedule"
    )


# The default instances' (as their defs.yaml declare them): what tests and tools name.
dataforseo_daily_job = daily_job(DATAFORSEO)
dataforseo_daily_schedule = daily_schedule(dataforseo_daily_job, 6)
semscraper_daily_job = daily_job(SEMSCRAPER)
semscraper_daily_schedule = daily_schedule(semscraper_daily_job, 6, 15)

# The default instance's objects above are what tests and tools name; the code location gets
# every instance's from its component (a defs.yaml beside this module): nothing from here.
defs = dg.Definitions()
