"""Memory of one very large task_get answer, from the wire to every flattened table.

    python bench/big_response.py                  # a 100 MB answer
    python bench/big_response.py --mb 200

A task_get body of about ``--mb`` MB (organic items, each with every nested array) is served
over loopback by a separate process; a fresh process fetches it (``task_get``), stores it in
the ledger, publishes the raw table and flattens it, as collection and the Dagster assets do.
Prints each stage's seconds and that process's peak RSS (the target: 512 MB for 100 MB), and
the peak after each stage. The process first loads the Dagster code location, as a step process
does (``--bare``: not).
Its scratch data goes to a temporary folder. Run by hand; not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

TASK_ID = "11240000-0000-0066-0000-000000000001"
TASK_GET = f"/v3/serp/google/search_by_image/task_get/advanced/{TASK_ID}"


def generate(path: Path, megabytes: int) -> int:
    """A task_get envelope of about ``megabytes`` MB; returns its items."""
    from serp_etl.sandbox.dataforseo.app import envelope, task_object
    from serp_etl.sandbox.dataforseo.serp_generator import generate_result

    data = {
        "image_url": "https://images.example.com/big.jpg",
        "location_code": 2840,
        "language_code": "en",
        "max_crawl_pages": 3,
        "calculate_rectangles": True,
    }
    result = generate_result(data, "2026-01-01")
    template = [item for item in result["items"] if item["type"] == "organic"]
    items, size, n = [], 0, 0
    while size < megabytes * 2**20:
        item = {**template[n % len(template)], "rank_absolute": n + 1, "rank_group": n + 1}
        items.append(item)
        size += len(orjson.dumps(item))
        n += 1
    result.update(items=items, items_count=len(items), item_types=["organic"])
    task = task_object(TASK_ID, 20000, "Ok.", TASK_GET, cost=0.0018, data=data, result=[result])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(envelope([task])))
    return len(items)


def child(url: str, data_dir: Path, dagster: bool) -> None:
    """The measured process: fetch, store, publish raw, flatten; with ``dagster``, having
    loaded the code location first, as a step process has."""
    from serp_etl.core.warehouse import Warehouse
    from serp_etl.providers.dataforseo.client import DataForSEOClient
    from serp_etl.providers.dataforseo.responses import response_meta
    from serp_etl.providers.dataforseo.tables import TABLES
    from serp_etl.state.ledger import Ledger, TaskState, ledger_path

    stages = {}
    peaks = {}

    def peak_mb() -> int:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    if dagster:
        import serp_etl.definitions  # noqa: F401 - what a Dagster step process holds first
    peaks["loaded"] = peak_mb()
    started = time.perf_counter()
    with DataForSEOClient(url, "bench", "bench") as client:
        fetched = client.task_get(TASK_ID)
    stages["fetch"] = time.perf_counter() - started
    peaks["fetch"] = peak_mb()
    with Ledger(ledger_path(data_dir)) as ledger:
        meta = TABLES.version(fetched.body, response_meta(fetched, fetched.fetched_at, "api"))
        body_mb = len(fetched.body) / 2**20
        ledger.store_response(
            "dataforseo", "2026-01-01", TASK_ID, meta, fetched.body, TaskState.FETCHED
        )
        del fetched
        stages["store"] = time.perf_counter() - started - sum(stages.values())
        peaks["store"] = peak_mb()
        TABLES.publish_responses(ledger, Warehouse(data_dir), "2026-01-01")
    stages["publish_raw"] = time.perf_counter() - started - sum(stages.values())
    peaks["publish_raw"] = peak_mb()
    rows = TABLES.publish_flattened(Warehouse(data_dir), "2026-01-01", workers=1)
    stages["flatten"] = time.perf_counter() - started - sum(stages.values())
    peaks["flatten"] = peak_mb()
    print(
        json.dumps(
            {
                "body_mb": round(body_mb, 1),
                "organic_rows": rows["organic"],
                "seconds": {k: round(v, 2) for k, v in stages.items()},
                "peak_rss_mb": peak_mb(),
                "peak_after": peaks,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument(
        "--bare", action="store_true", help="without loading the Dagster code location first"
    )
    parser.add_argument("--child", nargs=2, metavar=("URL", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), dagster=not args.bare)
        return 0
    work = Path(tempfile.mkdtemp(prefix="serp-etl-big-"))
    try:
        items = generate(work / "served" / TASK_GET.lstrip("/"), args.mb)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(work / "served"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
        port = int(line.split(" port ")[1].split()[0])
        try:
            measured = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    f"http://127.0.0.1:{port}",
                    str(work / "data"),
                    *(["--bare"] if args.bare else []),
                ],
                stdout=subprocess.PIPE,
                text=True,
                check=True,
            )
        finally:
            server.terminate()
        figures = json.loads(measured.stdout)
        print(
            f"a {figures['body_mb']} MB task_get answer ({items} items): "
            f"peak RSS {figures['peak_rss_mb']} MB; seconds by stage {figures['seconds']}; "
            f"peak RSS after each stage (MB) {figures['peak_after']}"
        )
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
