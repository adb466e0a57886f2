"""Flattening benchmark: N sandbox task_get responses -> every DataForSEO table in Parquet.

    python bench/flatten_bench.py                       # N = 1,000 and 10,000
    python bench/flatten_bench.py --responses 2000 --dlt  # also dlt (pip install -e '.[bench]')

Prints, for each N: the bare parse time (orjson.loads of every body, nothing else), the
flatten time (raw Parquet in, all tables' Parquet out, as the Dagster asset runs it), their
ratio, items per second, peak memory, and optionally dlt normalizing the same responses to
Parquet. Every measurement runs in a fresh process, so peak RSS belongs to it alone, and the
fastest of three runs is kept (dlt: one run).
Run by hand; not a test. Quote ratios from one run, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from serp_etl.core.raw import RAW_ROW_GROUP_ROWS, RAW_TABLE, raw_writer
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.schema import RESPONSES_SCHEMA
from serp_etl.providers.dataforseo.settings import PROVIDER
from serp_etl.providers.dataforseo.tables import TABLES

PARTITION = "2026-01-01"
FETCHED_AT = datetime(2026, 1, 1, tzinfo=UTC)
BENCH_DIR = Path(__file__).resolve().parent / "out"


def generate(n: int, data_dir: Path) -> Path:
    """N responses of distinct targets, written as the raw table (reused when present)."""
    import pyarrow as pa

    from serp_etl.sandbox.dataforseo.app import advanced_task, envelope

    raw = Warehouse(data_dir).partition_file(PROVIDER, RAW_TABLE, PARTITION)
    if raw.exists():
        return raw
    with raw_writer(raw, RESPONSES_SCHEMA) as writer:  # the raw layer's own settings
        for start in range(0, n, RAW_ROW_GROUP_ROWS):
            rows = []
            for i in range(start, min(n, start + RAW_ROW_GROUP_ROWS)):
                task_id = f"00000000-0000-0066-0000-{i:012x}"
                data = {"image_url": f"https://images.example.com/{i}.jpg",
                        "location_code": 2840, "language_code": "en",
                        "calculate_rectangles": i % 3 == 0, "max_crawl_pages": 1 + i % 2}
                task = advanced_task(task_id, data, PARTITION, 0.0006)
                rows.append({"task_id": task_id, "tag": None, "fetched_at": FETCHED_AT,
                             "status_code": task["status_code"], "status_message": None,
                             "outcome": None, "cost": 0.0006, "result_count": None,
                             "source": "bench", "body": orjson.dumps(envelope([task])).decode()})
            writer.write({RAW_TABLE: pa.Table.from_pylist(rows, schema=RESPONSES_SCHEMA)})
    return raw


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def measure(kind: str, data_dir: Path, workers: int) -> dict:
    import pyarrow.parquet as pq

    raw = Warehouse(data_dir).partition_file(PROVIDER, RAW_TABLE, PARTITION)
    if kind == "parse":
        bodies = [b.encode() for b in pq.read_table(raw, columns=["body"])["body"].to_pylist()]
        started = time.perf_counter()
        for body in bodies:
            orjson.loads(body)
        return {"seconds": time.perf_counter() - started, "bytes": sum(map(len, bodies))}
    if kind == "flatten":
        # Module imports are not flattening (the parse timing excludes importing orjson):
        # pyarrow's first conversion imports pandas, so make it before the clock starts.
        import pyarrow as pa

        pa.array(["warm-up"])
        started = time.perf_counter()
        rows = TABLES.publish_flattened(Warehouse(data_dir), PARTITION, workers=workers)
        seconds = time.perf_counter() - started
        items = rows["organic"] + rows["images"] + rows["other_items"]
        return {"seconds": seconds, "items": items, "rows": sum(rows.values()),
                "peak_rss_mb": peak_rss_mb()}
    if kind == "dlt":
        import dlt

        target = data_dir / "dlt"
        shutil.rmtree(target, ignore_errors=True)

        def serps():
            for batch in pq.ParquetFile(raw).iter_batches(columns=["task_id", "body"]):
                for task_id, body in zip(*batch.to_pydict().values(), strict=True):
                    for task in orjson.loads(body)["tasks"]:
                        for result in task.get("result") or ():
                            yield {"task_id": task_id, **result}

        pipeline = dlt.pipeline(pipeline_name="serp_bench", pipelines_dir=str(target / "state"),
                                destination=dlt.destinations.filesystem(str(target / "out")),
                                dataset_name="bench")
        started = time.perf_counter()
        pipeline.run(dlt.resource(serps(), name="serps"), loader_file_format="parquet")
        return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}
    raise ValueError(kind)


def run_isolated(kind: str, data_dir: Path, workers: int = 1, repeat: int = 3) -> dict:
    """The fastest of ``repeat`` runs, each in a fresh process (noise only ever adds time)."""
    runs = []
    for _ in range(repeat):
        output = subprocess.run(
            [sys.executable, __file__, "--measure", kind, "--data-dir", str(data_dir),
             "--workers", str(workers)],
            check=True, capture_output=True, text=True,
        ).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return min(runs, key=lambda run: run["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dlt", action="store_true", help="also time dlt (slow)")
    parser.add_argument("--measure", choices=["parse", "flatten", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.data_dir, args.workers)))
        return

    print(f"{'N':>6} {'MB':>6} {'items':>8} {'parse s':>8} {'flat1 s':>8} {'ratio1':>6} "
          f"{'flat' + str(args.workers) + ' s':>8} {'ratio' + str(args.workers):>6} "
          f"{'items/s':>8} {'peak MB':>8} {'dlt s':>7} {'dlt/parse':>9} {'dlt/flat':>8}")
    for n in args.responses:
        data_dir = BENCH_DIR / f"n{n}"
        generate(n, data_dir)
        parse = run_isolated("parse", data_dir)
        one = run_isolated("flatten", data_dir, 1)
        many = run_isolated("flatten", data_dir, args.workers)
        dlt_s = run_isolated("dlt", data_dir, repeat=1)["seconds"] if args.dlt else None
        dlt_cols = (f"{dlt_s:7.2f} {dlt_s / parse['seconds']:9.1f} "
                    f"{dlt_s / many['seconds']:8.1f}" if dlt_s else f"{'-':>7} {'-':>9} {'-':>8}")
        print(f"{n:6d} {parse['bytes'] / 1e6:6.0f} {many['items']:8d} {parse['seconds']:8.2f} "
              f"{one['seconds']:8.2f} {one['seconds'] / parse['seconds']:6.2f} "
              f"{many['seconds']:8.2f} {many['seconds'] / parse['seconds']:6.2f} "
              f"{many['items'] / many['seconds']:8.0f} {many['peak_rss_mb']:8.0f} {dlt_cols}",
              flush=True)


if __name__ == "__main__":
    main()
