"""A lost, emptied or foreign state store, or a run on another host's disk, never leads to a
second payment."""

from __future__ import annotations

import io
import sqlite3
from datetime import date, timedelta

import dagster as dg
import httpx
import orjson
import pytest

from serp_etl.core.lost_state import StateDisagrees
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.deployment import private_disk_refusal
from serp_etl.defs.resources import DataForSEOResource, SemScraperResource, WarehouseResource
from serp_etl.providers.dataforseo import pipeline
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.providers.semscraper import pipeline as semscraper_pipeline
from serp_etl.providers.semscraper.client import Scrape, SemScraperClient
from serp_etl.providers.semscraper.tables import TABLES as SEMSCRAPER_TABLES
from serp_etl.sandbox.semscraper.app import API_KEY, SemScraperSandbox
from serp_etl.state.database import StateUnreadable
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests.conftest import TODAY, billed, collect_today, make_client, materialize_day
from serp_etl_tests.default_instances import dataforseo_assets, semscraper_assets

DAY = TODAY
SCRAPES = [Scrape("example keyword", "fr", "fr", depth=2), Scrape("mots clés", "fr", "fr")]


def test_a_new_ledger_refuses_tags_the_warehouse_holds(tmp_path, client, sandbox, clock, targets):
    warehouse = Warehouse(tmp_path / "data")
    with Ledger(tmp_path / "first.sqlite") as first:
        pipeline.submit(client, first, DAY, targets, warehouse=warehouse)
        collect_today(client, first, clock)
        TABLES.publish_tasks(first, warehouse, DAY)
    billed = sandbox.stats()["billed_tasks"]

    with Ledger(tmp_path / "lost.sqlite") as lost, pytest.raises(StateDisagrees) as refused:
        pipeline.submit(client, lost, DAY, targets, warehouse=warehouse)
    message = str(refused.value)
    assert "lost.sqlite" in message and "dataforseo_tasks" in message
    assert "Nothing was posted" in message
    assert sandbox.stats()["billed_tasks"] == billed
    with Ledger(tmp_path / "lost.sqlite") as lost:
        assert lost.tasks("dataforseo", DAY) == []  # no intent recorded either


def test_a_new_ledger_without_the_warehouse_refuses_tags_id_list_holds(
    tmp_path, client, sandbox, targets
):
    """A second worker with its own data dir: nothing local knows, the provider does."""
    with Ledger(tmp_path / "a.sqlite") as worker_a:
        pipeline.submit(client, worker_a, DAY, targets, warehouse=Warehouse(tmp_path / "a"))
    billed = sandbox.stats()["billed_tasks"]
    with Ledger(tmp_path / "b.sqlite") as worker_b, pytest.raises(StateDisagrees) as refused:
        pipeline.submit(client, worker_b, DAY, targets, warehouse=Warehouse(tmp_path / "b"))
    assert "dataforseo's own records" in str(refused.value)
    assert sandbox.stats()["billed_tasks"] == billed


def test_new_targets_on_a_day_the_ledger_knows_are_posted(
    client, ledger, sandbox, targets, warehouse
):
    pipeline.submit(client, ledger, DAY, targets[:2], warehouse=warehouse)
    TABLES.publish_tasks(ledger, warehouse, DAY)
    report = pipeline.submit(client, ledger, DAY, targets, warehouse=warehouse)
    assert report.posted == len(targets) - 2 and report.already_posted == 2
    assert sandbox.stats()["billed_tasks"] == len(targets)


@pytest.fixture
def semscraper(tmp_path, clock):
    sandbox = SemScraperSandbox(tmp_path / "semscraper.sqlite", ready_seconds=20, clock=clock)
    with SemScraperClient(
        "http://sandbox.invalid/v1",
        API_KEY,
        transport=httpx.WSGITransport(app=sandbox.app),
        clock=clock,
        sleep=clock.sleep,
    ) as client:
        yield sandbox, client


