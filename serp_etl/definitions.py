"""The Dagster code location of serp-etl (``dagster dev`` in the repo root loads it)."""

import dagster as dg

from serp_etl.defs.dataforseo_assets import dataforseo_assets
from serp_etl.defs.resources import DataForSEOResource, SemScraperResource, WarehouseResource
from serp_etl.defs.schedules import (
    dataforseo_daily_job,
    dataforseo_daily_schedule,
    semscraper_daily_job,
    semscraper_daily_schedule,
)
from serp_etl.defs.semscraper_assets import semscraper_assets

defs = dg.Definitions(
    assets=[*dataforseo_assets, *semscraper_assets],
    jobs=[dataforseo_daily_job, semscraper_daily_job],
    schedules=[dataforseo_daily_schedule, semscraper_daily_schedule],
    resources={
        "warehouse": WarehouseResource(),
        "dataforseo": DataForSEOResource(),
        "semscraper": SemScraperResource(),
    },
)
