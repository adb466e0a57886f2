"""Each provider instance's daily job and its schedule (``components.serp_provider`` makes
them for every instance the defs folder declares)."""

from __future__ import annotations

import dagster as dg

from serp_etl.defs.provider_assets import ProviderAssets


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


# The code location gets every instance's job and schedule from its component: nothing from here.
defs = dg.Definitions()
