"""The warehouse's DuckDB views, kept in a database file that any DuckDB client opens.

``<data dir>/serp.duckdb`` holds one view per table, ``<provider>_<table>``, and no data but
a few rows of the user's settings (``my_sites``) that the derived views read. Each
view reads the table's Parquet parts with ``date`` (a DATE) from the hive path, through one
``read_parquet`` per schema generation: the parts written with one schema share a tag at the
start of their names (``core.parquet``), so binding a view opens one footer per generation, not
one per file, and a query's ``date`` filter leaves every other day's parts unread, however long
the history. A generation older than the table's schema is read as that schema: a column it
lacks is NULL, a type that changed is converted (text date-times into TIMESTAMPTZ). Parts of an
earlier serp-etl, without a tag, are read as one more generation.

On object storage (``serp_etl.storage.objects``) a glob would also find parts no commit
published yet: there, each generation is read from the list of its committed parts, by name,
and the file is rebuilt whenever a day's commit changes.

The file is rebuilt whole after every materialization and import (a temp file, then a rename):
a reader that has it open keeps the version it opened, and never blocks a writer. It is written
in DuckDB's v1.0 storage format, which older DuckDB builds (in BI tools) still open. Views are
SQL text, and DuckDB takes no parameters in a view: the warehouse's path is written into it as
a quoted literal (``_literal``), the one place where this package writes a value into SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath

import pyarrow as pa

from serp_etl.core.column_kinds import JSON_TEXT, TEXT_OF, kind_of
from serp_etl.core.parquet import LEGACY_PREFIX, publish_text, schema_tag, sweep_temp_files, tag_of
from serp_etl.core.warehouse import Warehouse
from serp_etl.storage.local import fsync_dir

VIEWS_FILE = "serp.duckdb"
STORAGE_VERSION = "v1.0.0"
# Formats of date-time text the providers send (DataForSEO's has a space before its offset).
DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%d %H:%M:%S",
)
_GLOB_CHARACTERS = frozenset("*?[]{}")


class ViewsError(RuntimeError):
    """The views cannot be written (a warehouse path DuckDB would read as a pattern, say)."""


@dataclass(frozen=True)
class DerivedView:
    """A view over the table views (``serp_etl.analysis``), written after them; with
    ``parameters``, a table macro (``SELECT * FROM name(a, b)``), whose parameters ``select``
    reads by name."""

    name: str
    description: str  # the view's COMMENT, which BI tools show
    select: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """The parts of one table written with one schema."""

    source: str | list[str]  # a glob (local storage), or every part by name (object storage)
    columns: dict[str, str]  # name -> DuckDB type
    legacy: bool  # untagged parts: their schemas may differ among themselves


def views_path(warehouse: Warehouse) -> Path:
    return warehouse.data_dir / VIEWS_FILE


def query_views_path(warehouse: Warehouse) -> Path:
    """The same views, reading ``<PROTOCOL>://`` (``core.read_only_fs``): ``serp-etl sql``'s."""
    return warehouse.data_dir / "state" / "query_views.duckdb"


@dataclass(frozen=True)
class ViewsFile:
    """One views database: where it is, where its signature is, how its views name a file."""

    path: Callable[[Warehouse], Path]
    signature_name: str  # in <data dir>/state
    read_only_fs: bool  # its views read through ``core.read_only_fs``, not DuckDB's own


# For every DuckDB client (BI tools, notebooks): written by every writer that changes it.
FOR_TOOLS = ViewsFile(views_path, "views.json", read_only_fs=False)
# For ``serp-etl sql``: written when a query finds it behind, so that writers pay for one file.
FOR_QUERIES = ViewsFile(query_views_path, "query_views.json", read_only_fs=True)


def scan(warehouse: Warehouse) -> dict[str, dict[str | None, list[PurePath]]]:
    """View name -> for each schema tag found (None: untagged parts), its parts. Lists
    directories (or reads the days' commits) only: no part is opened."""
    found: dict[str, dict[str | None, list[PurePath]]] = {}
    for (provider, table), parts in warehouse.storage.tables().items():
        tags: dict[str | None, list[PurePath]] = {}
        for part in parts:
            tag = tag_of(part.name)
            if tag is not None or part.name.startswith(LEGACY_PREFIX):
                tags.setdefault(tag, []).append(part)
        if tags:
            found[f"{provider}_{table}"] = tags
    return found


def _literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    if "\x00" in text:
        raise ViewsError(f"a NUL character in {text!r}")
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read(source: str | list[str], legacy: bool) -> str:
    files = (
        _literal(source)
        if isinstance(source, str)
        else "[" + ", ".join(_literal(name) for name in source) + "]"
    )
    return (
        f"read_parquet({files}, hive_partitioning = true, "
        f"hive_types = {{'date': DATE}}{', union_by_name = true' if legacy else ''})"
    )


