"""Saved SemScraper responses, one document at a time (files: ``core.archive``): retrieve-by-ids
answers (``{"status": ..., "data": [SERP, ...]}``) or single SERP objects, as callbacks deliver
them. Each done SERP becomes one raw response: its exact bytes, and, from an answer, the answer
around it (its ``data`` emptied) as ``envelope``.
"""

from __future__ import annotations

from pathlib import Path

from serp_etl.core.archive import ArchivedResponse, Document, DocumentRejected, ImportReport
from serp_etl.core.archive import import_archives as core_import
from serp_etl.core.flatten import as_number
from serp_etl.core.json_spans import array_spans
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.semscraper.settings import SCRAPE_ID
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.state.ledger import Ledger, TaskState


def _serps(document: Document) -> tuple[list[tuple[object, bytes]], str | None]:
    value, data = document.value, document.data
    if type(value) is dict and "data" in value:
        if value.get("status") != "success":
            raise DocumentRejected(
                f"the response is an error: {value.get('message') or value.get('status')!r}"
            )
        if type(value["data"]) is not list:
            raise DocumentRejected("'data' must be an array of SERPs")
        found = array_spans(data, ("data",))
        if found is None:  # not after the parse that found 'data' an array; named, not a crash
            raise DocumentRejected("'data' must be an array of SERPs")
        (start, end), elements = found
        envelope = (data[:start] + b"[]" + data[end:]).decode("utf-8", "replace")
        return [
            (serp, data[first:last])
            for serp, (first, last) in zip(value["data"], elements, strict=True)
        ], envelope
    if type(value) is dict and "id" in value:
        return [(value, data)], None
    raise DocumentRejected("not a SemScraper retrieve response or SERP")


def split(document: Document) -> list[ArchivedResponse]:
    """Every done SERP of the document (pending ones hold no results and are skipped)."""
    serps, envelope = _serps(document)
    responses = []
    for position, (serp, body) in enumerate(serps):
        where = f"SERP {position}"
        if type(serp) is not dict:
            raise DocumentRejected(f"{where}: a SERP must be an object")
        serp_id = serp.get("id")
        if not isinstance(serp_id, str) or not SCRAPE_ID.match(serp_id):
            raise DocumentRejected(f"{where}: {serp_id!r} is not a SemScraper id")
        if serp.get("status") != "done":
            continue
        if type(serp.get("results")) is not list:
            raise DocumentRejected(f"{where}: a done SERP needs a 'results' array")
        meta = {
            "status": "done",
            "cost": as_number(serp.get("cost")),
            "html": None,
            "envelope": envelope,
        }
        responses.append(ArchivedResponse(serp_id, meta, body, TaskState.FETCHED, serp))
    if not responses:
        raise DocumentRejected("holds no done SERP")
    return responses


def import_archives(
    paths: list[Path],
    partition: str,
    ledger: Ledger,
    warehouse: Warehouse,
    scope: str = TABLES.name,
    **options,
) -> ImportReport:
    """Load saved retrieve-by-ids answers or SERPs into the raw and flattened tables of
    ``partition`` of the provider instance ``scope`` (options:
    ``core.archive.import_archives``)."""
    tables = TABLES.instance(scope)
    return core_import(tables, split, paths, partition, ledger, warehouse, **options)
