"""Backfill from saved API responses, for every provider, read as streams and parsed once.

A file holds newline-delimited documents, one document (pretty-printed or not), or a JSON array
of them, any of them gzip-compressed. Each document is decoded leniently (``core.jsondecode``:
a BOM, a raw control character, a lone surrogate, ``1e309`` are repaired and named); lines that
are not documents on their own (a raw newline inside a string) are joined and tried again.

Every response lands as a version in the raw table (``core.raw``): its bytes as they are in the
file, where it came from, what reading it needed; identical content adds nothing, changed
content is a new version. Its flattened rows are written from the same parse.

The work is split over the machine's cores, one worker process each, taking work from one
queue as it is free: byte ranges of a plain file of lines, which the worker reads by itself (no
document passes between processes), or documents this process read, undecoded (a gzip file,
an array, one document). Each worker decodes its share and writes its own raw and flattened
parts. Nothing is visible until every file is done: then the parts
are published together. A file lands whole, or nothing of it lands: by default one invalid
document rejects its file (its rows are taken out of the parts before they are published).
With ``keep_good``, the good documents of a file land and each rejected one is written, with
its line and reason, to a rejects file.
"""

from __future__ import annotations

import gc
import gzip
import io
import itertools
import multiprocessing
import os
import queue
import stat
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, NamedTuple, TextIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from serp_etl.core.flatten import with_lineage
from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import BOM, Undecodable, decode
from serp_etl.core.parquet import PartitionWriter, read_part, sweep_temp_files
from serp_etl.core.part_index import open_index
from serp_etl.core.provider import ProviderTables
from serp_etl.core.raw import (
    RAW_ROW_GROUP_ROWS,
    RAW_TABLE,
    new_part_name,
    part_versions,
    raw_rows_table,
    raw_writer,
    stored_versions,
)
from serp_etl.core.warehouse import Warehouse
from serp_etl.state.ledger import Ledger, TaskState, utc_now

_GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_DOCUMENT_MB = 256
FLATTEN_BATCH = 32  # responses flattened at once
CHUNK_DOCUMENTS = 64  # documents read here and handed to a worker at once
CHUNK_BYTES = 8 * 2**20  # or fewer, when they are large
RANGES_PER_WORKER = 32  # of a plain file of lines, that a worker reads by itself
MIN_RANGE_BYTES, MAX_RANGE_BYTES = 2**18, 8 * 2**20
READ_BUFFER = 2**20
MAX_JOINED_LINES = 1000  # lines that failed alone, tried together as one document
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

    number: int  # its first line (0: not counted yet, see offset); its position, in an array
    data: bytes
    error: str | None = None  # why it could not even be read (over the size cap)
    line: bool = False  # one line of newline-delimited documents: it may need its neighbours
    offset: int = 0  # its first byte in the file, for a line


if TYPE_CHECKING:
    # What ``_open`` returns: a file read through a buffer, or a gzip stream (both can peek).
    Stream = io.BufferedReader[io.FileIO] | gzip.GzipFile


def _buffered(path: Path) -> io.BufferedReader[io.FileIO]:
    """What open(path, "rb", buffering=READ_BUFFER) makes, spelled out for its type."""
    return io.BufferedReader(io.FileIO(path, "rb"), READ_BUFFER)


