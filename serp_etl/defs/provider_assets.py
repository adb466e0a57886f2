"""The three daily steps every provider has, built once: tasks -> responses -> flattened tables.

A provider brings its tables (``ProviderTables``), a ``submit`` and a ``collect`` step (each a
plain function returning asset metadata) and any checks of its own; the assets, their
partitions, metadata schemas and the shared checks come from here.
"""

import functools
import inspect
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa

from serp_etl.core import quality
from serp_etl.core.lost_state import StateDisagrees
from serp_etl.core.money import closed_day_reason
from serp_etl.core.parquet import publish_table
from serp_etl.core.provider import TASKS_TABLE, ProviderTables
from serp_etl.core.quality import QualityResult
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.targets import TargetConfigError
from serp_etl.core.warehouse import Warehouse
from serp_etl.core.wording import count
from serp_etl.defs.deployment import step_warehouse
from serp_etl.defs.metadata import OWNERS, partition_metadata, table_definition
from serp_etl.defs.partitions import daily_partitions
from serp_etl.defs.resources import WarehouseResource
from serp_etl.state.ledger import Ledger, utc_now

# (context, provider resource, ledger, data dir) -> metadata of the step
Step = Callable[[dg.AssetExecutionContext, Any, Ledger, str], dict]
# The same, and the moment the run decides whether the day may be paid for.
SubmitStep = Callable[[dg.AssetExecutionContext, Any, Ledger, str, datetime], dict]
# (context, provider resource, ledger, warehouse, data dir) -> the day's spend reconciled
Reconcile = Callable[[dg.AssetCheckExecutionContext, Any, Ledger, Warehouse, str], QualityResult]


# Collecting, flattening and snapshotting the provider's lists are free and may run again
# safely (nothing is posted, every publish replaces its files whole): a failed step retries.
# Each such step is also ``ends_on_interrupt``.
FREE_STEP_RETRIES = dg.RetryPolicy(max_retries=2, delay=20, backoff=dg.Backoff.EXPONENTIAL)


@contextmanager
def _interrupt_fails_the_step() -> Iterator[None]:
    try:
        yield
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError) as interrupt:
        raise dg.Failure(
            description=f"interrupted ({type(interrupt).__name__}): not retried",
            allow_retries=False,
        ) from interrupt


def ends_on_interrupt(compute: Callable) -> Callable:
    """An interrupt (Ctrl-C, the UI's terminate) ends a step with a retry policy for good.
    Dagster turns it into a retry under the policy: the run, and ``dagster dev`` waiting for
    it, stayed alive for the retry's 20 s delay, then ran the step again."""
    if inspect.isgeneratorfunction(compute):

        @functools.wraps(compute)
        def steps(context):
            with _interrupt_fails_the_step():
                yield from compute(context)

        return steps

    @functools.wraps(compute)
    def step(context):
        with _interrupt_fails_the_step():
            return compute(context)

    return step


# A day's tables are due by 12:00 UTC: the 06:00 schedule, then the late-results sensor.
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 12 * * *", lower_bound_delta=timedelta(hours=6)
)


def log_submit(
    context: dg.AssetExecutionContext, closed_reason: str | None, messages: list[str]
) -> None:
    if closed_reason:
        context.log.info(closed_reason)
    for message in messages:
        context.log.warning(message)


def targets_refused(error: TargetConfigError) -> str:
    """Why a run posted nothing, once: the problems, and where to see them all."""
    return (
        f"{error}\nNothing was posted. `serp-etl targets check` lists every problem of "
        "the file without a run; fix them and run again."
    )


def closed_metadata(closed_reason: str | None) -> dict:
    return {"not_posted_because": closed_reason} if closed_reason else {}


@dataclass(frozen=True)
class FlatCheck:
    name: str
    table: str
    severity: dg.AssetCheckSeverity
    description: str
    run: Callable[[Warehouse, str, str], QualityResult]  # (warehouse, day, instance)


@dataclass(frozen=True)
class ReferenceTable:
    """A list the provider publishes (locations, languages), snapshotted once a day."""

    table: str  # its schema and description: the provider's tables'
    fetch: Callable[[Any], list[dict]]  # the provider's client -> its entries


