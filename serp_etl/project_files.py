"""The files a data dir starts from, shipped in the package (``serp_etl/project/``): the
example targets file and the project's Dagster instance config (its storage, its logs).

``serp-etl init`` writes the missing ones into a data dir, and ``serp-etl run`` (the quick
start) does the same before its first run; a file that exists is the user's, never touched.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from serp_etl.core.parquet import publish_text
from serp_etl.core.targets import TARGETS_FILE

PROJECT = files("serp_etl") / "project"
EXAMPLE_TARGETS = PROJECT / TARGETS_FILE
INSTANCE_CONFIG = PROJECT / "dagster.yaml"


def init_data_dir(data_dir: Path, instance: bool = True) -> list[str]:
    """Write the example targets file into ``data_dir`` and, with ``instance``, the instance
    config into ``<data dir>/dagster`` where they are missing; what was done, a line each."""
    lines = []
    files_ = [(EXAMPLE_TARGETS, data_dir / TARGETS_FILE)]
    if instance:
        files_.append((INSTANCE_CONFIG, data_dir / "dagster" / "dagster.yaml"))
    for source, target in files_:
        if target.exists():
            lines.append(f"{target}: kept (it is yours)")
            continue
        publish_text(target, source.read_text(encoding="utf-8"))
        lines.append(f"{target}: written from the example")
    return lines
