"""Dagster metadata derived from the pyarrow schemas and the column docs: column types and
descriptions are declared once (``core.column_docs``)."""

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import pyarrow as pa

from serp_etl.core.column_docs import DATE
from serp_etl.core.views import VIEWS_FILE
from serp_etl.core.warehouse import Warehouse

# The owners shown on every asset: edit to your team (an e-mail or "team:<name>").
OWNERS = ["team:serp-etl"]


def linked_to_code(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Each asset with a link to the code that defines it (the UI's "code references")."""
    with warnings.catch_warnings():
        # A Dagster beta: chosen knowingly, no need to tell users at every load.
        warnings.simplefilter("ignore", dg.BetaWarning)
        linked = dg.with_source_code_references(assets)
    # Each stays an AssetsDefinition (Dagster types its answer for any kind of asset it takes).
    return [asset for asset in linked if isinstance(asset, dg.AssetsDefinition)]


def table_schema(schema: pa.Schema, docs: Mapping[str, str] | None = None) -> dg.TableSchema:
    """The table's columns, then ``date`` (the partition's, in every view and query)."""
    docs = docs or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                description=docs.get(f.name),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema
        ]
        + [
            dg.TableColumn(
                name="date",
                type=str(pa.date32()),
                description=DATE,
                constraints=dg.TableColumnConstraints(nullable=False),
            )
        ]
    )


def table_definition(schema: pa.Schema, docs: Mapping[str, str], view: str) -> dict:
    """An asset's own metadata: its columns, and the view that reads it in the views file."""
    return {
        "dagster/column_schema": table_schema(schema, docs),
        "dagster/table_name": f"{Path(VIEWS_FILE).stem}.main.{view}",
    }


def partition_metadata(
    rows: int, warehouse: Warehouse, provider: str, table: str, partition: str
) -> dict:
    """A materialization's metadata: the partition's rows and where its files are."""
    directory = warehouse.partition_dir(provider, table, partition)
    return {
        "dagster/partition_row_count": rows,
        "dagster/uri": warehouse.uri(directory)
        if warehouse.storage.shared
        else Path(directory).resolve().as_uri(),
    }