@dataclass(frozen=True)
class ProviderAssets:
    tables: ProviderTables
    resource_key: str
    submit: SubmitStep
    collect: Step
    reconcile: Reconcile
    # (client, ledger, scope=instance) -> partition -> what says results are waiting (free
    # calls only)
    late_results: Callable[..., dict[str, list[str]]]
    flat_checks: list[FlatCheck] = field(default_factory=list)
    references: list[ReferenceTable] = field(default_factory=list)

    def key(self, table: str) -> dg.AssetKey:
        return dg.AssetKey([self.tables.name, table])


def check_result(
    result: QualityResult, asset_key: dg.AssetKey, name: str, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    """A check's result; a partitioned check's evaluation carries the run's day."""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=result.passed,
        severity=severity,
        description=result.description,
        metadata=result.metadata,
    )


def build_provider_assets(spec: ProviderAssets) -> list[dg.AssetsDefinition]:
    name, tables = spec.tables.name, spec.tables
    resources = {"warehouse", spec.resource_key}
    tasks_key, responses_key = spec.key(TASKS_TABLE), spec.key(RAW_TABLE)
    flat_keys = {table: spec.key(table) for table in tables.flat_schemas}
    schemas = tables.schemas()

    def definition(table: str) -> dict:
        return table_definition(schemas[table], tables.docs(table), f"{name}_{table}")

    def materialized(warehouse: WarehouseResource, table: str, partition: str, rows: int) -> dict:
        return partition_metadata(rows, warehouse.warehouse(), name, table, partition)

    def day_check(check: str, key: dg.AssetKey, description: str) -> dg.AssetCheckSpec:
        # Partitioned: each result belongs to its day, so after a backfill the UI says
        # which day failed.
        return dg.AssetCheckSpec(
            check, asset=key, description=description, partitions_def=daily_partitions
        )

    with warnings.catch_warnings():
        # Partitioned checks are a Dagster preview: chosen knowingly, no need to tell users.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        targets_spec = day_check(
            "targets_valid",
            tasks_key,
            "The targets file kept nothing from being posted: it "
            "reads and every target is one the provider offers; else nothing is posted, and "
            "the problems are listed here. Another day than today is never posted for, and "
            "its run does not read the file.",
        )
        response_checks = [
            day_check("collection_complete", responses_key, "Every posted task is collected."),
            day_check(
                "decoding_repairs",
                responses_key,
                "Every response of the day was clean "
                "JSON (else: the repairs decoding made, by kind).",
            ),
        ]
        drift_table = "other_items" if "other_items" in flat_keys else next(iter(flat_keys))
        checks = [
            *spec.flat_checks,
            FlatCheck(
                "schema_drift",
                drift_table,
                dg.AssetCheckSeverity.WARN,
                "No undeclared field, wrong-typed value or item type.",
                lambda warehouse, partition, _: quality.schema_drift(tables, warehouse, partition),
            ),
        ]
        flat_checks = [day_check(c.name, flat_keys[c.table], c.description) for c in checks]

    def targets_check(passed: bool, description: str) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=tasks_key,
            check_name="targets_valid",
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
        )

    # Skippable: a day with no task and nothing imported (a backfill of days nobody
    # collected) yields nothing, so it stays "Missing" in the UI instead of turning green with
    # 0 rows, and Dagster skips every step after it. A multi-asset of one because only a
    # subsettable one makes its check optional too (a day left unmaterialized has none).
    @dg.multi_asset(
        name=f"{name}__{TASKS_TABLE}",
        specs=[
            dg.AssetSpec(
                tasks_key,
                group_name=name,
                kinds={"python", "parquet"},
                owners=OWNERS,
                description=tables.description(TASKS_TABLE),
                metadata=definition(TASKS_TABLE),
                skippable=True,
            )
        ],
        partitions_def=daily_partitions,
        required_resource_keys=resources,
        check_specs=[targets_spec],
        can_subset=True,
    )
    def tasks(context: dg.AssetExecutionContext):
        warehouse = step_warehouse(context)
        provider = getattr(context.resources, spec.resource_key)
        partition, now = context.partition_key, utc_now()
        checks = []
        with warehouse.ledger() as ledger:

            def has_data() -> bool:
                return bool(
                    ledger.tasks(name, partition)
                    or warehouse.warehouse().parts(name, RAW_TABLE, partition)
                )

            try:
                metadata = spec.submit(context, provider, ledger, warehouse.data_dir, now)
            except StateDisagrees as error:
                raise dg.Failure(description=str(error), allow_retries=False) from error
            except TargetConfigError as error:
                refused = targets_refused(error)
                if not has_data():  # nothing of the day to keep: the run failed its purpose
                    raise dg.Failure(description=refused, allow_retries=False) from None
                # The day's earlier tasks and SERPs are intact: collect and flatten them; an
                # error line for who reads the logs, and this check for who reads the UI,
                # say why nothing was posted.
                context.log.error(refused)
                metadata = {
                    "posted_now": 0,
                    "not_posted_because": "the targets file has "
                    + count(len(error.problems), "problem"),
                }
                checks.append(targets_check(False, refused))
            else:
                # The file is read only on a day that may be paid for; on another, it can
                # have stopped nothing.
                closed = closed_day_reason(partition, now)
                checks.append(
                    targets_check(
                        True,
                        f"not read: {closed}" if closed else "every target reads and is offered",
                    )
                )
            if targets_spec.key not in context.selected_asset_check_keys:
                checks = []
            if not has_data():
                context.log.info(
                    f"{partition}: no {name} task and nothing imported, so "
                    "nothing to collect or flatten: the day stays unmaterialized"
                )
                yield from checks  # what the targets file did (nothing) is still true
                return
            table = tables.publish_tasks(ledger, warehouse.warehouse(), partition)
        yield dg.MaterializeResult(
            asset_key=tasks_key,
            metadata={
                **materialized(warehouse, TASKS_TABLE, partition, table.num_rows),
                **metadata,
                **warehouse.refresh_views(context.log),
            },
            check_results=checks,
        )

    @dg.asset(
        key=responses_key,
        deps=[tasks_key],
        group_name=name,
        partitions_def=daily_partitions,
        kinds={"python", "parquet"},
        owners=OWNERS,
        retry_policy=FREE_STEP_RETRIES,
        freshness_policy=DAILY_FRESHNESS,
        description=tables.description(RAW_TABLE),
        metadata=definition(RAW_TABLE),
        required_resource_keys=resources,
        check_specs=response_checks,
    )
    @ends_on_interrupt
    def responses(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse = step_warehouse(context)
        provider = getattr(context.resources, spec.resource_key)
        partition = context.partition_key
        # One collection of a provider at a time (a day's raw parts come from one inbox): a
        # lock that dies with its holder, where a Dagster pool slot outlived a killed run.
        with (
            warehouse.ledger() as ledger,
            ledger.lock(
                f"{name}.collect",
                on_wait=lambda: context.log.info(
                    f"another run is collecting {name}: waiting for it"
                ),
            ),
        ):
            metadata = spec.collect(context, provider, ledger, warehouse.data_dir)
            raw = tables.publish_responses(ledger, warehouse.warehouse(), partition)
            # The tasks table again: its states are what collection just settled.
            tables.publish_tasks(ledger, warehouse.warehouse(), partition)
            complete = quality.collection_complete(ledger, warehouse.warehouse(), name, partition)
            repairs = quality.decoding_repairs(tables, warehouse.warehouse(), partition)
        return dg.MaterializeResult(
            metadata={
                **materialized(warehouse, RAW_TABLE, partition, raw.rows),
                **metadata,
                **warehouse.refresh_views(context.log),
            },
            check_results=[
                check_result(
                    complete, responses_key, "collection_complete", dg.AssetCheckSeverity.WARN
                ),
                check_result(
                    repairs, responses_key, "decoding_repairs", dg.AssetCheckSeverity.WARN
                ),
            ],
        )

    @dg.multi_asset(
        name=f"{name}_flattened",
        # skippable: a backfill's run of many days reports each day's own events instead.
        specs=[
            dg.AssetSpec(
                key,
                deps=[responses_key],
                group_name=name,
                kinds={"python", "parquet"},
                owners=OWNERS,
                freshness_policy=DAILY_FRESHNESS,
                description=tables.description(table),
                metadata=definition(table),
                skippable=True,
            )
            for table, key in flat_keys.items()
        ],
        partitions_def=daily_partitions,
        # A re-flatten of 30 days is one run: free, and each day is rebuilt whole on its own.
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,  # its outputs optional (the above); every table is rebuilt anyway
        retry_policy=FREE_STEP_RETRIES,
        required_resource_keys={"warehouse"},
        check_specs=flat_checks,
    )
    @ends_on_interrupt
    def flattened(context: dg.AssetExecutionContext):
        warehouse = step_warehouse(context)
        store = warehouse.warehouse()
        for partition in context.partition_keys:
            rows = tables.publish_flattened(store, partition, workers=warehouse.flatten_workers)
            views = warehouse.refresh_views(context.log)
            made = {
                key: {**materialized(warehouse, table, partition, rows[table]), **views}
                for table, key in flat_keys.items()
                if key in context.selected_asset_keys
            }
            checked = [
                (check, check.run(store, partition, name))
                for check in checks
                if dg.AssetCheckKey(flat_keys[check.table], check.name)
                in context.selected_asset_check_keys
            ]
            if context.has_partition_key:  # a day's run: its outputs, as every step
                for key, metadata in made.items():
                    yield dg.MaterializeResult(asset_key=key, metadata=metadata)
                for check, result in checked:
                    yield check_result(result, flat_keys[check.table], check.name, check.severity)
                continue
            # Several days in one run (a backfill): each day's materializations and check
            # results with that day's own figures, not one set repeated over the range.
            for key, metadata in made.items():
                context.log_event(
                    dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata)
                )
            for check, result in checked:
                context.log_event(
                    dg.AssetCheckEvaluation(
                        asset_key=flat_keys[check.table],
                        check_name=check.name,
                        passed=result.passed,
                        severity=check.severity,
                        description=result.description,
                        metadata=result.metadata,
                        partition=partition,
                    )
                )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=responses_key,
            name="spend_reconciled",
            partitions_def=daily_partitions,
            required_resource_keys=resources,
            description="The ledger's tasks and costs of the day match what the "
            "provider billed, and it billed nothing the ledger does "
            "not know.",
        )
        def spend_reconciled(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            warehouse = step_warehouse(context)
            provider = getattr(context.resources, spec.resource_key)
            with warehouse.ledger() as ledger:
                result = spec.reconcile(
                    context, provider, ledger, warehouse.warehouse(), warehouse.data_dir
                )
            return check_result(
                result, responses_key, "spend_reconciled", dg.AssetCheckSeverity.ERROR
            )

    return [
        tasks,
        responses,
        flattened,
        spend_reconciled,
        *(reference_asset(spec, reference) for reference in spec.references),
    ]


def reference_asset(spec: ProviderAssets, reference: ReferenceTable) -> dg.AssetsDefinition:
    name, schema = spec.tables.name, spec.tables.reference_schemas[reference.table]

    @dg.asset(
        key=spec.key(reference.table),
        group_name=name,
        partitions_def=daily_partitions,
        kinds={"python", "parquet"},
        owners=OWNERS,
        retry_policy=FREE_STEP_RETRIES,
        description=spec.tables.description(reference.table),
        metadata=table_definition(
            schema, spec.tables.docs(reference.table), f"{name}_{reference.table}"
        ),
        required_resource_keys={"warehouse", spec.resource_key},
        output_required=False,
    )
    @ends_on_interrupt
    def snapshot(context: dg.AssetExecutionContext):
        warehouse = step_warehouse(context)
        provider = getattr(context.resources, spec.resource_key)
        if closed_day_reason(context.partition_key, utc_now()):
            # The provider lists only today's entries: filed under another day, they would
            # say that day offered what it may not have.
            context.log.info(
                f"{spec.key(reference.table).to_user_string()} is snapshotted "
                f"on the day it is taken only, not on {context.partition_key}"
            )
            return
        with provider.client(warehouse.data_dir, context.log) as client:
            rows = [
                {column: entry.get(column) for column in schema.names}
                for entry in reference.fetch(client)
            ]
        table = pa.Table.from_pylist(rows, schema=schema)
        store = warehouse.warehouse()
        publish_table(
            store.partition_file(name, reference.table, context.partition_key), table, store.storage
        )
        yield dg.MaterializeResult(
            metadata={
                **partition_metadata(
                    table.num_rows, store, name, reference.table, context.partition_key
                ),
                **warehouse.refresh_views(context.log),
            }
        )

    return snapshot
