"""Where the state lives: SQLite files in the data dir (the default), or the one database that
``SERP_ETL_STATE_URL`` names (``postgresql+psycopg://user:password@host/db``), shared by every
host of a deployment. The URL holds a secret: it is read from the environment, never logged
(``Database.describe`` hides its password)."""

from __future__ import annotations

import os
from pathlib import Path

STATE_URL_ENV = "SERP_ETL_STATE_URL"


def state_url() -> str | None:
    return os.environ.get(STATE_URL_ENV) or None


def state_location(data_dir: Path | str, name: str) -> Path | str:
    """The state database for ``name`` (ledger, rate_limits): the URL when one is set, else
    ``<data dir>/state/<name>.sqlite``."""
    return state_url() or Path(data_dir) / "state" / f"{name}.sqlite"
