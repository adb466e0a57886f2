"""Every field of the task_get/advanced result, declared once, with its type.

Transcribed from the reference page (``shared/api/dataforseo-google-search-by-image-task-get-
advanced.md``). The flatten engine derives from these declarations the pyarrow schema of each
table, the prefixed column names of nested objects and the child tables of nested arrays.
"""

import pyarrow as pa

from serp_etl.core.column_docs import LINEAGE, describe_spec
from serp_etl.core.column_kinds import json_field
from serp_etl.core.flatten import (
    BOOL,
    DATETIME,
    FLOAT,
    INT,
    LINEAGE_COLUMN,
    LINEAGE_FIELD,
    STRING,
    STRING_LIST,
    Children,
    Field,
    Obj,
    TableSpec,
)
from serp_etl.core.raw import raw_schema
from serp_etl.providers.dataforseo.field_meanings import FIELD_MEANINGS

TASK_KEY = (("task_id", pa.string()),)
ITEM_KEYS = TASK_KEY + (("item_index", pa.int32()),)

RATING = Obj({"rating_type": STRING, "value": FLOAT, "votes_count": INT, "rating_max": INT})
PRICE = Obj(
    {
        "current": FLOAT,
        "regular": FLOAT,
        "max_value": FLOAT,
        "currency": STRING,
        "is_price_range": BOOL,
        "displayed_price": STRING,
    }
)
ABOUT_THIS_RESULT = Obj(
    {
        "type": STRING,
        "url": STRING,
        "source": STRING,
        "source_info": STRING,
        "source_url": STRING,
        "language": STRING,
        "location": STRING,
        "search_terms": STRING_LIST,
        "related_terms": STRING_LIST,
    }
)
# The page says integer; the live API sends fractional pixels (e.g. 172.5): floats.
RECTANGLE = Obj({"x": FLOAT, "y": FLOAT, "width": FLOAT, "height": FLOAT})
IMAGES_ELEMENT = Children({"type": STRING, "alt": STRING, "url": STRING, "image_url": STRING})
LINK_ELEMENT: dict[str, Field] = {"type": STRING, "title": STRING, "url": STRING, "domain": STRING}

ORGANIC = TableSpec(
    name="organic",
    keys=ITEM_KEYS,
    fields={
        "type": STRING,
        "rank_group": INT,
        "rank_absolute": INT,
        "position": STRING,
        "xpath": STRING,
        "domain": STRING,
        "title": STRING,
        "url": STRING,
        "cache_url": STRING,
        "related_search_url": STRING,
        "breadcrumb": STRING,
        "website_name": STRING,
        "is_image": BOOL,
        "is_video": BOOL,
        "is_featured_snippet": BOOL,
        "is_malicious": BOOL,
        "is_web_story": BOOL,
        "description": STRING,
        "pre_snippet": STRING,
        "extended_snippet": STRING,
        "images": IMAGES_ELEMENT,
        "amp_version": BOOL,
        "rating": RATING,
        "price": PRICE,
        "highlighted": STRING_LIST,
        "links": Children({**LINK_ELEMENT, "description": STRING}),
        "faq": Obj(
            {
                "type": STRING,
                "items": Children(
                    {
                        "type": STRING,
                        "title": STRING,
                        "description": STRING,
                        "links": Children(LINK_ELEMENT),
                    }
                ),
            }
        ),
        "extended_people_also_search": STRING_LIST,
        "about_this_result": ABOUT_THIS_RESULT,
        "related_result": Children(
            {
                "type": STRING,
                "xpath": STRING,
                "domain": STRING,
                "title": STRING,
                "url": STRING,
                "cache_url": STRING,
                "related_search_url": STRING,
                "breadcrumb": STRING,
                "is_image": BOOL,
                "is_video": BOOL,
                "description": STRING,
                "pre_snippet": STRING,
                "extended_snippet": STRING,
                "images": IMAGES_ELEMENT,
                "amp_version": BOOL,
                "rating": RATING,
                "price": PRICE,
                "highlighted": STRING_LIST,
                "about_this_result": ABOUT_THIS_RESULT,
                "timestamp": DATETIME,
            }
        ),
        "timestamp": DATETIME,
        "rectangle": RECTANGLE,
    },
)

IMAGES = TableSpec(
    name="images",
    keys=ITEM_KEYS,
    fields={
        "type": STRING,
        "rank_group": INT,
        "rank_absolute": INT,
        "position": STRING,
        "xpath": STRING,
        "title": STRING,
        "url": STRING,
        "items": IMAGES_ELEMENT,
        "related_image_searches": Children(
            {"type": STRING, "title": STRING, "alt": STRING, "url": STRING, "image_url": STRING}
        ),
        "rectangle": RECTANGLE,
    },
)

SERPS = TableSpec(
    name="serps",
    keys=TASK_KEY,
    fields={
        "image_url": STRING,
        "keyword": STRING,
        "type": STRING,
        "se_domain": STRING,
        "location_code": INT,
        "language_code": STRING,
        "check_url": STRING,
        "datetime": DATETIME,
        "spell": Obj({"keyword": STRING, "type": STRING}),
        "refinement_chips": Obj(
            {
                "type": STRING,
                "xpath": STRING,
                "items": Children(
                    {
                        "type": STRING,
                        "title": STRING,
                        "url": STRING,
                        "domain": STRING,
                        "options": Children(
                            {"type": STRING, "title": STRING, "url": STRING, "domain": STRING}
                        ),
                    }
                ),
            }
        ),
        "item_types": STRING_LIST,
        "se_results_count": INT,
        "items_count": INT,
    },
)

