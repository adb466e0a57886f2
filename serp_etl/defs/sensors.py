"""Sensors: late results per provider, and imports recorded as materializations.

Late results: a sensor per provider collects what arrived after the day's run.

Tasks become ready after the collection deadline (DataForSEO's normal priority can take 45
minutes), callbacks are delivered later, DataForSEO re-parses tasks. Every few minutes, each
sensor asks its provider (free calls) and the ledger which partitions have results waiting,
and requests a run of that partition's collection and flattening assets only: never the paid
step. A request's run key is the partition and its evidence, so the same evidence is not
requested twice; a partition with a run already under way is not requested again.

Imports: ``serp-etl import`` runs outside Dagster (and never loads it: start-up is part of every
import's time), so it records each import in the ledger; a sensor reports each as
materializations of the partitions it filled, with their row counts, in the order they ran (its
cursor: the last import seen, and those waiting for their day to become a partition), so the UI
stops showing imported days as missing.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from serp_etl.core.raw import RAW_TABLE
from serp_etl.defs.metadata import partition_metadata
from serp_etl.defs.partitions import daily_partitions
from serp_etl.defs.provider_assets import ProviderAssets
from serp_etl.defs.reports import REPORT
from serp_etl.defs.resources import WarehouseResource
from serp_etl.my_sites.alerts import ALERTS_TABLE

SENSOR_INTERVAL_SECONDS = 300
IMPORTS_INTERVAL_SECONDS = 30
UNDER_WAY = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def collect_job(spec: ProviderAssets) -> dg.UnresolvedAssetJobDefinition:
    tables = spec.tables
    return dg.define_asset_job(
        f"{tables.name}_collect",
        selection=dg.AssetSelection.assets(
            spec.key(RAW_TABLE),
            *(spec.key(t) for t in tables.flat_schemas),
            spec.key(ALERTS_TABLE),
            spec.key(REPORT),
        ),
        description=f"Collect and flatten a day's late {tables.name} results, and redo its "
        "alerts and report (no posting).",
    )


def late_results_sensor(
    spec: ProviderAssets, job: dg.UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    name = spec.tables.name

    @dg.sensor(
        name=f"{name}_late_results",
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"warehouse", spec.resource_key},
        description=f"Requests {job.name} for each day with {name} results waiting.",
    )
    def late_results(context: dg.SensorEvaluationContext):
        warehouse: WarehouseResource = context.resources.warehouse
        provider = getattr(context.resources, spec.resource_key)
        with (
            provider.client(warehouse.data_dir, context.log) as client,
            warehouse.ledger() as ledger,
        ):
            evidence = spec.late_results(client, ledger, scope=name)
        requests, busy = [], []
        for partition, marks in sorted(evidence.items()):
            if not daily_partitions.has_partition_key(partition):
                context.log.warning(
                    f"{partition} has results waiting but is not a partition "
                    "(see SERP_ETL_START_DATE)"
                )
                continue
            if context.instance.get_runs(
                filters=dg.RunsFilter(
                    job_name=job.name, tags={"dagster/partition": partition}, statuses=UNDER_WAY
                ),
                limit=1,
            ):
                busy.append(partition)
                continue
            digest = hashlib.blake2b("\n".join(marks).encode(), digest_size=8).hexdigest()
            requests.append(
                dg.RunRequest(
                    run_key=f"{partition}:{digest}",
                    partition_key=partition,
                    tags={"serp_etl/waiting": str(len(marks))},
                )
            )
        if requests:
            return requests
        if busy:
            return dg.SkipReason(f"{', '.join(busy)} already being collected")
        return dg.SkipReason(f"no {name} results waiting")

    return late_results


def _import_cursor(cursor: str | None) -> tuple[int, list[int]]:
    """(the last import id seen, the ids seen but waiting for their day's partition). An
    earlier serp-etl's cursor is the last id alone."""
    if not cursor:
        return 0, []
    if cursor.isdigit():
        return int(cursor), []
    state = json.loads(cursor)
    return int(state["last"]), [int(i) for i in state["waiting"]]


@dg.sensor(
    minimum_interval_seconds=IMPORTS_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    required_resource_keys={"warehouse"},
    description="Records each serp-etl import as materializations of the partitions it "
    "filled (raw responses and flattened tables), with their row counts. An "
    "import into a day that is not a partition yet waits until it is one.",
)
def imports_recorded(context: dg.SensorEvaluationContext):
    warehouse: WarehouseResource = context.resources.warehouse
    last, waiting = _import_cursor(context.cursor)
    with warehouse.ledger() as ledger:
        records = ledger.imports_with_ids(waiting) + ledger.imports_after(last)
    if not records:
        return dg.SkipReason("no import since the last one recorded")
    events, still_waiting = [], []
    graph = context.repository_def.asset_graph if context.repository_def else None
    for record in records:
        # The provider instance the import went to: one of this code location's?
        defined = graph is None or graph.has(dg.AssetKey([record.provider, RAW_TABLE]))
        if not defined or not daily_partitions.has_partition_key(record.partition_date):
            # Kept in the cursor: recorded once the day is a partition (a later start date,
            # SERP_ETL_START_DATE, and "Reload definitions") or the instance is defined,
            # never skipped for good.
            if record.id not in waiting:
                context.log.warning(
                    f"import {record.id} into {record.provider} {record.partition_date}: "
                    + (
                        "not a partition of this code location yet (see SERP_ETL_START_DATE)"
                        if defined
                        else f"no provider instance {record.provider} in this code location"
                    )
                    + "; recorded once it is one"
                )
            still_waiting.append(record.id)
            continue
        files = record.report.get("files", [])
        for table, rows in record.report["rows"].items():
            events.append(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey([record.provider, table]),
                    partition=record.partition_date,
                    description=f"serp-etl import of {len(files)} file(s)",
                    metadata={
                        **partition_metadata(
                            rows,
                            warehouse.warehouse(),
                            record.provider,
                            table,
                            record.partition_date,
                        ),
                        "imported_at": record.imported_at,
                        "new_responses": record.report.get("new_responses", 0),
                        "files": dg.MetadataValue.json(files),
                    },
                )
            )
    cursor = json.dumps(
        {"last": max([last, *(record.id for record in records)]), "waiting": still_waiting}
    )
    return dg.SensorResult(asset_events=events, cursor=cursor)


# Every instance's collect job and late-results sensor come with it (its component); the
# imports are recorded for all of them by one sensor.
defs = dg.Definitions(sensors=[imports_recorded])
