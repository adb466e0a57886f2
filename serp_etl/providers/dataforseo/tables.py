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
    ROOT_TABLES,
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
        digest.update(view[position : match.start()])
        digest.update(b'"time":""')
        position = match.end()
    digest.update(view[position:])
    return digest.hexdigest()


def _child_descriptions() -> dict[str, str]:
    descriptions = {}
    for root in ROOT_TABLES:
        for spec in root.walk():
            for path, child in spec.children:
                descriptions[child.name] = (
                    f"One row per element of the `{'.'.join(path)}` array of a {spec.name} row, "
                    f"keyed by its keys and `{child.keys[-1][0]}` (the 0-based position)."
                )
    return descriptions


# What one row of each table is, and where it comes from: the assets' descriptions in the UI,
# the views' comments in the views file.
DESCRIPTIONS = {
    "tasks": (
        "One row per task of the day: one per target of the targets file, posted to task_post "
        "at most once (tag = date + target, recorded in the ledger before posting), with its "
        "id, cost and state. Re-materializing posts nothing already posted; tasks left by a "
        "crash are found again by tag (tasks_ready, id_list) before anything is posted."
    ),
    "responses": (
        "One row per collected task_get/advanced response of the day: the whole body as JSON "
        "text, with fetch time, status code, outcome and cost. The source of truth: every "
        "flattened table is rebuilt from it. Tasks not ready by the deadline stay pending in "
        "the ledger and are collected by the next materialization."
    ),
    "serps": "One row per SERP (task_get result): every result-level field; spell as "
    "spell_keyword/spell_type, item_types as a list.",
    "organic": "One row per organic item of a SERP, nested objects as prefixed columns "
    "(rating_value, price_current, about_this_result_source, rectangle_y, ...).",
    "images": "One row per images item of a SERP.",
    "other_items": "One row per item of a type the reference does not document: type, "
    "ranks and the whole item as JSON. Never dropped.",
    **_child_descriptions(),
    "locations": "One row per Google SERP location DataForSEO offers (code, name, parent, "
    "country, type), from GET /v3/serp/google/locations, as of the day. Targets' "
    "locations are checked against this list before posting.",
    "languages": "One row per Google SERP language DataForSEO offers (name, code), from GET "
    "/v3/serp/google/languages, as of the day.",
}


def task_row(record: TaskRecord) -> dict:
    return {
        **record.target,
        **base_task_row(record),
        "calculate_rectangles": bool(record.target.get("calculate_rectangles")),
    }


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
    descriptions=DESCRIPTIONS,
)
