"""SemScraper's tables, as the generic layers see them."""

from serp_etl.core.provider import ProviderTables, base_task_row
from serp_etl.providers.semscraper.flatten import flatten_raw_batch, flatten_serps
from serp_etl.providers.semscraper.schema import (
    COLUMN_DOCS,
    FLAT_SCHEMAS,
    LOCATIONS_SCHEMA,
    RESPONSES_SCHEMA,
    TASKS_SCHEMA,
)
from serp_etl.providers.semscraper.settings import PROVIDER
from serp_etl.state.ledger import TaskRecord

# What one row of each table is, and where it comes from: the assets' descriptions in the UI,
# the views' comments in the views file.
DESCRIPTIONS = {
    "tasks": (
        "One row per scrape of the day: one per [[semscraper]] target, created at most once "
        "(key = date + target, recorded in the ledger before creating), with its id, cost and "
        "state. After a crash, scrapes are found again in the completed-not-retrieved list; "
        "while scrapes are in flight, unresolved ones are held rather than created twice."
    ),
    "responses": (
        "One row per retrieved (or callback-delivered) SERP of the day: the SERP object as "
        "JSON, with fetch time, status, cost, source, and its HTML when keep_html is set. The "
        "source of truth: every flattened table is rebuilt from it."
    ),
    "serps": "One row per SERP: id, keyword, device, location, language, depth, geolocation, "
    "priority, cost, created_at, scraped_at, duration_ms.",
    "items": "One row per item of a SERP's result blocks: block type, rank_type, rank_serp, "
    "page, pixel, domain, url, title, description.",
    "locations": "One row per location SemScraper offers (location, language, host, name), "
    "from GET /serp/google/location, as of the day. Targets are checked against "
    "it.",
}


def task_row(record: TaskRecord) -> dict:
    return {**record.target, **base_task_row(record)}


TABLES = ProviderTables(
    name=PROVIDER,
    tasks_schema=TASKS_SCHEMA,
    responses_schema=RESPONSES_SCHEMA,
    flat_schemas=FLAT_SCHEMAS,
    flatten_raw_batch=flatten_raw_batch,
    flatten_parsed=lambda pairs: flatten_serps(serp for _, serp in pairs),
    item_tables=("items",),
    task_row=task_row,
    column_docs=COLUMN_DOCS,
    reference_schemas={"locations": LOCATIONS_SCHEMA},
    descriptions=DESCRIPTIONS,
)
