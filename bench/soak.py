"""Soak: hundreds of targets per provider over several days, through a faulty network, with
random SIGKILLs and runs in parallel; then what a paying user asks.

    python bench/soak.py                                   # 300 + 200 targets, 3 days
    python bench/soak.py --days 5 --minutes 20 --seed 7 --workdir /tmp/soak

Both sandboxes run in this process behind the fault-injecting proxy (serp_etl_tests), their
clocks moved one day ahead per simulated day. Each day, each provider's run (a real process:
``serp_etl_tests.day_runner``) is started again until the day is complete; a run is SIGKILLed at
a random moment half the time, and a second run of the same day starts beside it a third of
the time. Requests meet resets, 5xx, 429 with Retry-After, truncated bodies and stalls.

It prints, per provider: targets, tasks billed, duplicates (a target billed twice on one day),
lost tasks (billed, but not in the raw table), rate-limit refusals the sandbox had to send,
faults injected, kills, and temp files left in the warehouse. Run by hand; not a test.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.sandbox.dataforseo import reference
from serp_etl.sandbox.dataforseo.app import DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import LOCATIONS, SemScraperSandbox
from serp_etl.state.ledger import PENDING_STATES, Ledger, ledger_path
from serp_etl_tests.fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parent.parent
PROVIDERS = ("dataforseo", "semscraper")


class SimulatedClock:
    """The sandboxes' time: real time, moved ahead by whole simulated days."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class RefusalCounter:
    """WSGI middleware: counts the rate-limit refusals the API itself sends."""

    def __init__(self, app) -> None:
        self.app, self.refused = app, Counter()

    def __call__(self, environ, start_response):
        seen = {}

        def remember(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        body = b"".join(self.app(environ, remember))
        path = environ.get("PATH_INFO", "")
        head = body[:200]  # DataForSEO refuses in the body: 40202 per minute, 40209 at once
        if (
            seen["status"] == 429
            or b'"status_code":40202' in head
            or b'"status_code":40209' in head
        ):
            self.refused[path] += 1
        return [body]


def write_targets(path: Path, rng: random.Random, dataforseo: int, semscraper: int) -> None:
    locations = [loc for loc in reference.locations() if loc["location_type"] == "Country"]
    languages = reference.languages()
    lines = []
    for n in range(dataforseo):
        location, language = rng.choice(locations), rng.choice(languages)
        lines += [
            "[[dataforseo]]",
            f'image_url = "https://images.example.com/{n}.jpg"',
            f"location_code = {location['location_code']}",
            f'language_name = "{language["language_name"]}"',
            "",
        ]
    for n in range(semscraper):
        location, language, _, _ = rng.choice(LOCATIONS)
        lines += [
            "[[semscraper]]",
            f'keyword = "soak keyword {n}"',
            f'location = "{location}"',
            f'language = "{language}"',
            f"depth = {1 + n % 3}",
            "",
        ]
    path.write_text("\n".join(lines))


def add_faults(proxy: FaultProxy) -> None:
    paid = {"method": "POST", "times": None}
    proxy.add("reset_after", **paid, probability=0.15)  # billed, answer lost
    proxy.add("status_after", **paid, probability=0.05)  # billed, 502 instead
    proxy.add("truncate_after", **paid, probability=0.05)
    proxy.add("reset_before", **paid, probability=0.05)  # never reached the API
    proxy.add("status_before", **paid, probability=0.05, status=429, headers={"Retry-After": "1"})
    free = {"method": "GET", "times": None}
    proxy.add("status_before", **free, probability=0.03, status=503, headers={"Retry-After": "1"})
    proxy.add("reset_after", **free, probability=0.03)
    proxy.add("truncate_after", **free, probability=0.03)
    proxy.add("stall_after", **free, probability=0.005)


def day_complete(data_dir: Path, provider: str, day: str) -> bool:
    with Ledger(ledger_path(data_dir)) as ledger:
        tasks = ledger.tasks(provider, day)
        return (
            bool(tasks)
            and {t.state for t in tasks}.isdisjoint(PENDING_STATES)
            and not list(ledger.inbox(provider, day))
        )


def run_day(
    provider: str,
    data_dir: Path,
    url: str,
    now: datetime,
    rng: random.Random,
    stats: Counter,
    stop_at: float,
) -> bool:
    """Run the provider's day until it is complete, with kills and parallel runs."""
    command = [
        sys.executable,
        "-m",
        "serp_etl_tests.day_runner",
        provider,
        str(data_dir),
        url,
        now.isoformat(),
    ]
    while time.monotonic() < stop_at:
        runs = [
            subprocess.Popen(
                command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for _ in range(2 if rng.random() < 1 / 3 else 1)
        ]
        stats["runs"] += len(runs)
        stats["parallel_runs"] += len(runs) - 1
        timers = []
        for run in runs:
            if rng.random() < 0.5:
                timers.append(threading.Timer(rng.uniform(0.3, 3.0), run.kill))
                timers[-1].start()
        for run in runs:
            run.wait()
            stats["killed"] += run.returncode == -9
        for timer in timers:
            timer.cancel()
        if day_complete(data_dir, provider, day=now.date().isoformat()):
            return True
        time.sleep(0.5)  # let the sandbox's tasks get ready before the next run
    return False


def billed_and_duplicates(provider: str, sandbox, day: str) -> tuple[set[str], int]:
    """The task ids the API billed for the day, and how many targets it billed twice."""
    db = sandbox.db()
    if provider == "dataforseo":
        rows = db.execute(
            "SELECT id, tag FROM tasks WHERE tag LIKE ?", (f"serp-etl/dataforseo/{day}/%",)
        ).fetchall()
        keys = Counter(tag for _, tag in rows)
    else:
        rows = [
            (scrape_id, request)
            for scrape_id, request, created in db.execute(
                "SELECT id, request, created_at FROM scrapes"
            )
            if datetime.fromtimestamp(created, UTC).date().isoformat() == day
        ]
        keys = Counter(orjson.dumps(orjson.loads(r), option=orjson.OPT_SORT_KEYS) for _, r in rows)
    return {task_id for task_id, _ in rows}, sum(n - 1 for n in keys.values() if n > 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--dataforseo", type=int, default=300, help="targets")
    parser.add_argument("--semscraper", type=int, default=200, help="targets")
    parser.add_argument("--minutes", type=float, default=15, help="time bound")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="scratch folder (default: a new temporary one, removed after)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="serp-etl-soak-"))
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    write_targets(data_dir / "targets.toml", rng, args.dataforseo, args.semscraper)
    targets = {"dataforseo": args.dataforseo, "semscraper": args.semscraper}
    clock = SimulatedClock()
    sandboxes = {
        "dataforseo": DataForSEOSandbox(
            work / "api" / "dataforseo.sqlite", ready_seconds=1, clock=clock
        ),
        "semscraper": SemScraperSandbox(
            work / "api" / "semscraper.sqlite", ready_seconds=1, clock=clock
        ),
    }
    stop_at = time.monotonic() + args.minutes * 60
    stats = {p: Counter() for p in PROVIDERS}
    counters, proxies, days = {}, {}, []
    started = time.monotonic()
    try:
        for provider, sandbox in sandboxes.items():
            counters[provider] = RefusalCounter(sandbox.app)
            proxies[provider] = FaultProxy(counters[provider], seed=args.seed).__enter__()
            add_faults(proxies[provider])
        for day_number in range(args.days):
            clock.offset = day_number * 86400.0
            now = datetime.now(UTC) + timedelta(days=day_number)
            days.append(now.date().isoformat())
            for provider in PROVIDERS:
                complete = run_day(
                    provider, data_dir, proxies[provider].url, now, rng, stats[provider], stop_at
                )
                stats[provider]["days_complete"] += complete
    finally:
        for proxy in proxies.values():
            proxy.__exit__(None, None, None)

    temp_files = [p for p in (data_dir / "warehouse").rglob(".*.tmp")]
    print(
        f"soak: {args.days} days, {sum(targets.values())} targets a day, seed {args.seed}, "
        f"{time.monotonic() - started:.0f} s"
    )
    for provider in PROVIDERS:
        billed = duplicates = lost = 0
        for day in days:
            ids, twice = billed_and_duplicates(provider, sandboxes[provider], day)
            raw = Warehouse(data_dir).partition_dir(provider, RAW_TABLE, day)
            stored = (
                set(pq.read_table(raw, columns=["task_id"]).column("task_id").to_pylist())
                if raw.exists()
                else set()
            )
            billed, duplicates, lost = (
                billed + len(ids),
                duplicates + twice,
                lost + len(ids - stored),
            )
        s = stats[provider]
        print(
            f"{provider}: targets {targets[provider] * args.days}, billed {billed}, "
            f"duplicates {duplicates}, lost {lost}, days complete {s['days_complete']}/"
            f"{args.days}, limit refusals {sum(counters[provider].refused.values())}, "
            f"faults {sum(proxies[provider].met.values())}, runs {s['runs']} "
            f"({s['parallel_runs']} in parallel, {s['killed']} killed)"
        )
    print(f"temp files left in the warehouse: {len(temp_files)}")
    if args.workdir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
