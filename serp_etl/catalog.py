"""The warehouse as SQL: every provider's tables, the views file over them, connections to it.

Writers (every materialization, every import) call ``refresh_views`` once they have published:
it rewrites the views file only when a table or a schema generation appeared or went (a new day
needs nothing: the views' globs find it). Readers open the file read-only (``connect``), or
locked down for analysts (``query_connection``), after a check that costs the same whatever the
history: should a writer have died before refreshing, the reader refreshes first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from serp_etl import analysis
from serp_etl.core import views
from serp_etl.core.column_docs import DATE
from serp_etl.core.provider import ProviderTables
from serp_etl.core.targets import TARGETS_FILE, TargetConfigError
from serp_etl.core.warehouse import Warehouse
from serp_etl.my_sites.config import MySites, load_my_sites
from serp_etl.providers.dataforseo.tables import TABLES as DATAFORSEO
from serp_etl.providers.instances import provider_of
from serp_etl.providers.semscraper.tables import TABLES as SEMSCRAPER

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)
# Each provider's tables, under its default instance's name (``providers.instances``).
PROVIDERS = {tables.name: tables for tables in (DATAFORSEO, SEMSCRAPER)}


def instances(data_dir: Path | str) -> dict[str, ProviderTables]:
    """Every provider instance the views show: the default ones, and every other one whose
    folder the warehouse holds (an instance's provider is read from its name)."""
    found = [name for name in Warehouse(data_dir).storage.providers() if provider_of(name)]
    return {
        name: PROVIDERS[provider_of(name) or ""].instance(name)
        for name in sorted({*PROVIDERS, *found})
    }


def view_schemas(known: Mapping[str, ProviderTables] = PROVIDERS) -> dict[str, pa.Schema]:
    """View name (``<instance>_<table>``) -> the schema this serp-etl writes it with."""
    return {
        f"{name}_{table}": schema
        for name, tables in known.items()
        for table, schema in tables.schemas().items()
    }


def settings_tables(data_dir: Path | str) -> dict[str, pa.Table]:
    """What the derived views need of the user's settings: what is mine (``my_sites``), from
    the data dir's targets file. Empty when it is missing or has a problem (a run, ``serp-etl
    targets check`` and the alerts step say which): the views still serve everything else."""
    path = Path(data_dir) / TARGETS_FILE
    if not path.exists():
        return MySites().tables()
    try:
        mine = load_my_sites(path)
    except TargetConfigError as error:
        log.warning("my sites are not known to the views: %s", error)
        mine = MySites()
    return mine.tables()


def view_definitions(data_dir: Path | str) -> views.ViewDefinitions:
    """Every table view with its comment and its columns', the ready-made views, and the
    user's settings they read."""
    known = instances(data_dir)
    tables = {
        f"{name}_{table}": (provider_tables, table)
        for name, provider_tables in known.items()
        for table in provider_tables.schemas()
    }
    return views.ViewDefinitions(
        view_schemas(known),
        analysis.views(known),
        settings_tables(data_dir),
        descriptions={
            view: provider.description(table) for view, (provider, table) in tables.items()
        },
        column_docs={
            view: {**provider.docs(table), "date": DATE}
            for view, (provider, table) in tables.items()
        },
    )


def refresh_views(data_dir: Path | str, kind: views.ViewsFile = views.FOR_TOOLS) -> Path:
    """Write the views file of ``kind`` anew if it is behind (``core.views``); its path."""
    return views.refresh(Warehouse(data_dir), view_definitions(data_dir), kind)


def current_views(data_dir: Path | str, kind: views.ViewsFile = views.FOR_TOOLS) -> Path:
    """The views file of ``kind``, written first if it is missing or behind, by a check that
    costs the same whatever the history (``views.current``); its path."""
    warehouse, definitions = Warehouse(data_dir), view_definitions(data_dir)
    if not views.current(warehouse, definitions, kind):
        views.refresh(warehouse, definitions, kind)
    return kind.path(warehouse)


def connect(data_dir: Path | str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the views file (written first if it is missing, or misses a
    table or this serp-etl's schemas), timestamps shown in UTC."""
    import duckdb

    warehouse = Warehouse(data_dir)
    path = current_views(data_dir)
    # Attached to a new in-memory database, not connected to by path: duckdb.connect() hands
    # out the instance a process already holds for a path, which may be an earlier views file.
    connection = duckdb.connect(":memory:")
    if warehouse.filesystem is not None:  # the views read the bucket through it
        connection.register_filesystem(warehouse.filesystem)
    connection.execute("ATTACH ? AS serp (READ_ONLY)", [str(path)])
    connection.execute("USE serp")
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def query_connection(data_dir: Path | str) -> duckdb.DuckDBPyConnection:
    """A connection that can read the warehouse and nothing else, and write nowhere: the
    query views (``views.query_views_path``) read it through a read-only file system
    (``core.read_only_fs``); DuckDB's own local file system is disabled, so no statement can
    read or write any other file (``COPY``, ``ATTACH``, ``EXPORT``, ``read_csv``...), and no
    later statement can change that (``lock_configuration``)."""
    import duckdb

    from serp_etl.core.read_only_fs import PROTOCOL, ReadOnlyWarehouse

    warehouse = Warehouse(data_dir)
    path = current_views(data_dir, views.FOR_QUERIES)
    connection = duckdb.connect(":memory:")
    connection.register_filesystem(
        ReadOnlyWarehouse(str(warehouse.absolute_root), warehouse.filesystem)
    )
    connection.execute("ATTACH ? AS serp (READ_ONLY)", [str(path)])
    connection.execute("USE serp")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET allowed_directories = ?", [[f"{PROTOCOL}://"]])
    connection.execute("SET enable_external_access = false")
    # After the settings above: DuckDB checks them against its local file system.
    connection.execute("SET disabled_filesystems = 'LocalFileSystem'")
    connection.execute("SET lock_configuration = true")
    return connection
