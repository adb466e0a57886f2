"""A crash at any point between "intent recorded" and "response stored" costs nothing twice and
loses nothing: the day's run dies there (a hard exit, as a SIGKILL would), runs again, and every
target was billed once and its response is in the raw table once.

Each run is a real process talking HTTP to the sandbox through the fault-injecting proxy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from serp_etl.core.crash_points import CRASH_AT_ENV, CRASH_EXIT_CODE, POINTS
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.sandbox.dataforseo.app import DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import SemScraperSandbox
from serp_etl.state.ledger import Ledger, TaskState, ledger_path
from serp_etl_tests.conftest import EXAMPLE_TARGETS, TODAY
from serp_etl_tests.fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"dataforseo": 6, "semscraper": 3}  # in the example targets file
SANDBOXES = {"dataforseo": DataForSEOSandbox, "semscraper": SemScraperSandbox}
BILLED = {"dataforseo": "billed_tasks", "semscraper": "billed_scrapes"}
# Points only a recovery reaches: a crash after creating leaves something to recover first.
REACHED_AFTER = {
    "semscraper.candidates_recorded": "semscraper.created",
    "semscraper.candidates_retrieved": "semscraper.created",
}
CASES = [
    (provider, point)
    for provider in TARGETS
    for point in POINTS
    if point.startswith((f"{provider}.", "raw."))
]


def run_day(provider: str, data_dir: Path, url: str, crash_at: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_AT_ENV}
    if crash_at:
        env[CRASH_AT_ENV] = crash_at
    done = subprocess.run(
        [sys.executable, "-m", "serp_etl_tests.day_runner", provider, str(data_dir), url],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, CRASH_EXIT_CODE), done.stderr
    return done.returncode


def test_every_crash_point_is_covered():
    assert {point for _, point in CASES} == set(POINTS)


@pytest.mark.parametrize(("provider", "point"), CASES)
def test_a_crash_at_any_point_pays_nothing_twice_and_loses_nothing(tmp_path, provider, point):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(EXAMPLE_TARGETS, data_dir / "targets.toml")
    sandbox = SANDBOXES[provider](tmp_path / "api.sqlite", ready_seconds=0)
    with FaultProxy(sandbox.app) as proxy:
        if point in REACHED_AFTER:
            assert run_day(provider, data_dir, proxy.url, REACHED_AFTER[point]) == CRASH_EXIT_CODE
        assert run_day(provider, data_dir, proxy.url, point) == CRASH_EXIT_CODE  # died there
        assert run_day(provider, data_dir, proxy.url) == 0
        assert run_day(provider, data_dir, proxy.url) == 0  # and again: nothing left to do

    assert sandbox.stats()[BILLED[provider]] == TARGETS[provider]
    with Ledger(ledger_path(data_dir)) as ledger:
        tasks = ledger.tasks(provider, TODAY)
        assert len(tasks) == TARGETS[provider]
        assert {t.state for t in tasks} <= {TaskState.FETCHED, TaskState.EMPTY}
        assert list(ledger.inbox(provider, TODAY)) == []  # all published
    raw = pq.read_table(Warehouse(data_dir).partition_dir(provider, RAW_TABLE, TODAY))
    ids = raw.column("task_id").to_pylist()
    assert sorted(ids) == sorted(t.task_id for t in tasks)  # each once, none lost
