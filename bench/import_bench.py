"""Import benchmark: saved task_get answers (NDJSON) -> the raw table and every flattened table.

    python bench/import_bench.py                       # 2,000 and 20,000 answers
    python bench/import_bench.py --responses 2000 --dlt  # also dlt (pip install -e '.[bench]')

For each N, whole processes from start to exit, in rounds (one run of each a round; medians):
  parse    read the file and orjson.loads every line: the floor
  import   serp-etl import dataforseo FILE --date D, into a fresh data dir
  dlt      dlt normalizing the same answers to Parquet, with --dlt (one run)
Columns: N; MB of the file; items landed (organic, images and other rows); parse seconds;
import seconds; import/parse (the median of each round's ratio); items a second of the import;
the import's peak RSS (MB, its largest process); all MB: the peak PSS of all its processes
together (one more run, sampled every 20 ms); dlt seconds; dlt/import. Scratch data: see
bench/workload.py. Run by hand; not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from workload import (
    BENCH_DIR,
    PARTITION,
    cli,
    median_ratio,
    median_seconds,
    ndjson,
    parse_command,
    peak_tree_pss,
    rounds,
    timed,
)


def import_command(path: Path, data_dir: Path) -> list[str]:
    return cli(data_dir, "import", "dataforseo", str(path), "--date", PARTITION)


def dlt_run(path: Path, target: Path) -> None:
    """dlt normalizing every result of the answers (with their nested tables) to Parquet."""
    import dlt
    import orjson

    shutil.rmtree(target, ignore_errors=True)

    def serps():
        with open(path, "rb") as lines:
            for line in lines:
                for task in orjson.loads(line)["tasks"]:
                    for result in task.get("result") or ():
                        yield {"task_id": task["id"], **result}

    pipeline = dlt.pipeline(
        pipeline_name="serp_bench",
        pipelines_dir=str(target / "state"),
        destination=dlt.destinations.filesystem(str(target / "out")),
        dataset_name="bench",
    )
    pipeline.run(dlt.resource(serps(), name="serps"), loader_file_format="parquet")


def items_landed(stdout: str) -> int:
    rows = dict(line.strip().split(": ") for line in stdout.splitlines() if line.startswith("  "))
    return sum(
        int(rows[f"dataforseo_{t}"].split()[0]) for t in ("organic", "images", "other_items")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dlt", action="store_true", help="also time dlt (slow)")
    parser.add_argument("--dlt-run", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dlt_run:
        dlt_run(*args.dlt_run)
        return
    print(
        f"scratch data in {BENCH_DIR} (SERP_ETL_BENCH_DIR), outside the repository\n"
        "N: task_get answers; MB: the NDJSON file; items: organic+images+other items "
        "landed; parse s: bare orjson parse of the lines; import s: serp-etl import, whole "
        "process; ratio: import/parse (median of rounds); items/s: items/import s; peak MB: "
        "largest process RSS; all MB: peak PSS of the import and its workers together; "
        "dlt s: dlt normalizing the same file; dlt/imp: how many times faster the import "
        "is\n"
    )
    print(
        f"{'N':>6} {'MB':>6} {'items':>8} {'parse s':>8} {'import s':>8} {'ratio':>6} "
        f"{'items/s':>8} {'peak MB':>8} {'all MB':>7} {'dlt s':>7} {'dlt/imp':>7}"
    )
    for n in args.responses:
        path = ndjson(n)
        data_dir = BENCH_DIR / f"import-{n}"
        fresh = lambda d=data_dir: shutil.rmtree(d, ignore_errors=True)  # noqa: E731
        runs = rounds(
            {
                "parse": (parse_command(path), None),
                "import": (import_command(path, data_dir), fresh),
            },
            args.rounds,
        )
        parse, imported = median_seconds(runs["parse"]), median_seconds(runs["import"])
        ratio = median_ratio(runs["import"], runs["parse"])
        peak = max(run["peak_rss_mb"] for run in runs["import"])
        pss = peak_tree_pss(import_command(path, data_dir), before=fresh)
        items = items_landed(runs["import"][0]["stdout"])
        dlt = (
            timed(
                [sys.executable, __file__, "--dlt-run", str(path), str(BENCH_DIR / f"dlt-{n}")],
                repeat=1,
            )["seconds"]
            if args.dlt
            else None
        )
        dlt_cols = f"{dlt:7.1f} {dlt / imported:7.1f}" if dlt else f"{'-':>7} {'-':>7}"
        print(
            f"{n:6d} {path.stat().st_size / 1e6:6.0f} {items:8d} {parse:8.2f} "
            f"{imported:8.2f} {ratio:6.2f} {items / imported:8.0f} {peak:8.0f} {pss:7.0f} "
            f"{dlt_cols}",
            flush=True,
        )
        print(
            json.dumps(
                {
                    "n": n,
                    "parse": [r["seconds"] for r in runs["parse"]],
                    "import": [r["seconds"] for r in runs["import"]],
                    "peak_rss_mb": peak,
                    "peak_pss_all_mb": pss,
                    "dlt": dlt,
                }
            ),
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
