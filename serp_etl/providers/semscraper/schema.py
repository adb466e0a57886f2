"""Every field of SemScraper's SERP objects, declared once, with its type."""

import pyarrow as pa

from serp_etl.core.column_docs import describe_spec
from serp_etl.core.flatten import DATETIME, INT, NUMERIC_TEXT, STRING, Obj, TableSpec
from serp_etl.core.raw import raw_schema

LINK = Obj({"href": STRING, "method": STRING, "type": STRING})

SERPS = TableSpec(
    name="serps",
    keys=(("id", pa.string()),),
    fields={
        "status": STRING,
        "keyword": STRING,
        "device": STRING,
        "location": STRING,
        "language": STRING,
        "depth": INT,
        "geolocation": STRING,  # false in the examples when unset: read as null
        "priority": INT,
        "callback_url": STRING,
        "cost": NUMERIC_TEXT,  # a number at creation, a decimal string when retrieved
        "created_at": DATETIME,
        "scraped_at": DATETIME,
        "duration_ms": INT,
        "_links": Obj({"json": LINK, "html": LINK}),
    },
)

# One row per item of every result block: organic, people_also_ask, videos, images, ...
ITEMS = TableSpec(
    name="items",
    keys=(("id", pa.string()), ("block_index", pa.int32()), ("item_index", pa.int32())),
    fields={
        "block_type": STRING,
        "rank_type": INT,  # ~ DataForSEO rank_group
        "rank_serp": INT,  # ~ DataForSEO rank_absolute
        "page": INT,
        "pixel": INT,  # ~ DataForSEO rectangle.y
        "domain": STRING,
        "url": STRING,
        "title": STRING,
        "description": STRING,
    },
)

