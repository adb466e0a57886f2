"""Real-world JSON: decoded leniently where a reader may, with every repair named; the exact
byte spans of array elements, so each task keeps the bytes it arrived as."""

from __future__ import annotations

import json

import msgspec
import orjson
import pytest

from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import Undecodable, decode


@pytest.mark.parametrize(
    ("data", "value", "repairs"),
    [
        (b'{"a": "x"}', {"a": "x"}, ()),
        (b'{"a": "x\\ud83d y"}', {"a": "x\ufffd y"}, ("lone_surrogate",)),
        (
            b'{"a": "\\udc00", "b": ["\\ud83d\\ude00"]}',
            {"a": "\ufffd", "b": ["\U0001f600"]},
            ("lone_surrogate",),
        ),
        (b'{"a": "x\x01y\nz"}', {"a": "x\x01y\nz"}, ("control_character",)),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}, ("bom",)),
        (
            b'{"a": 1e309, "b": -1e400, "c": 1.5}',
            {"a": "1e309", "b": "-1e400", "c": 1.5},
            ("number_out_of_range",),
        ),
        (b'{"a": NaN}', {"a": "NaN"}, ("number_out_of_range",)),
        (b'{"a": "x\xff"}', {"a": "x\ufffd"}, ("invalid_utf8",)),
        (
            b'\xef\xbb\xbf{"a": "\\ud800\x02"}',
            {"a": "\ufffd\x02"},
            ("bom", "control_character", "lone_surrogate"),
        ),
    ],
)
def test_repairs_are_made_and_named(data, value, repairs):
    decoded, made = decode(data)
    assert decoded == value and made == repairs


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a": "x", "b": [1, 2', "unexpected end of data"),
        (b"<html>502</html>", "line 1 column 1"),
        (b"", "empty"),
    ],
)
def test_what_cannot_be_decoded_says_why_and_where(data, reason):
    with pytest.raises(Undecodable, match=reason):
        decode(data)


def test_strict_documents_take_the_fast_path_untouched():
    data = orjson.dumps({"k": ["\U0001f600", 1.25, None, True]})
    assert decode(data) == (orjson.loads(data), ())
    assert decode(memoryview(data)) == (orjson.loads(data), ())


def test_array_spans_are_the_exact_bytes_of_each_element():
    data = (
        b'{"status": "success", "request_ms": 41, "data": [ {"id": "a", "t": "x,]}\\"y"},'
        b'\n {"id": "b", "n": [1, {"c": "d"}]} ], "count": 2}'
    )
    found = array_spans(data, ("data",))
    assert found is not None
    whole, elements = found
    assert [orjson.loads(data[s:e]) for s, e in elements] == json.loads(data)["data"]
    assert data[whole[0] : whole[1]].startswith(b"[") and data[whole[0] : whole[1]].endswith(b"]")
    rest = data[: whole[0]] + b"[]" + data[whole[1] :]
    assert orjson.loads(rest) == {"status": "success", "request_ms": 41, "data": [], "count": 2}


def test_array_spans_follow_a_nested_path_and_survive_dirty_bytes():
    data = b'{"tasks": [{"id": "t", "result": [{"items": [{"a": "\x01"}, {"b": "\\ud83d"}, 3]}]}]}'
    (_, elements) = array_spans(data, ("tasks", 0, "result", 0, "items"))
    assert [data[s:e] for s, e in elements] == [b'{"a": "\x01"}', b'{"b": "\\ud83d"}', b"3"]
    assert array_spans(data, ("tasks", 0, "missing")) is None
    assert array_spans(b'{"data": []}', ("data",))[1] == []


@pytest.mark.parametrize("stray", [b"]", b",", b":", b"}", b"] {", b", [1]"])
def test_a_stray_bracket_or_comma_is_no_array_not_a_crash(stray):
    # Before: IndexError or AttributeError, out of the provider's clear error.
    assert array_spans(stray + b'{"data": [1]}', ("data",)) is None
    assert array_spans(b'{"data": [1]}' + stray, ("data",)) == ((9, 12), [(10, 11)])


def test_strict_json_takes_the_fast_path_with_the_tokenizers_spans(monkeypatch):
    from serp_etl.core import json_spans
    from serp_etl.sandbox.dataforseo.serp_generator import generate_result

    results = [
        generate_result(
            {
                "image_url": f"https://a/{n}.jpg",
                "location_code": 2840,
                "language_code": "en",
                "max_crawl_pages": 3,
            },
            "2026-12-04",
        )
        for n in range(5)
    ]
    body = orjson.dumps({"tasks": [{"id": "t", "result": results}]})
    for path in (
        ("tasks",),
        ("tasks", 0, "result"),
        ("tasks", 0, "result", 3, "items"),
        ("tasks", 0, "result", 9, "items"),
        ("missing",),
    ):
        assert json_spans._strict_spans(body, path) == json_spans._tokenized_spans(body, path)
    with pytest.raises(msgspec.ValidationError):  # array_spans: no array there, None
        json_spans._strict_spans(body, ("tasks", 0, "id"))
    assert array_spans(body, ("tasks", 0, "id")) is None
    # A document the fast path refuses (a raw control character) goes to the tokenizer.
    used = []
    monkeypatch.setattr(
        json_spans, "_tokenized_spans", lambda *args: used.append(args) or "tokenized"
    )
    assert array_spans(b'{"data": ["\x01"]}', ("data",)) == "tokenized" and len(used) == 1
    assert array_spans(b'{"data": {"a": 1}}', ("data",)) is None and len(used) == 1


def test_a_key_twice_is_a_repair_named_where_documents_enter():
    from serp_etl.core.jsondecode import decode

    twice = b'{"items": [{"type": "organic", "rank_group": 1, "type": "images"}]}'
    value, repairs = decode(twice, duplicates=True)
    assert value["items"][0]["type"] == "images" and repairs == ("duplicate_key",)
    assert decode(twice) == (value, ())  # re-reading a stored body does not look again
    for clean in (
        b'{"a": "x\\": y", "b": {"a": 1}}',  # an escaped quote before a colon
        b'{"a" : 1, "b":\n {"c" :2}}',  # whitespace before colons
        b'[{"a": 1}, {"a": 2}]',
    ):  # the same key in two objects
        assert decode(clean, duplicates=True)[1] == (), clean
    assert decode(b'{"a": 1, "a" : 2, "b": "\\u0000"}', duplicates=True)[1] == ("duplicate_key",)


def test_an_imported_document_with_a_key_twice_says_so(tmp_path, capsys):
    import json

    from serp_etl.cli import main
    from serp_etl_tests.conftest import FIXTURES

    text = (FIXTURES / "dataforseo_reference_example.json").read_text()
    doubled = text.replace('"type": "organic"', '"type": "organic", "type": "images"', 1)
    assert doubled != text
    path = tmp_path / "doubled.json"
    path.write_text(doubled)
    data = tmp_path / "data"
    assert (
        main(["--data-dir", str(data), "import", "dataforseo", str(path), "--date", "2026-03-01"])
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "--data-dir",
                str(data),
                "sql",
                "SELECT repairs FROM dataforseo_responses",
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"repairs": ["duplicate_key"]}]
