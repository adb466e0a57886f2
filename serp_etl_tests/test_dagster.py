"""The Dagster layer: materializing a partition, rerunning it, checks, schedule, loadability."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import dagster as dg
import pytest
import yaml

from serp_etl import analysis, catalog, definitions, instance_home
from serp_etl.core import views
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.dataforseo_assets import DATAFORSEO
from serp_etl.defs.metadata import table_schema
from serp_etl.defs.resources import DataForSEOResource, SemScraperResource, WarehouseResource
from serp_etl.providers.dataforseo.schema import FLAT_SCHEMAS, ORGANIC
from serp_etl.sandbox.dataforseo.app import DataForSEOSandbox
from serp_etl.sandbox.semscraper.app import SemScraperSandbox
from serp_etl.sandbox.state import DRIFT_ENV
from serp_etl_tests.conftest import FIXTURES, TODAY, project_copy, run_dg
from serp_etl_tests.default_instances import dataforseo_assets, semscraper_assets

DAY = TODAY
PAST = "2026-03-01"
TASKS_KEY, RESPONSES_KEY = DATAFORSEO.key("tasks"), DATAFORSEO.key("responses")
FLAT_KEYS = {table: DATAFORSEO.key(table) for table in FLAT_SCHEMAS}


def materialize(data_dir, partition=DAY):
    return dg.materialize(
        dataforseo_assets,
        partition_key=partition,
        resources={
            "warehouse": WarehouseResource(data_dir=str(data_dir), flatten_workers=2),
            "dataforseo": DataForSEOResource(collect_deadline_seconds=30, poll_seconds=1),
        },
    )


def billed(data_dir) -> int:
    return DataForSEOSandbox(data_dir / "sandbox" / "dataforseo.sqlite").stats()["billed_tasks"]


EVERY_VIEW = set(catalog.view_schemas()) | {
    view.name for view in analysis.views(catalog.PROVIDERS) if not view.parameters
}  # macros: not views


def row_counts(data_dir) -> dict[str, int]:
    with catalog.connect(data_dir) as con:
        views = [
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        ]
        return {v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in views}


def test_one_materialization_fills_every_dataforseo_table_and_a_rerun_posts_nothing(data_dir):
    result = materialize(data_dir)
    assert result.success
    targets = 6
    assert billed(data_dir) == targets
    tasks_meta = result.asset_materializations_for_node("dataforseo__tasks")[0].metadata
    assert tasks_meta["posted_now"].value == targets
    assert tasks_meta["dagster/partition_row_count"].value == targets
    assert tasks_meta["dagster/uri"].value == (
        Warehouse(data_dir).partition_dir("dataforseo", "tasks", DAY).resolve().as_uri()
    )

    counts = row_counts(data_dir)
    expected = {
        f"dataforseo_{t}"
        for t in [*FLAT_SCHEMAS, "tasks", "responses", "locations", "languages", "alerts"]
    }

    assert set(views.table_views(Warehouse(data_dir))) == expected  # the tables written
    assert set(counts) == EVERY_VIEW  # and a view of every table, empty until it has data
    assert counts["dataforseo_tasks"] == targets and counts["dataforseo_responses"] == targets
    assert counts["dataforseo_organic"] > 0 and counts["dataforseo_organic_faq_items_links"] > 0

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    # Every check result belongs to the day it is about.
    assert {e.partition for e in result.get_asset_check_evaluations()} == {DAY}
    assert checks["collection_complete"] and checks["items_accounted_for"]
    assert "schema_drift" in checks

    rerun = materialize(data_dir)
    assert rerun.success
    assert billed(data_dir) == targets
    rerun_meta = rerun.asset_materializations_for_node("dataforseo__tasks")[0].metadata
    assert rerun_meta["posted_now"].value == 0 and rerun_meta["already_posted"].value == targets
    assert row_counts(data_dir) == counts


def test_the_date_column_comes_from_the_partition(data_dir):
    assert materialize(data_dir).success
    with catalog.connect(data_dir) as con:
        kinds = dict(
            con.execute(
                "SELECT column_name, column_type FROM (DESCRIBE dataforseo_serps)"
            ).fetchall()
        )
        dates = con.execute("SELECT DISTINCT date FROM dataforseo_organic").fetchall()
    assert kinds["date"] == "DATE" and dates == [(dt.date.fromisoformat(DAY),)]


def test_asset_metadata_schemas_derive_from_the_pyarrow_schemas():
    spec = definitions.defs.resolve_assets_def(FLAT_KEYS["organic"]).specs_by_key[
        FLAT_KEYS["organic"]
    ]
    assert spec.metadata["dagster/column_schema"] == table_schema(
        ORGANIC.schema, DATAFORSEO.tables.docs("organic")
    )
    assert [c.name for c in spec.metadata["dagster/column_schema"].columns] == [
        *ORGANIC.schema.names,
        "date",
    ]
    assert spec.metadata["dagster/table_name"] == "serp.main.dataforseo_organic"


def test_every_column_of_every_asset_is_described():
    graph = definitions.defs.resolve_asset_graph()
    tables = 0
    for key in graph.get_all_asset_keys():
        schema = graph.get(key).metadata.get("dagster/column_schema")
        if schema is None:
            continue
        tables += 1
        undescribed = [c.name for c in schema.columns if not c.description]
        assert not undescribed, (key, undescribed)
        assert schema.columns[-1].name == "date"
        assert graph.get(key).owners and graph.get(key).metadata["dagster/table_name"]
    # Every table is an asset, but the quarantines (written by the callback receiver).
    assert tables == len([v for v in catalog.view_schemas() if not v.endswith("_quarantine")])
    votes = table_schema(ORGANIC.schema, DATAFORSEO.tables.docs("organic")).columns[
        ORGANIC.schema.names.index("rating_votes_count")
    ]
    assert votes.description == (
        "tasks[0].result[0].items[].rating.votes_count (items of type "
        "organic): the amount of feedback."
    )


def test_dagster_shows_code_references_retries_and_freshness():
    graph = definitions.defs.resolve_asset_graph()
    organic = graph.get(FLAT_KEYS["organic"])
    references = organic.metadata["dagster/code_references"].code_references
    assert any(ref.file_path.endswith("provider_assets.py") for ref in references)
    assert organic.freshness_policy is not None
    assert definitions.defs.resolve_assets_def(RESPONSES_KEY).op.retry_policy is not None
    assert definitions.defs.resolve_assets_def(TASKS_KEY).op.retry_policy is None  # paid


def test_asset_graph_and_partitions():
    graph = definitions.defs.resolve_asset_graph()
    assert graph.get(RESPONSES_KEY).parent_keys == {TASKS_KEY}
    assert graph.get(FLAT_KEYS["organic_images"]).parent_keys == {RESPONSES_KEY}
    assert all(graph.get(k).partitions_def is not None for k in [TASKS_KEY, *FLAT_KEYS.values()])
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"dataforseo", "semscraper"}


def test_the_daily_schedule_runs_the_day_it_fires_on():
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)
    )
    schedule = definitions.defs.get_schedule_def("dataforseo_daily_schedule")
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-23"


def test_definitions_load():
    dg.Definitions.validate_loadable(definitions.defs)


def test_the_definitions_hold_no_credentials():
    # Read from the environment when a run starts: run config for another field cannot drop
    # them, and no secret is ever part of the definitions or of run config.
    dataforseo = definitions.defs.resources["dataforseo"]
    semscraper = definitions.defs.resources["semscraper"]
    assert (dataforseo.login, dataforseo.password, semscraper.api_key) == (None, None, None)
    assert dataforseo.mode is None and semscraper.mode is None  # $SERP_ETL_MODE decides


def materialize_semscraper(data_dir, instance=None, **resource):
    return dg.materialize(
        semscraper_assets,
        partition_key=DAY,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(data_dir=str(data_dir), flatten_workers=1),
            "semscraper": SemScraperResource(
                collect_deadline_seconds=30, poll_seconds=1, **resource
            ),
        },
        raise_on_error=False,
    )


def test_one_materialization_fills_every_semscraper_table_and_a_rerun_creates_nothing(data_dir):
    result = materialize_semscraper(data_dir, keep_html=True)
    assert result.success
    sandbox = SemScraperSandbox(data_dir / "sandbox" / "semscraper.sqlite")
    assert sandbox.stats()["billed_scrapes"] == 3
    counts = row_counts(data_dir)
    assert set(views.table_views(Warehouse(data_dir))) == {
        "semscraper_locations",
        "semscraper_tasks",
        "semscraper_responses",
        "semscraper_serps",
        "semscraper_items",
        "semscraper_alerts",
    }
    assert set(counts) == EVERY_VIEW
    assert counts["semscraper_serps"] == 3 and counts["semscraper_items"] > 20
    with catalog.connect(data_dir) as con:
        html = con.execute("SELECT count(html) FROM semscraper_responses").fetchone()[0]
    assert html == 3
    meta = result.asset_materializations_for_node("semscraper__responses")[0].metadata
    assert meta["account_status"].value["done/fetched=True"] == 3

    assert materialize_semscraper(data_dir).success
    assert sandbox.stats()["billed_scrapes"] == 3
    assert row_counts(data_dir) == counts


def test_the_budget_stops_the_run_before_anything_is_created(data_dir):
    result = materialize_semscraper(data_dir, budget_eur=0.00001)
    assert not result.success
    failure = str(result.get_step_failure_events()[0].event_specific_data.error)
    assert "would cost about 0.00008 EUR" in failure and "budget 0.00001 EUR" in failure
    sandbox = SemScraperSandbox(data_dir / "sandbox" / "semscraper.sqlite")
    assert sandbox.stats()["billed_scrapes"] == 0


def test_a_target_in_a_location_the_api_does_not_offer_is_named(data_dir):
    with open(data_dir / "targets.toml", "a") as targets:
        targets.write('\n[[semscraper]]\nkeyword = "k"\nlocation = "zz"\nlanguage = "zz"\n')
    result = materialize_semscraper(data_dir)
    failure = str(result.get_step_failure_events()[0].event_specific_data.error)
    assert "semscraper target #4 ('k'): 'zz' is not a location semscraper offers" in failure


def test_a_bad_target_after_a_good_run_fails_only_its_check_and_keeps_the_day(data_dir):
    """Today's data from an earlier run is intact: the run posts nothing, says why once (no
    stack trace), collects and flattens what the day has, and only the targets check fails."""
    assert materialize_semscraper(data_dir).success
    with open(data_dir / "targets.toml", "a") as targets:
        targets.write(
            '\n[[semscraper]]\nkeyword = "k"\nlocation = "zz"\nlanguage = "zz"\n'
            '[[semscraper]]\nkeyword = "m"\nlocation = "fr"\nlanguage = "fr"\n'
            "depth = 99\n"
        )
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_semscraper(data_dir, instance)
    assert result.success and not result.get_step_failure_events()
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} >= {
        "tasks",
        "responses",
        "items",
    }
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    refused = checks["targets_valid"]
    assert not refused.passed and refused.severity is dg.AssetCheckSeverity.ERROR
    assert "semscraper target #5 ('m'): depth" in refused.description
    assert "serp-etl targets check` lists every problem" in refused.description
    assert all(e.passed for name, e in checks.items() if name != "targets_valid")
    logs = instance.all_logs(result.run_id)
    said = [r for r in logs if "Nothing was posted" in r.user_message and r.level >= logging.ERROR]
    assert len(said) == 1 and not said[0].is_dagster_event  # once, as a line of its own
    assert not [r for r in logs if "Traceback" in r.user_message or r.error_info]
    tasks = result.asset_materializations_for_node("semscraper__tasks")[0].metadata
    assert tasks["posted_now"].value == 0 and "targets file" in tasks["not_posted_because"].value
    assert billed(data_dir) == 0 and row_counts(data_dir)["semscraper_items"] > 0


def test_a_bad_target_on_a_day_without_data_fails_its_run_in_one_message(data_dir):
    (data_dir / "targets.toml").write_text(
        '[[semscraper]]\nkeyword = "k"\nlocation = "fr"\nlanguage = "fr"\ndepth = 99\n'
    )
    result = materialize_semscraper(data_dir)
    (failure,) = result.get_step_failure_events()
    error = failure.event_specific_data.error
    assert failure.step_key == "semscraper__tasks" and error.cause is None
    assert "semscraper target #1 ('k'): depth" in error.message
    assert "serp-etl targets check" in error.message


def test_a_past_partition_posts_nothing_and_rebuilds_for_free(data_dir):
    from serp_etl.cli import main

    (data_dir / "targets.toml").write_text("not toml at all [[[")  # never read for a past day
    assert (
        main(
            [
                "--data-dir",
                str(data_dir),
                "import",
                "dataforseo",
                str(FIXTURES / "dataforseo_reference_example.json"),
                "--date",
                PAST,
            ]
        )
        == 0
    )
    result = materialize(data_dir, PAST)
    assert result.success
    meta = result.asset_materializations_for_node("dataforseo__tasks")[0].metadata
    assert meta["posted_now"].value == 0 and "past day" in meta["not_posted_because"].value
    assert billed(data_dir) == 0
    assert row_counts(data_dir)["dataforseo_serps"] == 1  # rebuilt from the imported response


def test_a_past_day_without_data_stays_unmaterialized(data_dir):
    """A backfill of a day nobody collected or imported: nothing turns green, nothing is
    written, nothing is snapshotted under that day's name (the lists are today's)."""
    result = materialize(data_dir, PAST)
    assert result.success
    assert result.get_asset_materialization_events() == []
    skipped = {
        event.step_key
        for event in result.all_events
        if event.event_type is dg.DagsterEventType.STEP_SKIPPED
    }
    assert {"dataforseo__responses", "dataforseo_flattened", "dataforseo__report"} <= skipped
    assert billed(data_dir) == 0
    assert not list((data_dir / "warehouse").rglob(f"date={PAST}"))


def test_the_partitions_start_with_the_data_dir_unless_configured(tmp_path, monkeypatch):
    from serp_etl.defs.partitions import START_DATE_ENV, partitions_start

    today = dt.date(2026, 11, 24)
    monkeypatch.delenv(START_DATE_ENV)
    assert partitions_start(tmp_path, today) == "2026-11-24"  # a newcomer: only today
    (tmp_path / "warehouse" / "dataforseo" / "responses" / "date=2026-06-01").mkdir(parents=True)
    (tmp_path / "warehouse" / "semscraper" / "tasks" / "date=2026-09-01").mkdir(parents=True)
    assert partitions_start(tmp_path, today) == "2026-06-01"  # the first day it holds
    monkeypatch.setenv(START_DATE_ENV, "2025-01-01")
    assert partitions_start(tmp_path, today) == "2025-01-01"
    monkeypatch.setenv(START_DATE_ENV, "2025-02-30")
    with pytest.raises(ValueError, match=START_DATE_ENV):
        partitions_start(tmp_path, today)


def test_a_process_that_loads_after_midnight_keeps_the_first_loads_start(tmp_path, monkeypatch):
    """A fresh data dir's run launched at 23:59:50 and its step process loaded at 00:00:09
    must agree on the partitions (the run's day was before the step's "today")."""
    from serp_etl.defs.partitions import START_DATE_ENV, partitions_start

    monkeypatch.delenv(START_DATE_ENV)
    launched = partitions_start(tmp_path, dt.date(2026, 12, 4))
    assert partitions_start(tmp_path, dt.date(2026, 12, 5)) == launched == "2026-12-04"
    assert (tmp_path / "state" / "partitions_start").read_text() == "2026-12-04\n"


def test_runs_count_their_calls_in_the_data_dirs_shared_limiter(data_dir):
    import sqlite3

    assert materialize(data_dir).success
    with sqlite3.connect(data_dir / "state" / "rate_limits.sqlite") as db:
        buckets = dict(db.execute("SELECT bucket, count(*) FROM calls GROUP BY bucket"))
        accounts = {row[0] for row in db.execute("SELECT DISTINCT account FROM calls")}
    assert buckets["/v3/serp/google/search_by_image/task_post"] == 1
    assert buckets["/v3/serp/google/search_by_image/tasks_ready"] >= 1
    assert len(accounts) == 1 and "sandbox" not in next(iter(accounts))  # a hash, not a name


def test_dataforseo_locations_and_languages_are_kept_as_reference_tables(data_dir):
    assert materialize(data_dir).success
    with catalog.connect(data_dir) as con:
        us = con.execute(
            "SELECT location_name, location_type, date FROM dataforseo_locations "
            "WHERE location_code = 2840"
        ).fetchall()
        japanese = con.execute(
            "SELECT language_code FROM dataforseo_languages WHERE language_name = 'Japanese'"
        ).fetchall()
    assert us == [("United States", "Country", dt.date.fromisoformat(DAY))]
    assert japanese == [("ja",)]


def test_spend_is_reconciled_per_partition_for_both_providers(data_dir):
    dataforseo_run = materialize(data_dir)
    semscraper_run = materialize_semscraper(data_dir)
    for run in (dataforseo_run, semscraper_run):
        (check,) = [
            e for e in run.get_asset_check_evaluations() if e.check_name == "spend_reconciled"
        ]
        assert check.passed, check.description
        assert check.partition == DAY  # the day it is about, not the table as a whole


def test_the_dataforseo_budget_is_a_resource_setting(data_dir):
    result = dg.materialize(
        dataforseo_assets,
        partition_key=DAY,
        raise_on_error=False,
        resources={
            "warehouse": WarehouseResource(data_dir=str(data_dir)),
            "dataforseo": DataForSEOResource(budget_usd=0.001),
        },
    )
    failure = str(result.get_step_failure_events()[0].event_specific_data.error)
    assert "budget 0.001 USD a day" in failure and billed(data_dir) == 0


def test_the_tasks_table_says_where_each_task_stands_after_collection(data_dir):
    assert materialize(data_dir).success
    with catalog.connect(data_dir) as con:
        states = dict(
            con.execute(
                "SELECT state, count(*) FROM dataforseo_tasks WHERE date = ? GROUP BY state", [DAY]
            ).fetchall()
        )
    assert "posted" not in states and sum(states.values()) == 6
    assert set(states) <= {"fetched", "empty"}


def test_a_first_run_on_the_sandbox_passes_every_check(data_dir):
    result = materialize(data_dir)
    assert result.success
    failed = [
        (e.check_name, e.description) for e in result.get_asset_check_evaluations() if not e.passed
    ]
    assert failed == []


def test_with_the_sandbox_drift_on_the_drift_check_warns_and_says_what_to_do(data_dir, monkeypatch):
    monkeypatch.setenv(DRIFT_ENV, "1")
    result = materialize(data_dir)
    (drift,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "schema_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert "consider declaring them" in drift.description
    assert set(drift.metadata["undocumented_item_types"].value) == {"related_searches"}


def test_serp_etl_logs_reach_the_run_logs_with_the_projects_instance(data_dir):
    settings = yaml.safe_load(instance_home.INSTANCE_CONFIG.read_text())
    instance = dg.DagsterInstance.ephemeral(settings={"python_logs": settings["python_logs"]})
    result = dg.materialize(
        dataforseo_assets,
        partition_key=DAY,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(data_dir=str(data_dir)),
            "dataforseo": DataForSEOResource(collect_deadline_seconds=30, poll_seconds=1),
        },
    )
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(f"{DAY}: 6 tasks to collect" in message for message in messages)


def test_an_asset_scaffolded_by_dg_is_loaded_beside_ours(tmp_path):
    project = project_copy(tmp_path)  # the scaffold writes into the defs folder
    run_dg(project, "scaffold", "defs", "dagster.asset", "my_asset.py")
    assert (project / "serp_etl" / "defs" / "my_asset.py").is_file()
    listed = json.loads(run_dg(project, "list", "defs", "--json"))
    assets = {asset["asset_key"] for asset in listed["assets"]}
    assert "my_asset" in assets  # was written, then silently ignored
    assert {"dataforseo/organic", "semscraper/items"} <= assets


def test_an_installed_package_loads_the_same_definitions(monkeypatch, tmp_path):
    # Installed from a wheel, no pyproject.toml lies beside the package: the same folder loads.
    monkeypatch.setattr(definitions, "PACKAGE", tmp_path / "site-packages" / "serp_etl")
    installed = definitions.load_definitions()
    assert set(installed.resolve_asset_graph().get_all_asset_keys()) == set(
        definitions.defs.resolve_asset_graph().get_all_asset_keys()
    )
    assert sorted(installed.resources) == sorted(definitions.defs.resources)


def test_dg_loads_the_definitions_as_shipped():
    repo = Path(definitions.__file__).parent.parent
    run_dg(repo, "check", "defs")
    listed = run_dg(repo, "list", "defs", "--json")
    assert "dataforseo/organic" in listed and "semscraper_late_results" in listed


def test_a_backfill_of_several_days_flattens_them_in_one_run_each_day_reported(tmp_path):
    from serp_etl_tests import sandbox_days

    warehouse = sandbox_days.build(tmp_path / "data")
    days = sandbox_days.DAYS
    flat = [a for a in dataforseo_assets if FLAT_KEYS["organic"] in a.keys]
    assert flat[0].backfill_policy == dg.BackfillPolicy.single_run()
    job = dg.Definitions(
        assets=flat,
        jobs=[dg.define_asset_job("reflatten", selection=list(FLAT_KEYS.values()))],
        resources={"warehouse": WarehouseResource(data_dir=str(warehouse.data_dir))},
    ).resolve_job_def("reflatten")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        },
    )
    assert result.success and len(instance.get_runs()) == 1
    with catalog.connect(warehouse.data_dir) as connection:
        organic = dict(
            connection.execute(
                "SELECT CAST(date AS VARCHAR), count(*) FROM dataforseo_organic GROUP BY 1"
            ).fetchall()
        )
    records = instance.fetch_materializations(FLAT_KEYS["organic"], limit=100).records
    counts = {
        r.partition_key: r.asset_materialization.metadata["dagster/partition_row_count"].value
        for r in records
    }
    assert counts == organic and len(counts) == len(days)  # each day its own figure
    check = dg.AssetCheckKey(FLAT_KEYS["serps"], "items_accounted_for")
    evaluations = [
        e for e in result.all_events if e.event_type is dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    assert (
        sorted(
            e.asset_check_evaluation_data.partition
            for e in evaluations
            if e.asset_check_evaluation_data.asset_check_key == check
        )
        == days
    )
    assert all(e.asset_check_evaluation_data.passed for e in evaluations)
