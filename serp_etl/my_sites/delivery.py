"""Each alert delivered at most once per channel: the outbox, a table of the state database
(``state/alerts.sqlite``, or ``SERP_ETL_STATE_URL``'s), holds one record per alert and
channel, with where its delivery stands:

=========  ====================================================================
pending    to be sent (again, from ``next_attempt_at`` on)
sending    claimed by a sender: another never takes it (a crash leaves it here,
           and it is not sent twice: ``serp-etl alerts`` lists it)
delivered  the receiver accepted it
failed     the receiver refused it for good, or it was tried ``MAX_ATTEMPTS`` times
unsure     it left and no answer came: it may have been delivered, so it stays
=========  ====================================================================

A sender claims its records in one statement before sending, so two senders (the alerts
step and the retry sensor, two runs of a day) never send one alert twice. A failed send is
retried at once with a short backoff, then by later senders with a longer one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from serp_etl.my_sites.alerts import HOST_KIND
from serp_etl.my_sites.channels import Channel, Message, Refused, Retryable, Unsure, redact
from serp_etl.state.database import TEXT, Database
from serp_etl.state.location import state_location

QUIET_KIND = "no_change"  # a digest's record of a day without alerts
_SERIALIZE = "serp-etl alert outbox"  # Postgres: one enqueue or claim at a time
IMMEDIATE_DELAYS = (1.0, 4.0)  # seconds before the 2nd and 3rd try of one send
LATER_DELAY_SECONDS = 300  # then 5 min, 10 min, ... (doubling, at most an hour)
MAX_ATTEMPTS = 9

_METADATA = sa.MetaData()
sa.Table(
    "alert_outbox",
    _METADATA,
    sa.Column("alert_id", TEXT, primary_key=True),
    sa.Column("channel", TEXT, primary_key=True),
    sa.Column("day", TEXT, nullable=False),
    sa.Column("alert", TEXT, nullable=False),  # the alert's row, as JSON
    sa.Column("state", TEXT, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("queued_at", TEXT, nullable=False),
    sa.Column("sent_at", TEXT),
    sa.Column("last_error", TEXT),
    sa.Index("alert_outbox_due", "channel", "state", "next_attempt_at"),
)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Record:
    alert_id: str
    channel: str
    day: str
    alert: dict
    state: str
    attempts: int
    last_error: str | None


class Outbox(Database):
    def __init__(self, location: Path | str | None) -> None:
        super().__init__(location, _METADATA)

    def enqueue(self, alerts: Iterable[dict], channels: Sequence[str], now: float) -> int:
        """Record each alert for each channel, unless it is recorded already; how many new."""
        rows = [
            {
                "alert_id": alert["alert_id"],
                "channel": channel,
                "day": alert["date"],
                "alert": json.dumps(alert, default=str, sort_keys=True),
                "now": now,
                "queued_at": _utc_now(),
            }
            for alert in alerts
            for channel in channels
        ]
        if not rows:
            return 0
        # Serialized with other senders' (on Postgres), so that the count is this one's.
        with self.transaction(serialize=_SERIALIZE):
            before = self._count()
            self.execute(
                "INSERT INTO alert_outbox (alert_id, channel, day, alert, state, attempts, "
                "next_attempt_at, queued_at) VALUES (:alert_id, :channel, :day, :alert, "
                "'pending', 0, :now, :queued_at) ON CONFLICT DO NOTHING",
                rows,
            )
            return self._count() - before

    def _count(self) -> int:
        return self.execute("SELECT count(*) FROM alert_outbox").scalar_one()

    def claim(self, channel: str, now: float) -> list[Record]:
        """Take the channel's due records for this sender alone."""
        with self.transaction(serialize=_SERIALIZE):
            due = self._select(
                "channel = :channel AND state = 'pending' AND next_attempt_at <= :now",
                {"channel": channel, "now": now},
            )
            if due:
                self.execute(
                    "UPDATE alert_outbox SET state = 'sending', attempts = attempts "
                    "+ 1 WHERE channel = :channel AND alert_id IN :ids",
                    {"channel": channel, "ids": [r.alert_id for r in due]},
                    expanding=["ids"],
                )
        return [replace(r, state="sending", attempts=r.attempts + 1) for r in due]

    def settle(
        self,
        records: Sequence[Record],
        state: str,
        error: str | None = None,
        next_attempt_at: float = 0.0,
    ) -> None:
        sent_at = _utc_now() if state == "delivered" else None
        with self.transaction():
            self.execute(
                "UPDATE alert_outbox SET state = :state, last_error = :error, "
                "next_attempt_at = :next, sent_at = coalesce(:sent_at, sent_at) "
                "WHERE alert_id = :alert_id AND channel = :channel",
                [
                    {
                        "state": state,
                        "error": error,
                        "next": next_attempt_at,
                        "sent_at": sent_at,
                        "alert_id": r.alert_id,
                        "channel": r.channel,
                    }
                    for r in records
                ],
            )

    def records(self, day: str | None = None) -> list[Record]:
        """Every record (of ``day``), by day, channel and alert."""
        if day is None:
            return self._select("true", {})
        return self._select("day = :day", {"day": day})

    def _select(self, where: str, params: dict) -> list[Record]:
        rows = self.execute(
            "SELECT alert_id, channel, day, alert, state, attempts, last_error FROM "
            f"alert_outbox WHERE {where} ORDER BY day, channel, alert_id",
            params,
        ).all()
        return [
            Record(
                r.alert_id, r.channel, r.day, json.loads(r.alert), r.state, r.attempts, r.last_error
            )
            for r in rows
        ]


