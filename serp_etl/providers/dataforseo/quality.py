"""DataForSEO's own checks: items accounted for, spend reconciled. Plain functions: the
Dagster checks call them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serp_etl.core.money import SUBMIT_GRACE, money
from serp_etl.core.quality import OTHER_ITEMS, QualityResult
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import PARTITION_READ, Warehouse, scratch_connection
from serp_etl.providers.dataforseo import settings
from serp_etl.providers.dataforseo.client import DataForSEOClient
from serp_etl.providers.dataforseo.pipeline import ID_LIST_MARGIN
from serp_etl.providers.dataforseo.schema import ITEM_TABLES
from serp_etl.providers.dataforseo.settings import PROVIDER, Outcome
from serp_etl.providers.dataforseo.targets import tag_prefix
from serp_etl.state.ledger import Ledger, utc_now


def items_accounted_for(
    warehouse: Warehouse, partition: str, scope: str = PROVIDER
) -> QualityResult:
    """Each successful response has a serps row, and each SERP's items all landed somewhere
    (of the provider instance ``scope``)."""

    item_tables = [*ITEM_TABLES, OTHER_ITEMS]
    with scratch_connection(warehouse.filesystem) as con:
        union = " UNION ALL ".join(f"SELECT task_id FROM {PARTITION_READ}" for _ in item_tables)
        [(mismatched,)] = con.execute(
            f"WITH items AS (SELECT task_id, count(*) AS n FROM ({union}) GROUP BY task_id) "
            f"SELECT count(*) FROM {PARTITION_READ} AS s LEFT JOIN items AS i USING (task_id) "
            "WHERE s.items_count IS DISTINCT FROM coalesce(i.n, 0)",
            [
                *(warehouse.partition_source(scope, t, partition) for t in item_tables),
                warehouse.partition_source(scope, "serps", partition),
            ],
        ).fetchall()
        [(missing_serps,)] = con.execute(
            f"SELECT count(*) FROM {PARTITION_READ} AS r WHERE r.outcome = ? AND r.task_id NOT IN "
            f"(SELECT task_id FROM {PARTITION_READ})",
            [
                warehouse.partition_source(scope, RAW_TABLE, partition),
                str(Outcome.SUCCESS),
                warehouse.partition_source(scope, "serps", partition),
            ],
        ).fetchall()
    passed = mismatched == 0 and missing_serps == 0
    return QualityResult(
        passed,
        "every item of every SERP is in a table"
        if passed
        else f"{mismatched} SERPs whose item rows differ from items_count, "
        f"{missing_serps} successful responses without a serps row",
        {"serps_with_item_mismatch": mismatched, "responses_without_serp": missing_serps},
    )


def spend_reconciled(
    client: DataForSEOClient,
    ledger: Ledger,
    partition: str,
    now: datetime | None = None,
    scope: str = PROVIDER,
) -> QualityResult:
    """The ledger's tasks and costs of the day against what DataForSEO billed (id_list, which
    names every task posted in a window with its cost and, for a month, its tag), for the
    provider instance ``scope``."""
    now = now or utc_now()
    day_start = datetime.fromisoformat(partition).replace(tzinfo=UTC)
    posting_ends = day_start + timedelta(days=1) + SUBMIT_GRACE
    if now - posting_ends > timedelta(days=settings.ID_LIST_METADATA_DAYS - 1):
        return QualityResult(
            True,
            f"not checked: id_list keeps task tags for {settings.ID_LIST_METADATA_DAYS} days only",
            {"checked": False},
        )
    prefix = tag_prefix(partition, scope)
    billed: dict[str, float | None] = {}
    malformed = 0
    for listed in client.id_list(
        day_start - ID_LIST_MARGIN, min(posting_ends + ID_LIST_MARGIN, now)
    ):
        if listed.tag and listed.tag.startswith(prefix):
            if listed.task_id is None:
                malformed += 1
            else:
                billed[listed.task_id] = listed.cost
    ours = {t.task_id: t.cost for t in ledger.tasks(scope, partition) if t.task_id}
    unknown = len(billed.keys() - ours.keys()) + malformed
    missing = len(ours.keys() - billed.keys())
    mismatches = sum(
        1
        for task_id in billed.keys() & ours.keys()
        if (mine := ours[task_id]) is None or abs(mine - (billed[task_id] or 0.0)) > 1e-9
    )
    billed_usd = round(sum(cost or 0.0 for cost in billed.values()), 8)
    ledger_usd = round(sum(cost or 0.0 for cost in ours.values()), 8)
    passed = not unknown and not missing and not mismatches
    problems = [
        f"{unknown} task(s) billed for the day that the ledger does not know" if unknown else "",
        f"{missing} ledger task(s) DataForSEO does not list" if missing else "",
        f"{mismatches} cost(s) differ from DataForSEO's" if mismatches else "",
    ]
    return QualityResult(
        passed,
        f"the ledger matches what DataForSEO billed: {len(billed)} tasks, "
        f"{money(billed_usd, 'USD')}"
        if passed
        else "; ".join(p for p in problems if p),
        {
            "tasks_billed": len(billed),
            "billed_by_provider_usd": billed_usd,
            "ledger_usd": ledger_usd,
            "billed_unknown_to_ledger": unknown,
            "ledger_tasks_not_billed": missing,
            "cost_mismatches": mismatches,
        },
    )
