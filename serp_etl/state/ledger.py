"""The ledger: the one mutable store, and the only thing that decides whether money is spent.

A SQLite file in the data dir (WAL, ``synchronous=FULL``: many small durable writes, safe
across the processes of a Dagster run, the CLI and the UI), or a Postgres database shared by
every host of a deployment (``SERP_ETL_STATE_URL``; ``state.database``). Its tables:

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
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from operator import itemgetter
from pathlib import Path

import orjson
import sqlalchemy as sa

from serp_etl.providers.instances import provider_of
from serp_etl.state.database import TEXT, Database, StateUnreadable, advisory_lock, is_url
from serp_etl.state.location import state_location
from serp_etl.state.locking import exclusive_lock
from serp_etl.storage.bodies import INBOX_OBJECT_BYTES, InboxBodies


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
LOST_STATES = frozenset(
    {TaskState.FAILED, TaskState.EXPIRED, TaskState.UNDECODABLE, TaskState.EXHAUSTED}
)
# Runs in which a task may answer with something that may pass (a server code, a code this
# version does not know, a body that is not JSON) before it is given up: a run counts one.
MAX_ATTEMPTS = 10


_METADATA = sa.MetaData()
sa.Table(
    "tasks",
    _METADATA,
    sa.Column("provider", TEXT, primary_key=True),
    sa.Column("tag", TEXT, primary_key=True),
    sa.Column("partition_date", TEXT, nullable=False),
    sa.Column("target", TEXT, nullable=False),
    sa.Column("state", TEXT, nullable=False),
    sa.Column("task_id", TEXT),
    sa.Column("cost", sa.Float),
    sa.Column("status_code", sa.Integer),
    sa.Column("status_message", TEXT),
    sa.Column("intent_at", TEXT, nullable=False),
    sa.Column("posted_at", TEXT),
    sa.Column("fetched_at", TEXT),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("content_hash", TEXT),
    sa.Index(
        "tasks_by_id",
        "provider",
        "task_id",
        unique=True,
        sqlite_where=sa.text("task_id IS NOT NULL"),
        postgresql_where=sa.text("task_id IS NOT NULL"),
    ),
    sa.Index("tasks_by_partition", "provider", "partition_date", "state"),
    # A task by its id alone, whichever provider instance created it (a callback's lookup).
    sa.Index(
        "tasks_by_task_id",
        "task_id",
        sqlite_where=sa.text("task_id IS NOT NULL"),
        postgresql_where=sa.text("task_id IS NOT NULL"),
    ),
)
sa.Table(
    "recovery_candidates",
    _METADATA,
    sa.Column("provider", TEXT, primary_key=True),
    sa.Column("task_id", TEXT, primary_key=True),
    sa.Column("listed", TEXT, nullable=False),
    sa.Column("recorded_at", TEXT, nullable=False),
    sa.Column("body", sa.LargeBinary),
    sa.Column("claimed_by", TEXT),
)
sa.Table(
    "quarantine",
    _METADATA,
    sa.Column("provider", TEXT, primary_key=True),
    sa.Column("content_hash", TEXT, primary_key=True),
    sa.Column("received_at", TEXT, nullable=False),
    sa.Column("task_id", TEXT),
    sa.Column("reason", TEXT, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
)
sa.Table(
    "imports",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", TEXT, nullable=False),
    sa.Column("partition_date", TEXT, nullable=False),
    sa.Column("imported_at", TEXT, nullable=False),
    sa.Column("report", TEXT, nullable=False),
    sqlite_autoincrement=True,
)
sa.Table(
    "meta",
    _METADATA,
    sa.Column("key", TEXT, primary_key=True),
    sa.Column("value", TEXT, nullable=False),
)
sa.Table(
    "balances",
    _METADATA,  # the account's balance or credit, each time it was read
    sa.Column("provider", TEXT, primary_key=True),
    sa.Column("observed_at", TEXT, primary_key=True),
    sa.Column("partition_date", TEXT, nullable=False),  # the day whose run read it
    sa.Column("balance", sa.Float, nullable=False),
)
_INBOX = sa.Table(
    "inbox",
    _METADATA,
    sa.Column("provider", TEXT, primary_key=True),
    sa.Column("task_id", TEXT, primary_key=True),
    sa.Column("content_hash", TEXT, primary_key=True),
    sa.Column("partition_date", TEXT, nullable=False),
    sa.Column("meta", TEXT, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),  # empty when body_key names it
    sa.Column("body_key", TEXT),  # the object holding a large body (``storage.bodies``)
    sa.Column("body_size", sa.BigInteger),  # its size
)


def ledger_path(data_dir: Path | str) -> Path:
    """The data dir's SQLite ledger (when no ``SERP_ETL_STATE_URL`` is set)."""
    return Path(data_dir) / "state" / "ledger.sqlite"


