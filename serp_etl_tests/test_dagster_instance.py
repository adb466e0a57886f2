"""The project's Dagster instance (data/dagster/dagster.yaml): it survives simultaneous first
starts, and one step at a time calls each provider, across runs."""

from __future__ import annotations

import fcntl
import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

from serp_etl import definitions, project_files

INSTANCE_CONFIG = Path(str(project_files.INSTANCE_CONFIG))
ALEMBIC_DBS = ["history/runs.db", "history/runs/index.db", "schedules/schedules.db"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_CONFIG, home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def open_instance(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs()


def test_the_storage_is_created_while_the_init_lock_is_held(home, monkeypatch):
    seen = []
    create = SqliteRunStorage.from_local

    def spy(base_dir, inst_data=None):
        with open(home / "storage" / ".init.lock", "a") as other_process:
            try:
                fcntl.flock(other_process, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("free")
            except BlockingIOError:
                seen.append("held")
        return create(base_dir, inst_data)

    monkeypatch.setattr(SqliteRunStorage, "from_local", spy)
    open_instance(home)
    assert seen == ["held"]


def _start(home: str, barrier) -> None:
    barrier.wait()
    open_instance(Path(home))


def test_simultaneous_first_starts_leave_one_alembic_head(tmp_path, monkeypatch):
    fork = multiprocessing.get_context("fork")
    for attempt in range(4):
        home = tmp_path / f"home{attempt}"
        home.mkdir()
        shutil.copy(INSTANCE_CONFIG, home)
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        barrier = fork.Barrier(3)
        starts = [fork.Process(target=_start, args=(str(home), barrier)) for _ in range(3)]
        for process in starts:
            process.start()
        for process in starts:
            process.join(120)
        assert [p.exitcode for p in starts] == [0, 0, 0]
        for db in ALEMBIC_DBS:
            with sqlite3.connect(home / "storage" / db) as connection:
                heads = connection.execute("SELECT count(*) FROM alembic_version").fetchone()[0]
            assert heads == 1, (attempt, db)
        open_instance(home)  # and a later run still opens it


def test_no_step_waits_for_a_dagster_pool(home):
    """A pool slot outlives a killed run (freed only by the daemon): none is used."""
    graph = definitions.defs.resolve_asset_graph()
    assert all(not graph.get(key).pools for key in graph.get_all_asset_keys())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit is None
