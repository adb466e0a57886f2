"""Every field of SemScraper's SERP objects, declared once, with its type."""

import pyarrow as pa

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
RESPONSES_SCHEMA = raw_schema([
    pa.field("status", pa.string()),
    pa.field("cost", pa.float64()),
    pa.field("html", pa.string()),  # the SERP's HTML, when keeping it is configured
    # The retrieve answer the SERP came in, as received, with its "data" array emptied: the
    # answer's own status, request_ms and count. None for a callback (no answer around it).
    pa.field("envelope", pa.string()),
])