def open_outbox(data_dir: Path | str) -> Outbox:
    return Outbox(state_location(data_dir, "alerts"))


def quiet_day(day: str) -> dict:
    """A digest's alert for a day without changes: one message says all is as it was."""
    return {
        "alert_id": f"{QUIET_KIND}-{day}",
        "kind": QUIET_KIND,
        "date": day,
        "message": f"No change for your sites and images on {day}.",
    }


def messages(records: Sequence[Record], digest: bool) -> list[tuple[Message, list[Record]]]:
    """The messages that deliver ``records``: one each, or one per day (``digest``)."""
    if not digest:
        return [(_message(r.day, [r.alert]), [r]) for r in records]
    days: dict[str, list[Record]] = {}
    for record in records:
        days.setdefault(record.day, []).append(record)
    return [(_message(day, [r.alert for r in rs]), rs) for day, rs in days.items()]


def _message(day: str, alerts: list[dict]) -> Message:
    changes = [a for a in alerts if a.get("kind") != QUIET_KIND]
    if len(alerts) == 1:
        subject = f"serp-etl {day}: {alerts[0]['message']}"
    else:
        subject = f"serp-etl {day}: {len(changes)} changes for your sites and images"
    lines = [f"serp-etl, {day}:"] + [
        # A new host's message names its page already.
        f"- {a['message']}"
        + (f"\n  {a['url']}" if a.get("url") and a.get("kind") != HOST_KIND else "")
        for a in alerts
    ]
    return Message(day, subject[:200], "\n".join(lines), alerts)


# A record's state after a send -> the report's count of it.
_COUNTED_AS = {
    "delivered": "delivered",
    "pending": "retrying",
    "failed": "failed",
    "unsure": "unsure",
}


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    unsure: int = 0
    lines: list[str] = field(default_factory=list)  # what happened, secrets redacted


def deliver(
    outbox: Outbox,
    channels: Sequence[Channel],
    *,
    digest: bool = False,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send every due record of each channel; each message tried up to three times at once
    (``IMMEDIATE_DELAYS``), then left for a later sender with a longer wait. A channel whose
    receiver is down is not asked again in this round: its other messages wait with the one
    that failed (50 alerts to a dead webhook cost one message's tries, not 50)."""
    report = DeliveryReport()
    for channel in channels:
        down: str | None = None  # why the receiver is taken to be down, this round
        for message, records in messages(outbox.claim(channel.name, clock()), digest):
            down = _send(outbox, channel, message, records, report, clock, sleep, down)
    return report


def _send(
    outbox: Outbox,
    channel: Channel,
    message: Message,
    records: list[Record],
    report: DeliveryReport,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    down: str | None,
) -> str | None:
    """Send one message (unless the receiver is ``down``) and settle its records; why the
    receiver is down, if it is."""
    what = f"{len(records)} alert(s) of {message.day} to {channel.describe()}"
    next_attempt_at, error = 0.0, down
    for delay in (*IMMEDIATE_DELAYS, None):
        try:
            if down is not None:
                raise Retryable(down)
            channel.send(message)
        except Retryable as failure:
            if delay is not None and down is None:
                sleep(delay)
                continue
            error = down = redact(str(failure), channel.secrets())
            attempts = max(r.attempts for r in records)
            if attempts >= MAX_ATTEMPTS:
                state, line = "failed", f"gave up on {what} after {attempts} rounds of tries"
            else:
                wait = min(LATER_DELAY_SECONDS * 2 ** (attempts - 1), 3600)
                state, next_attempt_at = "pending", clock() + wait
                line = f"{what} not delivered ({error}): tried again in {wait} s"
        except Refused as failure:
            error = redact(str(failure), channel.secrets())
            state, line = "failed", f"{what} refused"
        except Unsure as failure:
            error = redact(str(failure), channel.secrets())
            state, line = (
                "unsure",
                (
                    f"{what} may or may not have arrived ({error}): not sent "
                    "again, to never send it twice"
                ),
            )
        else:
            state, line = "delivered", f"delivered {what}"
        break
    outbox.settle(records, state, error, next_attempt_at)
    setattr(report, _COUNTED_AS[state], getattr(report, _COUNTED_AS[state]) + len(records))
    report.lines.append(line if state != "failed" else f"{line}: {error}")
    return down
