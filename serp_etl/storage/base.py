"""What every storage of the warehouse's parts offers.

A part is named by a path under ``root``: ``<provider>/<table>/date=D/<name>.parquet``. Parts
are written to local temp files first (``staging_dir``), then published together: the local
storage renames them into place, the object storage uploads them under unique names and makes
them visible at once with one commit object for their day (``objects``). A reader asks for a
table's published parts of a day (``parts``) and never lists what a publisher has not finished.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path, PurePath
from typing import Any, Protocol

# Whether a published part (by its logical name, ``s1a2b3c4d-part-0.parquet``) of a table a
# publish writes to is replaced by what it publishes.
Retire = Callable[[str], bool]


def replace_all(name: str) -> bool:
    """A publish that replaces the whole table of the day (a flatten)."""
    return True


class Storage(Protocol):
    # Read-only here (properties), so that a storage may narrow them: the local one's root is
    # a Path, the bucket's a PurePosixPath.
    @property
    def root(self) -> PurePath:
        """The warehouse's root, in ``filesystem``'s terms."""

    @property
    def url(self) -> str:
        """The root as a user writes it: a local path or s3://bucket/prefix."""

    @property
    def filesystem(self) -> Any:
        """For pyarrow and DuckDB: None (the local one) or an fsspec file system."""

    @property
    def shared(self) -> bool:
        """Whether hosts that share no disk see the same parts."""

    def parts(self, directory: PurePath) -> list[PurePath]:
        """The published parts of one table's day (``directory``), in name order."""

    def size(self, part: PurePath) -> tuple[int, int]:
        """A published part's size and modification time (ns; 0 where parts never change)."""

    def providers(self) -> list[str]:
        """The providers with parts in the warehouse."""

    def days(self, provider: str, table: str | None = None) -> list[str]:
        """The days (YYYY-MM-DD) holding parts of ``provider`` (of ``table``, if given)."""

    def tables(self) -> dict[tuple[str, str], list[PurePath]]:
        """Every (provider, table) and its published parts of every day."""

    def staging_dir(self, directory: PurePath) -> Path:
        """A local directory for the temp files of parts to publish into ``directory``."""

    def publish(self, staged: Mapping[Path, PurePath], retire: Retire | None = None) -> None:
        """Publish fsynced temp files (temp -> final path) at once; then, in each table they
        go to, the parts ``retire`` names are replaced (removed)."""

    def uri(self, path: PurePath) -> str:
        """``path`` as DuckDB and a user name it."""
