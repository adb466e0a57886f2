"""Flattening benchmark: a day's raw task_get answers -> every DataForSEO table in Parquet.

    python bench/flatten_bench.py                         # 1,000 and 10,000 answers
    python bench/flatten_bench.py --responses 2000 --dlt  # also dlt (pip install -e '.[bench]')

The raw partition is written once (scratch data: see bench/workload.py). Each measurement runs
in a fresh process, once a round for five rounds (medians; each ratio is the median of the
rounds' ratios); module imports are outside the timings. Columns: N; MB of bodies; items
(organic, images and other rows); parse s (orjson of every body, nothing else: the floor);
flat1 s (publish_flattened with 1 worker) and its ratio to parse; flatN s and ratio (N
workers); items a second with N workers; peak RSS (MB) with N workers; dlt s (normalizing the
same answers to Parquet), dlt/parse, dlt/flat. Run by hand; not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import orjson
from workload import BENCH_DIR, PARTITION, median_ratio, median_seconds, responses

from serp_etl.core.raw import (
    RAW_ROW_GROUP_ROWS,
    RAW_TABLE,
    raw_rows_table,
    raw_writer,
)
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.schema import RESPONSES_SCHEMA
from serp_etl.providers.dataforseo.settings import PROVIDER
from serp_etl.providers.dataforseo.tables import TABLES

FETCHED_AT = "2026-01-01T00:00:00+00:00"
LOADED_AT = datetime.fromisoformat(FETCHED_AT)


def raw_partition(n: int) -> Path:
    """A data dir whose raw partition holds the ``n`` answers (made once, then reused)."""
    data_dir = BENCH_DIR / f"flatten-{n}"
    raw = Warehouse(data_dir).partition_dir(PROVIDER, RAW_TABLE, PARTITION)
    if Path(raw).is_dir():
        return data_dir
    with raw_writer(raw / "part-0.parquet", RESPONSES_SCHEMA) as writer:
        rows = []
        for task_id, body in responses(n):
            meta = TABLES.version(
                body, {"fetched_at": FETCHED_AT, "source": "bench", "repairs": []}
            )
            rows.append((task_id, meta, body))
            if len(rows) == RAW_ROW_GROUP_ROWS:
                writer.write({RAW_TABLE: raw_rows_table(rows, RESPONSES_SCHEMA, LOADED_AT)})
                rows = []
        if rows:
            writer.write({RAW_TABLE: raw_rows_table(rows, RESPONSES_SCHEMA, LOADED_AT)})
    return data_dir


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def measure(kind: str, data_dir: Path, workers: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = Warehouse(data_dir).partition_dir(PROVIDER, RAW_TABLE, PARTITION)
    if kind == "parse":
        bodies = [b.encode() for b in pq.read_table(raw, columns=["body"])["body"].to_pylist()]
        started = time.perf_counter()
        for body in bodies:
            orjson.loads(body)
        return {"seconds": time.perf_counter() - started, "bytes": sum(map(len, bodies))}
    if kind == "flatten":
        # Imports are not flattening (the parse timing excludes importing orjson): pyarrow's
        # first conversion imports pandas, so make it before the clock starts.
        pa.array(["warm-up"])
        started = time.perf_counter()
        rows = TABLES.publish_flattened(Warehouse(data_dir), PARTITION, workers=workers)
        seconds = time.perf_counter() - started
        items = rows["organic"] + rows["images"] + rows["other_items"]
        return {"seconds": seconds, "items": items, "peak_rss_mb": peak_rss_mb()}
    if kind == "dlt":
        import dlt

        target = data_dir / "dlt"
        shutil.rmtree(target, ignore_errors=True)

        def serps():
            for part in Warehouse(data_dir).parts(PROVIDER, RAW_TABLE, PARTITION):
                for batch in pq.ParquetFile(part).iter_batches(columns=["task_id", "body"]):
                    for task_id, body in zip(*batch.to_pydict().values(), strict=True):
                        for task in orjson.loads(body)["tasks"]:
                            for result in task.get("result") or ():
                                yield {"task_id": task_id, **result}

        pipeline = dlt.pipeline(
            pipeline_name="serp_bench",
            pipelines_dir=str(target / "state"),
            destination=dlt.destinations.filesystem(str(target / "out")),
            dataset_name="bench",
        )
        started = time.perf_counter()
        pipeline.run(dlt.resource(serps(), name="serps"), loader_file_format="parquet")
        return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}
    raise ValueError(kind)


def run_isolated(kind: str, data_dir: Path, workers: int = 1) -> dict:
    """One run in a fresh process: its figures."""
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--measure",
            kind,
            "--data-dir",
            str(data_dir),
            "--workers",
            str(workers),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def in_rounds(data_dir: Path, workers: int, repeat: int) -> dict[str, list[dict]]:
    """parse, flatten with 1 worker and with ``workers``, once each a round: ratios taken
    within a round hold when the machine's speed drifts between rounds."""
    runs: dict[str, list[dict]] = {"parse": [], "one": [], "many": []}
    for _ in range(repeat):
        runs["parse"].append(run_isolated("parse", data_dir))
        runs["one"].append(run_isolated("flatten", data_dir, 1))
        runs["many"].append(run_isolated("flatten", data_dir, workers))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dlt", action="store_true", help="also time dlt (slow)")
    parser.add_argument("--measure", choices=["parse", "flatten", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.data_dir, args.workers)))
        return

    print(
        f"scratch data in {BENCH_DIR} (SERP_ETL_BENCH_DIR), outside the repository\n"
        "N: raw responses of one day; MB: their bodies; items: rows of the item tables; "
        "parse s: bare orjson parse of the bodies; flat1 s / flatN s: the day's flatten on "
        "1 / N workers; ratio1 / ratioN: flatten/parse (median of rounds); items/s: "
        "items/flatN s; peak MB: largest process RSS; dlt s, dlt/parse, dlt/flat: dlt "
        "normalizing the same bodies\n"
    )
    print(
        f"{'N':>6} {'MB':>6} {'items':>8} {'parse s':>8} {'flat1 s':>8} {'ratio1':>6} "
        f"{'flat' + str(args.workers) + ' s':>8} {'ratio' + str(args.workers):>6} "
        f"{'items/s':>8} {'peak MB':>8} {'dlt s':>7} {'dlt/parse':>9} {'dlt/flat':>8}"
    )
    for n in args.responses:
        data_dir = raw_partition(n)
        runs = in_rounds(data_dir, args.workers, args.rounds)
        parse, one, many = (median_seconds(runs[k]) for k in ("parse", "one", "many"))
        items, peak = runs["many"][0]["items"], max(r["peak_rss_mb"] for r in runs["many"])
        dlt_s = run_isolated("dlt", data_dir)["seconds"] if args.dlt else None
        dlt_cols = (
            f"{dlt_s:7.2f} {dlt_s / parse:9.1f} {dlt_s / many:8.1f}"
            if dlt_s
            else f"{'-':>7} {'-':>9} {'-':>8}"
        )
        print(
            f"{n:6d} {runs['parse'][0]['bytes'] / 1e6:6.0f} {items:8d} {parse:8.2f} "
            f"{one:8.2f} {median_ratio(runs['one'], runs['parse']):6.2f} "
            f"{many:8.2f} {median_ratio(runs['many'], runs['parse']):6.2f} "
            f"{items / many:8.0f} {peak:8.0f} {dlt_cols}",
            flush=True,
        )


if __name__ == "__main__":
    main()
