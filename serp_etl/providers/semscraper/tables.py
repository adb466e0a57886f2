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
)
