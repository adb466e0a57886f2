"""Two dagster-celery workers that share no disk (each its own working and data dir), the daily
job of both providers, a Dagster instance on Postgres, the broker on Postgres (kombu's
SQLAlchemy transport: no apt, no Redis), the providers' sandboxes served on loopback as live
APIs: with the state in Postgres and the warehouse in a bucket, each target is billed once
however the steps land; with the warehouse on the workers' disks, the run is refused before
any paid call."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from celery import Celery
from dagster_celery.defaults import task_default_queue

from serp_etl.cli import main
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.sandbox.wsgi import serving
from serp_etl.state.database import postgres_engine
from serp_etl_tests import celery_deployment
from serp_etl_tests.conftest import EXAMPLE_TARGETS, TODAY

pytestmark = pytest.mark.slow
REPOSITORY = Path(__file__).parent.parent


def new_database(server: str, name: str) -> sa.URL:
    engine = postgres_engine(server)
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")  # a name made here, not input
    engine.dispose()
    return sa.engine.make_url(server).set(database=name)


def as_driver(url: sa.URL, driver: str, prefix: str = "") -> str:
    return prefix + url.set(drivername=driver).render_as_string(hide_password=False)


WORKERS: list[tuple[subprocess.Popen, Path]] = []  # the live ones, with their logs


@contextmanager
def worker(name: str, home: Path, env: dict[str, str]):
    """A dagster-celery worker in a directory of its own (its working dir, Dagster home and
    data dir), in a process group of its own; stopped (the whole group) on the way out."""
    data_dir = home / "data"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE_TARGETS, data_dir / "targets.toml")
    config = home / "celery.yaml"
    config.write_text(
        f"execution:\n  config:\n    broker:\n      env: "
        f"{celery_deployment.BROKER_ENV}\n    backend:\n      env: "
        f"{celery_deployment.BACKEND_ENV}\n"
    )
    log = home / f"{name}.log"
    bin_dir = str(Path(sys.executable).parent)  # celery's own command, beside dagster-celery
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                f"{bin_dir}/dagster-celery",
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(config),
                "--name",
                name,
                "--",
                "-c",
                "1",
            ],
            cwd=home,
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={
                **env,
                "DAGSTER_HOME": str(home / "dagster"),
                "SERP_ETL_DATA_DIR": str(data_dir),
                "PYTHONPATH": str(REPOSITORY),
                "PATH": f"{bin_dir}:{env.get('PATH', '')}",
            },
        )
    WORKERS.append((process, log))
    try:
        yield data_dir
    finally:
        WORKERS.remove((process, log))
        kill(process)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL to ``process`` and every process of its group (gone already: nothing to do)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def deployment(postgres_server, s3_url, tmp_path, monkeypatch):
    """The services: Postgres databases for Dagster's instance, the broker and serp-etl's
    state; the bucket; both APIs on loopback. Yields the environment every process gets."""
    instance_db = new_database(postgres_server, "dagster_instance")
    broker_db = new_database(postgres_server, "celery_broker")
    state_db = new_database(postgres_server, "serp_state")
    remote = tmp_path / "remote"
    dataforseo = DataForSEOSandbox(remote / "dataforseo.sqlite", ready_seconds=0)
    semscraper = SemScraperSandbox(remote / "semscraper.sqlite", ready_seconds=0)
    home = tmp_path / "orchestrator"
    home.mkdir()
    # dagster-postgres's NOTIFY needs psycopg2 (README, "Dagster's own instance").
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: "
        f"'{as_driver(instance_db, 'postgresql+psycopg2')}'\n"
    )
    with serving(dataforseo.app) as dataforseo_url, serving(semscraper.app) as semscraper_url:
        env = {
            **os.environ,
            celery_deployment.BROKER_ENV: as_driver(broker_db, "postgresql+psycopg", "sqla+"),
            celery_deployment.BACKEND_ENV: as_driver(broker_db, "postgresql+psycopg", "db+"),
            celery_deployment.DATAFORSEO_URL_ENV: dataforseo_url,
            celery_deployment.SEMSCRAPER_URL_ENV: semscraper_url,
            "DATAFORSEO_LOGIN": LOGIN,
            "DATAFORSEO_PASSWORD": PASSWORD,
            "SEMSCRAPER_API_KEY": API_KEY,
            "SERP_ETL_STATE_URL": as_driver(state_db, "postgresql+psycopg"),
            "SERP_ETL_STORAGE_URL": s3_url,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        # Dagster's schema first: two processes creating it at once race (README). Celery's
        # broker and result tables likewise: two workers starting on a new database both
        # created kombu_queue, and one died of DuplicateTable; and both inserted the row of
        # the queue they listen on, and one died of UniqueViolation (kombu's lock against
        # that is per process). Declared once here, as an operator provisions a broker.
        dg.DagsterInstance.get().dispose()
        celery = Celery(
            broker=env[celery_deployment.BROKER_ENV], backend=env[celery_deployment.BACKEND_ENV]
        )
        with celery.connection_for_write() as connection:
            channel = connection.default_channel
            channel.queue_declare(queue=task_default_queue)
            channel.session.close()
        celery.backend.ResultSession().close()
        broker = postgres_engine(as_driver(broker_db, "postgresql+psycopg"))
        assert {"kombu_queue", "kombu_message", "celery_taskmeta"} <= set(
            sa.inspect(broker).get_table_names()
        )
        with broker.connect() as connection:
            assert connection.exec_driver_sql("SELECT name FROM kombu_queue").scalars().all() == [
                task_default_queue
            ]
        broker.dispose()
        yield env, dataforseo, semscraper, tmp_path


def start_run(root: Path) -> subprocess.Popen:
    """The day's run, orchestrated by a process of its own, its steps on the workers."""
    return subprocess.Popen(
        [sys.executable, "-m", "serp_etl_tests.celery_deployment", TODAY],
        cwd=root,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )


