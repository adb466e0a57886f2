"""A day's notable changes for my sites and images: one row per alert, from the views
``my_ranks`` and ``image_reuse`` (``serp_etl.analysis``) of the day, against thresholds the
user sets in the environment.

Kinds, for a target and one of my domains, against the target's previous collected day within
the ``LOOKBACK_DAYS`` before (a target's first collected day has nothing to compare with, and
raises none):

=================  ==================================================================
left_serp          ranked the day before, not at all today
entered_serp       not ranked the day before, ranked today
entered_top10      outside the top 10 (or absent) the day before, in it today
left_top10         in the top 10 the day before, outside it (still ranked) today
rank_rise          up by at least ``SERP_ETL_ALERT_MIN_RANK_CHANGE`` places
rank_drop          down by at least that many places
new_image_host     a domain not among the image's allowed ones shows it, for the first time
                   in the ``LOOKBACK_DAYS`` before
=================  ==================================================================

A domain's move raises one alert, of the first kind of this list that applies and is
wanted (``SERP_ETL_ALERT_KINDS``). An alert's id is its day, kind, target and domain (and
the page, for a new host), not its figures: the same change found again by a later run of
the day is the same alert, delivered once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

ALERTS_TABLE = "alerts"
ALERTS_CHECK = "my_sites_unchanged"  # the check that shows a day's alerts in the UI (WARN)
RANK_KINDS = ("left_serp", "entered_serp", "entered_top10", "left_top10", "rank_rise", "rank_drop")
HOST_KIND = "new_image_host"
KINDS = (*RANK_KINDS, HOST_KIND)
TOP = 10
# How far back "the previous collected day" and "seen before" reach for a day's alerts: what
# they read does not grow with the history (a target collected again after longer has nothing
# to compare with; a site showing an image again after longer is new again).
LOOKBACK_DAYS = 31
MIN_RANK_CHANGE_ENV = "SERP_ETL_ALERT_MIN_RANK_CHANGE"
KINDS_ENV = "SERP_ETL_ALERT_KINDS"

ALERTS_DESCRIPTION = (
    "One row per notable change of my sites and images in the day's SERPs against the "
    "target's previous collected day (my rank moved, entered or left the top 10 or the SERP; "
    "a new site shows my image), from my_ranks_between and image_reuse_between; delivered to "
    "the configured webhook and e-mail, each alert once."
)
ALERTS_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("kind", pa.string()),
        ("group_name", pa.string()),
        ("provider", pa.string()),
        ("target", pa.string()),
        ("location", pa.string()),
        ("language", pa.string()),
        ("device", pa.string()),
        ("domain", pa.string()),
        ("url", pa.string()),
        ("previous_date", pa.date32()),
        ("before", pa.int64()),
        ("after", pa.int64()),
        ("message", pa.string()),
    ]
)
ALERT_COLUMNS = {
    "alert_id": "The alert's key: day, kind, target and domain (and page, for a new host); "
    "the same change found again is the same alert, delivered once.",
    "kind": "left_serp, entered_serp, entered_top10, left_top10, rank_rise, rank_drop or "
    "new_image_host (README: alerts).",
    "group_name": "The group (project or client) of the target, from [[sites]].",
    "provider": "The provider of the SERP.",
    "target": "The keyword or image URL.",
    "location": "The target's location.",
    "language": "The target's language.",
    "device": "The target's device.",
    "domain": "My domain as configured (rank kinds), or the domain showing my image.",
    "url": "The page that ranks today (the one that ranked, for left_serp), or that shows "
    "the image.",
    "previous_date": "The target's previous collected day, compared with.",
    "before": "My best organic rank on the previous collected day (NULL: absent).",
    "after": "My best organic rank on the day (NULL: absent); for a new host, its page's rank.",
    "message": "The alert in words, as delivered.",
}


class AlertSettingsError(ValueError):
    """An alert setting in the environment that cannot be used, named with its variable."""


@dataclass(frozen=True)
class Thresholds:
    min_rank_change: int = 3
    kinds: frozenset[str] = field(default_factory=lambda: frozenset(KINDS))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Thresholds:
        places = environ.get(MIN_RANK_CHANGE_ENV, "").strip() or "3"
        if not places.isdigit() or int(places) < 1:
            raise AlertSettingsError(
                f"{MIN_RANK_CHANGE_ENV} must be a whole number of places "
                f"(1 or more), got {places!r}"
            )
        text = environ.get(KINDS_ENV, "").strip()
        kinds = {k.strip() for k in text.split(",") if k.strip()} if text else set(KINDS)
        unknown = sorted(kinds - set(KINDS))
        if unknown:
            raise AlertSettingsError(
                f"{KINDS_ENV}: unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}"
            )
        return cls(int(places), frozenset(kinds))


def rank_kind(before: int | None, after: int | None, thresholds: Thresholds) -> str | None:
    """The alert a move from rank ``before`` to ``after`` raises (None: absent), if any."""
    applies = {
        "left_serp": before is not None and after is None,
        "entered_serp": before is None and after is not None,
        "entered_top10": after is not None and after <= TOP and (before is None or before > TOP),
        "left_top10": before is not None and before <= TOP and after is not None and after > TOP,
        "rank_rise": before is not None
        and after is not None
        and before - after >= thresholds.min_rank_change,
        "rank_drop": before is not None
        and after is not None
        and after - before >= thresholds.min_rank_change,
    }
    return next((kind for kind in RANK_KINDS if applies[kind] and kind in thresholds.kinds), None)


def alert_id(day: str, kind: str, *key: object) -> str:
    text = "\x1f".join(str(part) for part in (day, kind, *key))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _where(row: Mapping) -> str:
    return ", ".join(str(row[k]) for k in ("location", "language", "device") if row.get(k))


def rank_message(kind: str, row: Mapping) -> str:
    before, after = row["previous_rank"], row["rank"]
    subject = f"{row['domain']} for {row['target']!r} ({_where(row)})"
    if kind == "left_serp":
        return f"{subject} left the SERP (was #{before})"
    if kind == "entered_serp":
        return f"{subject} entered the SERP at #{after}"
    if kind == "entered_top10":
        was = "absent" if before is None else f"#{before}"
        return f"{subject} entered the top {TOP}: {was} -> #{after}"
    if kind == "left_top10":
        return f"{subject} left the top {TOP}: #{before} -> #{after}"
    moved = "rose" if kind == "rank_rise" else "dropped"
    return f"{subject} {moved} {abs(before - after)} places: #{before} -> #{after}"


def host_message(row: Mapping) -> str:
    return (
        f"{row['domain'] or 'a page'} shows your image {row['image_url']} ({_where(row)}) "
        f"for the first time: {row['url']} (#{row['rank']})"
    )


def _rows(connection: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    cursor = connection.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def lookback(day: str) -> tuple[date, date]:
    """The days a day's alerts compare with: the ``LOOKBACK_DAYS`` before it, and itself."""
    last = date.fromisoformat(day)
    return last - timedelta(days=LOOKBACK_DAYS), last


