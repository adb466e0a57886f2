"""Spans benchmark: the byte spans of a big body's items (``core.json_spans.array_spans``),
through msgspec's fast path and through the tokenizer it falls back to.

    python bench/spans_bench.py                  # bodies of about 8 and 66 MB
    python bench/spans_bench.py --mb 8,66,200

Each body is a DataForSEO task_get answer whose items are sandbox items, repeated to the size.
For each: the fastest of three runs of each path, their ratio, and whether both gave the same
spans. Run by hand; not a test.
"""

from __future__ import annotations

import argparse
import time

import orjson

from serp_etl.core import json_spans
from serp_etl.providers.dataforseo.settings import ITEMS_PATH
from serp_etl.sandbox.dataforseo.serp_generator import generate_result


def body_of(megabytes: int) -> bytes:
    result = generate_result(
        {
            "image_url": "https://example.com/a.jpg",
            "location_code": 2840,
            "language_code": "en",
            "max_crawl_pages": 3,
        },
        "2026-12-04",
    )
    item_bytes = len(orjson.dumps(result["items"])) / len(result["items"])
    result["items"] = result["items"] * int(megabytes * 1e6 / item_bytes / len(result["items"]))
    return orjson.dumps({"status_code": 20000, "tasks": [{"id": "t", "result": [result]}]})


def fastest(run, times: int = 3) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(times):
        start = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", default="8,66")
    args = parser.parse_args()
    print(f"{'MB':>6} {'items':>8} {'fast s':>8} {'tokenizer s':>12} {'ratio':>7} same")
    for megabytes in map(int, args.mb.split(",")):
        body = body_of(megabytes)
        fast, spans = fastest(lambda: json_spans.array_spans(body, ITEMS_PATH))  # noqa: B023
        slow, tokenized = fastest(lambda: json_spans._tokenized_spans(body, ITEMS_PATH))  # noqa: B023
        print(
            f"{len(body) / 1e6:>6.1f} {len(spans[1]):>8} {fast:>8.3f} {slow:>12.2f} "
            f"{slow / fast:>7.0f} {spans == tokenized}"
        )


if __name__ == "__main__":
    main()
