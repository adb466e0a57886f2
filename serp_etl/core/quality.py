"""Data-quality checks every provider shares. Plain functions: the Dagster checks call them."""

from __future__ import annotations

from dataclasses import dataclass, field

from serp_etl.core.flatten import EXTRA_COLUMN, INVALID_COLUMN
from serp_etl.core.provider import ProviderTables
from serp_etl.core.raw import RAW_TABLE, part_versions
from serp_etl.core.warehouse import PARTITION_READ, Warehouse, scratch_connection
from serp_etl.state.ledger import LOST_STATES, Ledger, TaskState

OTHER_ITEMS = "other_items"


@dataclass(frozen=True)
class QualityResult:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def collection_complete(
    ledger: Ledger, warehouse: Warehouse, provider: str, partition: str
) -> QualityResult:
    """Every task of the partition has ended, and ended with a result: fetched, or a billed
    empty SERP; and the response the ledger recorded for each is in the raw table (or still
    in the inbox, on its way there). Counts every state, the ones that lost a paid result by
    name, and the responses missing from the raw table (a part removed, replaced or shrunk)."""
    tasks = ledger.tasks(provider, partition)
    kept = {
        version
        for part in warehouse.parts(provider, RAW_TABLE, partition)
        for version in part_versions(part, warehouse.filesystem)
    } | ledger.inbox_versions(provider, partition)
    missing = sorted(
        task.task_id
        for task in tasks
        if task.task_id is not None
        and task.content_hash is not None
        and (task.task_id, task.content_hash) not in kept
    )
    by_state: dict[str, int] = {}
    pending_by_status: dict[str, int] = {}
    for task in tasks:
        by_state[task.state.value] = by_state.get(task.state.value, 0) + 1
        if task.state is TaskState.POSTED:
            key = str(task.status_code if task.status_code is not None else task.status_message)
            pending_by_status[key] = pending_by_status.get(key, 0) + 1
    pending = by_state.get(TaskState.POSTED.value, 0)
    intents = by_state.get(TaskState.INTENT.value, 0)
    lost = {
        state.value: by_state[state.value]
        for state in sorted(LOST_STATES)
        if state.value in by_state
    }
    problems = []
    if pending or intents:
        problems.append(
            f"{pending} posted tasks not collected yet, {intents} unresolved "
            "intents: the late-results sensor (or the next materialization) "
            "collects them"
        )
    if lost:
        problems.append(
            f"{sum(lost.values())} paid tasks ended without a result ("
            + ", ".join(f"{n} {state}" for state, n in lost.items())
            + "); their last answers are kept in the raw table"
        )
    if missing:
        problems.append(
            f"{len(missing)} responses the ledger recorded as collected are not in "
            f"the raw table (e.g. task {missing[0]}): its part was removed, "
            "replaced or shrunk; restore it from a backup, or import the responses "
            "again (serp-etl import)"
        )
    passed = not problems
    return QualityResult(
        passed,
        "every posted task is collected" if passed else "; ".join(problems),
        {
            "by_state": by_state,
            "pending": pending,
            "unresolved_intents": intents,
            "pending_by_last_status": pending_by_status,
            "missing_from_raw_table": len(missing),
        },
    )


def schema_drift(tables: ProviderTables, warehouse: Warehouse, partition: str) -> QualityResult:
    """Fields, values or item types the declared schema does not know (all kept, not lost)."""
    counts: dict[str, int] = {}
    other: dict[str, int] = {}
    with scratch_connection(warehouse.filesystem) as con:
        for table, schema in tables.flat_schemas.items():
            files = warehouse.partition_source(tables.name, table, partition)
            if table == OTHER_ITEMS:
                other = dict(
                    con.execute(
                        f"SELECT coalesce(type, '(none)'), count(*) FROM {PARTITION_READ} "
                        "GROUP BY 1",
                        [files],
                    ).fetchall()
                )
                continue
            if EXTRA_COLUMN not in schema.names:
                continue
            [(extra, invalid)] = con.execute(
                f"SELECT count({EXTRA_COLUMN}), count({INVALID_COLUMN}) FROM {PARTITION_READ}",
                [files],
            ).fetchall()
            if extra:
                counts[f"{table}.{EXTRA_COLUMN}"] = extra
            if invalid:
                counts[f"{table}.{INVALID_COLUMN}"] = invalid
    passed = not counts and not other
    return QualityResult(
        passed,
        "every field and item type is declared"
        if passed
        else "undeclared fields, wrong-typed values or item types were kept in extra, "
        "invalid_values or other_items: consider declaring them",
        {"rows_with_unknowns": counts, "undocumented_item_types": other},
    )


def decoding_repairs(tables: ProviderTables, warehouse: Warehouse, partition: str) -> QualityResult:
    """Responses of the day that were not clean JSON and were decoded with repairs (kept as
    received in the raw table; see ``core.jsondecode`` for what each repair does)."""
    parts = warehouse.parts(tables.name, RAW_TABLE, partition)
    counts: dict[str, int] = {}
    repaired = 0
    if parts:
        with scratch_connection(warehouse.filesystem) as con:
            rows = con.execute(
                f"SELECT repairs FROM {PARTITION_READ} WHERE len(repairs) > 0",
                [[warehouse.uri(p) for p in parts]],
            ).fetchall()
        for (kinds,) in rows:
            repaired += 1
            for kind in kinds:
                counts[kind] = counts.get(kind, 0) + 1
    return QualityResult(
        not repaired,
        "every response was clean JSON"
        if not repaired
        else f"{repaired} responses needed repairs to be read ("
        + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        + "); the raw table keeps "
        "their bytes as received",
        {"responses_repaired": repaired, "repairs": dict(sorted(counts.items()))},
    )
