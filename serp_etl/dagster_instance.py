"""The storage of the project's Dagster instance (``data/dagster/dagster.yaml`` names it).

Dagster's SQLite storages check for their tables, create them and stamp the alembic revision
without any lock: two processes starting on a fresh ``DAGSTER_HOME`` at once (two first runs,
a run and ``dagster dev``) can stamp two heads, and every later run then fails. This is Dagster's
own SQLite storage, created under an exclusive file lock so that the first process creates it
and the others find it made.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Field, StringSource
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

from serp_etl.state.locking import exclusive_lock


class SerializedInitSqliteStorage(DagsterSqliteStorage):
    """``DagsterSqliteStorage`` (runs, event logs, schedules under ``base_dir``, by default
    ``$DAGSTER_HOME/storage``), initialized by one process at a time."""

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SerializedInitSqliteStorage:
        base_dir = Path(
            config_value.get("base_dir") or Path(os.environ["DAGSTER_HOME"]) / "storage"
        )
        base_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(base_dir / ".init.lock"):
            return cls(str(base_dir), inst_data=inst_data)
