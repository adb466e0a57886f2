"""The state in a shared database: processes (and hosts) that share it never pay twice, keep
one rate limit on one clock, and a wiped database refuses to post."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from serp_etl.core.http import RateLimiter
from serp_etl.core.lost_state import StateDisagrees
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo import pipeline
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.sandbox.dataforseo.app import DataForSEOSandbox
from serp_etl.sandbox.wsgi import serving
from serp_etl.state.database import postgres_engine
from serp_etl.state.ledger import Ledger, TaskState
from serp_etl_tests import submit_runner
from serp_etl_tests.conftest import TODAY, collect_today


@pytest.mark.slow
def test_eight_processes_submitting_overlapping_targets_post_each_once(tmp_path, state_location):
    sandbox = DataForSEOSandbox(tmp_path / "sandbox.sqlite")
    rate_limits = (
        state_location
        if isinstance(state_location, str)
        else tmp_path / "state" / "rate_limits.sqlite"
    )
    total = 275
    with serving(sandbox.app) as base_url:
        exits = submit_runner.race(
            state_location, rate_limits, base_url, TODAY, datetime.now(UTC), total=total
        )
    assert exits == [0] * 8
    posted, distinct = (
        sandbox.db().execute("SELECT count(*), count(DISTINCT tag) FROM tasks").fetchone()
    )
    assert (posted, distinct) == (total, total)  # 0 duplicate paid POSTs
    with Ledger(state_location) as ledger:
        tasks = ledger.tasks("dataforseo", TODAY)
    assert len(tasks) == total and {t.state for t in tasks} == {TaskState.POSTED}
    assert len({t.task_id for t in tasks}) == total


def test_rate_limits_on_postgres_read_the_database_clock(postgres_url, monkeypatch):
    """Two hosts, one an hour ahead: the window is the database's, so the second host waits."""
    limits = {"task_get": 3}
    with RateLimiter(postgres_url, "dataforseo:x", limits) as here:
        for _ in range(3):
            assert here.acquire("task_get") == 0
    skewed = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: skewed)
    with RateLimiter(postgres_url, "dataforseo:x", limits) as ahead:
        assert 0 < ahead._take("task_get", ahead._clock()) <= 60
        # A Retry-After told to one host holds back every host of the account.
        ahead.pause("tasks_ready", 120)
    with RateLimiter(postgres_url, "dataforseo:x", {"tasks_ready": 20}) as other:
        assert 100 < other._take("tasks_ready", other._clock()) <= 120


def test_a_wiped_postgres_ledger_refuses_to_post_and_names_the_store(
    tmp_path, postgres_url, client, sandbox, clock, targets
):
    secret_url = postgres_url.replace("postgres:@", "postgres:s3cret@")
    warehouse = Warehouse(tmp_path / "data")
    with Ledger(postgres_url) as ledger:
        pipeline.submit(client, ledger, TODAY, targets, warehouse=warehouse)
        collect_today(client, ledger, clock)
        TABLES.publish_tasks(ledger, warehouse, TODAY)
    billed = sandbox.stats()["billed_tasks"]
    engine = postgres_engine(postgres_url)
    with engine.connect() as connection:
        connection.execute(sa.text("DELETE FROM tasks"))
    engine.dispose()

    # The test server trusts its socket: a password in the URL is taken and ignored.
    with Ledger(secret_url) as ledger, pytest.raises(StateDisagrees) as refused:
        pipeline.submit(client, ledger, TODAY, targets, warehouse=warehouse)
    message = str(refused.value)
    assert "postgresql://postgres:***@" in message and "s3cret" not in message
    assert sandbox.stats()["billed_tasks"] == billed
