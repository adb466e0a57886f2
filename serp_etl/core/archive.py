"""Backfill from saved API responses, for every provider, read as streams and parsed once.

A file holds newline-delimited documents, one document (pretty-printed or not), or a JSON array
of them, any of them gzip-compressed. Each document is decoded leniently (``core.jsondecode``:
a BOM, a raw control character, a lone surrogate, ``1e309`` are repaired and named); lines that
are not documents on their own (a raw newline inside a string) are joined and tried again.

Every response lands as a version in the raw table (``core.raw``): its bytes as they are in the
file, where it came from, what reading it needed; identical content adds nothing, changed
content is a new version. Its flattened rows are written from the same parse. A file lands
whole, or nothing of it lands: by default one invalid document rejects its file. With
``keep_good``, the good documents of a file land and each rejected one is written, with its
line and reason, to a rejects file.
"""

from __future__ import annotations

import gzip
import itertools
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import BOM, Undecodable, decode
from serp_etl.core.ledger import Ledger, TaskState, utc_now
from serp_etl.core.parquet import PartitionWriter, publish_staged, sweep_temp_files
from serp_etl.core.provider import ProviderTables
from serp_etl.core.raw import (
    RAW_ROW_GROUP_ROWS,
    RAW_TABLE,
    new_part_name,
    raw_parts,
    raw_rows_table,
    raw_writer,
    stored_versions,
)
from serp_etl.core.warehouse import Warehouse

_GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_DOCUMENT_MB = 256
FLATTEN_BATCH = 64  # responses flattened at once