def _generation(
    connection, warehouse: Warehouse, parts: list[PurePath], tag: str | None
) -> Generation:
    """The generation of ``tag``: a glob over the table's days locally (it finds new days by
    itself), its committed parts by name on object storage."""
    if warehouse.storage.shared:
        source: str | list[str] = [warehouse.uri(part) for part in sorted(parts)]
    else:
        pattern = f"{tag}-*.parquet" if tag else f"{LEGACY_PREFIX}*.parquet"
        source = str(Path(parts[0]).parent.parent.resolve() / "date=*" / pattern)
    relation = connection.read_parquet(source, hive_partitioning=True, union_by_name=tag is None)
    columns = {
        name: str(kind)
        for name, kind in zip(relation.columns, relation.types, strict=True)
        if name != "date"
    }
    return Generation(source, columns, tag is None)


def _target_types(connection, schemas: Mapping[str, pa.Schema]) -> dict[str, dict[str, str]]:
    """The DuckDB type of each column of each schema, as DuckDB reads a part written with it:
    read from an empty part of each (DuckDB reads an Arrow table through pandas, a fifth of a
    second to load, and its types could differ from a part's)."""
    import pyarrow.parquet as pq

    types: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for view, schema in schemas.items():
            path = Path(scratch, f"{len(types)}.parquet")
            pq.write_table(schema.empty_table(), path)
            relation = connection.read_parquet(str(path))
            types[view] = {
                name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)
            }
    return types


def _column(field: pa.Field, kind: str, generation: Generation) -> str:
    """The select expression of one column of the table's schema, read from ``generation``."""
    name = _identifier(field.name)
    have = generation.columns.get(field.name)
    marker = kind_of(field)
    if have is None and marker.startswith(TEXT_OF):
        source = marker[len(TEXT_OF) :].decode()
        if generation.columns.get(source) == "VARCHAR":  # written as text: keep that text
            value = _identifier(source)
            return (
                f"CASE WHEN NOT regexp_matches({value}, '(\\+00:?00|Z)$') THEN {value} END"
                f" AS {name}"
            )
    if have is None:
        expression = f"CAST(NULL AS {kind})"
    elif have == kind:
        expression = name
    elif kind == "TIMESTAMP WITH TIME ZONE" and have == "VARCHAR":
        formats = ", ".join(_literal(f) for f in DATETIME_FORMATS)
        expression = f"try_strptime({name}, [{formats}])::TIMESTAMPTZ"
    else:
        expression = f"TRY_CAST({name} AS {kind})"
    if marker == JSON_TEXT:
        expression = f"CAST({expression} AS JSON)"
    return f"{expression} AS {name}"


def view_sql(
    view: str, generations: list[Generation], schema: pa.Schema | None, types: dict[str, str]
) -> str:
    """``CREATE VIEW``: each generation read as ``schema`` (its own columns after), the union
    of them by name; without a schema (a table this serp-etl does not write), each as it is."""
    selects = []
    for generation in generations:
        if schema is None:
            columns = [_identifier(name) for name in generation.columns]
        else:
            columns = [_column(field, types[field.name], generation) for field in schema]
            columns += [_identifier(name) for name in generation.columns if name not in types]
        selects.append(
            f"SELECT {', '.join(columns)}, date FROM {_read(generation.source, generation.legacy)}"
        )
    return f"CREATE VIEW {_identifier(view)} AS " + " UNION ALL BY NAME ".join(selects)


def empty_view_sql(view: str, schema: pa.Schema, types: dict[str, str]) -> str:
    """``CREATE VIEW`` of a table without any part yet: its columns, typed, and no row (so
    that the views over it, and a user's query, work before its first day)."""
    nothing = Generation("", {}, False)
    columns = [_column(field, types[field.name], nothing) for field in schema]
    return (
        f"CREATE VIEW {_identifier(view)} AS SELECT {', '.join(columns)}, "
        "CAST(NULL AS DATE) AS date WHERE false"
    )


