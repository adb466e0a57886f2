"""DataForSEO Search-by-Image assets: tasks -> raw responses -> flattened tables, per day.

Asset bodies stay thin: the work is in ``serp_etl.providers.dataforseo.pipeline``.
"""


import dagster as dg

from serp_etl.defs.metadata import table_metadata
from serp_etl.defs.partitions import daily_partitions
from serp_etl.defs.resources import DataForSEOResource, WarehouseResource
from serp_etl.providers.dataforseo import pipeline, quality
from serp_etl.providers.dataforseo.schema import (
    FLAT_SCHEMAS,
    RESPONSES_SCHEMA,
    ROOT_TABLES,
    TASKS_SCHEMA,
)
from serp_etl.providers.dataforseo.settings import PROVIDER
from serp_etl.providers.dataforseo.tables import TABLES

GROUP = PROVIDER
TASKS_KEY = dg.AssetKey([PROVIDER, "tasks"])
RESPONSES_KEY = dg.AssetKey([PROVIDER, "responses"])

FLAT_DESCRIPTIONS = {
    "serps": "One row per SERP (task_get result): every result-level field; spell as "
             "spell_keyword/spell_type, item_types as a list.",
    "organic": "One row per organic item of a SERP, nested objects as prefixed columns "
               "(rating_value, price_current, about_this_result_source, rectangle_y, ...).",
    "images": "One row per images item of a SERP.",
    "other_items": "One row per item of a type the reference does not document: type, ranks "
                   "and the whole item as JSON. Never dropped.",
}


def _child_descriptions() -> dict[str, str]:
    descriptions = {}
    for root in ROOT_TABLES:
        for spec in root.walk():
            for path, child in spec.children:
                descriptions[child.name] = (
                    f"One row per element of the `{'.'.join(path)}` array of a {spec.name} row, "
                    f"keyed by its keys and `{child.keys[-1][0]}` (the 0-based position).")
    return descriptions


DESCRIPTIONS = {**FLAT_DESCRIPTIONS, **_child_descriptions()}


def _check(result: quality.QualityResult, asset_key: dg.AssetKey, name: str,
           severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=asset_key, check_name=name, passed=result.passed,
                               severity=severity, description=result.description,
                               metadata=result.metadata)


@dg.asset(
    key=TASKS_KEY,
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"python", "parquet"},
    metadata=table_metadata(TASKS_SCHEMA),
)
def dataforseo_tasks(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    dataforseo: DataForSEOResource,
) -> dg.MaterializeResult:
    """One row per task of the day: one per target of the targets file, posted to task_post
    at most once (tag = date + target; see the ledger), with its id, cost and state.

    Re-materializing posts nothing that was posted already; tasks left by a crash are found
    again by tag (tasks_ready, id_list) before anything is posted.
    """
    partition = context.partition_key
    targets = dataforseo.targets(warehouse.data_dir)
    with warehouse.ledger() as ledger, dataforseo.client(warehouse.data_dir, context.log) as client:
        report = pipeline.submit(client, ledger, partition, targets)
        table = TABLES.publish_tasks(ledger, warehouse.warehouse(), partition)
    for message in report.messages:
        context.log.warning(message)
    context.log.info(f"{report.posted} tasks posted (${report.posted_cost_usd}), "
                     f"{report.already_posted} already posted, {report.recovered} recovered")
    return dg.MaterializeResult(metadata={
        **table_metadata(TASKS_SCHEMA, table.num_rows),
        "targets": report.targets,
        "posted_now": report.posted,
        "posted_cost_usd": report.posted_cost_usd,
        "already_posted": report.already_posted,
        "recovered_by_tag": report.recovered,
        "rejected": report.rejected,
    })


@dg.asset(
    key=RESPONSES_KEY,
    deps=[TASKS_KEY],
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"python", "parquet"},
    metadata=table_metadata(RESPONSES_SCHEMA),
    check_specs=[dg.AssetCheckSpec("collection_complete", asset=RESPONSES_KEY,
                                   description="Every posted task of the day is collected.")],
)
def dataforseo_responses(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    dataforseo: DataForSEOResource,
) -> dg.MaterializeResult:
    """One row per collected task_get/advanced response of the day: the whole body as JSON
    text, with fetch time, status code, outcome and cost. The source of truth: every
    flattened table is rebuilt from it.

    Waits for tasks_ready up to the configured deadline; tasks still not ready stay pending in
    the ledger and are collected by the next materialization.
    """
    partition = context.partition_key
    with warehouse.ledger() as ledger:
        with dataforseo.client(warehouse.data_dir, context.log) as client:
            report = pipeline.collect(
                client, ledger, partition,
                deadline_seconds=dataforseo.collect_deadline_seconds,
                poll_seconds=dataforseo.effective_poll_seconds(),
            )
        raw = TABLES.publish_responses(ledger, warehouse.warehouse(), partition)
        complete = quality.collection_complete(ledger, partition)
    for error in report.errors:
        context.log.warning(error)
    if report.unknown_codes:
        context.log.warning(f"status codes this version does not know: {report.unknown_codes}")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(RESPONSES_SCHEMA, raw.rows),
            "fetched_now": report.fetched,
            "empty_serps_now": report.empty,
            "failed_now": report.failed,
            "pending": report.pending,
            "unknown_status_codes": report.unknown_codes,
        },
        check_results=[_check(complete, RESPONSES_KEY, "collection_complete",
                              dg.AssetCheckSeverity.WARN)],
    )


FLAT_KEYS = {table: dg.AssetKey([PROVIDER, table]) for table in FLAT_SCHEMAS}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key, deps=[RESPONSES_KEY], group_name=GROUP, kinds={"python", "parquet"},
            description=DESCRIPTIONS[table], metadata=table_metadata(FLAT_SCHEMAS[table]),
        )
        for table, key in FLAT_KEYS.items()
    ],
    partitions_def=daily_partitions,
    check_specs=[
        dg.AssetCheckSpec("items_accounted_for", asset=FLAT_KEYS["serps"],
                          description="Every item of every SERP landed in a table."),
        dg.AssetCheckSpec("schema_drift", asset=FLAT_KEYS["other_items"],
                          description="No undeclared field, wrong-typed value or item type."),
    ],
)
def dataforseo_flattened(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Rebuilds every flattened table of the day from the raw responses (pure functions,
    explicit schemas); nested arrays of objects become child tables."""
    partition = context.partition_key
    store = warehouse.warehouse()
    rows = TABLES.publish_flattened(store, partition, workers=warehouse.flatten_workers)
    for table, key in FLAT_KEYS.items():
        yield dg.MaterializeResult(asset_key=key,
                                   metadata=table_metadata(FLAT_SCHEMAS[table], rows[table]))
    yield _check(quality.items_accounted_for(store, partition), FLAT_KEYS["serps"],
                 "items_accounted_for", dg.AssetCheckSeverity.ERROR)
    yield _check(quality.schema_drift(store, partition), FLAT_KEYS["other_items"],
                 "schema_drift", dg.AssetCheckSeverity.WARN)


dataforseo_assets = [dataforseo_tasks, dataforseo_responses, dataforseo_flattened]
