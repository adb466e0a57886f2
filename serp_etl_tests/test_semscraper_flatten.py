"""SemScraper flattening: every documented field lands; drift is kept, not dropped."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from serp_etl.providers.semscraper.flatten import flatten_serps, serps_of
from serp_etl.providers.semscraper.schema import FLAT_SCHEMAS

# The reference page's retrieve-by-ids example, its lost brackets restored (abridged items).
RETRIEVED = {
    "status": "success",
    "request_ms": 41,
    "count": 1,
    "data": [
        {
            "id": "SERP_ID",
            "status": "done",
            "keyword": "example keyword",
            "device": "desktop",
            "location": "fr",
            "language": "fr",
            "depth": 1,
            "geolocation": False,
            "priority": 1,
            "callback_url": "",
            "cost": "0.00002",
            "created_at": "2025-09-10T12:32:56Z",
            "scraped_at": "2025-09-10T12:33:02Z",
            "duration_ms": 5403,
            "results": [
                {
                    "type": "people_also_ask",
                    "items": [
                        {
                            "rank_type": 1,
                            "rank_serp": 4,
                            "page": 1,
                            "pixel": 806,
                            "domain": "guides.lib.uh.edu",
                            "url": "https://guides.lib.uh.edu/c.php?g\\x3d1249281",
                            "title": "What is a keyword example?",
                            "description": "",
                        }
                    ],
                },
                {
                    "type": "videos",
                    "items": [
                        {
                            "rank_type": 1,
                            "rank_serp": 1,
                            "page": 1,
                            "pixel": 223,
                            "domain": "www.youtube.com",
                            "url": "https://www.youtube.com/watch?v=H-B5oFJjL8I",
                            "title": "What are Keywords and How to Choose Them? 1.1. SEO ...",
                            "description": "",
                        }
                    ],
                },
                {
                    "type": "organic",
                    "items": [
                        {
                            "rank_type": 1,
                            "rank_serp": 8,
                            "page": 1,
                            "pixel": 1077,
                            "domain": "www.seoquantum.com",
                            "url": "https://www.seoquantum.com/en/blog/6-types-keywords-organic-seo",
                            "title": "The 6 Types of Keywords in Organic SEO",
                            "description": "2 mars 2024 — I will introduce you to 6 types "
                            "of keywords",
                        },
                        {
                            "rank_type": 2,
                            "rank_serp": 9,
                            "page": 1,
                            "pixel": 1223,
                            "domain": "storychief.io",
                            "url": "https://storychief.io/blog/seo-keyword",
                            "title": "10 Clever SEO Keyword Research Examples",
                            "description": "Let's say",
                        },
                    ],
                },
                {
                    "type": "images",
                    "items": [
                        {
                            "rank_type": 1,
                            "rank_serp": 16,
                            "page": 1,
                            "pixel": 2311,
                            "domain": "searchfacts.com",
                            "url": "https://searchfacts.com/what-are-keywords/",
                            "title": "",
                            "description": "",
                        }
                    ],
                },
            ],
        }
    ],
}


def test_the_reference_example_flattens_into_serps_and_items():
    tables = flatten_serps(serps_of(orjson.dumps(RETRIEVED)))
    for name, table in tables.items():
        assert table.schema == FLAT_SCHEMAS[name]
    (serp,) = tables["serps"].to_pylist()
    assert serp["id"] == "SERP_ID" and serp["depth"] == 1 and serp["duration_ms"] == 5403
    assert serp["cost"] == 0.00002  # a decimal string in the API, a float here
    assert serp["geolocation"] is None  # false means "not set"
    assert serp["created_at"] == datetime(2025, 9, 10, 12, 32, 56, tzinfo=UTC)
    assert serp["created_at_text"] is None  # UTC: the instant says it all
    assert serp["extra"] is None and serp["invalid_values"] is None
    items = tables["items"].to_pylist()
    assert [(i["block_index"], i["block_type"], i["rank_serp"]) for i in items] == [
        (0, "people_also_ask", 4),
        (1, "videos", 1),
        (2, "organic", 8),
        (2, "organic", 9),
        (3, "images", 16),
    ]
    assert items[2]["pixel"] == 1077 and items[2]["description"].startswith("2 mars 2024")


def test_a_callback_body_is_one_serp():
    body = orjson.dumps(RETRIEVED["data"][0])
    assert [s["id"] for s in serps_of(body)] == ["SERP_ID"]


def test_drift_is_kept():
    serp = {
        **RETRIEVED["data"][0],
        "ai_overview": {"text": "new"},
        "cost": "n/a",
        "results": [
            {
                "type": "organic",
                "layout": "grid",
                "items": [{"rank_type": "1", "rank_serp": 3, "sponsored": True}, "stray"],
            }
        ],
    }
    tables = flatten_serps([serp])
    row = tables["serps"].to_pylist()[0]
    assert orjson.loads(row["extra"]) == {
        "ai_overview": {"text": "new"},
        "results": {"0": {"layout": "grid"}, "0.items": ["stray"]},
    }
    assert orjson.loads(row["invalid_values"]) == {"cost": "n/a"}
    (item,) = tables["items"].to_pylist()
    assert item["rank_type"] is None and item["rank_serp"] == 3
    assert orjson.loads(item["invalid_values"]) == {"rank_type": "1"}
    assert orjson.loads(item["extra"]) == {"sponsored": True}
