"""DataForSEO's tables, as the generic layers see them."""

import re

from serp_etl.core.ledger import TaskRecord
from serp_etl.core.provider import ProviderTables, base_task_row
from serp_etl.providers.dataforseo.flatten import flatten_envelopes, flatten_raw_batch
from serp_etl.providers.dataforseo.schema import FLAT_SCHEMAS, RESPONSES_SCHEMA, TASKS_SCHEMA
from serp_etl.providers.dataforseo.settings import PROVIDER

# The execution time DataForSEO stamps on each answer (at the top and in each task) is not
# content: two fetches of the same result differ only there, and are one version.
_TIMING = re.compile(rb'"time"\s*:\s*"[^"]*"')


def version_key(body: bytes) -> bytes:
    return _TIMING.sub(b'"time":""', body)


def task_row(record: TaskRecord) -> dict:
    return {**record.target, **base_task_row(record),
            "calculate_rectangles": bool(record.target.get("calculate_rectangles"))}


TABLES = ProviderTables(
    name=PROVIDER,
    tasks_schema=TASKS_SCHEMA,
    responses_schema=RESPONSES_SCHEMA,
    flat_schemas=FLAT_SCHEMAS,
    flatten_raw_batch=flatten_raw_batch,
    flatten_parsed=flatten_envelopes,
    task_row=task_row,
    version_key=version_key,
)
