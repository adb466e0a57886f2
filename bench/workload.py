"""What the benchmarks measure on: sandbox task_get responses, and whole-process timing.

Scratch data goes to ``$SERP_ETL_BENCH_DIR``, else a folder in the system's temporary
directory (never the repository); it is kept between runs, since generating is slow.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

PARTITION = "2026-01-01"


def compile_package() -> None:
    """Bytecode for serp_etl, as an installed package has: with PYTHONDONTWRITEBYTECODE set
    (as on some machines), every timed process would otherwise compile it from source."""
    import compileall

    import serp_etl

    compileall.compile_dir(Path(serp_etl.__file__).parent, quiet=1)


compile_package()
BENCH_DIR = Path(
    os.environ.get("SERP_ETL_BENCH_DIR") or Path(tempfile.gettempdir()) / "serp-etl-bench"
)


def responses(n: int):
    """``n`` task_get answers of distinct targets, as the sandbox answers them (bytes)."""
    from serp_etl.sandbox.dataforseo.app import advanced_task, envelope

    for i in range(n):
        task_id = f"00000000-0000-0066-0000-{i:012x}"
        data = {
            "image_url": f"https://images.example.com/{i}.jpg",
            "location_code": 2840,
            "language_code": "en",
            "calculate_rectangles": i % 3 == 0,
            "max_crawl_pages": 1 + i % 2,
        }
        yield task_id, orjson.dumps(envelope([advanced_task(task_id, data, PARTITION, 0.0006)]))


def ndjson(n: int) -> Path:
    """The ``n`` answers as one NDJSON file (made once, then reused)."""
    path = BENCH_DIR / f"responses-{n}.ndjson"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        with open(temp, "wb") as handle:
            for _, body in responses(n):
                handle.write(body + b"\n")
        temp.replace(path)
    return path


def tree_pss_mb(pid: int) -> float:
    """The proportional set size of ``pid`` and all its descendants (shared pages counted
    once across them), in MB; 0 for what has already exited."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(
            (int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0
        )
    return total / 1024


def peak_tree_pss(
    command: list[str],
    env: dict | None = None,
    before: Callable[[], None] | None = None,
    every: float = 0.02,
) -> float:
    """One more run of ``command``, untimed, sampled every ``every`` seconds: the peak PSS of
    its whole process tree (the import's workers included), in MB."""
    if before:
        before()
    with tempfile.TemporaryFile() as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
        peak = 0.0
        while child.poll() is None:
            peak = max(peak, tree_pss_mb(child.pid))
            time.sleep(every)
    return peak


def timed(
    command: list[str],
    repeat: int = 3,
    env: dict | None = None,
    before: Callable[[], None] | None = None,
) -> dict:
    """The fastest of ``repeat`` runs of ``command``, each a fresh process from start to exit
    (``before`` runs ahead of each, untimed): its seconds, peak RSS (of its largest process)
    and output."""
    probe = (
        "import json, resource, subprocess, sys, time; started = time.perf_counter(); "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps({'seconds': time.perf_counter() - started, 'code': done.returncode,"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,"
        " 'stdout': done.stdout[-4000:], 'stderr': done.stderr[-2000:]}))"
    )
    runs = []
    for _ in range(repeat):
        if before:
            before()
        output = subprocess.run(
            [sys.executable, "-c", probe, *command],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        run = json.loads(output)
        if run["code"] != 0:
            raise RuntimeError(f"{command[:3]} failed: {run['stderr']}")
        runs.append(run)
    return min(runs, key=lambda run: run["seconds"])


def rounds(
    commands: dict[str, tuple[list[str], Callable[[], None] | None]], repeat: int = 5
) -> dict[str, list[dict]]:
    """Each command (with what runs untimed ahead of it) once a round, ``repeat`` rounds: the
    runs of each, round by round. A ratio taken within each round, then its median, holds
    when the machine's speed drifts between rounds."""
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (command, before) in commands.items():
            runs[name].append(timed(command, repeat=1, before=before))
    return runs


def median_seconds(runs: list[dict]) -> float:
    return statistics.median(run["seconds"] for run in runs)


def median_ratio(runs: list[dict], baseline: list[dict]) -> float:
    """The median, over rounds, of a run's time over its round's baseline."""
    return statistics.median(
        a["seconds"] / b["seconds"] for a, b in zip(runs, baseline, strict=True)
    )


def cli(data_dir: Path, *args: str) -> list[str]:
    """``serp-etl --data-dir <data_dir> <args>`` in a fresh process of this interpreter."""
    return [
        sys.executable,
        "-c",
        "import sys\nfrom serp_etl.cli import main\nsys.exit(main(sys.argv[1:]))",
        "--data-dir",
        str(data_dir),
        *args,
    ]


def parse_command(path: Path) -> list[str]:
    """The floor: a process that reads the file and parses each line with orjson, nothing
    else."""
    return [
        sys.executable,
        "-c",
        "import orjson, sys\nfor line in open(sys.argv[1], 'rb'):\n    orjson.loads(line)",
        str(path),
    ]
