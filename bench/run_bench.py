"""A run of today on the sandbox, as the README's quick start runs it: its whole time against
its steps' own work. By hand, not a test.

    python bench/run_bench.py [--rounds 3]

Each round: a fresh data dir and Dagster home, then ``dagster asset materialize --select '*'``
of today in a process of its own (both providers, every asset and check). Prints, as medians:
the process's wall time from start to exit; the steps' own work (from each step's start to its
end, read from the run's event log: time spent in serp-etl's code and the sandbox, not in
starting processes or loading the code location); and their ratio (the goal: at most 1.5x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from serp_etl.instance_home import prepare_home

REPOSITORY = Path(__file__).resolve().parent.parent


def one_run() -> tuple[float, float, int]:
    """(wall seconds, steps' own seconds, steps) of one run of today in a fresh data dir."""
    scratch = Path(tempfile.mkdtemp(prefix="serp-etl-run-bench-"))
    try:
        data, home = scratch / "data", scratch / "dagster"
        data.mkdir(parents=True)
        shutil.copy(REPOSITORY / "data" / "targets.toml", data)
        prepare_home(home)
        env = {**os.environ, "SERP_ETL_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
        started = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).with_name("dagster")),
                "asset",
                "materialize",
                "-m",
                "serp_etl.definitions",
                "--select",
                "*",
                "--partition",
                datetime.now(UTC).date().isoformat(),
            ],
            cwd=REPOSITORY,
            env=env,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - started
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance:
            (record,) = instance.get_run_records(limit=1)
            events = instance.all_logs(
                record.dagster_run.run_id,
                of_type={
                    dg.DagsterEventType.STEP_START,
                    dg.DagsterEventType.STEP_SUCCESS,
                    dg.DagsterEventType.STEP_FAILURE,
                },
            )
        starts, work = {}, 0.0
        for event in events:
            if event.dagster_event_type is dg.DagsterEventType.STEP_START:
                starts[event.step_key] = event.timestamp
            else:
                work += event.timestamp - starts[event.step_key]
        return wall, work, len(starts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.rounds)]
    wall = statistics.median(r[0] for r in runs)
    work = statistics.median(r[1] for r in runs)
    print(
        f"a run of today ({runs[0][2]} steps), median of {args.rounds}: wall {wall:.1f} s, "
        f"steps' own work {work:.1f} s, wall/work {wall / work:.2f}x (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