def _open(path: Path) -> Stream:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ArchiveError(path, f"cannot read: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise ArchiveError(path, "not a regular file")
    handle = _buffered(path)
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


def _too_large(number: int, limit: int, offset: int = 0) -> _Read:
    return _Read(
        number, b"", error=f"document over the size cap ({limit // 2**20} MB)", offset=offset
    )


def _is_array(stream: Stream) -> bool:
    return stream.peek(64).removeprefix(BOM).lstrip()[:1] == b"["


def line_ranges(path: Path, limit: int, workers: int) -> list[tuple[int, int]] | None:
    """For a plain (not compressed) file of newline-delimited documents: byte ranges, each
    ending after a newline, that workers read by themselves; None for any other file
    (``read_documents`` reads it). Many ranges a worker, so that they all finish together."""
    try:
        with _open(path) as stream:
            if isinstance(stream, gzip.GzipFile) or _is_array(stream):
                return None
            first = next(_lines(stream, limit), None)
            if first is None or (first.error is None and not _decodes(first.data)):
                return None
            size = os.fstat(stream.fileno()).st_size
            step = min(max(size // (RANGES_PER_WORKER * workers), MIN_RANGE_BYTES), MAX_RANGE_BYTES)
            ranges, start = [], 0
            while start < size:
                end = start + step
                if end < size:
                    stream.seek(end - 1)  # to just past the newline that ends this line
                    _skip_line(stream)
                    end = stream.tell()
                ranges.append((start, min(end, size)))
                start = end
            return ranges
    except OSError as error:
        raise ArchiveError(path, f"cannot read: {error.strerror or error}") from None


def _skip_line(stream: Stream) -> int:
    """Read to the end of the current line (never all of a huge one at once); its length."""
    length = 0
    while piece := stream.readline(2**20):
        length += len(piece)
        if piece.endswith(b"\n"):
            break
    return length


def read_range(path: Path, start: int, end: int, limit: int) -> Iterator[_Read]:
    """The documents of one of ``line_ranges``: their line numbers are not known here."""
    try:
        with _buffered(path) as stream:
            stream.seek(start)
            yield from _lines(stream, limit, start, end)
    except OSError as error:
        raise ArchiveError(path, f"cannot read: {error.strerror or error}") from None


def read_documents(path: Path, limit: int) -> Iterator[_Read]:
    """Every document of the file, in order, undecoded. A file that opens with ``[`` is an
    array of documents; a file whose first line is not a document on its own is one document
    (pretty-printed) if the whole decodes, else lines; otherwise each line is one."""
    try:
        with _open(path) as stream:
            if _is_array(stream):
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


def _array(stream: Stream, limit: int) -> Iterator[_Read]:
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


def _lines(stream: Stream, limit: int, start: int = 0, end: int | None = None) -> Iterator[_Read]:
    """The non-blank lines from ``start`` (where the stream is) to ``end`` (or its end),
    numbered from 1 when read from the start, else 0 (the caller counts them if it must)."""
    number, offset = (0, start)
    while (end is None or offset < end) and (line := stream.readline(limit + 1)):
        number += 1
        at = offset
        offset += len(line)
        shown = number if start == 0 else 0
        if len(line) > limit and not line.endswith(b"\n"):
            offset += _skip_line(stream)
            yield _too_large(shown, limit, at)
        elif line.strip():
            yield _Read(shown, line, line=True, offset=at)


def line_numbers(path: Path, offsets: Iterable[int]) -> dict[int, int]:
    """The line number of each byte offset of a plain file (counted only when needed: for
    a document that a worker read from a range and that must be named)."""
    numbers: dict[int, int] = {}
    with open(path, "rb", buffering=0) as stream:
        newlines = position = 0
        for offset in sorted(set(offsets)):
            while position < offset:
                block = stream.read(min(READ_BUFFER, offset - position))
                if not block:
                    break
                newlines += block.count(b"\n")
                position += len(block)
            numbers[offset] = newlines + 1
    return numbers


# -- processing: decode, split, write (in each worker) -----------------------------------------


class _Aside(NamedTuple):
    """A document set aside: rejected, or (a line that failed alone) a fragment."""

    file: int
    number: int  # 0 until counted (see line_numbers)
    offset: int
    reason: str
    data: bytes


@dataclass
class _Share:
    """What one process made of the documents it was handed."""

    staged: dict[Path, PurePath] = field(default_factory=dict)  # temp -> final
    # (file, task_id, content_hash, state, cost) of every new version written
    added: list[tuple[int, str, str, TaskState, float | None]] = field(default_factory=list)
    rejected: list[_Aside] = field(default_factory=list)
    fragments: list[_Aside] = field(default_factory=list)  # lines that failed alone
    unreadable: dict[int, ArchiveError] = field(default_factory=dict)  # file -> why
    items: int = 0


class _Sink:
    """One process's staged raw part and flattened parts for the whole import."""

    def __init__(
        self,
        tables: ProviderTables,
        split: Split,
        warehouse: Warehouse,
        partition: str,
        seen: set[tuple[str, str]],
        fetched_at: str,
        sources: list[str],
        name: str,
        owner: int,
    ) -> None:
        self.tables, self.split, self.seen = tables, split, seen
        self.fetched_at, self.sources = fetched_at, sources
        raw = warehouse.partition_dir(tables.name, RAW_TABLE, partition) / name
        flat = {
            table: warehouse.partition_dir(tables.name, table, partition) / name
            for table in tables.flat_schemas
        }
        self.raw = raw_writer(
            raw, tables.responses_schema, publish=False, owner=owner, storage=warehouse.storage
        )
        self.flat = PartitionWriter(
            flat,
            tables.flat_schemas,
            publish=False,
            dictionary_columns=[],
            owner=owner,
            storage=warehouse.storage,
        )
        self.raw.__enter__()
        self.flat.__enter__()
        # Bodies wait for a whole raw row group; decoded documents only for a flatten batch,
        # so that few are alive at once (and stay in the processor's caches).
        self.raw_rows: list[tuple[str, dict, bytes]] = []
        self.parsed: list[tuple[str, object]] = []
        self.versions: list[str] = []  # the content hash of each of ``parsed``, its lineage
        self.share = _Share()

    def take(self, file_index: int, read: _Read) -> None:
        """Decode, split and stage one document (or set it aside, saying why)."""
        if read.error:
            self._reject(file_index, read, read.error)
            return
        try:
            value, repairs = decode(read.data, duplicates=True)
        except Undecodable as error:
            reason = f"not valid JSON ({error})"
            if read.line:  # its neighbours may complete it: they are tried together later
                self.share.fragments.append(
                    _Aside(file_index, read.number, read.offset, reason, read.data)
                )
            else:
                self._reject(file_index, read, reason)
            return
        document = Document(read.number, read.data.strip(), value, repairs)
        try:
            responses = self.split(document)
        except DocumentRejected as error:
            self._reject(file_index, read, str(error))
            return
        for response in responses:
            meta = self.tables.version(
                response.body,
                {
                    **response.meta,
                    "fetched_at": self.fetched_at,
                    "source": self.sources[file_index],
                    "repairs": list(repairs),
                },
            )
            key = (response.task_id, meta["content_hash"])
            if key in self.seen:
                continue
            self.seen.add(key)
            self.raw_rows.append((response.task_id, meta, response.body))
            self.parsed.append((response.task_id, response.parsed))
            self.versions.append(meta["content_hash"])
            self.share.added.append(
                (
                    file_index,
                    response.task_id,
                    meta["content_hash"],
                    response.final_state,
                    meta.get("cost"),
                )
            )
            if len(self.parsed) >= FLATTEN_BATCH:
                self._flatten()
            if len(self.raw_rows) >= RAW_ROW_GROUP_ROWS:
                self._write_raw()

    def _reject(self, file_index: int, read: _Read, reason: str) -> None:
        self.share.rejected.append(_Aside(file_index, read.number, read.offset, reason, read.data))

    def _flatten(self) -> None:
        if self.parsed:
            tables = with_lineage(
                self.tables.flatten_parsed(self.parsed),
                pa.array([task_id for task_id, _ in self.parsed], pa.string()),
                pa.array(self.versions, pa.string()),
            )
            self.share.items += sum(tables[t].num_rows for t in self.tables.item_tables)
            self.flat.write(tables)
            self.parsed, self.versions = [], []

    def _write_raw(self) -> None:
        if self.raw_rows:
            # The whole import is one load: its time is the import's.
            self.raw.write(
                {
                    RAW_TABLE: raw_rows_table(
                        self.raw_rows,
                        self.tables.responses_schema,
                        datetime.fromisoformat(self.fetched_at),
                    )
                }
            )
            self.raw_rows = []

    def close(self) -> _Share:
        """Finish the staged parts (none, if nothing was new) and hand in the share."""
        if not self.share.added:
            self.abort()
            return self.share
        try:
            self._flatten()
            self._write_raw()
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


@dataclass(frozen=True)
class _Range:
    """Lines of a plain file that a worker reads by itself (see line_ranges)."""

    path: Path
    start: int
    end: int
    limit: int


Work = tuple[int, "list[_Read] | _Range"]  # a file's index, and documents of it to take


def _work(inbox, outbox, make_sink: Callable[[], _Sink]) -> None:
    """A worker process: take documents until told to stop, then hand in its share."""
    # Decoded documents are trees of many small containers, freed by reference counting: the
    # cyclic collector would scan them over and over for nothing.
    gc.disable()
    sink = make_sink()
    try:
        while (message := inbox.get()) is not None:
            file_index, work = message
            items, documents, size = sink.share.items, 0, 0
            try:
                reads = (
                    read_range(work.path, work.start, work.end, work.limit)
                    if isinstance(work, _Range)
                    else work
                )
                for read in reads:
                    sink.take(file_index, read)
                    documents += 1
                    size += len(read.data)
            except ArchiveError as error:
                sink.share.unreadable.setdefault(file_index, error)
            outbox.put(("progress", (file_index, documents, size, sink.share.items - items)))
        outbox.put(("share", sink.close()))
    except BaseException as error:
        sink.abort()
        outbox.put(("failed", _one_line(error)))


class _Workers:
    """One worker process per core, taking work from one queue as each is free."""

    def __init__(self, count: int, make_sink: Callable[[int], _Sink], progress: _Progress) -> None:
        context = multiprocessing.get_context("fork")  # they inherit the import's state
        self.inbox = context.Queue(maxsize=2 * count)  # documents read ahead: bounded memory
        self.outbox = context.Queue()
        self.processes = [
            context.Process(
                target=_work, daemon=True, args=(self.inbox, self.outbox, lambda k=k: make_sink(k))
            )
            for k in range(count)
        ]
        for process in self.processes:
            process.start()
        self.progress = progress
        self.finished: list[tuple[str, _Share]] = []

    def give(self, file_index: int, work: list[_Read] | _Range) -> None:
        self.progress.given(file_index)
        while True:
            try:
                self.inbox.put((file_index, work), timeout=PROGRESS_SECONDS)
                break
            except queue.Full:
                self._drain(PROGRESS_SECONDS)
        self._drain(0)

    def _drain(self, timeout: float) -> None:
        """Take the workers' messages that came in (waiting up to ``timeout`` for one)."""
        while True:
            try:
                kind, payload = (
                    self.outbox.get(timeout=timeout) if timeout else self.outbox.get_nowait()
                )
            except queue.Empty:
                self._check_alive()
                self.progress.tick()
                return
            if kind == "progress":
                self.progress.advance(*payload)
            elif kind == "failed":
                # The others may be stopped now: the import fails whole (nothing of it is
                # published), and waiting for more work to be taken would wait for ever.
                raise ImportFailed(payload)
            else:
                self.finished.append((kind, payload))
            timeout = 0

    def _check_alive(self) -> None:
        # A worker killed from outside (out of memory) never hands in anything: say so,
        # instead of waiting for it for ever.
        for process in self.processes:
            if process.exitcode not in (None, 0):
                raise ImportFailed(f"an import worker died (exit code {process.exitcode})")

    def finish(self) -> list[_Share]:
        for _ in self.processes:
            self.inbox.put(None)
        while len(self.finished) < len(self.processes):
            self._drain(PROGRESS_SECONDS)
        for process in self.processes:
            process.join()
        self.progress.tick(final=True)
        return [payload for _, payload in self.finished]

    def stop(self) -> None:
        """Kill the workers (the import failed): what they staged is removed, or, for one
        killed while writing, swept later."""
        for process in self.processes:
            process.kill()
            process.join()
        _discard([share for _, share in self.finished])


class ImportFailed(RuntimeError):
    """The import stopped (a worker failed or died, the disk filled up...): said in one line."""


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


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


@dataclass
class _FileProgress:
    given: int = 0  # pieces of work handed out
    done: int = 0  # and taken
    closed: bool = False  # every piece handed out
    documents: int = 0
    size: int = 0
    items: int = 0
    started: float = 0.0


class _Progress:
    """On a terminal, a line for the file being imported, every second: documents, MB,
    items a second; each file's last line stays."""

    def __init__(self, stream: TextIO | None, paths: list[Path]) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.paths = paths
        self.files = [_FileProgress() for _ in paths]
        self.current = 0  # the first file not finished
        self.shown = 0.0

    def given(self, file_index: int) -> None:
        state = self.files[file_index]
        state.started = state.started or time.monotonic()
        state.given += 1

    def close(self, file_index: int) -> None:
        self.files[file_index].closed = True
        self.tick()

    def advance(self, file_index: int, documents: int, size: int, items: int) -> None:
        state = self.files[file_index]
        state.done += 1
        state.documents += documents
        state.size += size
        state.items += items

    def documents(self, file_index: int) -> int:
        return self.files[file_index].given

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        while self.current < len(self.files):
            state = self.files[self.current]
            if not (final or (state.closed and state.done == state.given)):
                break
            self._show(state, now, done=True)
            self.current += 1
        if self.current < len(self.files) and now - self.shown >= PROGRESS_SECONDS:
            self._show(self.files[self.current], now, done=False)

    def _show(self, state: _FileProgress, now: float, done: bool) -> None:
        if self.stream is None or not state.given:
            return
        self.shown = now
        rate = state.items / max(now - state.started, 1e-9)
        self.stream.write(
            f"\r{self.paths[self.current].name}: {state.documents} documents, "
            f"{state.size / 2**20:.0f} MB, {rate:.0f} items/s" + ("\n" if done else "")
        )
        self.stream.flush()


def import_archives(
    tables: ProviderTables,
    split: Split,
    paths: list[Path],
    partition: str,
    ledger: Ledger,
    warehouse: Warehouse,
    *,
    keep_good: bool = False,
    rejects_dir: Path | None = None,
    max_document_mb: int = DEFAULT_MAX_DOCUMENT_MB,
    workers: int | None = None,
    progress: TextIO | None = None,
) -> ImportReport:
    """Load saved responses into the raw and flattened tables of ``partition``."""
    workers = max(1, workers or os.cpu_count() or 1)
    limit = max_document_mb * 2**20
    seen = stored_versions(
        warehouse, tables.name, partition, tables.responses_schema, tables.hash_body
    )
    known_tasks = {task_id for task_id, _ in seen}
    fetched_at = utc_now().isoformat()
    sources = [f"import:{path}" for path in paths]
    stem = new_part_name().removesuffix(".parquet")
    owner = os.getpid()  # this process publishes what every worker stages

    def make_sink(index: int | str) -> _Sink:
        return _Sink(
            tables,
            split,
            warehouse,
            partition,
            seen,
            fetched_at,
            sources,
            f"{stem}-{index}.parquet",
            owner,
        )

    shown = _Progress(progress, paths)
    pool = _Workers(workers, make_sink, shown)
    unreadable: dict[int, ArchiveError] = {}
    try:
        for index, path in enumerate(paths):
            try:
                ranges = line_ranges(path, limit, workers)
                if ranges is not None:
                    for start, end in ranges:
                        pool.give(index, _Range(path, start, end, limit))
                else:
                    for chunk in _chunks(read_documents(path, limit)):
                        pool.give(index, chunk)
            except ArchiveError as error:
                unreadable[index] = error
            if not shown.documents(index) and index not in unreadable:
                unreadable[index] = ArchiveError(path, "empty file")
            shown.close(index)
        shares = pool.finish()
    except BaseException:
        pool.stop()
        for table in tables.schemas():  # what a stopped worker was writing
            sweep_temp_files(
                warehouse.storage.staging_dir(
                    warehouse.partition_dir(tables.name, table, partition)
                ),
                owner,
            )
        raise
    for share in shares:
        for index, problem in share.unreadable.items():
            unreadable.setdefault(index, problem)
    main = make_sink("joined")  # lines that were documents only together
    try:
        rejected = _numbered(paths, [aside for share in shares for aside in share.rejected])
        _join_fragments(
            main, _numbered(paths, [f for share in shares for f in share.fragments]), limit
        )
        shares.append(main.close())
    except BaseException:
        main.abort()
        _discard(shares)
        raise
    return _land(
        tables,
        warehouse,
        ledger,
        partition,
        paths,
        shares,
        rejected + main.share.rejected,
        unreadable,
        known_tasks,
        keep_good,
        rejects_dir,
        workers,
    )


def _numbered(paths: list[Path], asides: list[_Aside]) -> list[_Aside]:
    """The documents set aside, each with its line number, in file order."""
    uncounted: dict[int, set[int]] = {}
    for aside in asides:
        if not aside.number:
            uncounted.setdefault(aside.file, set()).add(aside.offset)
    numbers = {file: line_numbers(paths[file], offsets) for file, offsets in uncounted.items()}
    return sorted(
        aside._replace(number=numbers[aside.file][aside.offset]) if not aside.number else aside
        for aside in asides
    )


def _join_fragments(sink: _Sink, fragments: list[_Aside], limit: int) -> None:
    """Consecutive lines of a file that failed alone: a line that opens an object or an array,
    with the lines after it up to one that closes it, is one document if together they decode
    (a raw newline in a string broke it); every other line is rejected with its own reason."""
    for _, run in itertools.groupby(
        enumerate(fragments), lambda p: (p[1].file, p[1].number - p[0])
    ):
        lines = [fragment for _, fragment in run]
        start = 0
        while start < len(lines):
            joined = _joined_document(lines, start, limit)
            if joined is None:
                sink.share.rejected.append(lines[start])
                start += 1
                continue
            end, data = joined
            sink.take(lines[start].file, _Read(lines[start].number, data))
            start = end + 1


def _joined_document(run: list[_Aside], start: int, limit: int) -> tuple[int, bytes] | None:
    """The shortest run of lines from ``start`` that decodes (and where it ends), if any
    within MAX_JOINED_LINES lines and the size cap."""
    if run[start].data.removeprefix(BOM).lstrip()[:1] not in (b"{", b"["):
        return None
    size = len(run[start].data)
    for end in range(start + 1, min(len(run), start + MAX_JOINED_LINES)):
        size += len(run[end].data)
        if size > limit:
            return None
        if run[end].data.rstrip()[-1:] in (b"}", b"]"):
            data = b"".join(fragment.data for fragment in run[start : end + 1]).strip()
            if _decodes(data):
                return end, data
    return None


def _land(
    tables: ProviderTables,
    warehouse: Warehouse,
    ledger: Ledger,
    partition: str,
    paths: list[Path],
    shares: list[_Share],
    rejected: list[_Aside],
    unreadable: dict[int, ArchiveError],
    known_tasks: set[str],
    keep_good: bool,
    rejects_dir: Path | None,
    workers: int,
) -> ImportReport:
    """Publish what the shares staged, but the rows of rejected files and versions staged
    twice; then flatten again if an older version must leave the tables."""
    report = ImportReport()
    rejected = sorted(rejected)
    refused = dict(unreadable)
    if not keep_good:
        for aside in rejected:
            refused.setdefault(
                aside.file, ArchiveError(paths[aside.file], f"line {aside.number}: {aside.reason}")
            )
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
        staged = _without(staged, warehouse, dropped, bool(twice))
    if added:
        warehouse.storage.publish(staged)
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
    ledger.note_imported(
        tables.name,
        [
            (task_id, version, state, {"fetched_at": utc_now().isoformat(), "cost": cost})
            for task_id, version, state, cost in added
        ],
    )
    if report.rows:
        raw = warehouse.parts(tables.name, RAW_TABLE, partition)
        with open_index(warehouse) as index:
            index.versions(raw, part_versions)  # the new parts, read once, here
            report.rows = {RAW_TABLE: sum(index.rows(raw).values()), **report.rows}
        ledger.record_import(
            tables.name,
            partition,
            {
                "rows": report.rows,
                "new_responses": report.new_responses,
                "files": [str(paths[i]) for i in range(len(paths)) if i not in refused],
            },
        )
    if keep_good and rejected:
        report.rejected_documents = len(rejected)
        report.rejects_file = _write_rejects(
            rejects_dir or warehouse.data_dir / "rejects", tables.name, partition, paths, rejected
        )
    return report


def _without(
    staged: dict[Path, PurePath], warehouse: Warehouse, dropped: set[str], dedupe: bool
) -> dict[Path, PurePath]:
    """The staged raw parts without the rows of ``dropped`` sources (and each version once);
    the staged flattened parts are discarded: the partition is flattened again."""
    kept: dict[Path, PurePath] = {}
    seen: set[tuple[str, str]] = set()
    for temp, final in sorted(staged.items(), key=lambda item: item[1]):
        if final.parent.parent.name != RAW_TABLE:
            temp.unlink()
            continue
        table = read_part(temp)
        keep = pc.invert(pc.is_in(table.column("source"), pa.array(sorted(dropped), pa.string())))
        if dedupe:
            pairs = zip(
                table.column("task_id").to_pylist(),
                table.column("content_hash").to_pylist(),
                strict=True,
            )
            first = []
            for pair in pairs:
                first.append(pair not in seen)
                seen.add(pair)
            keep = pc.and_(keep, pa.array(first, pa.bool_()))
        filtered = table.filter(keep)
        temp.unlink()
        with raw_writer(
            final, filtered.schema, publish=False, owner=os.getpid(), storage=warehouse.storage
        ) as writer:
            writer.write({RAW_TABLE: filtered})
        kept.update(writer.staged)
    return kept


def _write_rejects(
    directory: Path, provider: str, partition: str, paths: list[Path], rejects: list[_Aside]
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{provider}-{partition}-{utc_now():%Y%m%dT%H%M%S}.ndjson"
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        for aside in rejects:
            handle.write(
                orjson.dumps(
                    {
                        "file": str(paths[aside.file]),
                        "line": aside.number,
                        "reason": aside.reason,
                        "document": aside.data.decode("utf-8", "replace").strip(),
                    }
                )
                + b"\n"
            )
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return path


def _has_flattened(tables: ProviderTables, warehouse: Warehouse, partition: str) -> bool:
    return all(warehouse.parts(tables.name, table, partition) for table in tables.flat_schemas)


def _count_rows(tables: ProviderTables, warehouse: Warehouse, partition: str) -> dict[str, int]:
    """Rows of every flattened table of the partition, from the part files' footers (each read
    once: ``core.part_index``); a table with no part yet gets an empty one, so that every view
    has its columns."""
    rows = {}
    for table, schema in tables.flat_schemas.items():
        parts = warehouse.parts(tables.name, table, partition)
        if not parts:
            with PartitionWriter(
                {table: warehouse.partition_file(tables.name, table, partition)},
                {table: schema},
                storage=warehouse.storage,
            ):
                pass
        rows[table] = _rows(warehouse, parts)
    return rows


def _rows(warehouse: Warehouse, parts: list[PurePath]) -> int:
    with open_index(warehouse) as index:
        return sum(index.rows(parts).values())
