"""After a day's alerts are computed: record them in the outbox for each configured channel
and deliver them (``delivery``), or, in a dry run, only say what would be sent.

Settings, from the environment (README, "My sites and alerts"):

- ``SERP_ETL_ALERT_MIN_RANK_CHANGE``, ``SERP_ETL_ALERT_KINDS``: what is an alert (``alerts``)
- ``SERP_ETL_ALERT_WEBHOOK_URL`` ... ``SERP_ETL_ALERT_SMTP_HOST`` ...: where (``channels``)
- ``SERP_ETL_ALERT_DIGEST=1``: one message per provider and day, listing its alerts, and one
  on a day without any ("no change"); else one message per alert, and none on a quiet day
- ``SERP_ETL_ALERT_DRY_RUN=1``: log what would be sent; send and record nothing
- ``SERP_ETL_ALERT_MAX_AGE_DAYS`` (default 2): a day older than this is a backfill's, its
  alerts are stored in the table and shown, not sent (a 30-day backfill sends no flood)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa

from serp_etl.my_sites.alerts import AlertSettingsError, Thresholds, is_backfill
from serp_etl.my_sites.channels import Channel, channels_from_env
from serp_etl.my_sites.delivery import (
    QUIET_KIND,
    DeliveryReport,
    Record,
    deliver,
    messages,
    open_outbox,
)

DIGEST_ENV = "SERP_ETL_ALERT_DIGEST"
DRY_RUN_ENV = "SERP_ETL_ALERT_DRY_RUN"
MAX_AGE_ENV = "SERP_ETL_ALERT_MAX_AGE_DAYS"


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no"):
        raise AlertSettingsError(f"{name} must be 1 or 0, got {value!r}")
    return value in ("1", "true", "yes")


@dataclass(frozen=True)
class AlertSettings:
    thresholds: Thresholds = field(default_factory=Thresholds)
    channels: tuple[Channel, ...] = ()
    digest: bool = False
    dry_run: bool = False
    max_age_days: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AlertSettings:
        age = environ.get(MAX_AGE_ENV, "").strip() or "2"
        if not age.isdigit():
            raise AlertSettingsError(f"{MAX_AGE_ENV} must be a number of days, got {age!r}")
        return cls(
            Thresholds.from_env(environ),
            tuple(channels_from_env(environ)),
            _flag(environ, DIGEST_ENV),
            _flag(environ, DRY_RUN_ENV),
            int(age),
        )


@dataclass
class Notified:
    """What became of a day's alerts."""

    recorded: int = 0  # new outbox records
    delivery: DeliveryReport | None = None
    would_send: list[str] = field(default_factory=list)  # a dry run's messages
    not_sent_because: str | None = None

    def metadata(self) -> dict:
        if self.not_sent_because:
            return {"alerts_not_sent_because": self.not_sent_because}
        if self.would_send:
            return {"alerts_dry_run_messages": len(self.would_send)}
        if self.delivery is None:  # nothing to send
            return {}
        return {
            "alerts_delivered": self.delivery.delivered,
            "alerts_retrying": self.delivery.retrying,
            "alerts_failed": self.delivery.failed,
            "alerts_unsure": self.delivery.unsure,
        }


def day_rows(provider: str, day: str, alerts: pa.Table, digest: bool) -> list[dict]:
    """The day's alerts as the outbox keeps them; in a digest, a quiet day's one record."""
    rows = [{**row, "date": day} for row in alerts.to_pylist()]
    if digest and not rows:
        rows = [
            {
                "alert_id": f"{QUIET_KIND}-{provider}-{day}",
                "kind": QUIET_KIND,
                "provider": provider,
                "date": day,
                "message": f"No change for your sites and images on {day} ({provider}).",
            }
        ]
    return rows


def preview(rows: list[dict], settings: AlertSettings) -> list[str]:
    """What each configured channel would be sent for ``rows`` (a day's, from ``day_rows``):
    the webhook's JSON, the e-mail as sent; without a channel, the messages' text."""
    records = [
        Record(row["alert_id"], "dry run", row["date"], row, "pending", 0, None) for row in rows
    ]
    found = [message for message, _ in messages(records, settings.digest)]
    if not settings.channels:
        return [f"(no channel configured) {m.subject}\n{m.text}" for m in found]
    return [
        f"to {channel.describe()}:\n{channel.preview(m)}"
        for channel in settings.channels
        for m in found
    ]


def notify_day(
    data_dir: str,
    provider: str,
    day: str,
    alerts: pa.Table,
    settings: AlertSettings,
    today: date,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Notified:
    """Record and deliver the day's alerts as ``settings`` say (see the module's text)."""
    rows = day_rows(provider, day, alerts, settings.digest)
    if not rows:
        return Notified()
    if is_backfill(day, today, settings.max_age_days):
        return Notified(
            not_sent_because=f"{day} is more than {settings.max_age_days} days "
            f"old: its alerts are kept in the table, not sent ({MAX_AGE_ENV})"
        )
    if settings.dry_run:
        return Notified(would_send=preview(rows, settings))
    if not settings.channels:
        return Notified(not_sent_because="no channel configured (README: My sites and alerts)")
    with open_outbox(data_dir) as outbox:
        recorded = outbox.enqueue(rows, [channel.name for channel in settings.channels], clock())
        report = deliver(
            outbox, settings.channels, digest=settings.digest, clock=clock, sleep=sleep
        )
    return Notified(recorded, report)
