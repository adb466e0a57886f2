import dagster as dg

from serp_etl.defs.dataforseo_assets import DATAFORSEO
from serp_etl.defs.semscraper_assets import SEMSCRAPER

dataforseo_daily_job = dg.define_asset_job(
    "dataforseo_daily",
    selection=dg.AssetSelection.groups(DATAFORSEO.tables.name),
    description="Submit the day's DataForSEO tasks, collect them, flatten them.",
)

# 06:00 UTC: submits and collects for that day's partition (see partitions.py).
dataforseo_daily_schedule = dg.build_schedule_from_partitioned_job(
    dataforseo_daily_job, hour_of_day=6, name="dataforseo_daily_schedule"
)

semscraper_daily_job = dg.define_asset_job(
    "semscraper_daily",
    selection=dg.AssetSelection.groups(SEMSCRAPER.tables.name),
    description="Refresh SemScraper's locations, create the day's scrapes, collect, flatten.",
)

semscraper_daily_schedule = dg.build_schedule_from_partitioned_job(
    semscraper_daily_job, hour_of_day=6, minute_of_hour=15, name="semscraper_daily_schedule"
)

defs = dg.Definitions(
    jobs=[dataforseo_daily_job, semscraper_daily_job],
    schedules=[dataforseo_daily_schedule, semscraper_daily_schedule],
)
