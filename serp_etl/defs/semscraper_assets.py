"""SemScraper Google SERP: the three daily steps as an instance of the provider assets, and the
locations reference table.

The work is in ``serp_etl.providers.semscraper.pipeline``; these functions only connect it.
"""

from datetime import datetime

import dagster as dg

from serp_etl.core.money import closed_day_reason
from serp_etl.core.quality import QualityResult
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.provider_assets import (
    ProviderAssets,
    ReferenceTable,
    closed_metadata,
    log_submit,
)
from serp_etl.defs.resources import SemScraperResource
from serp_etl.providers.semscraper import pipeline, quality
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.state.ledger import Ledger


def submit(
    context: dg.AssetExecutionContext,
    semscraper: SemScraperResource,
    ledger: Ledger,
    data_dir: str,
    now: datetime,
) -> dict:
    partition = context.partition_key
    # A day that cannot be paid for needs no targets: a backfill never reads the targets file.
    scrapes = [] if closed_day_reason(partition, now) else semscraper.targets(data_dir)
    with semscraper.client(data_dir, context.log) as client:
        report = pipeline.submit(
            client,
            ledger,
            partition,
            scrapes,
            budget_eur=semscraper.budget_eur,
            now=now,
            warehouse=Warehouse(data_dir),
            scope=semscraper.instance,
        )
    log_submit(context, report.closed_reason, report.messages)
    context.log.info(
        f"{report.posted} scrapes created (~{report.estimated_cost_eur} EUR), "
        f"{report.already_posted} already created, {report.recovered} recovered, "
        f"{report.held} held"
    )
    return {
        "targets": report.targets,
        "posted_now": report.posted,
        "estimated_cost_eur": report.estimated_cost_eur,
        "credit_eur": report.balance_eur,
        "already_posted": report.already_posted,
        "recovered": report.recovered,
        "held": report.held,
        **closed_metadata(report.closed_reason),
    }


def collect(
    context: dg.AssetExecutionContext, semscraper: SemScraperResource, ledger: Ledger, data_dir: str
) -> dict:
    with semscraper.client(data_dir, context.log) as client:
        report = pipeline.collect(
            client,
            ledger,
            context.partition_key,
            deadline_seconds=semscraper.collect_deadline_seconds,
            poll_seconds=semscraper.effective_poll_seconds(),
            keep_html=semscraper.keep_html,
            scope=semscraper.instance,
        )
        status = client.status()
    quarantined = TABLES.publish_quarantine(ledger, Warehouse(data_dir))
    if quarantined:
        context.log.warning(
            f"{quarantined} signed deliveries that were not asked for (an "
            "unknown id, an unfinished SERP) are kept in semscraper_quarantine"
        )
    for error in report.errors:
        context.log.warning(error)
    counts = {
        f"{s.get('status')}{'' if 'fetched' not in s else '/fetched=' + str(s['fetched'])}": s.get(
            "count"
        )
        for s in status
    }
    return {
        "ended_now": report.ended,
        "pending": report.pending,
        "quarantined_now": quarantined,
        "account_status": counts,
    }


def reconcile(
    context: dg.AssetCheckExecutionContext,
    semscraper: SemScraperResource,
    ledger: Ledger,
    warehouse: Warehouse,
    data_dir: str,
) -> QualityResult:
    # SemScraper's own figures: what was collected, and what is finished but not retrieved.
    with semscraper.client(data_dir, context.log) as client:
        listed = client.completed_not_retrieved()
        credit = client.credit()
    return quality.spend_reconciled(
        ledger, warehouse, context.partition_key, listed, credit, scope=semscraper.instance
    )


SEMSCRAPER = ProviderAssets(
    tables=TABLES,
    resource_key="semscraper",
    submit=submit,
    collect=collect,
    reconcile=reconcile,
    late_results=pipeline.late_results,
    references=[
        ReferenceTable(
            "locations",
            lambda client: [
                entry
                for entry in client.locations()
                if entry.get("location") and entry.get("language")
            ],
        )
    ],
)

# The code location gets every instance's assets from its component (a defs.yaml beside this
# module, ``components.serp_provider.instance_assets``): nothing from here.
defs = dg.Definitions()
