"""Query benchmark: a one-day query on a year of daily partitions against a one-day warehouse.

    python bench/query_bench.py                   # 365 days of 200 answers each
    python bench/query_bench.py --days 730 --responses 100

Two warehouses: one day of N sandbox answers, and the same day's parts linked into every day
of a year (scratch data: see bench/workload.py). For each, whole processes from start to exit,
the fastest of five runs each:
  start     serp-etl sql "SELECT 1": start-up, views file opened
  one day   serp-etl sql with a one-day query of dataforseo_organic
and, inside one process, the fastest of twenty runs of the one-day query alone:
  duckdb    through the views file
  by name   through a view of one union_by_name glob over every part (how views were built
            before schema generations; shown for comparison)
Columns: days; each figure on the one-day warehouse, on the long one, and long/one. Run by
hand; not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

from workload import BENCH_DIR, PARTITION, cli, ndjson, timed

QUERY = (
    "SELECT count(*) AS items, avg(rank_absolute) AS rank, count(DISTINCT domain) AS domains"
    f" FROM dataforseo_organic WHERE date = DATE '{PARTITION}'"
)


def warehouse(days: int, responses: int) -> Path:
    """A data dir whose every table holds ``days`` days, each the same answers (made once)."""
    data_dir = BENCH_DIR / f"query-{days}x{responses}"
    if (data_dir / "serp.duckdb").exists():
        return data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    subprocess.run(
        cli(data_dir, "import", "dataforseo", str(ndjson(responses)), "--date", PARTITION),
        check=True,
        capture_output=True,
    )
    first = date.fromisoformat(PARTITION)
    for table_dir in (data_dir / "warehouse" / "dataforseo").iterdir():
        source = table_dir / f"date={PARTITION}"
        for offset in range(1, days):
            target = table_dir / f"date={first + timedelta(days=offset)}"
            target.mkdir()
            for part in source.iterdir():
                os.link(part, target / part.name)
    from serp_etl.catalog import refresh_views

    refresh_views(data_dir)
    return data_dir


def in_duckdb(data_dir: Path, repeat: int = 20) -> tuple[float, float]:
    """The one-day query's fastest time through the views file, and through one
    union_by_name view."""
    import duckdb

    from serp_etl.catalog import connect

    def fastest(connection) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            connection.execute(QUERY).fetchall()
            times.append(time.perf_counter() - started)
        return min(times)

    with connect(data_dir) as connection:
        views = fastest(connection)
    with duckdb.connect() as connection:
        glob = str(data_dir / "warehouse" / "dataforseo" / "organic" / "date=*" / "*.parquet")
        connection.read_parquet(glob, hive_partitioning=True, union_by_name=True).create_view(
            "dataforseo_organic"
        )
        by_name = fastest(connection)
    return views, by_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--responses", type=int, default=200)
    args = parser.parse_args()
    one, long = warehouse(1, args.responses), warehouse(args.days, args.responses)
    figures = {}
    for name, data_dir in (("one", one), ("long", long)):
        start = timed(cli(data_dir, "sql", "SELECT 1"), repeat=5)["seconds"]
        day = timed(cli(data_dir, "sql", QUERY, "--format", "csv"), repeat=5)["seconds"]
        views, by_name = in_duckdb(data_dir)
        figures[name] = {"start": start, "one day": day, "duckdb": views, "by name": by_name}
    print(
        f"scratch data in {BENCH_DIR} (SERP_ETL_BENCH_DIR), outside the repository\n"
        "start: serp-etl sql 'SELECT 1', whole process; one day: a one-day query through "
        "serp-etl sql, whole process; duckdb: the same query inside DuckDB on the views "
        "file; by name: inside DuckDB on union_by_name views (the old design); ratio: the "
        "long warehouse over the one-day one\n"
    )
    print(f"{'figure':>10} {'1 day':>10} {f'{args.days} days':>10} {'ratio':>7}")
    for figure in ("start", "one day", "duckdb", "by name"):
        a, b = figures["one"][figure], figures["long"][figure]
        print(f"{figure:>10} {a * 1000:9.1f}ms {b * 1000:9.1f}ms {b / a:7.2f}")


if __name__ == "__main__":
    main()
