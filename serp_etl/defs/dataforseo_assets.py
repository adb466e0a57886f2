"""DataForSEO Search-by-Image: the three daily steps, as an instance of the provider assets.

The work is in ``serp_etl.providers.dataforseo.pipeline``; these functions only connect it.
"""

from datetime import datetime

import dagster as dg

from serp_etl.core.money import closed_day_reason
from serp_etl.core.quality import QualityResult
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.provider_assets import (
    FlatCheck,
    ProviderAssets,
    ReferenceTable,
    closed_metadata,
    log_submit,
)
from serp_etl.defs.resources import DataForSEOResource
from serp_etl.providers.dataforseo import pipeline, quality
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.state.ledger import Ledger


def submit(
    context: dg.AssetExecutionContext,
    dataforseo: DataForSEOResource,
    ledger: Ledger,
    data_dir: str,
    now: datetime,
) -> dict:
    partition = context.partition_key
    # A day that cannot be paid for needs no targets: a backfill never reads the targets file.
    targets = [] if closed_day_reason(partition, now) else dataforseo.targets(data_dir)
    with dataforseo.client(data_dir, context.log) as client:
        report = pipeline.submit(
            client,
            ledger,
            partition,
            targets,
            budget_usd=dataforseo.budget_usd,
            now=now,
            warehouse=Warehouse(data_dir),
            scope=dataforseo.instance,
        )
    log_submit(context, report.closed_reason, report.messages)
    context.log.info(
        f"{report.posted} tasks posted (${report.posted_cost_usd}), "
        f"{report.already_posted} already posted, {report.recovered} recovered"
    )
    return {
        "targets": report.targets,
        "posted_now": report.posted,
        "posted_cost_usd": report.posted_cost_usd,
        "balance_usd": report.balance_usd,
        "already_posted": report.already_posted,
        "recovered_by_tag": report.recovered,
        "rejected": report.rejected,
        **closed_metadata(report.closed_reason),
    }


def collect(
    context: dg.AssetExecutionContext, dataforseo: DataForSEOResource, ledger: Ledger, data_dir: str
) -> dict:
    with dataforseo.client(data_dir, context.log) as client:
        report = pipeline.collect(
            client,
            ledger,
            context.partition_key,
            deadline_seconds=dataforseo.collect_deadline_seconds,
            poll_seconds=dataforseo.effective_poll_seconds(),
            scope=dataforseo.instance,
        )
    for error in report.errors:
        context.log.warning(error)
    if report.unknown_codes:
        context.log.warning(f"status codes this version does not know: {report.unknown_codes}")
    return {
        "ended_now": report.ended,
        "corrected_now": report.corrected,
        "pending": report.pending,
        "unknown_status_codes": report.unknown_codes,
    }


def reconcile(
    context: dg.AssetCheckExecutionContext,
    dataforseo: DataForSEOResource,
    ledger: Ledger,
    warehouse: Warehouse,
    data_dir: str,
) -> QualityResult:
    with dataforseo.client(data_dir, context.log) as client:
        return quality.spend_reconciled(
            client, ledger, context.partition_key, scope=dataforseo.instance
        )


DATAFORSEO = ProviderAssets(
    tables=TABLES,
    resource_key="dataforseo",
    submit=submit,
    collect=collect,
    reconcile=reconcile,
    late_results=pipeline.late_results,
    flat_checks=[
        FlatCheck(
            "items_accounted_for",
            "serps",
            dg.AssetCheckSeverity.ERROR,
            "Every item of every SERP landed in a table.",
            quality.items_accounted_for,
        )
    ],
    references=[
        ReferenceTable("locations", lambda client: client.locations()),
        ReferenceTable("languages", lambda client: client.languages()),
    ],
)

# The code location gets every instance's assets from its component (a defs.yaml beside this
# module, ``components.serp_provider.instance_assets``): nothing from here.
defs = dg.Definitions()
