"""Before paying for a day's new intents: does anything else know of tasks the state does not?

The ledger decides whether money is spent. A ledger that was lost, emptied, restored from an
older backup, or that is not the one the other workers write to, knows less than it should:
its next run would post, and pay for, every target of the day again. So before recording
intents the state store has never seen, two witnesses that outlive it are asked:

- the warehouse's own ``<provider>_tasks`` table of the day (every tag it lists must be known);
- the provider's records of the day, where it can tell (each pipeline asks: DataForSEO's
  id_list by the deterministic tag, SemScraper's finished-not-retrieved list by target).

When they know more, nothing is posted, and the error names the state store and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from serp_etl.core.parquet import read_part
from serp_etl.core.provider import TASKS_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.state.ledger import Ledger


class StateDisagrees(RuntimeError):
    """The state store does not know tasks of a day that the warehouse or the provider hold:
    posting now would pay for them a second time."""


def warehouse_tags(warehouse: Warehouse, provider: str, partition: str) -> set[str]:
    """The tags of the day's tasks table, as last published (empty if it was never)."""
    return {
        tag
        for part in warehouse.parts(provider, TASKS_TABLE, partition)
        for tag in read_part(part, columns=["tag"], filesystem=warehouse.filesystem)
        .column("tag")
        .to_pylist()
    }


def refuse_unknown_tasks(
    ledger: Ledger,
    provider: str,
    partition: str,
    tags: Iterable[str],
    warehouse: Warehouse | None,
    at_provider: Callable[[set[str]], Iterable[str]],
) -> None:
    """Before ``tags`` of ``partition`` are recorded as intents: raise ``StateDisagrees`` if
    some are new to the ledger and the warehouse's tasks table of the day lists a tag the
    ledger does not know, or ``at_provider(new tags)`` (those the provider's records hold)
    is not empty."""
    known = {t.tag for t in ledger.tasks(provider, partition)}
    fresh = set(tags) - known
    if not fresh:
        return
    unknown_here = (
        warehouse_tags(warehouse, provider, partition) - known if warehouse is not None else set()
    )
    unknown_there = sorted(set(at_provider(fresh)) - known)
    if not unknown_here and not unknown_there:
        return
    witnesses = []
    if unknown_here:
        witnesses.append(
            f"{len(unknown_here)} in the warehouse's {provider}_tasks table "
            f"(e.g. {min(unknown_here)})"
        )
    if unknown_there:
        witnesses.append(
            f"{len(unknown_there)} in {provider}'s own records (e.g. {unknown_there[0]})"
        )
    raise StateDisagrees(
        f"{provider} {partition}: the state store ({ledger.describe()}) does not know tasks of "
        f"this day that exist elsewhere: {'; '.join(witnesses)}. Nothing was posted: posting now "
        "would pay for them twice. The state store was lost, emptied, restored from an older "
        "copy, or is not the one the other workers use: restore it, or point "
        "SERP_ETL_STATE_URL (or the data dir) at the store that recorded them."
    )
