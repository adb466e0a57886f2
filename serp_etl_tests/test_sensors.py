"""Late results arrive without anyone re-running a day: a sensor per provider finds partitions
with results waiting and requests runs of the collection and flattening assets only. Imports
made outside Dagster are recorded in it by another sensor."""

from __future__ import annotations

import shutil

import dagster as dg
import orjson
import pyarrow.parquet as pq
import pytest

from serp_etl import definitions
from serp_etl.cli import main
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.resources import DataForSEOResource, SemScraperResource, WarehouseResource
from serp_etl.defs.sensors import imports_recorded
from serp_etl.providers.dataforseo.tables import TABLES as DATAFORSEO_TABLES
from serp_etl.providers.semscraper.callbacks import CallbackReceiver
from serp_etl.sandbox.dataforseo.app import DataForSEOSandbox
from serp_etl.sandbox.state import READY_SECONDS_ENV
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests.conftest import EXAMPLE_TARGETS, FIXTURES, TODAY
from serp_etl_tests.default_instances import (
    dataforseo_assets,
    dataforseo_late_results,
    semscraper_late_results,
)

DAY = TODAY


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(READY_SECONDS_ENV, "3600")  # posted today, ready only when we say so
    shutil.copy(EXAMPLE_TARGETS, tmp_path / "targets.toml")
    return tmp_path


def resources(data_dir) -> dict:
    return {
        "warehouse": WarehouseResource(data_dir=str(data_dir), flatten_workers=1),
        "dataforseo": DataForSEOResource(collect_deadline_seconds=0, poll_seconds=1),
        "semscraper": SemScraperResource(collect_deadline_seconds=0, poll_seconds=1),
    }


def evaluate(sensor, data_dir, instance):
    context = dg.build_sensor_context(
        instance=instance, resources=resources(data_dir), definitions=definitions.defs
    )
    return sensor.evaluate_tick(context)


def make_ready(data_dir) -> None:
    """The sandbox finishes every task now (time passing, without waiting for it)."""
    sandbox = DataForSEOSandbox(data_dir / "sandbox" / "dataforseo.sqlite")
    sandbox.db().execute("UPDATE tasks SET ready_at = posted_at")