def open_ledger(data_dir: Path | str) -> Ledger:
    """The ledger of ``data_dir``'s runs: ``SERP_ETL_STATE_URL``'s database, else the data
    dir's file."""
    location = state_location(data_dir, "ledger")
    return Ledger(location, inbox_bodies(data_dir, location))


def inbox_bodies(data_dir: Path | str, location: Path | str):
    """Where large inbox bodies wait (``storage.bodies``): the bucket, when the state is in a
    shared database and the warehouse in a bucket; else (None) in the ledger's rows."""
    from serp_etl.storage.location import open_storage

    if not is_url(location):
        return None
    storage = open_storage(Path(data_dir))
    return InboxBodies(storage.filesystem, storage.root) if storage.shared else None


_BLOB_CHUNK = 1 << 20
# How long a lock is waited for on Postgres (another run's submit, say), before the step fails;
# a SQLite lock file is waited for as long as its holder lives.
LOCK_WAIT_SECONDS = 3600


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


class Ledger(Database):
    def __init__(self, location: Path | str, bodies: InboxBodies | None = None) -> None:
        """The ledger in ``location``: a SQLite file's path, or a Postgres URL; with
        ``bodies``, large inbox bodies wait there (``inbox_bodies``)."""
        self._bodies = bodies
        super().__init__(location if is_url(location) else Path(location), _METADATA, precious=True)

    def migrate(self) -> None:
        """Bring a ledger written by an earlier serp-etl up to date, keeping every row."""
        inbox = self.table_columns("inbox")
        for column, kind in (("body_key", "TEXT"), ("body_size", "BIGINT")):
            if inbox and column not in inbox:
                self.execute(f"ALTER TABLE inbox ADD COLUMN {column} {kind}")
        if self.dialect != "sqlite":
            return
        tasks = self.table_columns("tasks")
        for column, definition in (
            ("attempts", "INTEGER NOT NULL DEFAULT 0"),
            ("content_hash", "TEXT"),
        ):
            if tasks and column not in tasks:
                self.execute(f"ALTER TABLE tasks ADD COLUMN {column} {definition}")
        old = self.table_columns("inbox")
        if old and "content_hash" not in old:
            # One response per task before: now one per version (task and content hash).
            rows = self.execute(
                "SELECT provider, task_id, partition_date, meta, body FROM inbox"
            ).fetchall()
            self.execute("DROP TABLE inbox")
            _INBOX.create(self._connection)
            for provider, task_id, partition, meta, body in rows:
                digest = content_hash(bytes(body))
                meta = orjson.dumps({**orjson.loads(meta), "content_hash": digest}).decode()
                self.execute(
                    "INSERT INTO inbox (provider, task_id, content_hash,"
                    " partition_date, meta, body) VALUES (:provider, :task_id,"
                    " :digest, :partition, :meta, :body)",
                    {
                        "provider": provider,
                        "task_id": task_id,
                        "digest": digest,
                        "partition": partition,
                        "meta": meta,
                        "body": body,
                    },
                )

    @contextmanager
    def lock(self, name: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Held by one process at a time, on any host sharing this ledger: SQLite, the lock
        file ``<name>.lock`` beside the ledger; Postgres, a session advisory lock
        (``state.database``). The OS or the server drops it the moment its holder dies (a
        SIGKILL, an OOM kill, a lost node): a crashed run never blocks the next one.
        ``on_wait`` is called when another holds it, before waiting."""
        if self.dialect == "sqlite":
            assert self.location is not None, "a submit lock needs a state file"
            with exclusive_lock(Path(self.location).with_name(f"{name}.lock"), on_wait):
                yield
        else:
            with advisory_lock(self, f"serp-etl {name}", LOCK_WAIT_SECONDS, on_wait):
                yield

    def submit_lock(self, provider: str) -> AbstractContextManager[None]:
        """Held by a submit of ``provider`` from its first read to its last post: two runs
        never post the same intent."""
        return self.lock(f"{provider}.submit")

    def _write(self, statements: list[tuple[str, dict]]) -> int:
        """Run statements in one transaction: all land, or none; the runs of one statement
        together (one executemany). Returns how many rows they changed."""
        changed = 0
        with self.transaction():
            for sql, group in itertools.groupby(statements, key=itemgetter(0)):
                rows = [params for _, params in group]
                changed += self.execute(sql, rows[0] if len(rows) == 1 else rows).rowcount
        return changed

    def _add_to_inbox(
        self, provider: str, task_id: str, partition: str, meta: dict, body: bytes
    ) -> bool:
        """Insert one version into the inbox (in the caller's transaction); False if it is
        there already. On SQLite the body is streamed into its row: binding a 100 MB value
        would make SQLite copy it whole first."""
        key = {
            "provider": provider,
            "task_id": task_id,
            "digest": meta["content_hash"],
            "partition": partition,
            "meta": orjson.dumps(meta).decode(),
        }
        if self.dialect != "sqlite":
            object_key, size = None, len(body)
            if self._bodies is not None and size >= INBOX_OBJECT_BYTES:
                object_key, body = self._bodies.put(provider, task_id, bytes(body)), b""
            return (
                self.execute(
                    "INSERT INTO inbox (provider, task_id, content_hash, partition_date, meta,"
                    " body, body_key, body_size) VALUES (:provider, :task_id, :digest,"
                    " :partition, :meta, :body, :body_key, :size) ON CONFLICT DO NOTHING",
                    {**key, "body": bytes(body), "body_key": object_key, "size": size},
                ).rowcount
                == 1
            )
        cursor = self.execute(
            "INSERT INTO inbox (provider, task_id, content_hash, partition_date, meta, body)"
            " VALUES (:provider, :task_id, :digest, :partition, :meta, zeroblob(:size))"
            " ON CONFLICT DO NOTHING",
            {**key, "size": len(body)},
        )
        if cursor.rowcount != 1:
            return False
        with self.sqlite().blobopen("inbox", "body", cursor.lastrowid) as blob:
            view = memoryview(body)
            for start in range(0, len(view), _BLOB_CHUNK):
                blob.write(view[start : start + _BLOB_CHUNK])
        return True

    def claim(self, key: str, value: str) -> str:
        """Set ``key`` to ``value`` unless it is set already; returns the value it holds."""
        self._write(
            [
                (
                    "INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT DO NOTHING",
                    {"key": key, "value": value},
                )
            ]
        )
        return self.execute("SELECT value FROM meta WHERE key = :key", {"key": key}).scalar_one()

    # -- tasks -------------------------------------------------------------------------------

    def record_intents(self, provider: str, partition: str, targets: dict[str, dict]) -> None:
        """Record ``tag -> target`` as about to be posted; tags already known are left alone."""
        if not targets:
            return
        now = utc_now().isoformat()
        with self.transaction():
            self.execute(
                "INSERT INTO tasks (provider, tag, partition_date, target, state, intent_at)"
                " VALUES (:provider, :tag, :partition, :target, :state, :now)"
                " ON CONFLICT DO NOTHING",
                [
                    {
                        "provider": provider,
                        "tag": tag,
                        "partition": partition,
                        "target": orjson.dumps(target).decode(),
                        "state": TaskState.INTENT.value,
                        "now": now,
                    }
                    for tag, target in targets.items()
                ],
            )

    def start_submit(
        self, provider: str, partition: str, targets: dict[str, dict]
    ) -> tuple[int, list[TaskRecord]]:
        """Record ``targets`` (tag -> task) as intents before anything is posted.

        Returns how many of them an earlier run posted already, and the intents earlier runs
        left unresolved: those may have been posted before a crash, and must be looked up at
        the provider before anything is posted.
        """
        before = {t.tag: t for t in self.tasks(provider, partition)}
        self.record_intents(provider, partition, targets)
        already_posted = sum(
            1 for tag in targets if tag in before and before[tag].state is not TaskState.INTENT
        )
        return already_posted, [t for t in before.values() if t.state is TaskState.INTENT]

    def tasks(
        self, provider: str, partition: str | None = None, states: set[TaskState] | None = None
    ) -> list[TaskRecord]:
        sql = "SELECT * FROM tasks WHERE provider = :provider"
        params: dict = {"provider": provider}
        if partition is not None:
            sql += " AND partition_date = :partition"
            params["partition"] = partition
        if states:
            sql += " AND state IN :states"
            params["states"] = sorted(str(state) for state in states)
        cursor = self.execute(
            sql + " ORDER BY intent_at, tag", params, expanding=("states",) if states else ()
        )
        records = []
        for row in cursor.mappings():
            values = dict(row)
            values["target"] = orjson.loads(values["target"])
            values["state"] = TaskState(values["state"])
            records.append(TaskRecord(**values))
        return records

    def task_instance(self, provider: str, task_id: str) -> tuple[str, str] | None:
        """The instance of ``provider`` (``providers.instances``) and the partition a task of
        ours was posted for, or None if the ledger does not know it."""
        for scope, partition in self.execute(
            "SELECT provider, partition_date FROM tasks WHERE task_id = :task_id",
            {"task_id": task_id},
        ):
            if provider_of(scope) == provider:
                return scope, partition
        return None

    def mark_posted(
        self,
        provider: str,
        tag: str,
        task_id: str,
        cost: float | None,
        status_code: int | None,
        status_message: str | None,
        posted_at: str | None = None,
    ) -> None:
        self._write(
            [
                (
                    "UPDATE tasks SET state = :state, task_id = :task_id, cost = :cost,"
                    " status_code = :code, status_message = :message, posted_at = :at"
                    " WHERE provider = :provider AND tag = :tag",
                    {
                        "state": TaskState.POSTED.value,
                        "task_id": task_id,
                        "cost": cost,
                        "code": status_code,
                        "message": status_message,
                        "at": posted_at or utc_now().isoformat(),
                        "provider": provider,
                        "tag": tag,
                    },
                )
            ]
        )

    def mark_rejected(
        self, provider: str, tag: str, status_code: int | None, status_message: str | None
    ) -> None:
        self._write(
            [
                (
                    "UPDATE tasks SET state = :state, status_code = :code,"
                    " status_message = :message WHERE provider = :provider AND tag = :tag",
                    {
                        "state": TaskState.REJECTED.value,
                        "code": status_code,
                        "message": status_message,
                        "provider": provider,
                        "tag": tag,
                    },
                )
            ]
        )

    def mark_unposted(self, provider: str, tags: list[str], reason: str) -> None:
        """Intents the provider certainly never saw, of a day that can no longer be paid for."""
        self._write(
            [
                (
                    "UPDATE tasks SET state = :state, status_message = :reason"
                    " WHERE provider = :provider AND tag = :tag AND state = :intent",
                    {
                        "state": TaskState.UNPOSTED.value,
                        "reason": reason,
                        "provider": provider,
                        "tag": tag,
                        "intent": TaskState.INTENT.value,
                    },
                )
                for tag in tags
            ]
        )

    def note_attempt(
        self, provider: str, task_id: str, status_code: int | None, status_message: str | None
    ) -> int:
        """Count a run in which the task answered with something that may pass; returns the
        runs counted so far."""
        with self.transaction():
            return self.execute(
                "UPDATE tasks SET attempts = attempts + 1, status_code = :code,"
                " status_message = :message WHERE provider = :provider AND task_id = :task_id"
                " RETURNING attempts",
                {
                    "code": status_code,
                    "message": status_message,
                    "provider": provider,
                    "task_id": task_id,
                },
            ).scalar_one()

    def note_status(
        self, provider: str, task_id: str, status_code: int | None, status_message: str | None
    ) -> None:
        """Remember the last status seen for a task that is still waiting (not ready, unknown)."""
        self._write(
            [
                (
                    "UPDATE tasks SET status_code = :code, status_message = :message"
                    " WHERE provider = :provider AND task_id = :task_id",
                    {
                        "code": status_code,
                        "message": status_message,
                        "provider": provider,
                        "task_id": task_id,
                    },
                )
            ]
        )

    def spent(self, provider: str, partition: str) -> float:
        """What the partition's tasks cost, as far as the ledger knows."""
        total = self.execute(
            "SELECT coalesce(sum(cost), 0) FROM tasks WHERE provider = :provider"
            " AND partition_date = :partition AND task_id IS NOT NULL",
            {"provider": provider, "partition": partition},
        ).scalar_one()
        return round(float(total), 8)

    def note_balance(self, provider: str, partition: str, balance: float) -> None:
        """The account's balance as just read by a run of ``partition``."""
        self._write(
            [
                (
                    "INSERT INTO balances VALUES (:provider, :at, :partition, :balance)"
                    " ON CONFLICT DO NOTHING",
                    {
                        "provider": provider,
                        "at": utc_now().isoformat(),
                        "partition": partition,
                        "balance": balance,
                    },
                )
            ]
        )

    def balances(self, provider: str, partition: str) -> list[tuple[str, float]]:
        """(when, balance) of every reading by the runs of ``partition``, oldest first."""
        return [
            (at, balance)
            for at, balance in self.execute(
                "SELECT observed_at, balance FROM balances WHERE provider = :provider"
                " AND partition_date = :partition ORDER BY observed_at",
                {"provider": provider, "partition": partition},
            )
        ]

    def posted_cost_between(self, provider: str, start: str, end: str) -> float:
        """What the tasks (of any day) posted after ``start`` up to ``end`` cost."""
        return round(
            float(
                self.execute(
                    "SELECT coalesce(sum(cost), 0) FROM tasks WHERE provider = :provider"
                    " AND posted_at > :start AND posted_at <= :end AND task_id IS NOT NULL",
                    {"provider": provider, "start": start, "end": end},
                ).scalar_one()
            ),
            8,
        )

    def knows_any(self, provider: str) -> bool:
        """Whether the ledger holds any task of ``provider``, of any day."""
        return (
            self.execute(
                "SELECT 1 FROM tasks WHERE provider = :provider LIMIT 1", {"provider": provider}
            ).first()
            is not None
        )

    def task_ids(self, provider: str) -> set[str]:
        """Every task id the ledger knows for ``provider``, of any partition."""
        return set(
            self.execute(
                "SELECT task_id FROM tasks WHERE provider = :provider AND task_id IS NOT NULL",
                {"provider": provider},
            ).scalars()
        )

    def provider_task_ids(self, provider: str) -> set[str]:
        """Every task id the ledger knows for any instance of ``provider``: what none of them
        has to take for a stranger's (instances may share an account)."""
        return {
            task_id
            for scope, task_id in self.execute(
                "SELECT provider, task_id FROM tasks WHERE task_id IS NOT NULL"
            )
            if provider_of(scope) == provider
        }

    # -- recovery candidates -----------------------------------------------------------------

    def record_candidates(self, provider: str, listed: list[dict]) -> None:
        """Keep listed entries (each with an ``id``) that may be ours; known ones stay as is."""
        now = utc_now().isoformat()
        self._write(
            [
                (
                    "INSERT INTO recovery_candidates (provider, task_id, listed, recorded_at)"
                    " VALUES (:provider, :task_id, :listed, :now) ON CONFLICT DO NOTHING",
                    {
                        "provider": provider,
                        "task_id": entry["id"],
                        "listed": orjson.dumps(entry).decode(),
                        "now": now,
                    },
                )
                for entry in listed
            ]
        )

    def candidates(self, provider: str) -> list[Candidate]:
        """The candidates no intent has claimed yet."""
        cursor = self.execute(
            "SELECT task_id, listed, body FROM recovery_candidates WHERE provider = :provider"
            " AND claimed_by IS NULL ORDER BY recorded_at, task_id",
            {"provider": provider},
        )
        return [
            Candidate(task_id, orjson.loads(listed), None if body is None else bytes(body))
            for task_id, listed, body in cursor
        ]

    def keep_candidate_bodies(self, provider: str, bodies: dict[str, bytes]) -> None:
        self._write(
            [
                (
                    "UPDATE recovery_candidates SET body = :body"
                    " WHERE provider = :provider AND task_id = :task_id",
                    {"body": body, "provider": provider, "task_id": task_id},
                )
                for task_id, body in bodies.items()
            ]
        )

    def claim_candidate(
        self,
        provider: str,
        tag: str,
        partition: str,
        candidate: Candidate,
        cost: float | None,
        meta: dict,
    ) -> None:
        """The intent ``tag`` is ``candidate``: record it posted and its looked-at body as its
        response, in one transaction (the body is all there is: the look marked it fetched)."""
        if candidate.body is None:
            raise ValueError(f"{provider} task {candidate.task_id}: claimed before looked at")
        with self.transaction():
            self.execute(
                "UPDATE tasks SET state = :state, task_id = :task_id, cost = :cost,"
                " status_message = :message, posted_at = :at, fetched_at = :at,"
                " content_hash = :digest WHERE provider = :provider AND tag = :tag"
                " AND state = :intent",
                {
                    "state": TaskState.FETCHED.value,
                    "task_id": candidate.task_id,
                    "cost": cost,
                    "message": "recovered by target",
                    "at": meta["fetched_at"],
                    "digest": meta["content_hash"],
                    "provider": provider,
                    "tag": tag,
                    "intent": TaskState.INTENT.value,
                },
            )
            self._add_to_inbox(provider, candidate.task_id, partition, meta, candidate.body)
            self.execute(
                "UPDATE recovery_candidates SET claimed_by = :tag"
                " WHERE provider = :provider AND task_id = :task_id",
                {"tag": tag, "provider": provider, "task_id": candidate.task_id},
            )

    # -- inbox -------------------------------------------------------------------------------

    def store_response(
        self,
        provider: str,
        partition: str,
        task_id: str,
        meta: dict,
        body: bytes,
        final_state: TaskState,
    ) -> bool:
        """Keep one version of a response (``meta["content_hash"]`` names it) and mark its task
        collected, in one transaction.

        Returns False, changing nothing, if it is the version the task already has (a repeat
        delivery or fetch: its first fetch time stands) or one the inbox already holds.
        """
        version = meta["content_hash"]
        task = {"provider": provider, "task_id": task_id}
        with self.transaction(serialize=f"serp-etl task {provider} {task_id}"):
            current = self.execute(
                "SELECT content_hash FROM tasks WHERE provider = :provider AND task_id = :task_id",
                task,
            ).first()
            inserted = current != (version,) and self._add_to_inbox(
                provider, task_id, partition, meta, body
            )
            if inserted:
                # A task found again without its cost (tasks_ready lists none) gets the one
                # its response reports.
                self.execute(
                    "UPDATE tasks SET state = :state, status_code = :code,"
                    " status_message = :message, fetched_at = :at,"
                    " cost = coalesce(cost, :cost), content_hash = :digest"
                    " WHERE provider = :provider AND task_id = :task_id",
                    {
                        **task,
                        "state": final_state.value,
                        "code": meta.get("status_code"),
                        "message": meta.get("status_message"),
                        "at": meta.get("fetched_at"),
                        "cost": meta.get("cost"),
                        "digest": version,
                    },
                )
        return inserted

    def inbox(self, provider: str, partition: str) -> Iterator[InboxRow]:
        """The partition's versions waiting to be published, one at a time: each body is read
        from its row as it is needed (on SQLite streamed, not copied twice)."""
        key = {"provider": provider, "partition": partition}
        if self.dialect != "sqlite":
            # One query, its rows streamed a few at a time from a server-side cursor (which
            # lives in a transaction): not a query per body, nor every body at once.
            with self.transaction():
                rows = self.execute(
                    "SELECT task_id, meta, body, body_key, body_size FROM inbox"
                    " WHERE provider = :provider AND partition_date = :partition"
                    " ORDER BY task_id, content_hash",
                    key,
                    streamed=True,
                )
                for task_id, meta, body in self._with_bodies(rows):
                    yield InboxRow(task_id, orjson.loads(meta), body)
            return
        listed = self.execute(
            "SELECT rowid, task_id, meta FROM inbox WHERE provider = :provider"
            " AND partition_date = :partition ORDER BY task_id, content_hash",
            key,
        ).all()
        for rowid, task_id, meta in listed:
            with self.sqlite().blobopen("inbox", "body", rowid, readonly=True) as blob:
                body = blob.read()
            yield InboxRow(task_id, orjson.loads(meta), body)

    def note_imported(
        self, provider: str, versions: list[tuple[str, str, TaskState, dict]]
    ) -> None:
        """Imported ``(task_id, content_hash, state, meta)`` versions: a task of the ledger
        still waiting for its result has it now."""
        self._write(
            [
                (
                    "UPDATE tasks SET state = :state, content_hash = :digest, fetched_at = :at,"
                    " cost = coalesce(cost, :cost) WHERE provider = :provider"
                    " AND task_id = :task_id AND state = :posted",
                    {
                        "state": state.value,
                        "digest": version,
                        "at": meta["fetched_at"],
                        "cost": meta.get("cost"),
                        "provider": provider,
                        "task_id": task_id,
                        "posted": TaskState.POSTED.value,
                    },
                )
                for task_id, version, state, meta in versions
            ]
        )

    def record_import(self, provider: str, partition: str, report: dict) -> int:
        """Keep what an import into ``partition`` landed, for Dagster to record; its id."""
        with self.transaction():
            return self.execute(
                "INSERT INTO imports (provider, partition_date, imported_at, report)"
                " VALUES (:provider, :partition, :at, :report) RETURNING id",
                {
                    "provider": provider,
                    "partition": partition,
                    "at": utc_now().isoformat(),
                    "report": orjson.dumps(report).decode(),
                },
            ).scalar_one()

    def imports_with_ids(self, ids: list[int]) -> list[ImportRecord]:
        """The imports of ``ids`` (those still there), oldest first."""
        if not ids:
            return []
        cursor = self.execute(
            "SELECT id, provider, partition_date, imported_at, report FROM imports"
            " WHERE id IN :ids ORDER BY id",
            {"ids": list(ids)},
            expanding=("ids",),
        )
        return [
            ImportRecord(row_id, provider, partition, at, orjson.loads(report))
            for row_id, provider, partition, at, report in cursor
        ]

    def imports_after(self, last_id: int, limit: int = 1000) -> list[ImportRecord]:
        """The imports recorded after ``last_id``, oldest first."""
        cursor = self.execute(
            "SELECT id, provider, partition_date, imported_at, report FROM imports"
            " WHERE id > :last ORDER BY id LIMIT :limit",
            {"last": last_id, "limit": limit},
        )
        return [
            ImportRecord(row_id, provider, partition, at, orjson.loads(report))
            for row_id, provider, partition, at, report in cursor
        ]

    # -- quarantine --------------------------------------------------------------------------

    def quarantine(
        self, provider: str, task_id: str | None, reason: str, body: bytes, received_at: str
    ) -> bool:
        """Keep a delivery that was not asked for; False if this content is kept already."""
        inserted = self._write(
            [
                (
                    "INSERT INTO quarantine (provider, content_hash, received_at, task_id, reason,"
                    " body) VALUES (:provider, :digest, :at, :task_id, :reason, :body)"
                    " ON CONFLICT DO NOTHING",
                    {
                        "provider": provider,
                        "digest": content_hash(body),
                        "at": received_at,
                        "task_id": task_id,
                        "reason": reason,
                        "body": body,
                    },
                )
            ]
        )
        return inserted == 1

    def quarantined(self, provider: str) -> list[Quarantined]:
        cursor = self.execute(
            "SELECT content_hash, received_at, task_id, reason, body FROM quarantine"
            " WHERE provider = :provider ORDER BY received_at, content_hash",
            {"provider": provider},
        )
        return [
            Quarantined(digest, at, task_id, reason, bytes(body))
            for digest, at, task_id, reason, body in cursor
        ]

    def release_quarantined(self, provider: str, hashes: list[str]) -> None:
        """Let go of quarantined deliveries a published part holds."""
        self._write(
            [
                (
                    "DELETE FROM quarantine WHERE provider = :provider AND content_hash = :digest",
                    {"provider": provider, "digest": digest},
                )
                for digest in hashes
            ]
        )

    def inbox_versions(self, provider: str, partition: str) -> set[tuple[str, str]]:
        """The ``(task_id, content_hash)`` versions of ``partition`` not yet published."""
        return {
            (task_id, digest)
            for task_id, digest in self.execute(
                "SELECT task_id, content_hash FROM inbox WHERE provider = :provider"
                " AND partition_date = :partition",
                {"provider": provider, "partition": partition},
            )
        }

    def inbox_partitions(self, provider: str) -> dict[str, int]:
        """The partitions with responses not yet published, and how many each."""
        return {
            partition: count
            for partition, count in self.execute(
                "SELECT partition_date, count(*) FROM inbox WHERE provider = :provider"
                " GROUP BY partition_date",
                {"provider": provider},
            )
        }

    def _with_bodies(self, rows) -> Iterator[tuple[str, str, bytes]]:
        """Inbox rows with their bodies, read from the bucket where they are kept there."""
        if self._bodies is not None:
            yield from self._bodies.with_bodies(rows)
            return
        for task_id, meta, body, body_key, _ in rows:
            if body_key:
                raise StateUnreadable(
                    f"an inbox body is kept in the bucket ({body_key}), and this process has "
                    "no SERP_ETL_STORAGE_URL: set it as the run that stored it did"
                )
            yield task_id, meta, bytes(body)

    def clear_inbox(self, provider: str, partition: str, versions: list[tuple[str, str]]) -> None:
        """Let go of ``(task_id, content_hash)`` versions a published raw part holds (and of
        the objects holding their bodies)."""
        keys = set()
        if self._bodies is not None:
            wanted = set(versions)
            keys = {
                key
                for task_id, digest, key in self.execute(
                    "SELECT task_id, content_hash, body_key FROM inbox WHERE provider = :provider"
                    " AND partition_date = :partition AND body_key IS NOT NULL",
                    {"provider": provider, "partition": partition},
                )
                if (task_id, digest) in wanted
            }
        self._write(
            [
                (
                    "DELETE FROM inbox WHERE provider = :provider AND partition_date = :partition"
                    " AND task_id = :task_id AND content_hash = :digest",
                    {
                        "provider": provider,
                        "partition": partition,
                        "task_id": task_id,
                        "digest": version,
                    },
                )
                for task_id, version in versions
            ]
        )
        if self._bodies is not None:
            named = {
                key
                for (key,) in self.execute(
                    "SELECT body_key FROM inbox WHERE provider = :provider"
                    " AND body_key IS NOT NULL",
                    {"provider": provider},
                )
            }
            self._bodies.remove(sorted(keys | set(self._bodies.unreferenced(provider, named))))