# Items of a type the reference does not document: kept whole, never dropped.
OTHER_ITEMS_SCHEMA = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("item_index", pa.int32(), nullable=False),
        pa.field("type", pa.string()),
        pa.field("rank_group", pa.int64()),
        pa.field("rank_absolute", pa.int64()),
        json_field("item"),  # the whole item, as JSON
        LINEAGE_FIELD,
    ]
)

# One row per version of a collected task_get/advanced response (see ``core.raw``): the body is
# the response, an envelope around the one task, as received.
RESPONSES_SCHEMA = raw_schema(
    [
        pa.field("tag", pa.string()),
        pa.field("status_code", pa.int64()),
        pa.field("status_message", pa.string()),
        pa.field("outcome", pa.string()),
        pa.field("cost", pa.float64()),
        pa.field("result_count", pa.int64()),
    ]
)

# One row per task of the ledger for a partition: what was asked, what it cost, where it stands.
TASKS_SCHEMA = pa.schema(
    [
        pa.field("tag", pa.string(), nullable=False),
        pa.field("task_id", pa.string()),
        pa.field("state", pa.string(), nullable=False),
        pa.field("image_url", pa.string()),
        pa.field("location_code", pa.int64()),
        pa.field("location_name", pa.string()),
        pa.field("language_code", pa.string()),
        pa.field("language_name", pa.string()),
        pa.field("priority", pa.int64()),
        pa.field("max_crawl_pages", pa.int64()),
        pa.field("calculate_rectangles", pa.bool_()),
        pa.field("cost", pa.float64()),
        pa.field("status_code", pa.int64()),
        pa.field("status_message", pa.string()),
        pa.field("intent_at", pa.timestamp("us", tz="UTC")),
        pa.field("posted_at", pa.timestamp("us", tz="UTC")),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)

ITEM_TABLES = {"organic": ORGANIC, "images": IMAGES}
ROOT_TABLES = (SERPS, ORGANIC, IMAGES)

FLAT_SCHEMAS: dict[str, pa.Schema] = {
    spec.name: spec.schema for root in ROOT_TABLES for spec in root.walk()
}
FLAT_SCHEMAS["other_items"] = OTHER_ITEMS_SCHEMA

# The reference lists task locations and languages are checked against (GET
# /v3/serp/google/locations and /languages), one snapshot a day.
LOCATIONS_SCHEMA = pa.schema(
    [
        pa.field("location_code", pa.int64(), nullable=False),
        pa.field("location_name", pa.string(), nullable=False),
        pa.field("location_code_parent", pa.int64()),
        pa.field("country_iso_code", pa.string()),
        pa.field("location_type", pa.string()),
    ]
)
LANGUAGES_SCHEMA = pa.schema(
    [
        pa.field("language_name", pa.string(), nullable=False),
        pa.field("language_code", pa.string(), nullable=False),
    ]
)


_ITEM_KEYS = {
    "task_id": "tasks[0].id: the task whose SERP holds the item.",
    "item_index": "Position of the item in tasks[0].result[0].items[] (0-based).",
}
_TARGET = "The task_post field {0}, as targets.toml asked for it."

# Table -> column -> what it holds (``core.column_docs``), beyond the columns every provider
# shares (``ProviderTables.docs`` adds those): the Dagster UI's column descriptions.
COLUMN_DOCS: dict[str, dict[str, str]] = {
    **describe_spec(
        SERPS,
        "tasks[0].result[0]",
        FIELD_MEANINGS,
        ("serps",),
        {"task_id": "tasks[0].id: the task the SERP answers (one SERP a task)."},
    ),
    **describe_spec(
        ORGANIC,
        "tasks[0].result[0].items[]",
        FIELD_MEANINGS,
        ("organic",),
        _ITEM_KEYS,
        where="items of type organic",
    ),
    **describe_spec(
        IMAGES,
        "tasks[0].result[0].items[]",
        FIELD_MEANINGS,
        ("images",),
        _ITEM_KEYS,
        where="items of type images",
    ),
    "other_items": {
        **_ITEM_KEYS,
        "type": "tasks[0].result[0].items[].type: an item type the reference does not document.",
        "rank_group": "tasks[0].result[0].items[].rank_group: "
        f"{FIELD_MEANINGS['organic', 'rank_group']}.",
        "rank_absolute": "tasks[0].result[0].items[].rank_absolute: "
        f"{FIELD_MEANINGS['organic', 'rank_absolute']}.",
        "item": "The whole item, as JSON: nothing of an unknown type is dropped.",
        LINEAGE_COLUMN: LINEAGE,
    },
    "tasks": {
        **{
            name: _TARGET.format(name)
            for name in (
                "image_url",
                "location_code",
                "location_name",
                "language_code",
                "language_name",
                "priority",
                "max_crawl_pages",
                "calculate_rectangles",
            )
        },
        "task_id": "tasks[].id of task_post: the provider's id of the task (NULL until posted).",
        "cost": "tasks[].cost: what DataForSEO billed for the task, USD.",
        "fetched_at": "When its result was collected (UTC).",
    },
    "responses": {
        "tag": "tasks[0].tag: the tag serp-etl posted the task with.",
        "status_code": "tasks[0].status_code: 20000 ok, 40102 no results, other codes errors.",
        "status_message": "tasks[0].status_message.",
        "outcome": "What the response settled: fetched, empty, failed, expired, ... (a state).",
        "cost": "tasks[0].cost: the task's cost, USD.",
        "result_count": "tasks[0].result_count: the number of elements in result[].",
    },
    "locations": {
        name: f"result[].{name} of GET /v3/serp/google/locations."
        for name in LOCATIONS_SCHEMA.names
    },
    "languages": {
        name: f"result[].{name} of GET /v3/serp/google/languages."
        for name in LANGUAGES_SCHEMA.names
    },
}
