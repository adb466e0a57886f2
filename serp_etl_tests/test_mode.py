"""Live or sandbox is a decision, never a fallback, and one data dir never holds both."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from serp_etl.cli import main
from serp_etl.defs.resources import DataForSEOResource, WarehouseResource
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.state import READY_SECONDS_ENV
from serp_etl.sandbox.wsgi import serving
from serp_etl_tests.conftest import EXAMPLE_TARGETS, FIXTURES, TODAY
from serp_etl_tests.default_instances import dataforseo_assets

CREDENTIALS = (
    "DATAFORSEO_LOGIN",
    "DATAFORSEO_PASSWORD",
    "SEMSCRAPER_API_KEY",
    "SEMSCRAPER_HMAC_KEY",
    "SERP_ETL_MODE",
)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(READY_SECONDS_ENV, "0")
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    shutil.copy(EXAMPLE_TARGETS, tmp_path / "targets.toml")
    return tmp_path


@pytest.fixture
def live_api(tmp_path):
    """A DataForSEO API on loopback that stands in for the real one (only its URL differs)."""
    sandbox = DataForSEOSandbox(tmp_path / "remote" / "dataforseo.sqlite", ready_seconds=0)
    with serving(sandbox.app) as url:
        yield url, sandbox


def run(data_dir, run_config=None, **resource):
    return dg.materialize(
        dataforseo_assets,
        partition_key=TODAY,
        raise_on_error=False,
        resources={
            "warehouse": WarehouseResource(data_dir=str(data_dir), flatten_workers=1),
            "dataforseo": DataForSEOResource(**resource),
        },
        run_config=run_config,
    )


def failure(result) -> str:
    return str(result.get_step_failure_events()[0].event_specific_data.error)


def in_process_billed(data_dir) -> int:
    path = data_dir / "sandbox" / "dataforseo.sqlite"
    return DataForSEOSandbox(path).stats()["billed_tasks"] if path.exists() else 0


def test_run_config_for_one_field_keeps_the_credentials(data_dir, live_api, monkeypatch):
    url, remote = live_api
    monkeypatch.setenv("SERP_ETL_MODE", "live")
    monkeypatch.setenv("DATAFORSEO_LOGIN", LOGIN)
    monkeypatch.setenv("DATAFORSEO_PASSWORD", PASSWORD)
    config = {
        "resources": {
            "dataforseo": {
                "config": {"base_url": url, "poll_seconds": 1, "collect_deadline_seconds": 30}
            }
        }
    }
    result = run(data_dir, run_config=config)
    assert result.success, failure(result)
    assert remote.stats()["billed_tasks"] == 6  # the live API was used, with the credentials
    assert in_process_billed(data_dir) == 0  # and no sandbox stood in for it


def test_live_without_a_credential_fails_before_any_call_naming_it(data_dir, live_api, monkeypatch):
    url, remote = live_api
    monkeypatch.setenv("DATAFORSEO_PASSWORD", PASSWORD)
    result = run(data_dir, mode="live", base_url=url)
    assert not result.success
    assert "DATAFORSEO_LOGIN" in failure(result)
    assert remote.stats()["billed_tasks"] == 0 and in_process_billed(data_dir) == 0
    assert remote.db().execute("SELECT count(*) FROM calls").fetchone()[0] == 0


def test_credentials_without_a_mode_are_a_question_not_a_guess(data_dir, monkeypatch):
    monkeypatch.setenv("DATAFORSEO_LOGIN", "me@example.com")
    result = run(data_dir)
    assert not result.success
    assert "SERP_ETL_MODE" in failure(result) and "DATAFORSEO_LOGIN" in failure(result)
    assert in_process_billed(data_dir) == 0


def test_an_unknown_mode_is_named(data_dir, monkeypatch):
    monkeypatch.setenv("SERP_ETL_MODE", "production")
    result = run(data_dir)
    assert not result.success and "'production'" in failure(result)


def test_with_nothing_set_the_sandbox_runs(data_dir):
    assert run(data_dir, poll_seconds=1, collect_deadline_seconds=30).success
    assert in_process_billed(data_dir) == 6


def test_sandbox_rows_never_land_in_a_live_data_dir_nor_the_reverse(
    data_dir, live_api, monkeypatch, tmp_path
):
    url, remote = live_api
    monkeypatch.setenv("DATAFORSEO_LOGIN", LOGIN)
    monkeypatch.setenv("DATAFORSEO_PASSWORD", PASSWORD)
    live = {"mode": "live", "base_url": url, "poll_seconds": 1, "collect_deadline_seconds": 30}
    assert run(data_dir, **live).success
    refused = run(data_dir, mode="sandbox", poll_seconds=1)
    assert not refused.success and "holds live data" in failure(refused)
    assert in_process_billed(data_dir) == 0

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(EXAMPLE_TARGETS, other / "targets.toml")
    assert run(other, mode="sandbox", poll_seconds=1, collect_deadline_seconds=30).success
    billed = remote.stats()["billed_tasks"]
    refused = run(other, **live)
    assert not refused.success and "holds sandbox data" in failure(refused)
    assert remote.stats()["billed_tasks"] == billed


def test_import_writes_only_into_a_data_dir_of_its_mode(data_dir, monkeypatch, capsys):
    reference = str(FIXTURES / "dataforseo_reference_example.json")
    monkeypatch.setenv("SERP_ETL_MODE", "live")
    assert (
        main(
            ["--data-dir", str(data_dir), "import", "dataforseo", reference, "--date", "2026-03-01"]
        )
        == 0
    )
    monkeypatch.setenv("SERP_ETL_MODE", "sandbox")
    assert (
        main(
            ["--data-dir", str(data_dir), "import", "dataforseo", reference, "--date", "2026-03-02"]
        )
        == 2
    )
    assert "holds live data" in capsys.readouterr().err
    assert not (data_dir / "warehouse" / "dataforseo" / "responses" / "date=2026-03-02").exists()
