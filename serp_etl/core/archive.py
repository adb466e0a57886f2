"""Backfill from saved API responses, for every provider.

A file holds one JSON document, newline-delimited documents, or a JSON array of them, any of
them gzip-compressed. Each file is read and checked whole before anything of it lands: an
invalid one raises ``ArchiveError`` naming the file and what is wrong, and contributes nothing.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from serp_etl.core.ledger import Ledger, TaskState, utc_now
from serp_etl.core.provider import ProviderTables
from serp_etl.core.warehouse import Warehouse

_GZIP_MAGIC = b"\x1f\x8b"


class ArchiveError(ValueError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ArchivedResponse:
    """One response to land in the raw layer: its raw columns but fetched_at and source."""

    task_id: str
    meta: dict
    body: bytes
    final_state: TaskState


def read_documents(path: Path) -> list[tuple[object, bytes]]:
    """Every JSON document of the file, with its own bytes."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ArchiveError(path, f"cannot read: {error.strerror or error}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ArchiveError(path, f"corrupt or truncated gzip ({error})") from None
    if not raw.strip():
        raise ArchiveError(path, "empty file")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as whole_error:
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) < 2:
            raise ArchiveError(path, f"not valid JSON ({whole_error})") from None
        documents = []
        for number, line in enumerate(lines, start=1):
            try:
                documents.append((orjson.loads(line), line))
            except orjson.JSONDecodeError as error:
                raise ArchiveError(path, f"line {number} is not valid JSON ({error})") from None
        return documents
    if type(document) is list:
        return [(item, orjson.dumps(item)) for item in document]
    return [(document, raw)]


@dataclass
class ImportReport:
    imported_files: int = 0
    new_responses: int = 0
    rejected: list[ArchiveError] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def import_archives(tables: ProviderTables, read: Callable[[Path], list[ArchivedResponse]],
                    paths: list[Path], partition: str, ledger: Ledger, warehouse: Warehouse,
                    workers: int = 1) -> ImportReport:
    """Load saved responses into the raw and flattened tables of ``partition``.

    A bad file is rejected with its reason and lands nothing; the good ones land. Responses
    already in the partition are not added again.
    """
    report = ImportReport()
    imported_at = utc_now().isoformat()
    for path in paths:
        try:
            responses = read(path)
        except ArchiveError as error:
            report.rejected.append(error)
            continue
        report.imported_files += 1
        for response in responses:
            meta = {**response.meta, "fetched_at": imported_at, "source": f"import:{path.name}"}
            ledger.store_response(tables.name, partition, response.task_id, meta, response.body,
                                  response.final_state)
    if report.imported_files:
        report.new_responses = tables.publish_responses(ledger, warehouse, partition).added
        report.rows = tables.publish_flattened(warehouse, partition, workers)
    return report
