"""The ledger: the one mutable store, and the only thing that decides whether money is spent.

SQLite in the data dir (WAL, ``synchronous=FULL``): many small durable writes, safe across the
processes of a Dagster run, the CLI and the UI. Its tables:

``tasks``  one row per (provider, tag). A row is written as ``intent`` *before* a task is
           posted, so a crash at any point leaves a trace; it becomes ``posted`` with the
           provider's task id and cost, then ``fetched`` (or ``failed``/``expired``) once its
           result is collected. An ``intent`` row is never posted again before the provider's
           own records were searched for its tag.
``inbox``  fetched responses, stored in the same transaction that marks the task fetched, so
           nothing fetched is lost before it reaches the Parquet raw layer; rows leave the
           inbox once a published raw file holds them.
``recovery_candidates``
           tasks the provider listed that may be ours (found by target, for an API without a
           tag), recorded *before* the call that looks at them changes the provider's state,
           with what that call returned; claimed by the intent they turn out to be.
``quarantine``
           signed deliveries that are not what was asked for (an unknown id, an unfinished
           SERP): kept for inspection, out of the SERP tables, until published.
``imports`` one row per import into a partition, with its row counts: Dagster records each
           as materializations of the tables it filled (``defs.sensors``).
``meta``   settings of the data dir itself, such as the mode (sandbox or live) that wrote it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import orjson

from serp_etl.core.shared_sqlite import SharedSQLite


class TaskState(StrEnum):
    INTENT = "intent"  # about to be posted, or posted with an unknown outcome
    POSTED = "posted"  # posted and billed; result not collected yet
    REJECTED = "rejected"  # the provider refused this task at posting (not billed)
    UNPOSTED = "unposted"  # never posted, and never will be: its day closed first
    FETCHED = "fetched"  # a result is in the raw layer
    EMPTY = "empty"  # a billed, legitimately empty SERP; its response is in the raw layer
    FAILED = "failed"  # a permanent error for this task; its response (and code) is kept
    EXPIRED = "expired"  # its results expired before they were collected (DataForSEO 40403)
    UNDECODABLE = "undecodable"  # answered, run after run, with bytes that are not JSON: kept
    EXHAUSTED = "exhausted"  # answered, run after run, with a server or unknown code: kept


# Still to be settled: posted (or maybe posted) and not collected.
PENDING_STATES = frozenset({TaskState.INTENT, TaskState.POSTED})
# Paid for, and ended without a result.
LOST_STATES = frozenset({TaskState.FAILED, TaskState.EXPIRED, TaskState.UNDECODABLE,
                         TaskState.EXHAUSTED})
# Runs in which a task may answer with something that may pass (a server code, a code this
# version does not know, a body that is not JSON) before it is given up: a run counts one.
MAX_ATTEMPTS = 10


_INBOX = """
CREATE TABLE IF NOT EXISTS inbox (
    provider TEXT NOT NULL,
    task_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    meta TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (provider, task_id, content_hash)
);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    provider TEXT NOT NULL,
    tag TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    cost REAL,
    status_code INTEGER,
    status_message TEXT,
    intent_at TEXT NOT NULL,
    posted_at TEXT,
    fetched_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    content_hash TEXT,
    PRIMARY KEY (provider, tag)
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_by_id ON tasks (provider, task_id)
    WHERE task_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_by_partition ON tasks (provider, partition_date, state);
