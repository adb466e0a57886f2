"""One partition per collection date.

The partitions start on ``$SERP_ETL_START_DATE`` when it is set, otherwise on the first day the
data dir holds (its earliest tasks or responses) or the day it was first loaded on, whichever
is earlier: a newcomer sees one day, not hundreds of "missing" days that could not be paid for
anyway (only today's SERP can be bought), and imports of older days widen the range to include
them. The day of the first load is recorded (``state/partitions_start``), never "today" again:
every process of a run loads the definitions itself, and one that loads after midnight must
not find the run's day before its start. ``end_offset=1`` makes
today's partition exist, so the daily schedule submits and collects for the day it runs on.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from serp_etl.core.warehouse import Warehouse, check_partition, default_data_dir

START_DATE_ENV = "SERP_ETL_START_DATE"


def partitions_start(data_dir: Path, today: date) -> str:
    configured = os.environ.get(START_DATE_ENV)
    if configured:
        try:
            return check_partition(configured)
        except ValueError as error:
            raise ValueError(f"{START_DATE_ENV}: {error}") from None
    first_load = _recorded_first_load(Path(data_dir), today)
    earliest = Warehouse(data_dir).earliest_day()
    return min(earliest, first_load) if earliest else first_load


def _recorded_first_load(data_dir: Path, today: date) -> str:
    """The day the data dir's definitions were first loaded: recorded by the first process
    (create-only, so two first processes keep one), read by every later one."""
    path = data_dir / "state" / "partitions_start"
    try:
        return check_partition(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        path.unlink(missing_ok=True)  # not a date: recorded anew
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(today.isoformat() + "\n")
        try:
            os.link(temp, path)  # create-only: a first process's record stands
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
        return check_partition(path.read_text().strip())
    except OSError:
        return today.isoformat()  # a data dir this process cannot write: today, unrecorded


daily_partitions = dg.DailyPartitionsDefinition(
    start_date=partitions_start(default_data_dir(), datetime.now(UTC).date()), end_offset=1
)
