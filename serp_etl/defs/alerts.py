"""My sites' alerts: per provider, an asset of the day's notable changes (``my_sites.alerts``),
delivered as it is materialized (``my_sites.notify``), shown in the UI by a WARN check; and a
sensor that retries the deliveries a receiver turned away."""

import warnings
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from serp_etl import catalog
from serp_etl.core.parquet import publish_table
from serp_etl.core.targets import TARGETS_FILE, TargetConfigError
from serp_etl.core.wording import count
from serp_etl.defs.deployment import step_warehouse
from serp_etl.defs.metadata import OWNERS, partition_metadata, table_definition
from serp_etl.defs.partitions import daily_partitions
from serp_etl.defs.provider_assets import FREE_STEP_RETRIES, ProviderAssets, ends_on_interrupt
from serp_etl.defs.resources import WarehouseResource
from serp_etl.my_sites.alerts import (
    ALERTS_CHECK,
    ALERTS_SCHEMA,
    ALERTS_TABLE,
    AlertSettingsError,
    day_alerts,
)
from serp_etl.my_sites.config import load_my_sites
from serp_etl.my_sites.delivery import deliver, open_outbox
from serp_etl.my_sites.notify import DRY_RUN_ENV, AlertSettings, notify_day

SHOWN_IN_CHECK = 20  # alerts listed in the check's description
RETRY_INTERVAL_SECONDS = 120


def _settings() -> AlertSettings:
    try:
        return AlertSettings.from_env()
    except AlertSettingsError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def alerts_asset(spec: ProviderAssets) -> dg.AssetsDefinition:
    name = spec.tables.name
    key = spec.key(ALERTS_TABLE)
    with warnings.catch_warnings():
        # Partitioned checks are a Dagster preview: chosen knowingly.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        check = dg.AssetCheckSpec(
            ALERTS_CHECK,
            asset=key,
            partitions_def=daily_partitions,
            description="None of my sites moved past the alert thresholds and no new site "
            "showed my images on the day; else (WARN) the day's alerts.",
        )

    @dg.asset(
        key=key,
        group_name=name,
        partitions_def=daily_partitions,
        deps=[spec.key(t) for t in spec.tables.item_tables],
        kinds={"python", "parquet"},
        owners=OWNERS,
        retry_policy=FREE_STEP_RETRIES,
        required_resource_keys={"warehouse"},
        check_specs=[check],
        metadata=table_definition(
            ALERTS_SCHEMA, spec.tables.docs(ALERTS_TABLE), f"{name}_{ALERTS_TABLE}"
        ),
        description=spec.tables.description(ALERTS_TABLE),
    )
    @ends_on_interrupt
    def alerts(context: dg.AssetExecutionContext):
        warehouse = step_warehouse(context)
        day, settings = context.partition_key, _settings()
        try:  # the views read it too, but say nothing of its problems
            load_my_sites(Path(warehouse.data_dir) / TARGETS_FILE)
        except TargetConfigError as error:
            # Not a failure of the run (a backfill of past days does not need the file), and
            # not "no alert" either: the day's alerts are left as they were, and say why.
            why = (
                f"not computed: {error}\n`serp-etl targets check` lists every problem of the file."
            )
            context.log.warning(f"{day}: alerts {why}")
            yield dg.MaterializeResult(metadata={"alerts_not_computed_because": str(error)})
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=ALERTS_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"alerts of {day} {why}",
            )
            return
        with catalog.connect(warehouse.data_dir) as connection:
            table = day_alerts(connection, name, day, settings.thresholds)
        store = warehouse.warehouse()
        publish_table(store.partition_file(name, ALERTS_TABLE, day), table, store.storage)
        notified = notify_day(
            warehouse.data_dir, name, day, table, settings, datetime.now(UTC).date()
        )
        for message in notified.would_send:
            context.log.info(f"dry run ({DRY_RUN_ENV}), would send {message}")
        for line in notified.delivery.lines if notified.delivery else []:
            context.log.info(line)
        messages = table.column("message").to_pylist()
        yield dg.MaterializeResult(
            metadata={
                **partition_metadata(table.num_rows, store, name, ALERTS_TABLE, day),
                "alerts": dg.MetadataValue.md(
                    "\n".join(f"- {m}" for m in messages) or "No change."
                ),
                **notified.metadata(),
                **warehouse.refresh_views(context.log),
            }
        )
        shown = "\n".join(messages[:SHOWN_IN_CHECK]) + (
            f"\n... and {len(messages) - SHOWN_IN_CHECK} more"
            if len(messages) > SHOWN_IN_CHECK
            else ""
        )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=ALERTS_CHECK,
            passed=not messages,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{count(len(messages), 'alert')} on {day}:\n{shown}"
            if messages
            else f"no alert on {day}",
            metadata={
                kind: table.column("kind").to_pylist().count(kind)
                for kind in sorted(set(table.column("kind").to_pylist()))
            },
        )

    return alerts


@dg.sensor(
    minimum_interval_seconds=RETRY_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    required_resource_keys={"warehouse"},
    description="Delivers the alerts a receiver turned away, when their wait is over "
    "(each alert at most once: the outbox says what was sent).",
)
def alert_deliveries(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    warehouse: WarehouseResource = context.resources.warehouse
    try:
        settings = AlertSettings.from_env()
    except AlertSettingsError as error:
        return dg.SkipReason(str(error))
    if settings.dry_run or not settings.channels:
        return dg.SkipReason("no channel configured" if not settings.channels else "dry run")
    with open_outbox(warehouse.data_dir) as outbox:
        report = deliver(outbox, settings.channels, digest=settings.digest)
    for line in report.lines:
        context.log.info(line)
    return dg.SkipReason("; ".join(report.lines) or "nothing due")


defs = dg.Definitions(sensors=[alert_deliveries])
