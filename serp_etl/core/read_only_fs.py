"""The warehouse as a file system that can only be read: what ``serp-etl sql`` queries through.

DuckDB's lockdown (``allowed_directories``) opens a directory for reading *and* writing: a
``COPY ... TO`` (even under ``EXPLAIN ANALYZE``) into the warehouse wrote a Parquet part that
every view then read as data. DuckDB has no read-only file access of its own. So the query
connection disables DuckDB's local file system altogether and reads the warehouse through this
fsspec file system (over the local one, or the bucket's), registered under its own protocol,
which refuses every operation that would change a file or a directory.
"""

from __future__ import annotations

from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "serpwarehouse"


class WarehouseIsReadOnly(PermissionError):
    """A query tried to write to the warehouse."""


def _refuse(name: str):
    def refuse(self, path=None, *args, **kwargs):
        raise WarehouseIsReadOnly(f"the warehouse is read-only here ({name} {path!r})")

    refuse.__name__ = name
    return refuse


class ReadOnlyWarehouse(DirFileSystem):
    """``<PROTOCOL>://<path under root>``: the files under ``root`` of ``fs`` (the local file
    system, or the warehouse's bucket), read-only."""

    protocol = PROTOCOL
    # Not cached: fsspec would hand one instance to every caller with the same arguments.
    cachable = False

    def __init__(self, root: str, fs=None) -> None:
        super().__init__(path=root, fs=fs or LocalFileSystem())

    def open(self, path, mode="rb", *args, **kwargs):
        if set(mode) - {"r", "b", "t"}:
            raise WarehouseIsReadOnly(
                f"the warehouse is read-only here (open {path!r} for {mode!r})"
            )
        return super().open(path, mode, *args, **kwargs)

    _open = open
    # Everything that creates, changes, moves or removes a file or a directory.
    for _name in (
        "mkdir",
        "makedirs",
        "rm",
        "rm_file",
        "rmdir",
        "mv",
        "move",
        "rename",
        "cp_file",
        "copy",
        "put",
        "put_file",
        "pipe",
        "pipe_file",
        "touch",
        "write_bytes",
        "write_text",
        "delete",
    ):
        locals()[_name] = _refuse(_name)
    del _name