def test_ready_tasks_of_a_day_request_its_collection_and_never_its_paid_step(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(
        dataforseo_assets, partition_key=DAY, instance=instance, resources=resources(data_dir)
    ).success
    with Ledger(ledger_path(data_dir)) as ledger:
        assert {t.state.value for t in ledger.tasks("dataforseo", DAY)} == {"posted"}

    nothing_yet = evaluate(dataforseo_late_results, data_dir, instance)
    assert not nothing_yet.run_requests and nothing_yet.skip_message

    make_ready(data_dir)
    (request,) = evaluate(dataforseo_late_results, data_dir, instance).run_requests
    assert request.partition_key == DAY and request.run_key.startswith(f"{DAY}:")
    job = definitions.defs.resolve_job_def(dataforseo_late_results.job_name)
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert "dataforseo/tasks" not in selected  # never the paid step
    assert {"dataforseo/responses", "dataforseo/organic"} <= selected

    again = evaluate(dataforseo_late_results, data_dir, instance).run_requests
    assert [r.run_key for r in again] == [request.run_key]  # the same evidence, the same key

    result = job.execute_in_process(
        partition_key=DAY, instance=instance, resources=resources(data_dir)
    )
    assert result.success
    with Ledger(ledger_path(data_dir)) as ledger:
        assert "posted" not in {t.state.value for t in ledger.tasks("dataforseo", DAY)}
    done = evaluate(dataforseo_late_results, data_dir, instance)
    assert not done.run_requests


def test_a_partition_already_being_collected_is_not_requested_twice(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(
        dataforseo_assets, partition_key=DAY, instance=instance, resources=resources(data_dir)
    ).success
    make_ready(data_dir)
    job = definitions.defs.resolve_job_def(dataforseo_late_results.job_name)
    instance.create_run_for_job(
        job, tags={"dagster/partition": DAY}, status=dg.DagsterRunStatus.STARTED
    )
    tick = evaluate(dataforseo_late_results, data_dir, instance)
    assert not tick.run_requests and "already" in tick.skip_message


def test_delivered_callbacks_not_yet_published_request_their_day(data_dir):
    import orjson

    from serp_etl.providers.semscraper.settings import signature
    from serp_etl_tests.conftest import serving_asgi

    instance = dg.DagsterInstance.ephemeral()
    with Ledger(ledger_path(data_dir)) as ledger:
        ledger.claim("mode", "sandbox")
        ledger.record_intents("semscraper", DAY, {"t": {"keyword": "k"}})
        ledger.mark_posted("semscraper", "t", "SERP_1", 2e-05, None, "pending")
    serp = {"id": "SERP_1", "status": "done", "keyword": "k", "results": []}
    receiver = CallbackReceiver("key", ledger_path(data_dir))
    import httpx

    with serving_asgi(receiver.app) as url:
        body = orjson.dumps(serp)
        httpx.post(url, content=body, headers={"X-Signature": signature(body, b"key")})
    (request,) = evaluate(semscraper_late_results, data_dir, instance).run_requests
    assert request.partition_key == DAY


def test_each_import_is_recorded_once_as_materializations_of_what_it_filled(data_dir):
    reference = (FIXTURES / "dataforseo_reference_example.json").read_bytes()
    archive = data_dir / "saved.json"
    archive.write_bytes(reference)
    early = "2025-06-01"  # before SERP_ETL_START_DATE: a day Dagster has no partition for
    for day in (DAY, early):
        assert (
            main(["--data-dir", str(data_dir), "import", "dataforseo", str(archive), "--date", day])
            == 0
        )
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(
        instance=instance, resources=resources(data_dir), definitions=definitions.defs
    )
    result = imports_recorded.evaluate_tick(context)
    events = {event.asset_key.to_user_string(): event for event in result.asset_events}
    flat = set(DATAFORSEO_TABLES.flat_schemas)
    assert set(events) == {f"dataforseo/{table}" for table in {"responses", *flat}}
    assert {event.partition for event in events.values()} == {DAY}
    warehouse = Warehouse(data_dir)
    for table in ("responses", "organic", "images"):
        stored = pq.read_table(warehouse.partition_dir("dataforseo", table, DAY)).num_rows
        assert events[f"dataforseo/{table}"].metadata["dagster/partition_row_count"].value == stored
    assert events["dataforseo/organic"].metadata["new_responses"].value == 1
    # Both imports seen; the early one waits for its day to become a partition.
    assert orjson.loads(result.cursor) == {"last": 2, "waiting": [2]}
    again = dg.build_sensor_context(
        instance=instance,
        resources=resources(data_dir),
        definitions=definitions.defs,
        cursor=result.cursor,
    )
    assert not imports_recorded.evaluate_tick(again).asset_events


def test_an_import_into_a_day_before_the_partitions_is_recorded_once_the_day_is_one(
    data_dir, monkeypatch
):
    from serp_etl.defs import sensors

    archive = data_dir / "saved.json"
    archive.write_bytes((FIXTURES / "dataforseo_reference_example.json").read_bytes())
    early = "2025-06-01"
    assert (
        main(["--data-dir", str(data_dir), "import", "dataforseo", str(archive), "--date", early])
        == 0
    )
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor=None):
        return imports_recorded.evaluate_tick(
            dg.build_sensor_context(
                instance=instance,
                resources=resources(data_dir),
                definitions=definitions.defs,
                cursor=cursor,
            )
        )

    first = tick()
    assert not first.asset_events
    assert not tick(first.cursor).asset_events  # still not a partition: still waiting
    # The start date moved back (SERP_ETL_START_DATE, then "Reload definitions").
    monkeypatch.setattr(
        sensors, "daily_partitions", dg.DailyPartitionsDefinition(start_date="2025-01-01")
    )
    recorded = tick(first.cursor)
    assert {event.partition for event in recorded.asset_events} == {early}
    assert orjson.loads(recorded.cursor)["waiting"] == []
    assert not tick(recorded.cursor).asset_events  # recorded once