def test_semscraper_new_ledger_refuses_what_the_warehouse_or_the_list_holds(
    tmp_path, semscraper, clock
):
    sandbox, client = semscraper
    warehouse = Warehouse(tmp_path / "data")
    with Ledger(tmp_path / "first.sqlite") as first:
        semscraper_pipeline.submit(client, first, DAY, SCRAPES, warehouse=warehouse)
        SEMSCRAPER_TABLES.publish_tasks(first, warehouse, DAY)
    billed = sandbox.stats()["billed_scrapes"]
    clock.now += 60  # done, not retrieved: listed by target

    with Ledger(tmp_path / "lost.sqlite") as lost, pytest.raises(StateDisagrees) as refused:
        semscraper_pipeline.submit(client, lost, DAY, SCRAPES, warehouse=warehouse)
    assert "semscraper_tasks" in str(refused.value)
    with Ledger(tmp_path / "other.sqlite") as other, pytest.raises(StateDisagrees) as refused:
        semscraper_pipeline.submit(
            client, other, DAY, SCRAPES, warehouse=Warehouse(tmp_path / "other")
        )
    assert "semscraper's own records" in str(refused.value)
    assert sandbox.stats()["billed_scrapes"] == billed


def test_an_empty_or_garbled_ledger_is_an_error_never_a_fresh_one(tmp_path):
    path = ledger_path(tmp_path)
    with Ledger(path) as ledger:
        ledger.claim("mode", "sandbox")
    path.write_bytes(b"")
    for name in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
        (path.parent / name).unlink(missing_ok=True)
    with pytest.raises(StateUnreadable, match=r"ledger\.sqlite is empty \(0 bytes\)"):
        Ledger(path)
    assert path.stat().st_size == 0  # left as found

    path.write_bytes(b"not a database at all, " * 500)
    with pytest.raises(StateUnreadable, match=r"ledger\.sqlite is not a readable state file"):
        Ledger(path)


def test_a_new_ledger_file_is_never_seen_empty(tmp_path, monkeypatch):
    """SQLite creates a 0-byte file and writes its header later: a concurrent opener must not
    take that moment for a truncated ledger. Every connect to the ledger's path finds it whole."""
    path = ledger_path(tmp_path)
    sizes = []
    real_connect = sqlite3.connect

    def watching_connect(database, *args, **kwargs):
        if str(database) == str(path):
            sizes.append(path.stat().st_size if path.exists() else None)
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", watching_connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", watching_connect)  # what SQLAlchemy calls
    Ledger(path).close()
    assert sizes and all(size is not None and size > 0 for size in sizes)


# -- the Dagster runs ------------------------------------------------------------------------


def run_day(data_dir, assets, resource_key, resource):
    return materialize_day(data_dir, assets, {resource_key: resource})


def failure_of(result, provider: str) -> str:
    """Why the day's submit step failed."""
    (event,) = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE" and e.step_key == f"{provider}__tasks"
    ]
    return event.event_specific_data.error.message


@pytest.mark.parametrize("loss", ["emptied", "deleted"])
def test_a_run_after_the_ledger_was_lost_bills_nothing_and_says_why(data_dir, loss):
    providers = [
        (
            dataforseo_assets,
            "dataforseo",
            DataForSEOResource(collect_deadline_seconds=30, poll_seconds=1),
        ),
        (
            semscraper_assets,
            "semscraper",
            SemScraperResource(collect_deadline_seconds=30, poll_seconds=1),
        ),
    ]
    for assets, key, resource in providers:
        assert run_day(data_dir, assets, key, resource).success
    before = billed(data_dir)
    assert before == (6, 3)

    path = ledger_path(data_dir)
    for stale in path.parent.glob("ledger.sqlite*"):
        stale.unlink()
    if loss == "emptied":
        path.write_bytes(b"")

    for assets, key, resource in providers:
        result = run_day(data_dir, assets, key, resource)
        assert not result.success
        error = failure_of(result, key)
        assert "ledger.sqlite" in error
        assert "is empty (0 bytes)" in error if loss == "emptied" else f"{key}_tasks table" in error
    assert billed(data_dir) == before


# -- runs that may span hosts ----------------------------------------------------------------


def celery_named_job() -> dg.JobDefinition:
    """The DataForSEO day as a job whose executor is named as dagster-celery's is (it runs in
    process here: what counts is what the step is told it runs on)."""
    job = dg.define_asset_job(
        "daily",
        selection=dg.AssetSelection.groups("dataforseo"),
        executor_def=dg.in_process_executor.configured({}, name="celery"),
    )
    return dg.Definitions(
        assets=dataforseo_assets,
        jobs=[job],
        resources={
            "warehouse": WarehouseResource(flatten_workers=1),  # $SERP_ETL_DATA_DIR
            "dataforseo": DataForSEOResource(collect_deadline_seconds=30, poll_seconds=1),
        },
    ).resolve_job_def("daily")


