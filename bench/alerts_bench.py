"""Alerts benchmark: a day's alerts (``my_sites.alerts.day_alerts``) on long histories.

    python bench/alerts_bench.py                        # 1, 30 and 365 days of 200 answers
    python bench/alerts_bench.py --days 1,730 --responses 100

The warehouses of bench/query_bench.py (one day of N answers linked into every day), with a
targets file that makes every image mine (a group of sites, allowed domains). For each, the
fastest of three runs, inside one process, of:
  alerts    the last day's alerts, read through my_ranks_between / image_reuse_between over
            the LOOKBACK_DAYS before the day (what the alerts step and the report do)
  views     the same day's rows of the unbounded views my_ranks and image_reuse (which read
            the whole history; shown for comparison)
Columns: days, seconds of each, and each against the one-day warehouse. Run by hand; not a
test.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from functools import partial

import query_bench
from workload import PARTITION

from serp_etl import catalog
from serp_etl.my_sites.alerts import Thresholds, day_alerts

VIEWS_QUERY = (
    "SELECT (SELECT count(*) FROM my_ranks WHERE date = $day), "
    "(SELECT count(*) FROM image_reuse WHERE date = $day)"
)


def fastest(run, times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="1,30,365")
    parser.add_argument("--responses", type=int, default=200)
    args = parser.parse_args()
    base: tuple[float, float] | None = None
    print(f"{'days':>5} {'alerts s':>9} {'x 1 day':>8} {'views s':>8} {'x 1 day':>8}")
    for days in map(int, args.days.split(",")):
        data_dir = query_bench.warehouse(days, args.responses)
        (data_dir / "targets.toml").write_text(
            '[[sites]]\ndomains = ["amazon.com", "etsy.com"]\n'
            + "".join(
                f'[[dataforseo]]\nimage_url = "https://images.example.com/{i}.jpg"\n'
                'allowed_domains = ["pinterest.com"]\n'
                for i in range(args.responses)
            )
        )
        last = (date.fromisoformat(PARTITION) + timedelta(days=days - 1)).isoformat()
        with catalog.connect(data_dir) as connection:
            alerts = fastest(partial(day_alerts, connection, "dataforseo", last, Thresholds()))
            views = fastest(partial(connection.execute, VIEWS_QUERY, {"day": last}))
        base = base or (alerts, views)
        print(
            f"{days:>5} {alerts:>9.3f} {alerts / base[0]:>8.1f} {views:>8.3f} "
            f"{views / base[1]:>8.1f}"
        )


if __name__ == "__main__":
    main()
