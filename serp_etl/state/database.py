"""One connection to a state database, SQLite or Postgres, through SQLAlchemy Core.

Tables are declared once (SQLAlchemy ``MetaData``) and statements written once, in SQL that
both databases read (named parameters, ``INSERT ... ON CONFLICT``, ``RETURNING``). Reads run
on their own and see the latest commit; each write runs in one explicit transaction
(``transaction()``): on SQLite ``BEGIN IMMEDIATE``, which takes the write lock up front so that
a busy file waits instead of failing halfway; on Postgres ``BEGIN``, with an advisory
transaction lock where a read-then-write must not interleave with another process's.

SQLite: a file with a write-ahead log and a long busy timeout, safe across the processes of
one host. Postgres (``postgresql+psycopg://``): every host of a deployment shares it; TCP
keepalives on both ends, so a vanished pod's session (and any lock it held) ends within
minutes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any, Self, TypeGuard

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from serp_etl.state.locking import exclusive_lock

# Text compared byte by byte on both databases: Postgres would otherwise order by the
# database's locale, and a listing's order would differ between the two.
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
# Seconds a TCP connection to Postgres may stay silent before either end probes it, and probes
# before it is dropped: a session of a host that vanished ends (and its locks go) in ~1 min.
KEEPALIVE = {"idle": 30, "interval": 10, "count": 3}
log = logging.getLogger(__name__)


class StateUnreadable(RuntimeError):
    """A state file that exists but holds no readable state (0 bytes, or not SQLite)."""


def lock_key(name: str) -> int:
    """A Postgres advisory lock's 64-bit key for ``name``."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def is_url(location: Path | str | None) -> TypeGuard[str]:
    return isinstance(location, str) and "://" in location


def postgres_engine(url: str) -> sa.Engine:
    """An engine for a Postgres URL (``postgresql://`` means psycopg 3 here)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"a state URL must be postgresql+psycopg://..., got "
            f"{parsed.render_as_string(hide_password=True)}"
        )
    server = " ".join(f"-c tcp_keepalives_{name}={value}" for name, value in KEEPALIVE.items())
    connect_args = {
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE["idle"],
        "keepalives_interval": KEEPALIVE["interval"],
        "keepalives_count": KEEPALIVE["count"],
        "options": server,
        "application_name": "serp-etl",
    }
    return sa.create_engine(
        parsed, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool, connect_args=connect_args
    )


def describe_location(location: Path | str | None) -> str:
    """A state location for a message to the operator: never a URL's password."""
    if is_url(location):
        return make_url(location).render_as_string(hide_password=True)
    return str(location) if location is not None else ":memory:"