def new_hosts(connection: duckdb.DuckDBPyConnection, provider: str, day: str) -> list[dict]:
    """The sites showing an image of mine on ``day`` and not in the lookback before: one row
    per image and domain, with its best-ranked page (a site that shows the image on two pages
    is one new host)."""
    return _rows(
        connection,
        """
        SELECT group_name, image_url, location, language, domain,
               arg_min(url, (rank, url)) AS url, min(rank) AS rank,
               any_value(previous_date) AS previous_date
        FROM image_reuse_between(?, ?)
        WHERE provider = ? AND date = ? AND is_new_domain AND domain IS NOT NULL
        GROUP BY ALL ORDER BY group_name, image_url, location, language, domain""",
        [*lookback(day), provider, day],
    )


# What names a rank alert (with its day and kind), in this order: not its figures.
_RANK_ALERT_KEY = ("group_name", "provider", "target", "location", "language", "device", "domain")


def day_alerts(
    connection: duckdb.DuckDBPyConnection, provider: str, day: str, thresholds: Thresholds
) -> pa.Table:
    """The alerts of ``provider``'s SERPs of ``day``, from the views ``connection`` sees."""
    rows = []
    window = lookback(day)
    for row in _rows(
        connection,
        "SELECT * FROM my_ranks_between(?, ?) WHERE provider = ? AND "
        "date = ? AND previous_date IS NOT NULL ORDER BY group_name, target, "
        "location, language, device, domain",
        [*window, provider, day],
    ):
        kind = rank_kind(row["previous_rank"], row["rank"], thresholds)
        if kind is None:
            continue
        key = {column: row[column] for column in _RANK_ALERT_KEY}
        rows.append(
            {
                "alert_id": alert_id(day, kind, *key.values()),
                "kind": kind,
                **key,
                "url": row["url"] if row["url"] is not None else row["previous_url"],
                "previous_date": row["previous_date"],
                "before": row["previous_rank"],
                "after": row["rank"],
                "message": rank_message(kind, row),
            }
        )
    if HOST_KIND in thresholds.kinds:
        for row in new_hosts(connection, provider, day):
            rows.append(
                {
                    "alert_id": alert_id(
                        day,
                        HOST_KIND,
                        row["group_name"],
                        provider,
                        row["image_url"],
                        row["location"],
                        row["language"],
                        row["domain"],
                    ),
                    "kind": HOST_KIND,
                    "group_name": row["group_name"],
                    "provider": provider,
                    "target": row["image_url"],
                    "location": row["location"],
                    "language": row["language"],
                    "device": "desktop",
                    "domain": row["domain"],
                    "url": row["url"],
                    "previous_date": row["previous_date"],
                    "before": None,
                    "after": row["rank"],
                    "message": host_message(row),
                }
            )
    return pa.Table.from_pylist(rows, schema=ALERTS_SCHEMA)


def is_backfill(day: str, today: date, max_age_days: int) -> bool:
    """Whether ``day`` is too old for its alerts to be news (a backfill's)."""
    return (today - date.fromisoformat(day)).days > max_age_days
