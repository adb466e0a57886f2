"""The warehouse on the data dir's disk and in a bucket (moto's S3 server on loopback): a day
published, and a one-day query on a long history. By hand, not a test.

    python bench/storage_bench.py [--responses 2000] [--days 365] [--rounds 3]

Prints medians and ratios measured in this one run:
- publishing a day of ``--responses`` DataForSEO answers (the raw part from the ledger's
  inbox, then every flattened table): S3 / local (goal: at most 2x);
- a one-day query through the views (``catalog.connect``) on ``--days`` days of S3 partitions
  against the same query on a one-day S3 warehouse (goal: at most 1.3x), and the same on the
  local disk for reference.
moto runs in a process of its own (``moto_server``), as a bucket's server would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from workload import BENCH_DIR, PARTITION, responses

from serp_etl import catalog
from serp_etl.core.parquet import publish_table
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.settings import PROVIDER
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.state.ledger import Ledger, TaskState, ledger_path
from serp_etl.storage.location import STORAGE_URL_ENV, s3_filesystem

FETCHED_AT = "2026-01-01T00:00:00+00:00"


def start_moto() -> subprocess.Popen:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):  # ready within a few seconds: poll its port
        with socket.socket() as attempt:
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return server


def new_bucket() -> str:
    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    s3_filesystem().mkdir(bucket)
    return f"s3://{bucket}/warehouse"


def use(url: str | None) -> None:
    if url is None:
        os.environ.pop(STORAGE_URL_ENV, None)
    else:
        os.environ[STORAGE_URL_ENV] = url


def fill_inbox(data_dir: Path, answers: list[tuple[str, bytes]]) -> None:
    with Ledger(ledger_path(data_dir)) as ledger:
        for task_id, body in answers:
            meta = TABLES.version(body, {"fetched_at": FETCHED_AT, "source": "bench"})
            ledger.store_response(PROVIDER, PARTITION, task_id, meta, body, TaskState.FETCHED)


def publish_day(data_dir: Path) -> float:
    warehouse = Warehouse(data_dir)
    with Ledger(ledger_path(data_dir)) as ledger:
        started = time.perf_counter()
        TABLES.publish_responses(ledger, warehouse, PARTITION)
        TABLES.publish_flattened(warehouse, PARTITION)
        return time.perf_counter() - started


def history(data_dir: Path, source: Warehouse, days: int) -> None:
    """``days`` days of the organic table (the published day's rows on each)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(
        str(source.parts(PROVIDER, "organic", PARTITION)[0]), filesystem=source.filesystem
    )
    warehouse = Warehouse(data_dir)
    start = time.mktime(time.strptime(PARTITION, "%Y-%m-%d"))
    for index in range(days):
        day = time.strftime("%Y-%m-%d", time.localtime(start - index * 86400))
        publish_table(warehouse.partition_file(PROVIDER, "organic", day), rows, warehouse.storage)
    catalog.refresh_views(data_dir)


def query_seconds(data_dir: Path, rounds: int) -> float:
    sql = (
        f"SELECT count(*), avg(rank_absolute) FROM dataforseo_organic "
        f"WHERE date = DATE '{PARTITION}'"
    )
    with catalog.connect(data_dir) as connection:
        connection.execute(sql).fetchall()  # warm: footers and connections
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            connection.execute(sql).fetchall()
            timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    answers = list(responses(args.responses))
    root = BENCH_DIR / "storage"
    shutil.rmtree(root, ignore_errors=True)
    server = start_moto()
    try:
        publish: dict[str, list[float]] = {"local": [], "s3": []}
        published: dict[str, str | None] = {}  # each kind's first day: where it went
        for round_ in range(args.rounds):
            for kind in ("local", "s3"):  # alternated: drift in the machine hits both
                data_dir = root / f"publish-{kind}-{round_}"
                url = new_bucket() if kind == "s3" else None
                published.setdefault(kind, url)
                use(url)
                fill_inbox(data_dir, answers)
                publish[kind].append(publish_day(data_dir))
        local, s3 = (statistics.median(publish[k]) for k in ("local", "s3"))
        print(
            f"publish a day of {args.responses} responses: local {local:.2f} s, "
            f"S3 {s3:.2f} s, S3/local {s3 / local:.2f}x (goal <= 2x)"
        )
        queries = {}
        for kind in ("local", "s3"):
            use(published[kind])
            source = Warehouse(root / f"publish-{kind}-0")
            for days in (1, args.days):
                use(new_bucket() if kind == "s3" else None)
                data_dir = root / f"query-{kind}-{days}"
                history(data_dir, source, days)
                queries[kind, days] = query_seconds(data_dir, max(args.rounds, 7))
        for kind in ("local", "s3"):
            one, many = queries[kind, 1], queries[kind, args.days]
            print(
                f"one-day query, {kind}: 1-day warehouse {one * 1000:.1f} ms, "
                f"{args.days}-day {many * 1000:.1f} ms, ratio {many / one:.2f}x"
                + (" (goal <= 1.3x)" if kind == "s3" else "")
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
