"""Backfill from saved API responses, for every provider, read as streams and parsed once.

A file holds newline-delimited documents, one document (pretty-printed or not), or a JSON array
of them, any of them gzip-compressed. Each document is decoded leniently (``core.jsondecode``:
a BOM, a raw control character, a lone surrogate, ``1e309`` are repaired and named); lines that
are not documents on their own (a raw newline inside a string) are joined and tried again.

Every response lands as a version in the raw table (``core.raw``): its bytes as they are in the
file, where it came from, what reading it needed; identical content adds nothing, changed
content is a new version. Its flattened rows are written from the same parse.

The work is split over the machine's cores: this process reads the files and hands their
documents, undecoded, to one worker process per core; each worker decodes its share and writes
its own raw and flattened parts. Nothing is visible until every file is done: then the parts
are published together. A file lands whole, or nothing of it lands: by default one invalid
document rejects its file (its rows are taken out of the parts before they are published).
With ``keep_good``, the good documents of a file land and each rejected one is written, with
its line and reason, to a rejects file.
"""

from __future__ import annotations

import gc
import gzip
import itertools
import multiprocessing
import os
import queue
import stat
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import BOM, Undecodable, decode
from serp_etl.core.ledger import Ledger, TaskState, utc_now
from serp_etl.core.parquet import PartitionWriter, publish_staged
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
CHUNK_DOCUMENTS = 64  # documents handed to a worker at once
CHUNK_BYTES = 8 * 2**20  # or fewer, when they are large
PROGRESS_SECONDS = 1.0


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
    """One decoded document, as a provider's ``split`` takes it."""

    number: int  # its first line in the file; its position, in a JSON array
    data: bytes  # exactly as in the file
    value: object = None
    repairs: tuple[str, ...] = ()


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


# -- reading: undecoded documents --------------------------------------------------------------

@dataclass(frozen=True)
class _Read:
    """A document as read, not decoded yet."""

    number: int
    data: bytes
    error: str | None = None  # why it could not even be read (over the size cap)
    line: bool = False  # one line of newline-delimited documents: it may need its neighbours


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


def _decodes(data: bytes) -> bool:
    try:
        decode(data)
    except Undecodable:
        return False
    return True


def _too_large(number: int, limit: int) -> _Read:
    return _Read(number, b"", error=f"document over the size cap ({limit // 2**20} MB)")


def read_documents(path: Path, limit: int) -> Iterator[_Read]:
    """Every document of the file, in order, undecoded. A file that opens with ``[`` is an
    array of documents; a file whose first line is not a document on its own is one document
    (pretty-printed) if the whole decodes, else lines; otherwise each line is one."""
    try:
        with _open(path) as stream:
            if stream.peek(64).removeprefix(BOM).lstrip()[:1] == b"[":
                yield from _array(stream, limit)
                return
            lines = _lines(stream, limit)
            first = next(lines, None)
            if first is None:
                return
            if first.error is None and not _decodes(first.data):
                rest = [first, *lines]
                if all(read.error is None for read in rest):
                    whole = b"".join(read.data for read in rest)
                    if _decodes(whole):
                        yield _Read(first.number, whole.strip())
                        return
                yield from rest
                return
            yield first
            yield from lines
    except (OSError, EOFError, zlib.error) as error:
        raise ArchiveError(path, f"corrupt or truncated gzip ({error})") from None


def _array(stream: IO[bytes], limit: int) -> Iterator[_Read]:
    data = stream.read(limit + 1)
    if len(data) > limit:
        yield _too_large(1, limit)
        return
    found = array_spans(data, ())
    if found is None:
        yield _Read(1, data)  # not an array after all: decoding it says what it is
        return
    for position, (start, end) in enumerate(found[1], start=1):
        yield _Read(position, data[start:end])


def _lines(stream: IO[bytes], limit: int) -> Iterator[_Read]:
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(2**20)) and not rest.endswith(b"\n"):
                pass  # the rest of the oversized line
            yield _too_large(number, limit)
        elif line.strip():
            yield _Read(number, line, line=True)


# -- processing: decode, split, write (in each worker) -----------------------------------------

@dataclass
class _Share:
    """What one process made of the documents it was handed."""

    staged: dict[Path, Path] = field(default_factory=dict)  # temp -> final
    # (file, task_id, content_hash, state, cost) of every new version written
    added: list[tuple[int, str, str, TaskState, float | None]] = field(default_factory=list)
    rejected: list[tuple[int, int, str, bytes]] = field(default_factory=list)  # file, n, why
    fragments: list[tuple[int, int, bytes, str]] = field(default_factory=list)  # lines alone
    items: int = 0


