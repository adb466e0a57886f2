"""Flattening: every documented field lands in a typed column or child table; nothing is lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pytest

from serp_etl.core.flatten import FLOAT, INT, STRING, STRING_LIST, Children, Obj, TableSpec
from serp_etl.providers.dataforseo.flatten import ADDITIONAL_RESULTS_KEY, flatten_responses
from serp_etl.providers.dataforseo.schema import FLAT_SCHEMAS, ORGANIC
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.sandbox.dataforseo.app import advanced_task, envelope
from serp_etl_tests.conftest import EXAMPLE_TARGETS, FIXTURES, REFERENCE_TASK_ID


def _reference() -> dict[str, pa.Table]:
    body = (FIXTURES / "dataforseo_reference_example.json").read_bytes()
    return flatten_responses([(REFERENCE_TASK_ID, body)])


def _response(task_id: str, result: dict) -> tuple[str, bytes]:
    task = {"id": task_id, "status_code": 20000, "status_message": "Ok.", "result": [result]}
    return task_id, json.dumps(envelope([task])).encode()  # json writes ints beyond 64 bits


def test_reference_example_lands_in_every_table_with_its_values():
    tables = _reference()
    assert set(tables) == set(FLAT_SCHEMAS)
    for name, table in tables.items():
        assert table.schema == FLAT_SCHEMAS[name], name
    serp = tables["serps"].to_pylist()[0]
    assert serp["task_id"] == REFERENCE_TASK_ID
    assert serp["se_domain"] == "lens.google.com"
    assert serp["item_types"] == ["images", "organic"]
    assert serp["items_count"] == 61 and serp["spell_keyword"] is None
    assert tables["organic"].num_rows == 4 and tables["images"].num_rows == 1
    first = tables["organic"].to_pylist()[0]
    assert first["item_index"] == 1 and first["rank_absolute"] == 2
    assert first["domain"] == "$43.35* • Amazon"
    assert first["title"].endswith('36" x 24"')  # escaped quotes survive
    assert first["is_image"] is True and first["rating_value"] is None
    assert first["extra"] is None and first["invalid_values"] is None
    images = tables["images_items"].to_pylist()
    assert [(r["item_index"], r["items_index"]) for r in images] == [(0, 0), (0, 1), (0, 2)]
    assert images[2]["alt"] == "Image #3 for Marmalade Art Tropical Flower Wallpaper Mural"
    organic_images = tables["organic_images"].to_pylist()
    assert [(r["item_index"], r["images_index"]) for r in organic_images] == [
        (1, 0),
        (2, 0),
        (3, 0),
        (4, 0),
    ]


def test_nested_objects_become_prefixed_columns_and_arrays_child_tables():
    names = set(ORGANIC.schema.names)
    for column in (
        "rating_value",
        "rating_type",
        "rating_max",
        "rating_votes_count",
        "price_current",
        "price_max_value",
        "price_displayed_price",
        "rectangle_y",
        "about_this_result_source",
        "about_this_result_search_terms",
        "faq_type",
        "highlighted",
        "extended_people_also_search",
    ):
        assert column in names, column
    assert {"dataforseo_" + n for n in FLAT_SCHEMAS} >= {
        "dataforseo_organic_images",
        "dataforseo_organic_links",
        "dataforseo_organic_faq_items",
        "dataforseo_organic_faq_items_links",
        "dataforseo_organic_related_result",
        "dataforseo_organic_related_result_images",
        "dataforseo_images_items",
        "dataforseo_images_related_image_searches",
        "dataforseo_serps_refinement_chips_items",
        "dataforseo_serps_refinement_chips_items_options",
    }
    links = FLAT_SCHEMAS["organic_faq_items_links"].names
    assert links[:4] == ["task_id", "item_index", "faq_items_index", "links_index"]
    assert FLAT_SCHEMAS["organic"].field("price_current").type == pa.float64()
    assert FLAT_SCHEMAS["serps"].field("item_types").type == pa.list_(pa.string())


def test_every_declared_column_is_filled_by_a_day_of_sandbox_results():
    """Across the example targets' results on two days, no declared column stays all-null:
    the sandbox exercises every documented field, every nested element included (and, with
    its drift on, an undocumented item type)."""
    targets = load_targets(EXAMPLE_TARGETS)
    responses = []
    for day in ("2026-11-20", "2026-11-21"):
        for number, target in enumerate(targets):
            task_id = f"00000000-0000-0066-0000-{day[-2:]}{number:010d}"
            task = advanced_task(task_id, target.task(day), day, target.price(), drift=True)
            responses.append((task_id, orjson.dumps(envelope([task]))))
    tables = flatten_responses(responses)
    # The time a SERP was received is documented (and sent by the sandbox) in UTC only: its
    # text never says more than the instant.
    always_utc = {"serps.datetime_text"}
    for name, table in tables.items():
        for column in table.column_names:
            # content_hash: set by with_lineage from the raw rows (test_raw_layer).
            if (
                column in ("extra", "invalid_values", "content_hash")
                or f"{name}.{column}" in always_utc
            ):
                continue
            assert table.column(column).null_count < table.num_rows, f"{name}.{column}"


def test_unknown_fields_are_kept_in_extra_not_dropped():
    item = {
        "type": "organic",
        "rank_group": 1,
        "rank_absolute": 1,
        "title": "t",
        "source_badge": "Verified",
        "rating": {"value": 4, "new_scale": "x"},
    }
    result = {"type": "search_by_image", "brand_new": [1, 2], "items": [item]}
    tables = flatten_responses([_response("t1", result)])
    row = tables["organic"].to_pylist()[0]
    assert orjson.loads(row["extra"]) == {"source_badge": "Verified", "rating.new_scale": "x"}
    assert row["rating_value"] == 4.0  # an int where a float is declared is a float
    assert orjson.loads(tables["serps"].to_pylist()[0]["extra"]) == {"brand_new": [1, 2]}


@pytest.mark.parametrize(
    ("field", "value", "column"),
    [
        ("rank_group", "first", "rank_group"),  # a string where an int belongs
        ("rank_group", 1.5, "rank_group"),  # pyarrow alone would truncate it to 1
        ("rank_group", 2**70, "rank_group"),  # beyond int64 (orjson reads it as a float)
        ("is_image", 1, "is_image"),  # an int where a bool belongs
        ("title", {"text": "t"}, "title"),  # an object where a string belongs
        ("highlighted", "abc", "highlighted"),  # pyarrow alone would make ["a", "b", "c"]
        ("highlighted", ["a", 1], "highlighted"),
        ("rating", "4.5 stars", "rating"),  # a string where an object belongs
        ("images", {"url": "u"}, "images"),  # an object where an array belongs
    ],
)
def test_a_wrong_type_becomes_null_with_the_raw_value_kept(field, value, column):
    item = {"type": "organic", "rank_group": 3, "rank_absolute": 3, field: value}
    tables = flatten_responses([_response("t1", {"items": [item]})])
    row = tables["organic"].to_pylist()[0]
    assert json.loads(row["invalid_values"]) == {column: value}
    if column in row:
        assert row[column] is None
    assert row["rank_absolute"] == 3  # the rest of the row is intact


def test_bool_in_float_column_is_invalid_not_one():
    item = {
        "type": "organic",
        "rank_group": 1,
        "rank_absolute": 1,
        "price": {"current": True, "regular": 9},
    }
    row = flatten_responses([_response("t", {"items": [item]})])["organic"].to_pylist()[0]
    assert row["price_current"] is None and row["price_regular"] == 9.0
    assert orjson.loads(row["invalid_values"]) == {"price_current": True}


def test_non_object_array_elements_are_kept_and_objects_still_land():
    item = {
        "type": "images",
        "rank_group": 1,
        "rank_absolute": 1,
        "items": [{"alt": "a"}, "stray", {"alt": "b"}],
    }
    tables = flatten_responses([_response("t", {"items": [item]})])
    children = tables["images_items"].to_pylist()
    assert [(c["items_index"], c["alt"]) for c in children] == [(0, "a"), (2, "b")]
    assert orjson.loads(tables["images"].to_pylist()[0]["invalid_values"]) == {"items": ["stray"]}


def test_undocumented_item_types_land_in_other_items_whole():
    items = [
        {"type": "organic", "rank_group": 1, "rank_absolute": 1},
        {"type": "visual_matches", "rank_group": 1, "rank_absolute": 2, "cards": [1]},
        "not an object",
    ]
    tables = flatten_responses([_response("t", {"items": items})])
    other = tables["other_items"].to_pylist()
    assert [(o["item_index"], o["type"], o["rank_absolute"]) for o in other] == [
        (1, "visual_matches", 2),
        (2, None, None),
    ]
    assert orjson.loads(other[0]["item"])["cards"] == [1]
    assert orjson.loads(other[1]["item"]) == "not an object"


def test_an_item_type_that_is_not_a_string_lands_in_other_items():
    # Found by the type checker: a list or an object as "type" was looked up as a table name
    # and failed the whole flatten with "unhashable type".
    items = [
        {"type": ["organic"], "rank_absolute": 1},
        {"type": {"a": 1}, "rank_absolute": 2},
        {"type": "organic", "rank_group": 1, "rank_absolute": 3},
    ]
    tables = flatten_responses([_response("t", {"items": items})])
    other = tables["other_items"].to_pylist()
    assert [(o["item_index"], o["type"]) for o in other] == [(0, None), (1, None)]
    assert orjson.loads(other[0]["item"])["type"] == ["organic"]
    assert tables["organic"].column("rank_absolute").to_pylist() == [3]


def test_a_second_result_is_kept_in_the_serp_row():
    body = orjson.dumps({"tasks": [{"id": "t", "result": [{"items": []}, {"keyword": "k"}]}]})
    serp = flatten_responses([("t", body)])["serps"].to_pylist()[0]
    assert orjson.loads(serp["extra"]) == {ADDITIONAL_RESULTS_KEY: [{"keyword": "k"}]}


def test_a_body_that_is_not_json_is_skipped_not_fatal():
    good = _response("g", {"items": [{"type": "organic", "rank_absolute": 1}]})
    tables = flatten_responses([("bad", b'{"tasks": [tru'), good])
    assert tables["serps"].column("task_id").to_pylist() == ["g"]


def test_responses_without_results_contribute_no_rows():
    empty = {"tasks": [{"id": "e", "status_code": 40102, "result": None}]}
    tables = flatten_responses([("e", orjson.dumps(empty))])
    assert all(table.num_rows == 0 for table in tables.values())


def test_spec_rejects_colliding_column_names():
    with pytest.raises(ValueError, match="duplicate column"):
        TableSpec("t", (("id", pa.string()),), {"a_b": STRING, "a": Obj({"b": INT})})


def test_child_keys_extend_the_parent_keys():
    spec = TableSpec(
        "p",
        (("id", pa.string()),),
        {"xs": Children({"v": FLOAT, "ys": Children({"w": STRING_LIST})})},
    )
    assert spec.walk()[1].schema.names[:2] == ["id", "xs_index"]
    assert spec.walk()[2].name == "p_xs_ys"
    assert spec.walk()[2].schema.names[:3] == ["id", "xs_index", "ys_index"]


def test_a_large_body_flattens_a_chunk_at_a_time_to_the_same_rows(monkeypatch):
    import pyarrow as pa

    from serp_etl.providers.dataforseo import flatten
    from serp_etl.sandbox.dataforseo.app import advanced_task, envelope

    data = {
        "image_url": "https://x.example/1.jpg",
        "location_code": 2840,
        "language_code": "en",
        "max_crawl_pages": 3,
        "calculate_rectangles": True,
    }
    task_id = "00000000-0000-0066-0000-000000000001"
    body = orjson.dumps(envelope([advanced_task(task_id, data, "2026-01-02", 0.0018)]))
    batch = pa.RecordBatch.from_pydict({"task_id": [task_id], "body": [body.decode()]})
    [whole] = flatten.flatten_raw_batch(batch)
    monkeypatch.setattr(flatten, "SKELETON_ABOVE_BYTES", 1000)  # this body is "large" now
    monkeypatch.setattr(flatten, "ITEMS_PER_CHUNK", 7)
    pieces = list(flatten.flatten_raw_batch(batch))
    item_tables = ["organic", "images", "other_items"]  # a table per item type, and the rest

    def items(tables):
        return sum(tables[name].num_rows for name in item_tables if name in tables)

    assert items(whole) > 7
    # The ordinary responses (none), the skeleton, then a piece per chunk of items.
    assert len(pieces) == 2 + -(-items(whole) // 7)
    assert all(items(piece) <= 7 for piece in pieces)
    chunked = {
        name: pa.concat_tables([piece[name] for piece in pieces if name in piece]) for name in whole
    }
    for name, table in whole.items():
        assert (
            chunked[name]
            .sort_by(
                [(c, "ascending") for c in table.schema.names if c in ("task_id", "item_index")]
            )
            .equals(
                table.sort_by(
                    [(c, "ascending") for c in table.schema.names if c in ("task_id", "item_index")]
                )
            )
        ), name


@pytest.mark.parametrize(
    ("text", "instant", "kept"),
    [
        ("2019-11-15 12:57:46 +00:00", datetime(2019, 11, 15, 12, 57, 46, tzinfo=UTC), None),
        (
            "2019-11-15 14:57:46 +02:00",
            datetime(2019, 11, 15, 12, 57, 46, tzinfo=UTC),
            "2019-11-15 14:57:46 +02:00",
        ),
        ("2025-09-10T12:32:56Z", datetime(2025, 9, 10, 12, 32, 56, tzinfo=UTC), None),
        ("2019-11-15 12:57:46", datetime(2019, 11, 15, 12, 57, 46, tzinfo=UTC), None),
    ],
)
def test_date_times_are_instants_with_their_text_where_it_says_more(text, instant, kept):
    result = {"type": "search_by_image", "datetime": text, "items": []}
    (row,) = flatten_responses([_response("t1", result)])["serps"].to_pylist()
    assert (row["datetime"], row["datetime_text"], row["invalid_values"]) == (instant, kept, None)


@pytest.mark.parametrize("value", ["yesterday", "2019-13-45 10:00:00 +00:00", 20191115, True])
def test_a_date_time_that_is_not_one_is_an_invalid_value(value):
    result = {"type": "search_by_image", "datetime": value, "items": []}
    (row,) = flatten_responses([_response("t1", result)])["serps"].to_pylist()
    assert row["datetime"] is None and row["datetime_text"] is None
    assert orjson.loads(row["invalid_values"]) == {"datetime": value}


def test_an_exact_integer_written_as_a_float_is_that_integer():
    item = {"type": "organic", "rank_group": "RG", "rank_absolute": "RA", "position": "left"}
    task_id, body = _response("t", {"items": [item]})
    body = body.replace(b'"RG"', b"1E2").replace(b'"RA"', b"12.0")
    row = flatten_responses([(task_id, body)])["organic"].to_pylist()[0]
    assert (row["rank_group"], row["rank_absolute"]) == (100, 12)
    assert row["invalid_values"] is None
    body = body.replace(b"1E2", b"1.5e0")  # not a whole number: still refused, kept
    row = flatten_responses([(task_id, body)])["organic"].to_pylist()[0]
    assert row["rank_group"] is None and json.loads(row["invalid_values"]) == {"rank_group": 1.5}
