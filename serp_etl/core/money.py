"""The money rules every provider shares: which day may be paid for.

Both APIs return the SERP of the moment a task runs. A task posted for another day's partition
would be billed now and file today's SERP under the wrong date, so paid submission happens
only for the current UTC day. A schedule that fires just after midnight for the day that just
ended gets ``SUBMIT_GRACE`` to do so.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

SUBMIT_GRACE = timedelta(minutes=30)


def closed_day_reason(partition: str, now: datetime) -> str | None:
    """Why nothing may be posted for ``partition`` at ``now`` (one line), or None if it may."""
    day = date.fromisoformat(partition)
    now = now.astimezone(UTC)
    today = now.date()
    if day == today:
        return None
    midnight = datetime.combine(today, time(), UTC)
    if day == today - timedelta(days=1) and now - midnight < SUBMIT_GRACE:
        return None
    if day > today:
        return (f"{partition} is in the future (today is {today} UTC): nothing is posted "
                "before its day")
    return (f"{partition} is a past day (today is {today} UTC) and the APIs return only "
            "today's SERP: nothing is posted; collecting and flattening it still run")
