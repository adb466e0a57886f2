"""The money rules every provider shares: which day may be paid for, and how much.

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
        return (
            f"{partition} is in the future (today is {today} UTC): nothing is posted before its day"
        )
    return (
        f"{partition} is a past day (today is {today} UTC) and the APIs return only "
        "today's SERP: nothing is posted; collecting and flattening it still run"
    )


class BudgetExceeded(RuntimeError):
    """Posting would cost more than the account's balance or the day's budget: nothing was
    posted."""


def check_budget(
    *,
    action: str,
    estimate: float,
    balance: float,
    spent_today: float,
    budget: float | None,
    currency: str,
    balance_name: str = "balance",
) -> None:
    """Refuse ``action`` (costing about ``estimate``) if it exceeds the balance, or if with what
    the day already spent it exceeds the daily ``budget``."""
    over_budget = budget is not None and spent_today + estimate > budget + 1e-12
    if estimate <= balance and not over_budget:
        return
    limit = (
        ""
        if budget is None
        else f", budget {money(budget, currency)} a day, {money(spent_today, currency)} spent today"
    )
    raise BudgetExceeded(
        f"{action} would cost about {money(estimate, currency)}; "
        f"{balance_name} {money(balance, currency)}{limit}: nothing was posted"
    )


def money(amount: float | None, currency: str) -> str:
    """An amount as a person reads money: ``0.00008 EUR``, never ``8e-05``; to the hundred
    millionth (the providers' prices have up to 8 decimals), trailing zeros dropped, but two."""
    if amount is None:
        return f"unknown {currency}".strip()
    text = f"{amount:.8f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')} {currency}".strip()