class ArchiveError(ValueError):
    """A file that lands nothing: unreadable, not a file, or (by default) with an invalid
    document, named with its line."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DocumentRejected(ValueError):
    """One document is not a response this import can take; the message says why."""


@dataclass(frozen=True)
class Document:
    number: int  # its first line in the file; its position, in a JSON array
    data: bytes  # exactly as in the file
    value: object = None  # decoded
    repairs: tuple[str, ...] = ()
    error: str | None = None  # why it cannot be read


@dataclass(frozen=True)
class ArchivedResponse:
    """One response of a document, as the raw layer keeps it and the flatten reads it."""

    task_id: str
    meta: dict  # the provider's raw columns
    body: bytes  # exactly as in the file (one task of a larger envelope: see the provider)
    final_state: TaskState
    parsed: object  # what the provider's flatten takes


# A document -> its responses (raises DocumentRejected).
Split = Callable[[Document], list[ArchivedResponse]]


# -- reading ---------------------------------------------------------------------------------

def _open(path: Path) -> IO[bytes]:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ArchiveError(path, f"cannot read: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise ArchiveError(path, "not a regular file")
    handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    if handle.read(2) == _GZIP_MAGIC:
        handle.seek(0)
        return gzip.GzipFile(fileobj=handle, mode="rb")
    handle.seek(0)
    return handle


def _decoded(number: int, data: bytes) -> Document:
    try:
        value, repairs = decode(data)
    except Undecodable as error:
        return Document(number, data, error=f"not valid JSON ({error})")
    return Document(number, data, value, repairs)


def documents(path: Path, max_document_bytes: int) -> Iterator[Document]:
    """Every document of the file, in order, each decoded (or with its error)."""
    try:
        with _open(path) as stream:
            head = stream.peek(64) if hasattr(stream, "peek") else b""
            if head.removeprefix(BOM).lstrip()[:1] == b"[":
                yield from _array(stream, max_document_bytes)
            else:
                yield from _lines(path, stream, max_document_bytes)
    except (OSError, EOFError, zlib.error) as error:
        raise ArchiveError(path, f"corrupt or truncated gzip ({error})") from None


def _read_all(stream: IO[bytes], limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise DocumentRejected(f"document over the size cap ({limit // 2**20} MB)")
    return data


def _array(stream: IO[bytes], limit: int) -> Iterator[Document]:
    """A JSON array of documents: each element, as its exact bytes."""
    try:
        data = _read_all(stream, limit)
    except DocumentRejected as error:
        yield Document(1, b"", error=str(error))
        return
    found = array_spans(data, ())
    if found is None:
        yield _decoded(1, data)  # not an array after all: its error says what it is
        return
    for position, (start, end) in enumerate(found[1], start=1):
        yield _decoded(position, data[start:end])


def _lines(path: Path, stream: IO[bytes], limit: int) -> Iterator[Document]:
    """Newline-delimited documents, or one document over many lines (pretty-printed): when the
    first line is not a document on its own, the whole file is tried as one. Lines that fail on
    their own are joined and tried again, so a document broken by a raw newline still reads."""
    lines = _numbered_lines(stream, limit)
    first = next(lines, None)
    if first is None:
        return
    if first[1] is not None and _decoded(*first).error is not None:
        rest = [first, *lines]
        if any(line is None for _, line in rest):
            lines = iter(rest)  # over the cap somewhere: line by line, to say where
        else:
            whole = _decoded(first[0], b"".join(line for _, line in rest).strip())
            if whole.error is None:
                yield whole
                return
            lines = iter(rest)
    else:
        lines = itertools.chain([first], lines)
    fragments: list[tuple[int, bytes]] = []
    for number, line in lines:
        if line is None:
            yield from _settle(fragments)
            yield Document(number, b"", error=f"document over the size cap "
                                              f"({limit // 2**20} MB)")
            continue
        document = _decoded(number, line.strip())
        if document.error is None:
            yield from _settle(fragments)
            yield document
        else:
            fragments.append((number, line))
            if sum(len(f) for _, f in fragments) > limit:
                yield from _settle(fragments)
    yield from _settle(fragments)


def _numbered_lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """Non-blank lines with their numbers; None for a line over ``limit`` (skipped)."""
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(2**20)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        elif line.strip():
            yield number, line


def _settle(fragments: list[tuple[int, bytes]]) -> Iterator[Document]:
    """Lines that were not documents on their own: one document together, or each an error."""
    if not fragments:
        return
    joined = _decoded(fragments[0][0], b"".join(line for _, line in fragments).strip())
    if joined.error is None or len(fragments) == 1:
        yield joined
    else:
        for number, line in fragments:
            yield _decoded(number, line.strip())
    fragments.clear()


# -- landing ---------------------------------------------------------------------------------

@dataclass
class ImportReport:
    imported_files: int = 0
    new_responses: int = 0
    rejected: list[ArchiveError] = field(default_factory=list)
    rejected_documents: int = 0
    rejects_file: Path | None = None
    rows: dict[str, int] = field(default_factory=dict)


class _FileSink:
    """One file's new versions, staged as a raw part and flattened parts of the same name:
    published together when the file is done, or discarded."""

    def __init__(self, tables: ProviderTables, warehouse: Warehouse, partition: str,
                 seen: set[tuple[str, str]], fetched_at: str, source: str) -> None:
        self.tables, self.seen = tables, seen
        self.fetched_at, self.source = fetched_at, source
        raw_dir = warehouse.partition_dir(tables.name, RAW_TABLE, partition)
        name = new_part_name()
        flat = {table: warehouse.partition_dir(tables.name, table, partition) / name
                for table in tables.flat_schemas}
        for directory in [raw_dir, *(path.parent for path in flat.values())]:
            sweep_temp_files(directory)
        self.raw = raw_writer(raw_dir / name, tables.responses_schema, publish=False)
        self.flat = PartitionWriter(flat, tables.flat_schemas, publish=False,
                                    dictionary_columns=[])
        self.raw.__enter__()
        self.flat.__enter__()
        self.pending: list[tuple[ArchivedResponse, dict]] = []
        self.added: list[tuple[str, str, TaskState, dict]] = []  # task, version, state, meta

    def add(self, responses: list[ArchivedResponse], repairs: tuple[str, ...]) -> None:
        for response in responses:
            meta = self.tables.version(response.body, {
                **response.meta, "fetched_at": self.fetched_at, "source": self.source,
                "repairs": list(repairs)})
            key = (response.task_id, meta["content_hash"])
            if key in self.seen:
                continue
            self.seen.add(key)
            self.pending.append((response, meta))
            self.added.append((response.task_id, meta["content_hash"], response.final_state,
                               meta))
            if len(self.pending) >= RAW_ROW_GROUP_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        self.raw.write({RAW_TABLE: raw_rows_table(
            [(r.task_id, meta, r.body) for r, meta in self.pending],
            self.tables.responses_schema)})
        for start in range(0, len(self.pending), FLATTEN_BATCH):
            chunk = self.pending[start:start + FLATTEN_BATCH]
            self.flat.write(self.tables.flatten_parsed([(r.task_id, r.parsed) for r, _ in chunk]))
        self.pending.clear()

    def close(self, keep: bool) -> None:
        """Publish what was staged (when ``keep`` and anything is new), or discard it."""
        if not keep:
            self.raw.abort()
            self.flat.abort()
            return
        try:
            self._flush()
        except BaseException:
            self.raw.abort()
            self.flat.abort()
            raise
        self.raw.__exit__(None, None, None)
        self.flat.__exit__(None, None, None)
        staged = {**self.raw.staged, **self.flat.staged}
        if self.added:
            publish_staged(staged)
        else:
            for temp in staged:
                temp.unlink(missing_ok=True)


def import_archives(tables: ProviderTables, split: Split, paths: list[Path], partition: str,
                    ledger: Ledger, warehouse: Warehouse, *, keep_good: bool = False,
                    rejects_dir: Path | None = None,
                    max_document_mb: int = DEFAULT_MAX_DOCUMENT_MB,
                    workers: int = 1) -> ImportReport:
    """Load saved responses into the raw and flattened tables of ``partition``."""
    report = ImportReport()
    raw_dir = warehouse.partition_dir(tables.name, RAW_TABLE, partition)
    seen = stored_versions(raw_dir, tables.responses_schema, tables.hash_body)
    known_tasks = {task_id for task_id, _ in seen}
    fetched_at = utc_now().isoformat()
    rejects: list[dict] = []
    superseded = False
    for path in paths:
        sink = _FileSink(tables, warehouse, partition, seen, fetched_at, f"import:{path.name}")
        bad: list[dict] = []
        try:
            read = 0
            for document in documents(path, max_document_mb * 2**20):
                read += 1
                try:
                    if document.error:
                        raise DocumentRejected(document.error)
                    sink.add(split(document), document.repairs)
                except DocumentRejected as error:
                    bad.append({"file": str(path), "line": document.number,
                                "reason": str(error),
                                "document": document.data.decode("utf-8", "replace")})
                    if not keep_good:
                        raise ArchiveError(path, f"line {document.number}: {error}") from None
            if not read:
                raise ArchiveError(path, "empty file")
        except ArchiveError as error:
            sink.close(keep=False)
            _forget(seen, sink.added)
            report.rejected.append(error)
            continue
        except BaseException:
            sink.close(keep=False)
            raise
        sink.close(keep=True)
        report.imported_files += 1
        report.new_responses += len(sink.added)
        rejects.extend(bad)
        superseded |= any(task_id in known_tasks for task_id, *_ in sink.added)
        known_tasks.update(task_id for task_id, *_ in sink.added)
        ledger.note_imported(tables.name, [(t, v, s, m) for t, v, s, m in sink.added])
    report.rejected_documents = len(rejects)
    if rejects:
        report.rejects_file = _write_rejects(rejects_dir or warehouse.data_dir / "rejects",
                                             tables.name, partition, rejects)
    if superseded:
        # A task of the partition has a new version: its older one leaves the flattened tables.
        report.rows = tables.publish_flattened(warehouse, partition, workers)
    elif report.new_responses or not _has_flattened(tables, warehouse, partition):
        report.rows = _count_rows(tables, warehouse, partition)
    return report


def _forget(seen: set[tuple[str, str]], added: list[tuple]) -> None:
    for task_id, version, *_ in added:
        seen.discard((task_id, version))


def _write_rejects(directory: Path, provider: str, partition: str, rejects: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{provider}-{partition}-{utc_now():%Y%m%dT%H%M%S}.ndjson"
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        for reject in rejects:
            handle.write(orjson.dumps(reject) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return path


def _has_flattened(tables: ProviderTables, warehouse: Warehouse, partition: str) -> bool:
    return all(raw_parts(warehouse.partition_dir(tables.name, table, partition))
               for table in tables.flat_schemas)


def _count_rows(tables: ProviderTables, warehouse: Warehouse, partition: str) -> dict[str, int]:
    """Rows of every flattened table of the partition, from the part files' footers; a table
    with no part yet gets an empty one, so that every view has its columns."""
    import pyarrow.parquet as pq

    rows = {}
    for table, schema in tables.flat_schemas.items():
        parts = raw_parts(warehouse.partition_dir(tables.name, table, partition))
        if not parts:
            with PartitionWriter({table: warehouse.partition_file(tables.name, table,
                                                                  partition)},
                                 {table: schema}):
                pass
        rows[table] = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    return rows

