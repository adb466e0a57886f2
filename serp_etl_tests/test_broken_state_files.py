"""State files that break: caches and logs are rebuilt with a warning, temp files of killed
writers are swept; only the ledger, which decides what is paid, stops a run."""

from __future__ import annotations

import logging
import subprocess
import sys

from serp_etl import catalog
from serp_etl.core.http import RateLimiter
from serp_etl.core.part_index import open_index
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.resources import DataForSEOResource
from serp_etl_tests.conftest import materialize_day
from serp_etl_tests.default_instances import dataforseo_assets

GARBAGE = b"this is not a database " * 400


def test_an_unreadable_rate_limit_log_is_set_aside_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "state" / "rate_limits.sqlite"
    path.parent.mkdir()
    path.write_bytes(GARBAGE)
    with (
        caplog.at_level(logging.WARNING),
        RateLimiter(path, "dataforseo:x", {"task_get": 2}) as limiter,
    ):
        assert limiter.acquire("task_get") == 0
    assert "rate_limits.sqlite was not readable" in caplog.text and "rebuilt" in caplog.text
    (aside,) = path.parent.glob("rate_limits.sqlite.unreadable-*")
    assert aside.read_bytes() == GARBAGE  # kept for a look, out of the way


def materialize(data_dir):
    return materialize_day(
        data_dir,
        dataforseo_assets,
        {"dataforseo": DataForSEOResource(collect_deadline_seconds=30, poll_seconds=1)},
    )


def test_a_run_goes_through_garbled_caches_with_a_warning(data_dir, caplog):
    assert materialize(data_dir).success
    for name in ("parts.sqlite", "rate_limits.sqlite"):
        for stale in (data_dir / "state").glob(f"{name}*"):
            stale.unlink()
        (data_dir / "state" / name).write_bytes(GARBAGE)
    with caplog.at_level(logging.WARNING, logger="serp_etl"):
        result = materialize(data_dir)
    assert result.success  # at once: no retries, no failure
    for name in ("parts.sqlite", "rate_limits.sqlite"):
        assert f"{name} was not readable" in caplog.text
        assert list((data_dir / "state").glob(f"{name}.unreadable-*"))
    with open_index(Warehouse(data_dir)) as index:  # readable again, and filled
        assert index.execute("SELECT count(*) FROM parts").scalar_one() > 0


def test_temp_files_of_a_killed_views_writer_are_swept(data_dir):
    assert materialize(data_dir).success
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)  # a process that has ended
    left = [
        data_dir / f".serp.duckdb.{pid}.abcd1234.tmp",
        data_dir / f".serp.duckdb.{pid}.abcd1234.tmp.wal",
        data_dir / "state" / f".query_views.duckdb.{pid}.abcd1234.tmp",
    ]
    for path in left:
        path.write_bytes(b"half a file")
    (data_dir / "serp.duckdb").unlink()  # the next readers write the views again
    (data_dir / "state" / "query_views.duckdb").unlink(missing_ok=True)
    with catalog.connect(data_dir) as connection:
        assert connection.execute("SELECT count(*) FROM dataforseo_serps").fetchone()[0] > 0
    with catalog.query_connection(data_dir) as connection:
        assert connection.execute("SELECT count(*) FROM dataforseo_serps").fetchone()[0] > 0
    assert [path for path in left if path.exists()] == []