class _Sink:
    """One process's staged raw part and flattened parts for the whole import."""

    def __init__(self, tables: ProviderTables, split: Split, warehouse: Warehouse,
                 partition: str, seen: set[tuple[str, str]], fetched_at: str,
                 sources: list[str], name: str, owner: int) -> None:
        self.tables, self.split, self.seen = tables, split, seen
        self.fetched_at, self.sources = fetched_at, sources
        raw = warehouse.partition_dir(tables.name, RAW_TABLE, partition) / name
        flat = {table: warehouse.partition_dir(tables.name, table, partition) / name
                for table in tables.flat_schemas}
        self.raw = raw_writer(raw, tables.responses_schema, publish=False, owner=owner)
        self.flat = PartitionWriter(flat, tables.flat_schemas, publish=False,
                                    dictionary_columns=[], owner=owner)
        self.raw.__enter__()
        self.flat.__enter__()
        self.pending: list[tuple[ArchivedResponse, dict]] = []
        self.share = _Share()

    def take(self, file_index: int, read: _Read) -> None:
        """Decode, split and stage one document (or set it aside, saying why)."""
        if read.error:
            self.share.rejected.append((file_index, read.number, read.error, read.data))
            return
        try:
            value, repairs = decode(read.data)
        except Undecodable as error:
            reason = f"not valid JSON ({error})"
            if read.line:  # its neighbours may complete it: the reader tries that
                self.share.fragments.append((file_index, read.number, read.data, reason))
            else:
                self.share.rejected.append((file_index, read.number, reason, read.data))
            return
        document = Document(read.number, read.data.strip(), value, repairs)
        try:
            responses = self.split(document)
        except DocumentRejected as error:
            self.share.rejected.append((file_index, read.number, str(error), read.data))
            return
        for response in responses:
            meta = self.tables.version(response.body, {
                **response.meta, "fetched_at": self.fetched_at,
                "source": self.sources[file_index], "repairs": list(repairs)})
            key = (response.task_id, meta["content_hash"])
            if key in self.seen:
                continue
            self.seen.add(key)
            self.pending.append((response, meta))
            self.share.added.append((file_index, response.task_id, meta["content_hash"],
                                     response.final_state, meta.get("cost")))
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
            tables = self.tables.flatten_parsed([(r.task_id, r.parsed) for r, _ in chunk])
            self.share.items += sum(tables[t].num_rows for t in self.tables.item_tables)
            self.flat.write(tables)
        self.pending.clear()

    def close(self) -> _Share:
        """Finish the staged parts (none, if nothing was new) and hand in the share."""
        if not self.share.added:
            self.abort()
            return self.share
        try:
            self._flush()
        except BaseException:
            self.abort()
            raise
        self.raw.__exit__(None, None, None)
        self.flat.__exit__(None, None, None)
        self.share.staged = {**self.raw.staged, **self.flat.staged}
        return self.share

    def abort(self) -> None:
        self.raw.abort()
        self.flat.abort()


def _work(inbox, outbox, make_sink: Callable[[], _Sink]) -> None:
    """A worker process: take documents until told to stop, then hand in its share."""
    # Millions of small containers live until their batch is flushed: the cyclic collector
    # would scan them over and over for nothing.
    gc.disable()
    sink = make_sink()
    try:
        while (message := inbox.get()) is not None:
            file_index, reads = message
            before = sink.share.items
            for read in reads:
                sink.take(file_index, read)
            outbox.put(("progress", sink.share.items - before))
        outbox.put(("share", sink.close()))
    except BaseException:
        sink.abort()
        outbox.put(("failed", traceback.format_exc()))


class _Workers:
    """One worker process per core, each with a queue of documents to take."""

    def __init__(self, count: int, make_sink: Callable[[int], _Sink]) -> None:
        context = multiprocessing.get_context("fork")  # they inherit the import's state
        self.inboxes = [context.Queue(maxsize=4) for _ in range(count)]
        self.outbox = context.Queue()
        self.processes = [context.Process(target=_work, daemon=True,
                                          args=(inbox, self.outbox, lambda k=k: make_sink(k)))
                          for k, inbox in enumerate(self.inboxes)]
        for process in self.processes:
            process.start()
        self.turn = 0
        self.items = 0

    def give(self, file_index: int, reads: list[_Read]) -> None:
        self.inboxes[self.turn].put((file_index, reads))
        self.turn = (self.turn + 1) % len(self.inboxes)
        self._drain(block=False)

    def _drain(self, block: bool) -> list:
        finished = []
        while True:
            try:
                kind, payload = self.outbox.get(block=block)
            except queue.Empty:
                return finished
            if kind == "progress":
                self.items += payload
            else:
                finished.append((kind, payload))
            if block:
                return finished

    def finish(self) -> list[_Share]:
        for inbox in self.inboxes:
            inbox.put(None)
        results = []
        while len(results) < len(self.processes):
            results.extend(self._drain(block=True))
        for process in self.processes:
            process.join()
        failures = [payload for kind, payload in results if kind == "failed"]
        shares = [payload for kind, payload in results if kind == "share"]
        if failures:
            _discard(shares)
            raise RuntimeError(f"an import worker failed:\n{failures[0]}")
        return shares