@dataclass(frozen=True)
class ViewDefinitions:
    """What this serp-etl writes into a views file: a view per table of ``schemas``, the
    derived views (and table macros) over them, the settings tables they read, and the
    comments BI tools show: each table view's (``descriptions``) and each of its columns'
    (``column_docs``, with ``date``'s)."""

    schemas: Mapping[str, pa.Schema]
    derived: Sequence[DerivedView] = ()
    settings: Mapping[str, pa.Table] = field(default_factory=dict)
    descriptions: Mapping[str, str] = field(default_factory=dict)
    column_docs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def digest(self) -> str:
        """Of every table's schema, every derived view's text, the settings tables' content
        and every comment: any change, a new views file."""
        text = json.dumps(
            {
                "schemas": {view: _own_tag(schema) for view, schema in self.schemas.items()},
                "derived": [[v.name, v.description, v.select, *v.parameters] for v in self.derived],
                "settings": {name: table.to_pylist() for name, table in self.settings.items()},
                "descriptions": self.descriptions,
                "column_docs": self.column_docs,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def signature(
    warehouse: Warehouse,
    found: Mapping[str, Mapping[str | None, list[PurePath]]],
    definitions: ViewDefinitions,
) -> dict:
    """What the views file is built from: where the warehouse is (the views hold its path),
    each table's generations (on object storage, with their parts, which the views name),
    the schema this serp-etl reads it as, and the derived views. The same signature, the
    same views."""

    def parts_digest(tags: Mapping[str | None, list[PurePath]]) -> str:
        names = sorted(str(part) for parts in tags.values() for part in parts)
        return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]

    return {
        "root": _root(warehouse),
        "definitions": definitions.digest(),
        "views": {
            view: {
                "generations": sorted(tag or "" for tag in tags),
                "schema": _own_tag(definitions.schemas.get(view)),
                **({"parts": parts_digest(tags)} if warehouse.storage.shared else {}),
            }
            for view, tags in sorted(found.items())
        },
    }


def _root(warehouse: Warehouse) -> str:
    return warehouse.storage.url if warehouse.storage.shared else str(warehouse.absolute_root)


def signature_path(warehouse: Warehouse, kind: ViewsFile = FOR_TOOLS) -> Path:
    return warehouse.data_dir / "state" / kind.signature_name


def recorded_signature(warehouse: Warehouse, kind: ViewsFile = FOR_TOOLS) -> dict | None:
    """The signature of the views file as written, None if there is none."""
    if not kind.path(warehouse).exists():
        return None
    try:
        return json.loads(signature_path(warehouse, kind).read_text())
    except (OSError, ValueError):
        return None


def refresh(
    warehouse: Warehouse, definitions: ViewDefinitions, kind: ViewsFile = FOR_TOOLS
) -> Path:
    """Write the views file anew if what the warehouse holds (its tables and their schema
    generations, not its days: a view's globs find new days by themselves) or this serp-etl's
    schemas, derived views or settings tables changed since it was written; its path. Every
    table of ``schemas`` gets a view, an empty one until its first part; every settings table
    (a few rows of the user's settings, which derived views read) is written as a table."""
    found = scan(warehouse)
    wanted = signature(warehouse, found, definitions)
    target = kind.path(warehouse)
    if recorded_signature(warehouse, kind) == wanted:
        return target
    root = _root(warehouse)
    if not warehouse.storage.shared and _GLOB_CHARACTERS & set(root):
        raise ViewsError(
            f"the warehouse path {root} has a character DuckDB reads as a glob "
            f"pattern ({''.join(sorted(_GLOB_CHARACTERS & set(root)))}): move "
            "the data dir to a path without it"
        )
    _write(warehouse, found, definitions, kind)
    # After the views file: a crash between the two leaves an old signature, and the next
    # refresh writes the views again.
    publish_text(signature_path(warehouse, kind), json.dumps(wanted, indent=1))
    return target


def _write(
    warehouse: Warehouse,
    found: Mapping[str, Mapping[str | None, list[PurePath]]],
    definitions: ViewDefinitions,
    kind: ViewsFile,
) -> None:
    """Write the views file of ``kind``, whole (a temp file, then a rename): its views name
    the warehouse's files by their path, or through the read-only file system."""
    import duckdb

    target = kind.path(warehouse)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(target.parent)  # what a writer killed mid-write left
    shared = warehouse.storage.shared
    root = warehouse.absolute_root
    prefix = warehouse.uri(root) if shared else str(root)

    def locate(generation: Generation) -> Generation:
        """The generation as read through the read-only file system, for ``kind``'s."""
        if not kind.read_only_fs:
            return generation

        def relative(name: str) -> str:
            return f"{PROTOCOL}://{name.removeprefix(prefix).lstrip('/')}"

        source = generation.source
        return replace(
            generation,
            source=relative(source)
            if isinstance(source, str)
            else [relative(name) for name in source],
        )

    temp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with duckdb.connect(
            str(temp), config={"storage_compatibility_version": STORAGE_VERSION}
        ) as connection:
            if kind.read_only_fs:
                # Imported here: only serp-etl sql's views need fsspec (a step process need not
                # hold it at its peak of memory); creating a view reads its files.
                from serp_etl.core.read_only_fs import PROTOCOL, ReadOnlyWarehouse

                connection.register_filesystem(ReadOnlyWarehouse(str(root), warehouse.filesystem))
            if shared:
                connection.register_filesystem(warehouse.filesystem)
            # One transaction: each statement committed alone cost a catalog commit apiece,
            # and the comments are one statement a column (0.26 s a refresh, 0.10 s in one).
            # The file is a temp file until renamed: a failure leaves nothing to roll back.
            connection.execute("BEGIN TRANSACTION")
            for view, tags in found.items():
                schema = definitions.schemas.get(view)
                # This serp-etl's own generation first: the view's columns in its order.
                own = _own_tag(schema)
                order = sorted(tags, key=lambda tag: (tag != own, tag is None, tag or ""))
                generations = [_generation(connection, warehouse, tags[tag], tag) for tag in order]
                if schema is None:
                    types = {}
                elif order[0] == own:  # its parts say how DuckDB types the schema
                    types = generations[0].columns
                else:
                    types = _target_types(connection, {view: schema})[view]
                connection.execute(view_sql(view, [locate(g) for g in generations], schema, types))
            missing = {
                view: schema for view, schema in definitions.schemas.items() if view not in found
            }
            for name, types in _target_types(connection, missing).items():
                connection.execute(empty_view_sql(name, missing[name], types))
            _comment_tables(connection, definitions)
            for name, table in definitions.settings.items():
                # Rows passed as an Arrow table: no value of the user's is written into SQL.
                connection.register("settings_rows", table)
                connection.execute(
                    f"CREATE TABLE {_identifier(name)} AS SELECT * FROM settings_rows"
                )
                connection.unregister("settings_rows")
            for derived in definitions.derived:
                name = _identifier(derived.name)
                if derived.parameters:
                    connection.execute(
                        f"CREATE MACRO {name}({', '.join(derived.parameters)}) "
                        f"AS TABLE {derived.select}"
                    )
                    connection.execute(
                        f"COMMENT ON MACRO TABLE {name} IS {_literal(derived.description)}"
                    )
                    continue
                connection.execute(f"CREATE VIEW {name} AS {derived.select}")
                connection.execute(f"COMMENT ON VIEW {name} IS {_literal(derived.description)}")
            connection.execute("COMMIT")
            connection.execute("CHECKPOINT")
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
        fsync_dir(target.parent)
    finally:
        temp.unlink(missing_ok=True)
        Path(f"{temp}.wal").unlink(missing_ok=True)


def _comment_tables(connection, definitions: ViewDefinitions) -> None:
    """Each table view's comment and its columns' (those a view has), as BI tools show them."""
    for view, description in definitions.descriptions.items():
        connection.execute(f"COMMENT ON VIEW {_identifier(view)} IS {_literal(description)}")
    have = set(
        connection.execute("SELECT table_name, column_name FROM duckdb_columns()").fetchall()
    )
    for view, docs in definitions.column_docs.items():
        for column, text in docs.items():
            if (view, column) in have:
                connection.execute(
                    f"COMMENT ON COLUMN {_identifier(view)}."
                    f"{_identifier(column)} IS {_literal(text)}"
                )


def current(
    warehouse: Warehouse, definitions: ViewDefinitions, kind: ViewsFile = FOR_TOOLS
) -> bool:
    """Whether the views file serves this warehouse as this serp-etl reads it, by what costs
    the same however long the history: it was written for this data dir and these schemas,
    derived views and settings, and every table of the warehouse has a view. (A new schema
    generation comes only from a writer of another serp-etl, which refreshes the file
    itself.)"""
    recorded = recorded_signature(warehouse, kind)
    if recorded is None or recorded.get("root") != _root(warehouse):
        return False  # none yet, or the data dir moved
    if warehouse.storage.shared:  # its views name every part: the commits say if they changed
        return recorded == signature(warehouse, scan(warehouse), definitions)
    if recorded.get("definitions") != definitions.digest():
        return False
    known = recorded.get("views", {})
    if any(
        entry["schema"] != _own_tag(definitions.schemas.get(view)) for view, entry in known.items()
    ):
        return False
    return set(table_views(warehouse)) <= set(known)


def table_views(warehouse: Warehouse) -> list[str]:
    """The view name of every table directory of the warehouse (days not listed)."""
    root = Path(warehouse.root)
    if not root.is_dir():
        return []
    return [
        f"{provider.name}_{table.name}"
        for provider in os.scandir(root)
        if provider.is_dir()
        for table in os.scandir(provider.path)
        if table.is_dir()
    ]


def _own_tag(schema: pa.Schema | None) -> str | None:
    return schema_tag(schema) if schema is not None else None
