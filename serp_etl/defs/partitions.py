"""One partition per collection date.

The partitions start on ``$SERP_ETL_START_DATE`` when it is set, otherwise on the first day the
data dir holds (its earliest tasks or responses), otherwise today: a newcomer sees one day,
not hundreds of "missing" days that could not be paid for anyway (only today's SERP can be
bought), and imports of older days widen the range to include them. ``end_offset=1`` makes
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
    earliest = Warehouse(data_dir).earliest_day()
    return min(earliest, today.isoformat()) if earliest else today.isoformat()


daily_partitions = dg.DailyPartitionsDefinition(
    start_date=partitions_start(default_data_dir(), datetime.now(UTC).date()), end_offset=1)
