"""The files a data dir starts from, shipped in the package (``serp_etl/project/``): the
example targets file and the project's Dagster home (``serp_etl.instance_home``).

``serp-etl init`` writes the missing ones into a data dir, and ``serp-etl run`` (the quick
start) does the same before its first run; a file that exists is the user's, never touched
(but for the config of a Dagster home an earlier serp-etl made, which is upgraded).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from serp_etl.core.parquet import publish_text
from serp_etl.core.targets import TARGETS_FILE
from serp_etl.instance_home import prepare_home

EXAMPLE_TARGETS = files("serp_etl") / "project" / TARGETS_FILE


def init_data_dir(data_dir: Path, dagster_home: Path | None = None) -> list[str]:
    """Write the example targets file into ``data_dir`` where it is missing and make (or
    upgrade) the project's Dagster home, ``<data dir>/dagster``; with ``dagster_home``, the
    user's own home instead, given no config of ours (``instance_home.prepare_home``). What
    was done, a line each."""
    target = data_dir / TARGETS_FILE
    if target.exists():
        lines = [f"{target}: kept (it is yours)"]
    else:
        publish_text(target, EXAMPLE_TARGETS.read_text(encoding="utf-8"))
        lines = [f"{target}: written from the example"]
    if dagster_home is None:
        return lines + prepare_home(data_dir / "dagster")
    return lines + prepare_home(dagster_home, write_config=False)
