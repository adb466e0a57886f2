"""DataForSEO's tables, as the generic layers see them."""

import hashlib
import re

from serp_etl.core.provider import ProviderTables, base_task_row
from serp_etl.providers.dataforseo.flatten import flatten_envelopes, flatten_raw_batch
from serp_etl.providers.dataforseo.schema import (
    COLUMN_DOCS,
    FLAT_SCHEMAS,
    LANGUAGES_SCHEMA,
    LOCATIONS_SCHEMA,
    RESPONSES_SCHEMA,
    TASKS_SCHEMA,
)
from serp_etl.providers.dataforseo.settings import PROVIDER
from serp_etl.state.ledger import TaskRecord

# The execution time DataForSEO stamps on each answer (at the top and in each task) is not
# content: two fetches of the same result differ only there, and are one version.
_TIMING = re.compile(rb'"time"\s*:\s*"[^"]*"')


def hash_body(body: bytes) -> str:
    """The content hash of a body with its timing fields blanked, taken piece by piece: a
    100 MB body is not copied for it."""
    digest = hashlib.blake2b(digest_size=16)
    view, position = memoryview(body), 0
    for match in _TIMING.finditer(body):
        digest.update(view[position:match.start()])
        digest.update(b'"time":""')
        position = match.end()
    digest.update(view[position:])
    return digest.hexdigest()


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
    item_tables=("organic", "images", "other_items"),
    task_row=task_row,
    hash_body=hash_body,
    column_docs=COLUMN_DOCS,
    reference_schemas={"locations": LOCATIONS_SCHEMA, "languages": LANGUAGES_SCHEMA},
)
