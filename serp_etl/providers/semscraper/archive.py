"""Saved SemScraper responses: retrieve-by-ids answers (``{"data": [SERP, ...]}``) or single
SERP objects, as callbacks deliver them (file formats: ``serp_etl.core.archive``)."""

from __future__ import annotations

from pathlib import Path

import orjson

from serp_etl.core.archive import ArchivedResponse, ArchiveError, read_documents
from serp_etl.core.flatten import as_number
from serp_etl.core.ledger import TaskState
from serp_etl.providers.semscraper.settings import SCRAPE_ID


def _serps(path: Path, where: str, document: object) -> list[dict]:
    if type(document) is dict and "data" in document:
        if document.get("status") != "success":
            raise ArchiveError(path, f"{where}: the response is an error: "
                                     f"{document.get('message') or document.get('status')!r}")
        if type(document["data"]) is not list:
            raise ArchiveError(path, f"{where}: 'data' must be an array of SERPs")
        return document["data"]
    if type(document) is dict and "id" in document:
        return [document]
    raise ArchiveError(path, f"{where}: not a SemScraper retrieve response or SERP")


def read_responses(path: Path) -> list[ArchivedResponse]:
    """Every done SERP in the file (pending ones hold no results and are skipped)."""
    responses: list[ArchivedResponse] = []
    for number, (document, _) in enumerate(read_documents(path), start=1):
        for position, serp in enumerate(_serps(path, f"document {number}", document)):
            where = f"document {number}, SERP {position}"
            if type(serp) is not dict:
                raise ArchiveError(path, f"{where}: a SERP must be an object")
            serp_id = serp.get("id")
            if not isinstance(serp_id, str) or not SCRAPE_ID.match(serp_id):
                raise ArchiveError(path, f"{where}: {serp_id!r} is not a SemScraper id")
            if serp.get("status") != "done":
                continue
            if type(serp.get("results")) is not list:
                raise ArchiveError(path, f"{where}: a done SERP needs a 'results' array")
            responses.append(ArchivedResponse(
                serp_id, {"status": "done", "cost": as_number(serp.get("cost")), "html": None},
                orjson.dumps(serp), TaskState.FETCHED))
    if not responses:
        raise ArchiveError(path, "holds no done SERP")
    return responses
