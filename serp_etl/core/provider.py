"""What the generic layers need of a provider: its tables, and how to fill them.

Every provider has the same three layers per daily partition: the tasks it posted (from the
ledger), the raw responses it collected (from the ledger's inbox) and the flattened tables
(rebuilt from the raw responses by a pure flatten function). ``ProviderTables`` names the
schemas and functions; the publishing is written once, here.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from serp_etl.core.column_docs import SHARED
from serp_etl.core.flatten import LINEAGE_COLUMN, with_lineage
from serp_etl.core.jsondecode import Undecodable, decode
from serp_etl.core.parquet import publish_table
from serp_etl.core.partition_flatten import FlattenBatch, flatten_partition
from serp_etl.core.raw import (
    QUARANTINE_DESCRIPTION,
    QUARANTINE_SCHEMA,
    QUARANTINE_TABLE,
    RAW_TABLE,
    HashBody,
    RawReport,
    latest_rows,
    publish_quarantine,
    publish_raw,
)
from serp_etl.core.warehouse import Warehouse
from serp_etl.my_sites.alerts import (
    ALERT_COLUMNS,
    ALERTS_DESCRIPTION,
    ALERTS_SCHEMA,
    ALERTS_TABLE,
)
from serp_etl.state.ledger import Ledger, TaskRecord, content_hash

TASKS_TABLE = "tasks"


def _flattened_with_lineage(
    flatten: FlattenBatch, batch: pa.RecordBatch
) -> Iterator[dict[str, pa.Table]]:
    """A raw batch flattened, each row with the version of the response it came from."""
    for tables in flatten(batch):
        yield with_lineage(tables, batch.column("task_id"), batch.column(LINEAGE_COLUMN))


def base_task_row(record: TaskRecord) -> dict:
    """The ledger's columns of a task, shared by every provider's tasks table."""
    return {
        "tag": record.tag,
        "task_id": record.task_id,
        "state": str(record.state),
        "cost": record.cost,
        "status_code": record.status_code,
        "status_message": record.status_message,
        "intent_at": record.intent_at,
        "posted_at": record.posted_at,
        "fetched_at": record.fetched_at,
    }


@dataclass(frozen=True)
class ProviderTables:
    name: str
    tasks_schema: pa.Schema
    responses_schema: pa.Schema
    flat_schemas: Mapping[str, pa.Schema]
    flatten_raw_batch: FlattenBatch  # a batch of the raw table (task_id, body) -> tables
    # (task_id, decoded response) pairs -> tables: what an import flattens from its one parse
    # (each response as the provider's ``split`` checked it: Any, its shape is the provider's)
    flatten_parsed: Callable[[list[tuple[str, Any]]], dict[str, pa.Table]]
    item_tables: tuple[str, ...]  # the flattened tables whose rows are a SERP's items
    task_row: Callable[[TaskRecord], dict] = base_task_row
    # A body -> the hash that names its version: what differs between two fetches of the same
    # content (a timing field, say) is left out of it.
    hash_body: HashBody = content_hash
    # The provider's own lists (locations, languages), snapshotted daily.
    reference_schemas: Mapping[str, pa.Schema] = field(default_factory=dict)
    # Table -> column -> what it holds (``core.column_docs``), beyond the shared columns.
    column_docs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Table -> what one row is and where it comes from (the quarantine's and the alerts' are
    # every provider's: ``description``).
    descriptions: Mapping[str, str] = field(default_factory=dict)

    def instance(self, name: str) -> ProviderTables:
        """These tables under the namespace of the provider instance ``name``
        (``providers.instances``): its warehouse folder, views and ledger scope."""
        return dataclasses.replace(self, name=name)

    def schemas(self) -> dict[str, pa.Schema]:
        """Every table this provider writes -> its schema."""
        return {
            TASKS_TABLE: self.tasks_schema,
            RAW_TABLE: self.responses_schema,
            QUARANTINE_TABLE: QUARANTINE_SCHEMA,
            **self.flat_schemas,
            **self.reference_schemas,
            ALERTS_TABLE: ALERTS_SCHEMA,
        }

    def description(self, table: str) -> str:
        """What one row of ``table`` is, and where it comes from."""
        shared = {QUARANTINE_TABLE: QUARANTINE_DESCRIPTION, ALERTS_TABLE: ALERTS_DESCRIPTION}
        return shared.get(table) or self.descriptions[table]

    def docs(self, table: str) -> dict[str, str]:
        """Column -> what it holds, for every column of ``table``."""
        schema = self.schemas()[table]
        if table == ALERTS_TABLE:
            return dict(ALERT_COLUMNS)
        return {
            **{name: SHARED[name] for name in schema.names if name in SHARED},
            **self.column_docs.get(table, {}),
        }

    def version(self, body: bytes, meta: dict) -> dict:
        """``meta`` completed with what names this version of a response (``content_hash``)
        and what reading it needed to repair (``repairs``, unless the caller knows them)."""
        repairs = meta.get("repairs")
        if repairs is None:
            try:
                repairs = decode(body, duplicates=True)[1]
            except Undecodable:
                repairs = ()
        return {**meta, "content_hash": self.hash_body(body), "repairs": list(repairs) or None}

    def tasks_table(self, records: list[TaskRecord]) -> pa.Table:
        columns: dict[str, list] = {name: [] for name in self.tasks_schema.names}
        for record in records:
            row = self.task_row(record)
            for name, column in columns.items():
                column.append(row.get(name))
        for f in self.tasks_schema:
            if pa.types.is_timestamp(f.type):
                columns[f.name] = [
                    None if v is None else datetime.fromisoformat(v).astimezone(UTC)
                    for v in columns[f.name]
                ]
        return pa.Table.from_pydict(columns, schema=self.tasks_schema)

    def publish_tasks(self, ledger: Ledger, warehouse: Warehouse, partition: str) -> pa.Table:
        table = self.tasks_table(ledger.tasks(self.name, partition))
        publish_table(
            warehouse.partition_file(self.name, TASKS_TABLE, partition), table, warehouse.storage
        )
        return table

    def publish_responses(self, ledger: Ledger, warehouse: Warehouse, partition: str) -> RawReport:
        return publish_raw(
            ledger, warehouse, self.name, partition, self.responses_schema, self.hash_body
        )

    def publish_quarantine(self, ledger: Ledger, warehouse: Warehouse) -> int:
        return publish_quarantine(ledger, warehouse, self.name)

    def publish_flattened(
        self, warehouse: Warehouse, partition: str, workers: int = 1
    ) -> dict[str, int]:
        """Rebuild every flattened table of ``partition`` from the latest version of each of
        its raw responses."""
        parts = warehouse.parts(self.name, RAW_TABLE, partition)
        return flatten_partition(
            latest_rows(parts, warehouse.filesystem),
            ["task_id", LINEAGE_COLUMN, "body"],
            # A partial of module functions, not a closure: the workers get it pickled.
            functools.partial(_flattened_with_lineage, self.flatten_raw_batch),
            warehouse.partition_files(self.name, self.flat_schemas, partition),
            self.flat_schemas,
            workers=workers,
            storage=warehouse.storage,
        )