def watch(run: subprocess.Popen, until=None) -> int | None:
    """Wait for ``run`` to end (its exit code), or for ``until()`` to hold (None). A worker
    that dies fails the test with its log: the run would wait for it for ever."""
    while True:
        try:
            return run.wait(timeout=1)  # a watch on the workers, not a wait for time to pass
        except subprocess.TimeoutExpired:
            pass
        for process, log in WORKERS:
            if process.poll() is not None:
                pytest.fail(f"a worker exited ({process.returncode}): {log.read_text()[-3000:]}")
        if until is not None and until():
            return None


def run_daily(root: Path) -> bool:
    return watch(start_run(root)) == 0


def step_failures() -> list[str]:
    """Why the steps of the latest run failed."""
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.get_run_records(limit=1)
        return [
            event.dagster_event.event_specific_data.error.message
            for event in instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            )
        ]


def billed(dataforseo, semscraper) -> tuple[int, int]:
    return dataforseo.stats()["billed_tasks"], semscraper.stats()["billed_scrapes"]


def test_two_workers_sharing_no_disk_bill_each_target_once(deployment, capsys):
    env, dataforseo, semscraper, root = deployment
    # The warehouse on each worker's disk: refused on either worker, before any paid call.
    local = {name: value for name, value in env.items() if name != "SERP_ETL_STORAGE_URL"}
    with worker("w1", root / "w1", local), worker("w2", root / "w2", local):
        assert not run_daily(root)
    messages = step_failures()
    assert messages and all(
        "refused before any paid call" in m and "SERP_ETL_STORAGE_URL (" in m for m in messages
    )
    assert billed(dataforseo, semscraper) == (0, 0)

    # Both workers SIGKILLed (and the run's orchestrator) once the day's tasks are paid for,
    # before they are collected: a run of the day again pays for nothing, and collects them.
    with worker("w1", root / "w1", env), worker("w2", root / "w2", env):
        run = start_run(root)
        assert watch(run, until=lambda: billed(dataforseo, semscraper)[0] > 0) is None
        for process in [run, *(process for process, _ in WORKERS)]:
            kill(process)
    paid = billed(dataforseo, semscraper)
    assert paid[0] == 6
    with worker("w1", root / "w1", env) as first, worker("w2", root / "w2", env) as second:
        assert run_daily(root)
        assert billed(dataforseo, semscraper) == (6, 3)
        assert run_daily(root)  # a second run: nothing posted again
        assert billed(dataforseo, semscraper) == (6, 3)
    for data_dir in (first, second):  # nothing of the warehouse on either worker's disk
        assert not (data_dir / "warehouse").exists()
    # serp-etl sql from a third directory: every row once.
    (root / "analyst").mkdir()
    capsys.readouterr()
    assert (
        main(
            [
                "--data-dir",
                str(root / "analyst"),
                "sql",
                "SELECT count(*), count(DISTINCT task_id) FROM dataforseo_serps",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[1:] == ["6,6"]
