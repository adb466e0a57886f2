import dagster as dg

from serp_etl.defs.dataforseo_assets import DATAFORSEO

dataforseo_daily_job = dg.define_asset_job(
    "dataforseo_daily",
    selection=dg.AssetSelection.groups(DATAFORSEO.tables.name),
    description="Submit the day's DataForSEO tasks, collect them, flatten them.",
)

# 06:00 UTC: submits and collects for that day's partition (see partitions.py).
dataforseo_daily_schedule = dg.build_schedule_from_partitioned_job(
    dataforseo_daily_job, hour_of_day=6, name="dataforseo_daily_schedule"
)
