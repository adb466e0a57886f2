"""Dagster metadata derived from the pyarrow schemas: column types are declared once."""

import dagster as dg
import pyarrow as pa


def table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema
        ]
    )


def table_metadata(schema: pa.Schema, rows: int | None = None) -> dict:
    metadata: dict = {"dagster/column_schema": table_schema(schema)}
    if rows is not None:
        metadata["dagster/row_count"] = rows
    return metadata
