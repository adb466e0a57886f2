"""The daily report asset of each provider (``serp_etl.report``): an HTML file per day under
``<data dir>/reports/<provider>/``, linked from the materialization, its summary shown in the
UI."""

from pathlib import Path

import dagster as dg

from serp_etl import catalog, report
from serp_etl.core.parquet import publish_text
from serp_etl.core.provider import TASKS_TABLE
from serp_etl.defs.deployment import step_warehouse
from serp_etl.defs.metadata import OWNERS
from serp_etl.defs.partitions import daily_partitions
from serp_etl.defs.provider_assets import FREE_STEP_RETRIES, ProviderAssets, ends_on_interrupt
from serp_etl.my_sites.alerts import ALERTS_TABLE

REPORT = "report"


def report_path(data_dir: str, provider: str, day: str) -> Path:
    return Path(data_dir) / "reports" / provider / f"{day}.html"


def report_asset(spec: ProviderAssets) -> dg.AssetsDefinition:
    name = spec.tables.name

    @dg.asset(
        key=spec.key(REPORT),
        group_name=name,
        partitions_def=daily_partitions,
        deps=[
            spec.key(TASKS_TABLE),
            *(spec.key(t) for t in spec.tables.item_tables),
            spec.key(ALERTS_TABLE),
        ],
        kinds={"python", "html"},
        owners=OWNERS,
        retry_policy=FREE_STEP_RETRIES,
        required_resource_keys={"warehouse"},
        description=f"The day's {name} report: one self-contained HTML page (rank "
        "history of each target's leading domains, new hosts of each "
        "image, spend per day, the day's task health), read from the "
        "ready-made views.",
    )
    @ends_on_interrupt
    def daily_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        warehouse = step_warehouse(context)
        with catalog.connect(warehouse.data_dir) as connection:
            built = report.build(connection, name, context.partition_key)
        path = report_path(warehouse.data_dir, name, context.partition_key)
        publish_text(path, built.html)
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.path(str(path.resolve())),
                "dagster/uri": path.resolve().as_uri(),
                "summary": dg.MetadataValue.md(built.markdown),
                **{key: value for key, value in built.figures.items() if key != "currency"},
            }
        )

    return daily_report
