"""``serp-etl run``: a day's jobs from the terminal, kept in the Dagster instance's history,
ending with a summary a user can read (result, what was posted and its cost, checks by name,
reports), without Dagster's beta and supersession warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from serp_etl.runner import CheckOutcome, RunSummary
from serp_etl_tests.conftest import TEST_START_DATE, TODAY

REPOSITORY = Path(__file__).parent.parent


def serp_etl_run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serp_etl.cli", "--data-dir", str(data_dir), "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=data_dir,
        env={
            **os.environ,
            "DAGSTER_HOME": str(data_dir / "dagster"),
            **env,
            "PYTHONPATH": str(REPOSITORY),
        },
    )


def test_a_run_from_the_terminal_ends_with_its_summary_and_stays_in_the_history(data_dir):
    (data_dir / "dagster").mkdir()
    (data_dir / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = serp_etl_run(data_dir, "--provider", "dataforseo")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"dataforseo_daily {TODAY}: SUCCESS in ")
    assert lines[1] == "  posted 6 tasks, 0.0054 USD"
    assert lines[2] == (
        "  checks: 7 passed (collection_complete, decoding_repairs, "
        "items_accounted_for, my_sites_unchanged, schema_drift, "
        "spend_reconciled, targets_valid), 0 failed"
    )
    assert lines[3] == f"  report: {data_dir / 'reports' / 'dataforseo' / TODAY}.html"
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr
    with dg.DagsterInstance.from_config(str(data_dir / "dagster")) as instance:
        (run,) = instance.get_runs()
        assert run.job_name == "dataforseo_daily" and run.tags["dagster/partition"] == TODAY
        assert run.status is dg.DagsterRunStatus.SUCCESS

    again = serp_etl_run(data_dir, "--provider", "dataforseo")
    assert again.returncode == 0 and "  posted 0 tasks, 0.00 USD" in again.stdout

    # A bad target: the run keeps the day, says which check failed and why, exits 1.
    with open(data_dir / "targets.toml", "a") as targets:
        targets.write(
            '\n[[dataforseo]]\nimage_url = "ftp://x"\nlocation_code = 2840\nlanguage_code = "en"\n'
        )
    refused = serp_etl_run(data_dir, "--provider", "dataforseo")
    assert refused.returncode == 1
    assert "    FAILED targets_valid (ERROR): " in refused.stdout
    assert "dataforseo target #7 ('ftp://x'): image_url must be" in refused.stdout


def test_a_days_alerts_are_news_in_the_summary_not_a_failure():
    summary = RunSummary(
        "semscraper_daily",
        "2026-03-03",
        "0123456789",
        "SUCCESS",
        1.0,
        checks=[
            CheckOutcome(
                "my_sites_unchanged",
                False,
                "WARN",
                "1 alert on 2026-03-03:\nshop.example for 'x' (fr) rose 8 places",
            ),
            CheckOutcome("schema_drift", True, "WARN", ""),
        ],
    )
    assert summary.ok and summary.lines()[1:] == [
        "  checks: 1 passed (schema_drift), 0 failed",
        "  my sites: 1 alert on 2026-03-03:",
        "    shop.example for 'x' (fr) rose 8 places",
    ]


def test_a_day_before_the_partitions_start_names_the_setting(data_dir):
    before = "2025-12-31"
    assert before < TEST_START_DATE
    done = serp_etl_run(data_dir, "--date", before)
    assert done.returncode == 2
    assert f"{before} is before the partitions' start ({TEST_START_DATE})" in done.stderr
    assert f"SERP_ETL_START_DATE={before}" in done.stderr
    assert not (data_dir / "dagster" / "history").exists()  # no run was created