def _create_whole(path: Path) -> None:
    """Create ``path`` as an empty WAL database that is never seen empty: SQLite creates a file
    of 0 bytes and writes its header later, and a 0-byte ledger is refused as a lost one. So it
    is made aside and linked into place; of two creators, the second keeps the first's."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        db = sqlite3.connect(temp)
        db.execute("PRAGMA journal_mode=WAL")  # writes the header: the file is 4 KiB now
        db.close()
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        with suppress(FileExistsError):
            os.link(temp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=512)
def _statement(sql: str, expanding: tuple[str, ...]) -> sa.TextClause:
    """One construct per statement text: the hot paths (a rate-limit slot, a task's update)
    run the same few statements thousands of times."""
    statement = sa.text(sql)
    if expanding:
        statement = statement.bindparams(
            *(sa.bindparam(name, expanding=True) for name in expanding)
        )
    return statement


def _set_aside(path: Path, error: Exception) -> None:
    """Move an unreadable, disposable SQLite file (and its log) out of the way, so that it is
    made anew; under a lock, and only if it is still unreadable (another process may have
    rebuilt it meanwhile)."""
    with exclusive_lock(path.with_name(f".{path.name}.rebuild.lock")):
        try:
            with closing(sqlite3.connect(path)) as db:
                db.execute("PRAGMA schema_version").fetchone()
            return  # rebuilt by another process already
        except sqlite3.DatabaseError:
            pass
        aside = path.with_name(f"{path.name}.unreadable-{uuid.uuid4().hex[:8]}")
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    log.warning(
        "%s was not readable (%s): set aside as %s and rebuilt; it is a cache or a "
        "log, so nothing of value is lost",
        path,
        getattr(error, "orig", error),
        aside.name,
    )


_RESTORE = (
    "Restore it from a backup. serp-etl does not start an empty one in its place: that "
    "would post, and pay for, the day's tasks again."
)


class Database:
    """One connection to the state in ``location``: a SQLite file's path (None: in memory, for
    this object alone), or a Postgres URL."""

    def __init__(
        self,
        location: Path | str | None,
        metadata: sa.MetaData,
        *,
        synchronous: str = "FULL",
        check_same_thread: bool = True,
        precious: bool = False,
    ) -> None:
        """Open ``location`` and create the tables of ``metadata`` that are missing.
        ``synchronous`` NORMAL suits a SQLite cache, whose loss costs nothing but time. A
        ``precious`` SQLite file (the ledger) that exists but is empty or unreadable raises
        ``StateUnreadable``: it is never silently replaced by an empty one. Any other SQLite
        file (a cache, the rate-limit log) that is unreadable is set aside and rebuilt, with
        a warning."""
        self.location = location
        try:
            self._open(location, metadata, synchronous, check_same_thread, precious)
        except sa.exc.DatabaseError as error:
            if is_url(location) or location is None:
                raise
            if precious:
                raise StateUnreadable(
                    f"{location} is not a readable state file ({error.orig}): {_RESTORE}"
                ) from error
            _set_aside(Path(location), error)
            self._open(location, metadata, synchronous, check_same_thread, precious)

    def _open(
        self,
        location: Path | str | None,
        metadata: sa.MetaData,
        synchronous: str,
        check_same_thread: bool,
        precious: bool,
    ) -> None:
        if is_url(location):
            self.engine = postgres_engine(location)
            self.dialect = "postgresql"
        else:
            path = None if location is None else Path(location)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                if precious and not path.exists():
                    _create_whole(path)
                if precious and path.stat().st_size == 0:
                    raise StateUnreadable(
                        f"{path} is empty (0 bytes): the state that records every paid task "
                        f"was lost or truncated (a bad copy, a volume not mounted). {_RESTORE}"
                    )
            self.engine = sa.create_engine(
                "sqlite://" if path is None else f"sqlite:///{path}",
                isolation_level="AUTOCOMMIT",
                poolclass=sa.StaticPool,
                connect_args={"timeout": 60, "check_same_thread": check_same_thread},
            )
            self.dialect = "sqlite"
        self._connection = self.engine.connect()
        try:
            if self.dialect == "sqlite":
                self.execute("PRAGMA journal_mode=WAL")
                self.execute(f"PRAGMA synchronous={synchronous}")
            self._create(metadata)
        except BaseException:
            self.close()
            raise

    def _create(self, metadata: sa.MetaData) -> None:
        """Create the missing tables; two processes starting on a new database do it in turn
        (Postgres would otherwise fail one of them with a duplicate table)."""
        with self.transaction(serialize="serp-etl schema"):
            self.migrate()
            metadata.create_all(self._connection, checkfirst=True)
            # create_all makes a missing table with its indexes; an index a later serp-etl
            # declares on a table an earlier one made is added here.
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(self._connection, checkfirst=True)

    def migrate(self) -> None:
        """Bring tables an earlier serp-etl wrote up to date, before missing ones are made."""

    def describe(self) -> str:
        """Where this state lives, for a message to the operator (never a password)."""
        return describe_location(self.location)

    def execute(
        self,
        sql: str,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        expanding: Sequence[str] = (),
        streamed: bool = False,
    ) -> sa.CursorResult:
        """Run one statement with named parameters (a list of them: once per entry);
        ``expanding`` names the parameters that are lists (``x IN :names``). ``streamed``:
        its rows come a few at a time (Postgres: a server-side cursor, inside a
        ``transaction()``), not all at once."""
        options = {"stream_results": True, "max_row_buffer": 8} if streamed else None
        return self._connection.execute(
            _statement(sql, tuple(expanding)), params, execution_options=options
        )

    @contextmanager
    def transaction(self, serialize: str | None = None) -> Iterator[None]:
        """One transaction: everything in it lands, or nothing. ``serialize``: on Postgres, a
        name whose transactions never run at once (SQLite's are all one at a time)."""
        driver = self._connection.exec_driver_sql
        driver("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        try:
            if serialize and self.dialect == "postgresql":
                self.execute("SELECT pg_advisory_xact_lock(:key)", {"key": lock_key(serialize)})
            yield
        except BaseException:
            driver("ROLLBACK")
            raise
        driver("COMMIT")

    def sqlite(self) -> sqlite3.Connection:
        """The SQLite connection itself, for what only it does (streaming a blob)."""
        connection = self._connection.connection.dbapi_connection
        assert isinstance(connection, sqlite3.Connection)
        return connection

    def table_columns(self, table: str) -> set[str]:
        """The columns ``table`` has in the database (none if it does not exist)."""
        inspector = sa.inspect(self._connection)
        if not inspector.has_table(table):
            return set()
        return {column["name"] for column in inspector.get_columns(table)}

    def now(self) -> float:
        """Seconds since the epoch on the database's clock where the database is shared by
        hosts whose clocks may differ (Postgres); on this host's for a SQLite file (one host,
        one clock)."""
        if self.dialect != "postgresql":
            return time.time()
        return float(self.execute("SELECT extract(epoch FROM clock_timestamp())").scalar_one())

    def close(self) -> None:
        with suppress(Exception):
            self._connection.close()
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def advisory_lock(
    database: Database, name: str, timeout_seconds: float, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the Postgres session lock ``name`` on a connection of its own: it outlives the
    transactions of ``database`` (intents commit before anything is posted), and ends with its
    session when the holder dies. Waits at most ``timeout_seconds`` (``lock_timeout``).
    A transaction-mode pooler (PgBouncer ``pool_mode=transaction``) hands a session's
    statements to different server sessions, and breaks this lock: connect directly, or in
    session mode. ``on_wait`` is called first (to say so) when it has to wait."""
    with database.engine.connect() as connection:
        connection.execute(
            sa.text("SELECT set_config('lock_timeout', :ms, false)"),
            {"ms": f"{int(timeout_seconds * 1000)}ms"},
        )
        key = {"key": lock_key(name)}
        if not connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            if on_wait is not None:
                on_wait()
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            with suppress(sa.exc.DBAPIError):
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