def _discard(shares: list[_Share]) -> None:
    for share in shares:
        for temp in share.staged:
            temp.unlink(missing_ok=True)


def _chunks(reads: Iterator[_Read]) -> Iterator[list[_Read]]:
    chunk: list[_Read] = []
    size = 0
    for read in reads:
        chunk.append(read)
        size += len(read.data)
        if len(chunk) >= CHUNK_DOCUMENTS or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


# -- landing -----------------------------------------------------------------------------------

@dataclass
class ImportReport:
    imported_files: int = 0
    new_responses: int = 0
    rejected: list[ArchiveError] = field(default_factory=list)
    rejected_documents: int = 0
    rejects_file: Path | None = None
    rows: dict[str, int] = field(default_factory=dict)


class _Progress:
    """A line per file on a terminal, every second: documents, MB, items a second."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.shown = 0.0

    def show(self, path: Path, documents: int, read: int, items: int, started: float,
             done: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or (not done and now - self.shown < PROGRESS_SECONDS):
            return
        self.shown = now
        rate = items / max(now - started, 1e-9)
        self.stream.write(f"\r{path.name}: {documents} documents, {read / 2**20:.0f} MB, "
                          f"{rate:.0f} items/s" + ("\n" if done else ""))
        self.stream.flush()


def import_archives(tables: ProviderTables, split: Split, paths: list[Path], partition: str,
                    ledger: Ledger, warehouse: Warehouse, *, keep_good: bool = False,
                    rejects_dir: Path | None = None,
                    max_document_mb: int = DEFAULT_MAX_DOCUMENT_MB,
                    workers: int | None = None, progress: TextIO | None = None) -> ImportReport:
    """Load saved responses into the raw and flattened tables of ``partition``."""
    workers = max(1, workers or os.cpu_count() or 1)
    limit = max_document_mb * 2**20
    raw_dir = warehouse.partition_dir(tables.name, RAW_TABLE, partition)
    seen = stored_versions(raw_dir, tables.responses_schema, tables.hash_body)
    known_tasks = {task_id for task_id, _ in seen}
    fetched_at = utc_now().isoformat()
    sources = [f"import:{path}" for path in paths]
    stem = new_part_name().removesuffix(".parquet")
    owner = os.getpid()  # this process publishes what every worker stages

    def make_sink(index: int | str) -> _Sink:
        return _Sink(tables, split, warehouse, partition, seen, fetched_at, sources,
                     f"{stem}-{index}.parquet", owner)

    pool = _Workers(workers, make_sink)
    unreadable: dict[int, ArchiveError] = {}
    shown = _Progress(progress)
    try:
        for index, path in enumerate(paths):
            documents = read_bytes = 0
            started, items_before = time.monotonic(), pool.items
            try:
                for chunk in _chunks(read_documents(path, limit)):
                    pool.give(index, chunk)
                    documents += len(chunk)
                    read_bytes += sum(len(read.data) for read in chunk)
                    shown.show(path, documents, read_bytes, pool.items - items_before, started)
            except ArchiveError as error:
                unreadable[index] = error
            if not documents and index not in unreadable:
                unreadable[index] = ArchiveError(path, "empty file")
            shown.show(path, documents, read_bytes, pool.items - items_before, started, True)
    finally:
        shares = pool.finish()
    main = make_sink("joined")  # lines that were documents only together
    try:
        _join_fragments(main, [f for share in shares for f in share.fragments])
        shares.append(main.close())
    except BaseException:
        main.abort()
        _discard(shares)
        raise
    return _land(tables, warehouse, ledger, partition, paths, shares, unreadable, known_tasks,
                 keep_good, rejects_dir, workers)


def _join_fragments(sink: _Sink, fragments: list[tuple[int, int, bytes, str]]) -> None:
    """Consecutive lines of a file that failed alone: one document together, or each rejected
    with its own reason."""
    fragments.sort()
    for _, run in itertools.groupby(enumerate(fragments), lambda p: (p[1][0], p[1][1] - p[0])):
        run = [fragment for _, fragment in run]
        file_index, first = run[0][0], run[0][1]
        joined = b"".join(data for _, _, data, _ in run)
        if len(run) > 1 and _decodes(joined):
            sink.take(file_index, _Read(first, joined.strip()))
            continue
        for file_index, number, data, reason in run:
            sink.share.rejected.append((file_index, number, reason, data))


def _land(tables: ProviderTables, warehouse: Warehouse, ledger: Ledger, partition: str,
          paths: list[Path], shares: list[_Share], unreadable: dict[int, ArchiveError],
          known_tasks: set[str], keep_good: bool, rejects_dir: Path | None,
          workers: int) -> ImportReport:
    """Publish what the shares staged, but the rows of rejected files and versions staged
    twice; then flatten again if an older version must leave the tables."""
    report = ImportReport()
    rejected_docs = sorted((f, n, why, data) for share in shares for f, n, why, data
                           in share.rejected)
    refused = dict(unreadable)
    if not keep_good:
        for file_index, number, reason, _ in rejected_docs:
            refused.setdefault(file_index, ArchiveError(paths[file_index],
                                                        f"line {number}: {reason}"))
    added, twice = [], set()
    keys: set[tuple[str, str]] = set()
    for share in shares:
        for file_index, task_id, version, state, cost in share.added:
            if file_index in refused:
                continue
            if (task_id, version) in keys:
                twice.add((task_id, version))  # the same content staged by two processes
                continue
            keys.add((task_id, version))
            added.append((task_id, version, state, cost))
    staged = {temp: final for share in shares for temp, final in share.staged.items()}
    staged_from = {file_index for share in shares for file_index, *_ in share.added}
    dropped = {f"import:{paths[i]}" for i in refused if i in staged_from}
    reflatten = bool(dropped or twice)
    if reflatten:
        staged = _without(staged, tables.name, dropped, bool(twice))
    if added:
        publish_staged(staged)
    else:
        for temp in staged:
            temp.unlink(missing_ok=True)
    report.rejected = [refused[i] for i in sorted(refused)]
    report.imported_files = len(paths) - len(refused)
    report.new_responses = len(added)
    ids = [task_id for task_id, *_ in added]
    superseded = len(set(ids)) < len(ids) or any(task_id in known_tasks for task_id in ids)
    if added and (superseded or reflatten):
        report.rows = tables.publish_flattened(warehouse, partition, workers)
    elif added or not _has_flattened(tables, warehouse, partition):
        report.rows = _count_rows(tables, warehouse, partition)
    ledger.note_imported(tables.name, [(task_id, version, state, {
        "fetched_at": utc_now().isoformat(), "cost": cost})
        for task_id, version, state, cost in added])
    if keep_good and rejected_docs:
        report.rejected_documents = len(rejected_docs)
        report.rejects_file = _write_rejects(rejects_dir or warehouse.data_dir / "rejects",
                                             tables.name, partition, paths, rejected_docs)
    return report


def _without(staged: dict[Path, Path], provider: str, dropped: set[str],
             dedupe: bool) -> dict[Path, Path]:
    """The staged raw parts without the rows of ``dropped`` sources (and each version once);
    the staged flattened parts are discarded: the partition is flattened again."""
    kept: dict[Path, Path] = {}
    seen: set[tuple[str, str]] = set()
    for temp, final in sorted(staged.items(), key=lambda item: item[1]):
        if final.parent.parent.name != RAW_TABLE:
            temp.unlink()
            continue
        table = pq.read_table(temp)
        keep = pc.invert(pc.is_in(table.column("source"), pa.array(sorted(dropped),
                                                                     pa.string())))
        if dedupe:
            pairs = zip(table.column("task_id").to_pylist(),
                        table.column("content_hash").to_pylist(), strict=True)
            first = []
            for pair in pairs:
                first.append(pair not in seen)
                seen.add(pair)
            keep = pc.and_(keep, pa.array(first, pa.bool_()))
        filtered = table.filter(keep)
        temp.unlink()
        with raw_writer(final, filtered.schema, publish=False, owner=os.getpid()) as writer:
            writer.write({RAW_TABLE: filtered})
        kept.update(writer.staged)
    return kept


def _write_rejects(directory: Path, provider: str, partition: str, paths: list[Path],
                   rejects: list[tuple[int, int, str, bytes]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{provider}-{partition}-{utc_now():%Y%m%dT%H%M%S}.ndjson"
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        for file_index, number, reason, data in rejects:
            handle.write(orjson.dumps({"file": str(paths[file_index]), "line": number,
                                       "reason": reason,
                                       "document": data.decode("utf-8", "replace").strip()})
                         + b"\n")
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

