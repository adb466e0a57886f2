"""The project's Dagster home (``<data dir>/dagster``): made, or upgraded, by ``serp-etl init``
and the quick start's ``serp-etl run``, with Dagster's own SQLite storage and public config.

Dagster's SQLite storages check for their tables, create them and stamp the alembic revision
without any lock: two processes opening a home without storage at once (two first runs, a run
and ``dagster dev``) can stamp two heads, and every later run then fails. So the storage is
made here before any Dagster process can use the home, one serp-etl process at a time: in a
staging folder, moved in whole, and the home's ``dagster.yaml`` published last. A Dagster
process that finds the config finds the storage made.

Homes made by serp-etl before this named their storage class ``serp_etl.dagster_instance`` and
kept it under ``storage/``: an upgrade links ``history`` and ``schedules`` to those folders
(relative links, nothing moved, so a ``dagster dev`` still running on the old config keeps
writing to the same files) and takes that storage entry out of the config.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

import yaml

from serp_etl.core.parquet import publish_text
from serp_etl.state.locking import exclusive_lock
from serp_etl.storage.local import fsync_dir

# The home's config as the package ships it (storage, pools, logs; serp_etl/project/).
INSTANCE_CONFIG = files("serp_etl") / "project" / "dagster.yaml"
CONFIG_FILE = "dagster.yaml"
FORMER_STORAGE_MODULE = "serp_etl.dagster_instance"
# Dagster's SQLite storage folders under a home's base dir (runs and event logs; schedules).
STORAGE_DIRS = ("history", "schedules")
STAGING_PREFIX = ".staging-"
# The config keys that choose a storage other than Dagster's default SQLite in the home.
STORAGE_KEYS = {"storage", "run_storage", "event_log_storage", "schedule_storage"}


class InstanceHomeError(Exception):
    """A home that cannot be made or upgraded without risking its run history."""


def prepare_home(home: Path, write_config: bool = True) -> list[str]:
    """Make ``home`` a serp-etl Dagster home where it has no config (``write_config``), or
    upgrade the config of a home serp-etl made before. A config of the user's is left as it
    is; if it keeps Dagster's default storage (SQLite in the home), that storage is made where
    missing, as for a new home. What was done, a line each."""
    config = home / CONFIG_FILE
    if not write_config and not config.exists():
        return []
    home.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(home / ".init.lock"):
        if config.exists():
            settings = _read_config(config)
            former = _former_storage(settings, home)
            if former is None:
                if not STORAGE_KEYS & settings.keys():  # Dagster's default: SQLite in the home
                    _make_storage(home, former=None)
                return [f"{config}: kept (it is yours)"]
            _make_storage(home, former=former)
            publish_text(config, _upgraded_config(settings))
            return [f"{config}: upgraded to Dagster's storage config (runs and schedules kept)"]
        _make_storage(home, former=None)
        publish_text(config, INSTANCE_CONFIG.read_text(encoding="utf-8"))
        return [f"{config}: written from the example"]


def _read_config(config: Path) -> dict:
    try:
        settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise InstanceHomeError(f"{config} is not YAML: {error}") from None
    if not isinstance(settings, dict | None):
        raise InstanceHomeError(f"{config} is not a mapping of Dagster settings")
    return settings or {}


def _former_storage(settings: dict, home: Path) -> Path | None:
    """Where serp-etl's former storage class kept a home's storage (its ``base_dir``, by
    default ``storage`` in the home), if the config names that class."""
    storage = settings.get("storage")
    custom = storage.get("custom") if isinstance(storage, dict) else None
    if not isinstance(custom, dict) or custom.get("module") != FORMER_STORAGE_MODULE:
        return None
    config = custom.get("config")
    base_dir = config.get("base_dir") if isinstance(config, dict) else None
    if base_dir is None:
        return home.resolve() / "storage"
    if isinstance(base_dir, dict) and set(base_dir) == {"env"}:
        base_dir = os.environ.get(base_dir["env"]) or ""
    # The former class read a relative base_dir against the working directory of whichever
    # process opened the home: which one held the runs cannot be told from here.
    if not isinstance(base_dir, str) or not Path(base_dir).is_absolute():
        raise InstanceHomeError(
            f"the former storage's base_dir is not an absolute path ({custom.get('config')!r}): "
            "write the folder that holds its history/ and schedules/ there, then run "
            "`serp-etl init` again"
        )
    return Path(base_dir)


def _upgraded_config(settings: dict) -> str:
    """The config without the former storage entry: the shipped file, comments and all, when
    the rest is what serp-etl shipped; the rest as it is (comments dropped) when edited."""
    rest = {key: value for key, value in settings.items() if key != "storage"}
    shipped = INSTANCE_CONFIG.read_text(encoding="utf-8")
    if rest == yaml.safe_load(shipped):
        return shipped
    return yaml.safe_dump(rest, sort_keys=False)


def _make_storage(home: Path, former: Path | None) -> None:
    """Give ``home`` each storage folder it lacks: a link to the former one where that exists,
    else a new, empty storage made apart and moved in whole."""
    missing = []
    for name in STORAGE_DIRS:
        target = home / name
        old = former / name if former is not None else None
        if old is not None and old.is_dir():
            if target.is_symlink() and target.resolve() == old.resolve():
                continue  # an upgrade cut short after its links: done
            if target.exists() or target.is_symlink():
                raise InstanceHomeError(
                    f"{home} has both {old} (its runs and schedules so far) and {target}: "
                    "move one of them away, then run `serp-etl init` again"
                )
            # Relative inside the home, so that moving the data dir keeps the link.
            old, here = old.resolve(), home.resolve()
            os.symlink(os.path.relpath(old, here) if old.is_relative_to(here) else old, target)
        elif not target.exists():
            missing.append(name)
    if missing:
        _move_new_storage(home, missing)
    fsync_dir(home)


def _move_new_storage(home: Path, names: list[str]) -> None:
    # Imported here: only a new home needs Dagster, and `serp-etl init` stays quick otherwise.
    import dagster as dg

    for stale in home.glob(f"{STAGING_PREFIX}*"):  # of an init killed midway (the lock is ours)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=home))
    try:
        (staging / CONFIG_FILE).write_text(INSTANCE_CONFIG.read_text(encoding="utf-8"))
        # Opening an instance creates its run, event log and schedule databases, stamped.
        dg.DagsterInstance.from_config(str(staging)).dispose()
        for name in names:
            try:
                os.rename(staging / name, home / name)
            except OSError as error:
                # A Dagster process made it meanwhile (a home not made by serp-etl): its own.
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
