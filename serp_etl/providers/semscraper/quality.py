"""SemScraper's own check: spend reconciled. A plain function: the Dagster check calls it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import orjson

from serp_etl.core.flatten import as_number
from serp_etl.core.money import money
from serp_etl.core.parquet import read_part
from serp_etl.core.quality import QualityResult
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.semscraper.pipeline import parse_time, unknown_scrapes
from serp_etl.providers.semscraper.settings import CURRENCY, PROVIDER
from serp_etl.state.ledger import Ledger, TaskState, utc_now


def spend_reconciled(
    ledger: Ledger,
    warehouse: Warehouse,
    partition: str,
    listed: Sequence[dict] = (),
    credit: float | None = None,
    scope: str = PROVIDER,
) -> QualityResult:
    """The ledger's costs of the day against SemScraper's own figures: the cost each collected
    SERP reports; the day's SERPs in the raw table whose scrape the ledger does not know (a
    lost or replaced ledger, a day paid again); scrapes found while recovering that were
    created on the day but that no intent of the ledger claimed; ``listed``, the account's
    finished scrapes not retrieved yet, those of the day's targets that the ledger does not
    know (billed, unknown to it: the list names no day, so one of another day counts too);
    and the credit's movement: ``credit``, read now, and the readings of the day's runs since
    the first (before it created anything), against what the scrapes the ledger recorded as
    created between them cost (``credit_movement``). All of the provider instance
    ``scope``: instances that share an API key each see the others' scrapes as a fall of
    the credit the ledger does not explain (never the other way round: a fall is never
    explained by another account's scrapes)."""
    if credit is not None and partition == utc_now().date().isoformat():
        # Read on the day itself only: a check of a past day, run weeks later, would stretch
        # the day's window over every day since.
        ledger.note_balance(scope, partition, credit)
    day = ledger.tasks(scope, partition)
    ours = {t.task_id: t.cost for t in day if t.task_id}
    # Of any day: a late callback may sit in another.
    ledger_ids = ledger.provider_task_ids(PROVIDER)
    reported: dict[str, float | None] = {}
    for part in warehouse.parts(scope, RAW_TABLE, partition):
        table = read_part(part, columns=["task_id", "cost"], filesystem=warehouse.filesystem)
        reported.update(
            zip(table.column("task_id").to_pylist(), table.column("cost").to_pylist(), strict=True)
        )
    reported.update({row.task_id: row.meta.get("cost") for row in ledger.inbox(scope, partition)})
    mismatches = sum(
        1
        for task_id in ours.keys() & reported.keys()
        if (mine := ours[task_id]) is None
        or (theirs := reported[task_id]) is None
        or abs(mine - theirs) > 1e-9
    )
    stray = []
    for candidate in ledger.candidates(scope):
        serp = orjson.loads(candidate.body) if candidate.body else {}
        created = parse_time(serp.get("created_at"))
        if created is not None and created.date().isoformat() == partition:
            stray.append(as_number(serp.get("cost")) or 0.0)
    unknown = {task_id: cost for task_id, cost in reported.items() if task_id not in ledger_ids}
    # A scrape of an unresolved intent's target may be that intent's: the next submit claims
    # it (and collection_complete names the intent meanwhile).
    unresolved = [t.target for t in day if t.state is TaskState.INTENT]
    unknown.update(
        {
            entry["id"]: as_number(entry.get("cost"))
            for entry, _ in unknown_scrapes(
                listed, ledger_ids, unresolved, {t.tag: t.target for t in day}
            )
            if isinstance(entry.get("id"), str)
        }
    )
    stray.extend(cost or 0.0 for cost in unknown.values())
    movement = credit_movement(ledger, partition, scope)
    # Spending the ids above already name is in the credit's fall too: only the rest is new.
    unexplained = round(movement["unexplained_eur"] - sum(stray), 8)
    billed = round(
        sum(reported.get(i) or 0.0 for i in ours) + sum(stray) + max(unexplained, 0.0), 8
    )
    passed = not mismatches and not stray and unexplained <= CREDIT_TOLERANCE_EUR
    problems = [
        f"{len(stray)} scrape(s) billed for the day that the ledger does not know"
        + (
            f" ({len(unknown)} of them in the raw table or the finished list, e.g. {min(unknown)})"
            if unknown
            else ""
        )
        if stray
        else "",
        f"{mismatches} cost(s) differ from SemScraper's" if mismatches else "",
        f"the credit fell by {money(unexplained, CURRENCY)} more than the scrapes the "
        f"ledger recorded as created between {movement['from']} and {movement['to']} cost "
        "(scrapes another ledger, data dir or tool created on this account)"
        if unexplained > CREDIT_TOLERANCE_EUR
        else "",
    ]
    return QualityResult(
        passed,
        f"the ledger matches SemScraper's figures: {len(ours)} scrapes, {money(billed, CURRENCY)}"
        if passed
        else "; ".join(p for p in problems if p),
        {
            "billed_by_provider_eur": billed,
            "ledger_eur": ledger.spent(scope, partition),
            "not_reported_yet": len(ours.keys() - reported.keys()),
            "billed_unknown_to_ledger": len(stray),
            "cost_mismatches": mismatches,
            "credit_movement": movement,
        },
    )


# Credit is shown to the cent's hundredth; costs are sums of small prices.
CREDIT_TOLERANCE_EUR = 1e-6


def credit_movement(ledger: Ledger, partition: str, scope: str = PROVIDER) -> dict:
    """How far the credit fell between the first and the last reading of the day's runs, and
    how much of that fall the scrapes the ledger recorded as created meanwhile (of any day)
    do not explain. A rise between two readings (a top-up) makes the fall say nothing: then
    nothing is unexplained, and ``topped_up`` says why."""
    readings = ledger.balances(scope, partition)
    if len(readings) < 2:
        return {"readings": len(readings), "unexplained_eur": 0.0, "from": None, "to": None}
    (start, first), (end, last) = readings[0], readings[-1]
    topped_up = any(
        later > earlier + CREDIT_TOLERANCE_EUR
        for (_, earlier), (_, later) in itertools.pairwise(readings)
    )
    fell = round(first - last, 8)
    known = ledger.posted_cost_between(scope, start, end)
    return {
        "readings": len(readings),
        "from": start,
        "to": end,
        "fell_eur": fell,
        "ledger_eur": known,
        "topped_up": topped_up,
        "unexplained_eur": 0.0 if topped_up else round(fell - known, 8),
    }
