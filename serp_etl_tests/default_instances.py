"""The default provider instances' Dagster objects, built as their component builds them from
each defs.yaml: what tests materialize and evaluate directly."""

from serp_etl.components.serp_provider import instance_assets
from serp_etl.defs.dataforseo_assets import DATAFORSEO
from serp_etl.defs.semscraper_assets import SEMSCRAPER
from serp_etl.defs.sensors import collect_job, late_results_sensor

dataforseo_assets = instance_assets(DATAFORSEO)
semscraper_assets = instance_assets(SEMSCRAPER)
dataforseo_collect_job = collect_job(DATAFORSEO)
dataforseo_late_results = late_results_sensor(DATAFORSEO, dataforseo_collect_job)
semscraper_late_results = late_results_sensor(SEMSCRAPER, collect_job(SEMSCRAPER))