CREATE TABLE IF NOT EXISTS recovery_candidates (
    provider TEXT NOT NULL,
    task_id TEXT NOT NULL,
    listed TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    body BLOB,
    claimed_by TEXT,
    PRIMARY KEY (provider, task_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
    provider TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    received_at TEXT NOT NULL,
    task_id TEXT,
    reason TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (provider, content_hash)
);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def ledger_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "state" / "ledger.sqlite"


_BLOB_CHUNK = 1 << 20


def utc_now() -> datetime:
    return datetime.now(UTC)


def content_hash(data: bytes) -> str:
    """The name of one version of a response: a hash of its content."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class TaskRecord:
    provider: str
    tag: str
    partition_date: str
    target: dict
    state: TaskState
    task_id: str | None
    cost: float | None
    status_code: int | None
    status_message: str | None
    intent_at: str
    posted_at: str | None
    fetched_at: str | None
    attempts: int = 0  # runs that counted an answer that may pass (see MAX_ATTEMPTS)
    content_hash: str | None = None  # the version of its response last stored


@dataclass(frozen=True)
class Candidate:
    task_id: str
    listed: dict  # the entry as the provider listed it
    body: bytes | None  # what looking at it returned, once it has been looked at


@dataclass(frozen=True)
class Quarantined:
    content_hash: str
    received_at: str
    task_id: str | None
    reason: str
    body: bytes


@dataclass(frozen=True)
class ImportRecord:
    id: int
    provider: str
    partition_date: str
    imported_at: str
    report: dict  # rows (table -> rows in the partition), new_responses, files


@dataclass(frozen=True)
class InboxRow:
    task_id: str
    meta: dict
    body: bytes


class Ledger(SharedSQLite):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(self.path, _SCHEMA, precious=True)
        self._migrate()
        self._db.execute(_INBOX)

    def describe(self) -> str:
        """Where this state lives, for a message to the operator."""
        return str(self.path)

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _migrate(self) -> None:
        """Bring a ledger written by an earlier serp-etl up to date, keeping every row."""
        for column, definition in (("attempts", "INTEGER NOT NULL DEFAULT 0"),
                                   ("content_hash", "TEXT")):
            if column not in self._columns("tasks"):
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {column} {definition}")
        old = self._columns("inbox")
        if old and "content_hash" not in old:
            # One response per task before: now one per version (task and content hash).
            with self._transaction():
                rows = self._db.execute(
                    "SELECT provider, task_id, partition_date, meta, body FROM inbox").fetchall()
                self._db.execute("DROP TABLE inbox")
                self._db.execute(_INBOX)
                for provider, task_id, partition, meta, body in rows:
                    digest = content_hash(bytes(body))
                    meta = orjson.dumps({**orjson.loads(meta), "content_hash": digest}).decode()
                    self._db.execute("INSERT INTO inbox VALUES (?, ?, ?, ?, ?, ?)",
                                     (provider, task_id, digest, partition, meta, body))

    def _write(self, statements: list[tuple[str, tuple]]) -> list[int]:
        """Run statements in one immediate transaction: all land, or none. Returns rowcounts."""
        with self._transaction():
            return [self._db.execute(sql, params).rowcount for sql, params in statements]

    def _add_to_inbox(self, provider: str, task_id: str, partition: str, meta: dict,
                      body: bytes) -> bool:
        """Insert one version into the inbox (in the caller's transaction); False if it is
        there already. The body is streamed into its row: binding a 100 MB value would make
        SQLite copy it whole first."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO inbox (provider, task_id, content_hash, partition_date, meta,"
            " body) VALUES (?, ?, ?, ?, ?, zeroblob(?))",
            (provider, task_id, meta["content_hash"], partition, orjson.dumps(meta).decode(),
             len(body)))
        if cursor.rowcount != 1:
            return False
        with self._db.blobopen("inbox", "body", cursor.lastrowid) as blob:
            view = memoryview(body)
            for start in range(0, len(view), _BLOB_CHUNK):
                blob.write(view[start:start + _BLOB_CHUNK])
        return True

    def claim(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it is set already; returns the value it holds."""
        self._write([("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))])
        return self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    # -- tasks -------------------------------------------------------------------------------

    def record_intents(self, provider: str, partition: str, targets: dict[str, dict]) -> None:
        """Record ``tag -> target`` as about to be posted; tags already known are left alone."""
        now = utc_now().isoformat()
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO tasks (provider, tag, partition_date, target, state,"
                    " intent_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (provider, tag, partition, orjson.dumps(target).decode(), TaskState.INTENT,
                     now),
                )
                for tag, target in targets.items()
            ]
        )

    def start_submit(self, provider: str, partition: str,
                     targets: dict[str, dict]) -> tuple[int, list[TaskRecord]]:
        """Record ``targets`` (tag -> task) as intents before anything is posted.

        Returns how many of them an earlier run posted already, and the intents earlier runs
        left unresolved: those may have been posted before a crash, and must be looked up at
        the provider before anything is posted.
        """
        before = {t.tag: t for t in self.tasks(provider, partition)}
        self.record_intents(provider, partition, targets)
        already_posted = sum(1 for tag in targets
                             if tag in before and before[tag].state is not TaskState.INTENT)
        return already_posted, [t for t in before.values() if t.state is TaskState.INTENT]

    def tasks(
        self, provider: str, partition: str | None = None, states: set[TaskState] | None = None
    ) -> list[TaskRecord]:
        sql = "SELECT * FROM tasks WHERE provider = ?"
        params: list = [provider]
        if partition is not None:
            sql += " AND partition_date = ?"
            params.append(partition)
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            params.extend(sorted(states))
        cursor = self._db.execute(sql + " ORDER BY intent_at, tag", params)
        names = [d[0] for d in cursor.description]
        records = []
        for row in cursor:
            values = dict(zip(names, row, strict=True))
            values["target"] = orjson.loads(values["target"])
            values["state"] = TaskState(values["state"])
            records.append(TaskRecord(**values))
        return records

    def task_partition(self, provider: str, task_id: str) -> str | None:
        """The partition a task of ours was posted for, or None if the ledger does not know it."""
        row = self._db.execute(
            "SELECT partition_date FROM tasks WHERE provider = ? AND task_id = ?",
            (provider, task_id)).fetchone()
        return None if row is None else row[0]

    def mark_posted(
        self, provider: str, tag: str, task_id: str, cost: float | None,
        status_code: int | None, status_message: str | None, posted_at: str | None = None,
    ) -> None:
        self._write(
            [
                (
                    "UPDATE tasks SET state = ?, task_id = ?, cost = ?, status_code = ?,"
                    " status_message = ?, posted_at = ? WHERE provider = ? AND tag = ?",
                    (TaskState.POSTED, task_id, cost, status_code, status_message,
                     posted_at or utc_now().isoformat(), provider, tag),
                )
            ]
        )

    def mark_rejected(
        self, provider: str, tag: str, status_code: int | None, status_message: str | None
    ) -> None:
        self._write(
            [
                (
                    "UPDATE tasks SET state = ?, status_code = ?, status_message = ?"
                    " WHERE provider = ? AND tag = ?",
                    (TaskState.REJECTED, status_code, status_message, provider, tag),
                )
            ]
        )

    def mark_unposted(self, provider: str, tags: list[str], reason: str) -> None:
        """Intents the provider certainly never saw, of a day that can no longer be paid for."""
        self._write([
            ("UPDATE tasks SET state = ?, status_message = ? WHERE provider = ? AND tag = ?"
             " AND state = ?", (TaskState.UNPOSTED, reason, provider, tag, TaskState.INTENT))
            for tag in tags
        ])

    def note_attempt(self, provider: str, task_id: str, status_code: int | None,
                     status_message: str | None) -> int:
        """Count a run in which the task answered with something that may pass; returns the
        runs counted so far."""
        self._write([
            ("UPDATE tasks SET attempts = attempts + 1, status_code = ?, status_message = ?"
             " WHERE provider = ? AND task_id = ?", (status_code, status_message, provider,
                                                    task_id)),
        ])
        (attempts,) = self._db.execute(
            "SELECT attempts FROM tasks WHERE provider = ? AND task_id = ?",
            (provider, task_id)).fetchone()
        return attempts

    def note_status(
        self, provider: str, task_id: str, status_code: int | None, status_message: str | None
    ) -> None:
        """Remember the last status seen for a task that is still waiting (not ready, unknown)."""
        self._write(
            [
                (
                    "UPDATE tasks SET status_code = ?, status_message = ?"
                    " WHERE provider = ? AND task_id = ?",
                    (status_code, status_message, provider, task_id),
                )
            ]
        )

    def spent(self, provider: str, partition: str) -> float:
        """What the partition's tasks cost, as far as the ledger knows."""
        (total,) = self._db.execute(
            "SELECT coalesce(sum(cost), 0) FROM tasks WHERE provider = ? AND partition_date = ?"
            " AND task_id IS NOT NULL", (provider, partition)).fetchone()
        return round(total, 8)

    def task_ids(self, provider: str) -> set[str]:
        """Every task id the ledger knows for ``provider``, of any partition."""
        return {row[0] for row in self._db.execute(
            "SELECT task_id FROM tasks WHERE provider = ? AND task_id IS NOT NULL", (provider,))}

    # -- recovery candidates -----------------------------------------------------------------

    def record_candidates(self, provider: str, listed: list[dict]) -> None:
        """Keep listed entries (each with an ``id``) that may be ours; known ones stay as is."""
        now = utc_now().isoformat()
        self._write([
            ("INSERT OR IGNORE INTO recovery_candidates (provider, task_id, listed, recorded_at)"
             " VALUES (?, ?, ?, ?)", (provider, entry["id"], orjson.dumps(entry).decode(), now))
            for entry in listed
        ])

    def candidates(self, provider: str) -> list[Candidate]:
        """The candidates no intent has claimed yet."""
        cursor = self._db.execute(
            "SELECT task_id, listed, body FROM recovery_candidates WHERE provider = ?"
            " AND claimed_by IS NULL ORDER BY recorded_at, task_id", (provider,))
        return [Candidate(task_id, orjson.loads(listed), None if body is None else bytes(body))
                for task_id, listed, body in cursor]

    def keep_candidate_bodies(self, provider: str, bodies: dict[str, bytes]) -> None:
        self._write([
            ("UPDATE recovery_candidates SET body = ? WHERE provider = ? AND task_id = ?",
             (body, provider, task_id))
            for task_id, body in bodies.items()
        ])

    def claim_candidate(self, provider: str, tag: str, partition: str, candidate: Candidate,
                        cost: float | None, meta: dict) -> None:
        """The intent ``tag`` is ``candidate``: record it posted and its looked-at body as its
        response, in one transaction (the body is all there is: the look marked it fetched)."""
        with self._transaction():
            self._db.execute(
                "UPDATE tasks SET state = ?, task_id = ?, cost = ?, status_message = ?,"
                " posted_at = ?, fetched_at = ?, content_hash = ? WHERE provider = ? AND tag = ?"
                " AND state = ?",
                (TaskState.FETCHED, candidate.task_id, cost, "recovered by target",
                 meta["fetched_at"], meta["fetched_at"], meta["content_hash"], provider, tag,
                 TaskState.INTENT))
            self._add_to_inbox(provider, candidate.task_id, partition, meta, candidate.body)
            self._db.execute(
                "UPDATE recovery_candidates SET claimed_by = ? WHERE provider = ? AND task_id = ?",
                (tag, provider, candidate.task_id))

    # -- inbox -------------------------------------------------------------------------------

    def store_response(
        self, provider: str, partition: str, task_id: str, meta: dict, body: bytes,
        final_state: TaskState,
    ) -> bool:
        """Keep one version of a response (``meta["content_hash"]`` names it) and mark its task
        collected, in one transaction.

        Returns False, changing nothing, if it is the version the task already has (a repeat
        delivery or fetch: its first fetch time stands) or one the inbox already holds.
        """
        version = meta["content_hash"]
        with self._transaction():
            current = self._db.execute(
                "SELECT content_hash FROM tasks WHERE provider = ? AND task_id = ?",
                (provider, task_id)).fetchone()
            inserted = current != (version,) and self._add_to_inbox(
                provider, task_id, partition, meta, body)
            if inserted:
                # A task found again without its cost (tasks_ready lists none) gets the one
                # its response reports.
                self._db.execute(
                    "UPDATE tasks SET state = ?, status_code = ?, status_message = ?,"
                    " fetched_at = ?, cost = coalesce(cost, ?), content_hash = ?"
                    " WHERE provider = ? AND task_id = ?",
                    (final_state, meta.get("status_code"), meta.get("status_message"),
                     meta.get("fetched_at"), meta.get("cost"), version, provider, task_id))
        return inserted

    def inbox(self, provider: str, partition: str) -> Iterator[InboxRow]:
        """The partition's versions waiting to be published, one at a time: each body is read
        from its row as it is needed (streamed, not copied twice)."""
        rows = self._db.execute(
            "SELECT rowid, task_id, meta FROM inbox WHERE provider = ? AND partition_date = ?"
            " ORDER BY task_id, content_hash", (provider, partition)).fetchall()
        for rowid, task_id, meta in rows:
            with self._db.blobopen("inbox", "body", rowid, readonly=True) as blob:
                body = blob.read()
            yield InboxRow(task_id, orjson.loads(meta), body)

    def note_imported(self, provider: str,
                      versions: list[tuple[str, str, TaskState, dict]]) -> None:
        """Imported ``(task_id, content_hash, state, meta)`` versions: a task of the ledger
        still waiting for its result has it now."""
        self._write([
            ("UPDATE tasks SET state = ?, content_hash = ?, fetched_at = ?,"
             " cost = coalesce(cost, ?) WHERE provider = ? AND task_id = ? AND state = ?",
             (state, version, meta["fetched_at"], meta.get("cost"), provider, task_id,
              TaskState.POSTED))
            for task_id, version, state, meta in versions
        ])

    def record_import(self, provider: str, partition: str, report: dict) -> int:
        """Keep what an import into ``partition`` landed, for Dagster to record; its id."""
        cursor = self._db.execute(
            "INSERT INTO imports (provider, partition_date, imported_at, report)"
            " VALUES (?, ?, ?, ?)",
            (provider, partition, utc_now().isoformat(), orjson.dumps(report).decode()))
        return cursor.lastrowid

    def imports_after(self, last_id: int, limit: int = 1000) -> list[ImportRecord]:
        """The imports recorded after ``last_id``, oldest first."""
        cursor = self._db.execute(
            "SELECT id, provider, partition_date, imported_at, report FROM imports"
            " WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit))
        return [ImportRecord(row_id, provider, partition, at, orjson.loads(report))
                for row_id, provider, partition, at, report in cursor]

    # -- quarantine --------------------------------------------------------------------------

    def quarantine(self, provider: str, task_id: str | None, reason: str, body: bytes,
                   received_at: str) -> bool:
        """Keep a delivery that was not asked for; False if this content is kept already."""
        (inserted,) = self._write([(
            "INSERT OR IGNORE INTO quarantine (provider, content_hash, received_at, task_id,"
            " reason, body) VALUES (?, ?, ?, ?, ?, ?)",
            (provider, content_hash(body), received_at, task_id, reason, body))])
        return inserted == 1

    def quarantined(self, provider: str) -> list[Quarantined]:
        cursor = self._db.execute(
            "SELECT content_hash, received_at, task_id, reason, body FROM quarantine"
            " WHERE provider = ? ORDER BY received_at, content_hash", (provider,))
        return [Quarantined(digest, at, task_id, reason, bytes(body))
                for digest, at, task_id, reason, body in cursor]

    def release_quarantined(self, provider: str, hashes: list[str]) -> None:
        """Let go of quarantined deliveries a published part holds."""
        self._write([("DELETE FROM quarantine WHERE provider = ? AND content_hash = ?",
                      (provider, digest)) for digest in hashes])

    def inbox_partitions(self, provider: str) -> dict[str, int]:
        """The partitions with responses not yet published, and how many each."""
        return dict(self._db.execute(
            "SELECT partition_date, count(*) FROM inbox WHERE provider = ?"
            " GROUP BY partition_date", (provider,)))

    def clear_inbox(self, provider: str, partition: str,
                    versions: list[tuple[str, str]]) -> None:
        """Let go of ``(task_id, content_hash)`` versions a published raw part holds."""
        self._write([
            ("DELETE FROM inbox WHERE provider = ? AND partition_date = ? AND task_id = ?"
             " AND content_hash = ?", (provider, partition, task_id, version))
            for task_id, version in versions
        ])