def run_on_celery(data_dir, monkeypatch):
    monkeypatch.setenv("SERP_ETL_DATA_DIR", str(data_dir))
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            dg.reconstructable(celery_named_job),
            instance,
            tags={"dagster/partition": DAY},
            raise_on_error=False,
        )
        failures = [
            e
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE" and e.step_key == "dataforseo__tasks"
        ]
        return result.success, failures[0].event_specific_data.error.message


def run_on(data_dir):
    return run_day(
        data_dir,
        dataforseo_assets,
        "dataforseo",
        DataForSEOResource(collect_deadline_seconds=30, poll_seconds=1),
    )


def test_a_run_on_an_executor_that_spans_hosts_is_refused_before_any_paid_call(
    data_dir, monkeypatch
):
    # Steps of a celery executor run on its workers: each with a ledger of its own.
    success, error = run_on_celery(data_dir, monkeypatch)
    assert not success
    assert "the 'celery' executor runs steps on other hosts" in error
    assert "SERP_ETL_STATE_URL" in error and "refused before any paid call" in error
    assert billed(data_dir)[0] == 0


def test_a_deployment_said_to_span_hosts_is_refused_even_with_shared_state(
    data_dir, monkeypatch, postgres_url
):
    monkeypatch.setenv("SERP_ETL_STATE_URL", postgres_url)
    monkeypatch.setenv("SERP_ETL_DEPLOYMENT", "multi-host")
    result = run_on(data_dir)
    assert not result.success
    error = failure_of(result, "dataforseo")
    assert "SERP_ETL_DEPLOYMENT=multi-host" in error and "SERP_ETL_STORAGE_URL (" in error
    assert "SERP_ETL_STATE_URL (" not in error  # the state is shared: not asked for
    assert billed(data_dir)[0] == 0


def test_which_run_launchers_and_executors_stay_on_one_host():
    assert (
        private_disk_refusal(
            "multi_or_in_process_executor",
            "DefaultRunLauncher",
            None,
            shared_state=False,
            shared_storage=False,
        )
        is None
    )
    assert (
        private_disk_refusal(
            "multiprocess", "DefaultRunLauncher", None, shared_state=False, shared_storage=False
        )
        is None
    )
    for launcher in ("K8sRunLauncher", "DockerRunLauncher", "EcsRunLauncher"):
        refusal = private_disk_refusal(
            "multiprocess", launcher, None, shared_state=True, shared_storage=False
        )
        assert refusal and f"the {launcher} starts runs on other hosts" in refusal
    for executor in ("k8s", "docker", "celery-k8s", "celery-docker"):
        assert private_disk_refusal(
            executor, "DefaultRunLauncher", None, shared_state=True, shared_storage=False
        )
        assert private_disk_refusal(
            executor, "DefaultRunLauncher", None, shared_state=False, shared_storage=True
        )


def test_a_run_that_spans_hosts_runs_with_state_and_storage_both_shared():
    for executor, launcher in [
        ("celery", "DefaultRunLauncher"),
        ("k8s", "K8sRunLauncher"),
        ("multiprocess", "DefaultRunLauncher"),
    ]:
        assert (
            private_disk_refusal(
                executor, launcher, "multi-host", shared_state=True, shared_storage=True
            )
            is None
        )


class IdListCalls:
    """The sandbox, noting the window of every id_list call."""

    def __init__(self, app) -> None:
        self.app, self.windows = app, []

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] == "/v3/serp/id_list":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            self.windows.append(orjson.loads(body)[0]["datetime_from"])
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def test_id_list_is_asked_only_by_a_ledger_without_history(
    sandbox, clock, targets, ledger, tmp_path
):
    calls = IdListCalls(sandbox.app)
    with make_client(sandbox, clock, transport=httpx.WSGITransport(app=calls)) as client:
        pipeline.submit(client, ledger, DAY, targets[:2])  # a new ledger: one look
        (since,) = calls.windows  # from the day's start, less an hour of clock skew
        assert since.startswith(
            (date.fromisoformat(DAY) - timedelta(days=1)).isoformat() + " 23:00:00"
        )
        # With a history, a day's new targets are checked against the warehouse alone: a
        # shared account's whole day is not listed again at every run.
        pipeline.submit(client, ledger, DAY, targets)
    assert len(calls.windows) == 1
    assert sandbox.stats()["billed_tasks"] == len(targets)