LOCATIONS_SCHEMA = pa.schema(
    [
        pa.field("location", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("host", pa.string()),
        pa.field("name", pa.string()),
    ]
)

FLAT_SCHEMAS: dict[str, pa.Schema] = {"serps": SERPS.schema, "items": ITEMS.schema}

# One row per scrape of the ledger for a partition: what was asked, what it cost, its state.
TASKS_SCHEMA = pa.schema(
    [
        pa.field("tag", pa.string(), nullable=False),
        pa.field("task_id", pa.string()),
        pa.field("state", pa.string(), nullable=False),
        pa.field("keyword", pa.string()),
        pa.field("device", pa.string()),
        pa.field("location", pa.string()),
        pa.field("language", pa.string()),
        pa.field("depth", pa.int64()),
        pa.field("priority", pa.int64()),
        pa.field("geolocation", pa.string()),
        pa.field("callback_url", pa.string()),
        pa.field("cost", pa.float64()),
        pa.field("status_message", pa.string()),
        pa.field("intent_at", pa.timestamp("us", tz="UTC")),
        pa.field("posted_at", pa.timestamp("us", tz="UTC")),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)

# One row per version of a retrieved (or delivered) SERP (see ``core.raw``): the body is the
# SERP object as received.
RESPONSES_SCHEMA = raw_schema(
    [
        pa.field("status", pa.string()),
        pa.field("cost", pa.float64()),
        pa.field("html", pa.string()),  # the SERP's HTML, when keeping it is configured
        # The retrieve answer the SERP came in, as received, with its "data" array emptied: the
        # answer's own status, request_ms and count. None for a callback (no answer around it).
        pa.field("envelope", pa.string()),
    ]
)

_SERP = "data[]"
_WHERE = "SERPs of GET /v1/serp/google/{ids}, or a callback's body"
# What the reference says of the SERP's fields (its creation parameters), and what its
# examples show of the rest.
_MEANINGS = {
    ("serps", "status"): "the scrape's status (done once retrieved)",
    ("serps", "keyword"): "keywords to search on the search engine",
    ("serps", "device"): "choice of substrate: desktop or mobile",
    ("serps", "location"): "search engine location code",
    ("serps", "language"): "search engine language",
    ("serps", "depth"): "page depth, Google SERPs retrieved with pagination: 1 (about 10 "
    "results) to 10 (about 100 results)",
    ("serps", "geolocation"): "geotag of the SERP (city, department or country, separated by "
    "a comma); false in the answers when unset, read as NULL",
    ("serps", "priority"): "priority of the request, processed in descending order, 1 to 10",
    ("serps", "callback_url"): "URL the results are sent to once processed",
    ("serps", "cost"): "what the scrape cost, EUR (a number at creation, a decimal string "
    "when retrieved)",
    ("serps", "created_at"): "when the scrape was created",
    ("serps", "scraped_at"): "when the SERP was scraped",
    ("serps", "duration_ms"): "how long the scrape took, milliseconds",
    ("serps", "_links", "json", "href"): "URL of the SERP as JSON",
    ("serps", "_links", "json", "method"): "HTTP method of that URL",
    ("serps", "_links", "json", "type"): "media type of that URL",
    ("serps", "_links", "html", "href"): "URL of the SERP as HTML",
    ("serps", "_links", "html", "method"): "HTTP method of that URL",
    ("serps", "_links", "html", "type"): "media type of that URL",
    ("items", "block_type"): "results[].type: the block the item is in (organic, "
    "people_also_ask, videos, images, ...)",
    ("items", "rank_type"): "position of the item within its block (like DataForSEO's "
    "rank_group, but within one block: it starts again on each page)",
    ("items", "rank_serp"): "position of the item in the whole SERP (like DataForSEO's "
    "rank_absolute)",
    ("items", "page"): "results page the item is on",
    ("items", "pixel"): "vertical position of the item on the page, pixels (like DataForSEO's "
    "rectangle.y)",
    ("items", "domain"): "domain of the item's URL",
    ("items", "url"): "URL of the item",
    ("items", "title"): "title of the item (empty for images)",
    ("items", "description"): "snippet of the item (empty outside organic results)",
}
_ID = {"id": f"{_SERP}.id ({_WHERE}): the scrape's id."}

# Table -> column -> what it holds (``core.column_docs``), beyond the columns every provider
# shares (``ProviderTables.docs`` adds those): the Dagster UI's column descriptions.
COLUMN_DOCS: dict[str, dict[str, str]] = {
    **describe_spec(SERPS, _SERP, _MEANINGS, ("serps",), _ID, where=_WHERE),
    **describe_spec(
        ITEMS,
        f"{_SERP}.results[].items[]",
        _MEANINGS,
        ("items",),
        {
            **_ID,
            "block_index": "Position of the block in data[].results[] (0-based).",
            "item_index": "Position of the item in its block's items[] (0-based).",
        },
        where=_WHERE,
    ),
    "tasks": {
        **{
            name: f"The scrape's {name}, as targets.toml asked for it: "
            f"{_MEANINGS.get(('serps', name), name)}."
            for name in (
                "keyword",
                "device",
                "location",
                "language",
                "depth",
                "priority",
                "geolocation",
                "callback_url",
            )
        },
        "task_id": "data[].id of the create answer: SemScraper's id of the scrape (NULL until "
        "created).",
        "cost": "data[].cost of the create answer: what the scrape cost, EUR.",
        "fetched_at": "When its SERP was retrieved or delivered (UTC).",
    },
    "responses": {
        "status": f"{_SERP}.status ({_WHERE}).",
        "cost": f"{_SERP}.cost ({_WHERE}), EUR.",
        "html": "The SERP's HTML (GET /v1/serp/google/{id}/html), when keep_html is on.",
        "envelope": "The retrieve answer the SERP came in, its data[] emptied: its own "
        "status, request_ms and count. NULL for a callback.",
    },
    "locations": {
        "location": "Location code SemScraper offers (GET /v1/serp/google/location).",
        "language": "A language offered at that location.",
        "host": "The Google host searched there (google.fr, ...).",
        "name": "The location's name.",
    },
}
