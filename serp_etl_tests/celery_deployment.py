"""The daily job of both providers on dagster-celery, as a shared deployment runs it: imported
by the test that starts the workers (``test_celery_workers``) and by each worker. Everything a
process needs comes from its environment: the broker, the providers' URLs (the sandboxes served
on loopback, standing in for the real APIs), the state database and the bucket."""

from __future__ import annotations

import dagster as dg
from dagster_celery import celery_executor

from serp_etl.defs.resources import DataForSEOResource, SemScraperResource, WarehouseResource
from serp_etl_tests.default_instances import dataforseo_assets, semscraper_assets

BROKER_ENV = "SERP_ETL_TEST_CELERY_BROKER"
BACKEND_ENV = "SERP_ETL_TEST_CELERY_BACKEND"
DATAFORSEO_URL_ENV = "SERP_ETL_TEST_DATAFORSEO_URL"
SEMSCRAPER_URL_ENV = "SERP_ETL_TEST_SEMSCRAPER_URL"
EXECUTOR_CONFIG = {"broker": {"env": BROKER_ENV}, "backend": {"env": BACKEND_ENV}}


def daily_on_celery() -> dg.JobDefinition:
    job = dg.define_asset_job(
        "daily",
        selection=dg.AssetSelection.all(),
        executor_def=celery_executor.configured(EXECUTOR_CONFIG),
    )
    return dg.Definitions(
        assets=[*dataforseo_assets, *semscraper_assets],
        jobs=[job],
        resources={
            "warehouse": WarehouseResource(),  # $SERP_ETL_DATA_DIR: each worker's own
            "dataforseo": DataForSEOResource(
                mode="live",
                base_url=dg.EnvVar(DATAFORSEO_URL_ENV),
                collect_deadline_seconds=60,
                poll_seconds=1,
            ),
            "semscraper": SemScraperResource(
                mode="live",
                base_url=dg.EnvVar(SEMSCRAPER_URL_ENV),
                collect_deadline_seconds=60,
                poll_seconds=1,
            ),
        },
    ).resolve_job_def("daily")


def run_day(partition: str) -> int:
    """Run the day on the workers, orchestrated from this process (``python -m``): 0 if the
    run succeeded. A process of its own, so that a test can kill it with the workers."""
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(daily_on_celery),
            instance,
            tags={"dagster/partition": partition},
            raise_on_error=False,
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    import sys

    sys.exit(run_day(sys.argv[1]))
