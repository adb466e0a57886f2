"""The Dagster code location of serp-etl (``dagster dev`` in the repo root loads it)."""

import warnings

import dagster as dg

from serp_etl.defs.alerts import alert_deliveries
from serp_etl.defs.dataforseo_assets import dataforseo_assets
from serp_etl.defs.resources import (
    DataForSEOResource,
    SemScraperResource,
    WarehouseDuckDBResource,
    WarehouseResource,
)
from serp_etl.defs.schedules import (
    dataforseo_daily_job,
    dataforseo_daily_schedule,
    semscraper_daily_job,
    semscraper_daily_schedule,
)
from serp_etl.defs.semscraper_assets import semscraper_assets
from serp_etl.defs.sensors import (
    dataforseo_collect_job,
    dataforseo_late_results,
    imports_recorded,
    semscraper_collect_job,
    semscraper_late_results,
)


def _linked_to_code(assets: list) -> list:
    """Each asset with a link to the code that defines it (the UI's "code references")."""
    with warnings.catch_warnings():
        # A Dagster beta: chosen knowingly, no need to tell users at every load.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return list(dg.with_source_code_references(assets))


defs = dg.Definitions(
    assets=_linked_to_code([*dataforseo_assets, *semscraper_assets]),
    # Every step of a run in the run's own process: a daily run's steps are a chain, and a
    # process per step spent most of the run starting processes that each import the code
    # location (13.2 s of a 16.4 s run; bench/run_bench.py). What isolation bought is kept
    # otherwise: the ledger makes a crash at any point safe, flattening still forks its
    # workers, and step retries still apply.
    executor=dg.in_process_executor,
    jobs=[dataforseo_daily_job, semscraper_daily_job, dataforseo_collect_job,
          semscraper_collect_job],
    schedules=[dataforseo_daily_schedule, semscraper_daily_schedule],
    sensors=[dataforseo_late_results, semscraper_late_results, imports_recorded,
             alert_deliveries],
    resources={
        "warehouse": WarehouseResource(),
        "dataforseo": DataForSEOResource(),
        "semscraper": SemScraperResource(),
        # For your own assets that read the warehouse (README, "Your own assets").
        "warehouse_duckdb": WarehouseDuckDBResource(),
    },
)
