"""The warehouse in the data dir: a part is published by one atomic rename."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePath

from serp_etl.storage.base import Retire


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    filesystem = None
    shared = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def parts(self, directory: PurePath) -> list[PurePath]:
        directory = Path(directory)
        return sorted(directory.glob("*.parquet")) if directory.is_dir() else []

    def size(self, part: PurePath) -> tuple[int, int]:
        stat = Path(part).stat()
        return stat.st_size, stat.st_mtime_ns

    def providers(self) -> list[str]:
        return (
            sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        )

    def days(self, provider: str, table: str | None = None) -> list[str]:
        pattern = f"{table}/date=*" if table else "*/date=*"
        return sorted(
            {
                d.name.removeprefix("date=")
                for d in (self.root / provider).glob(pattern)
                if d.is_dir()
            }
        )

    def tables(self) -> dict[tuple[str, str], list[PurePath]]:
        found: dict[tuple[str, str], list[PurePath]] = {}
        if not self.root.is_dir():
            return found
        for provider in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not provider.is_dir():
                continue
            for table in sorted(os.scandir(provider.path), key=lambda e: e.name):
                if not table.is_dir():
                    continue
                parts = found.setdefault((provider.name, table.name), [])
                for day in os.scandir(table.path):
                    if day.is_dir() and day.name.startswith("date="):
                        parts.extend(
                            Path(part.path)
                            for part in os.scandir(day.path)
                            if part.name.endswith(".parquet") and not part.name.startswith(".")
                        )
        return found

    def staging_dir(self, directory: PurePath) -> Path:
        # Beside the part: the rename that publishes it stays on one file system.
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def publish(self, staged: Mapping[Path, PurePath], retire: Retire | None = None) -> None:
        finals = {Path(final) for final in staged.values()}
        for temp, final in staged.items():
            os.replace(temp, final)
        directories = {final.parent for final in finals}
        for directory in directories:
            fsync_dir(directory)
        if retire is None:
            return
        for directory in directories:
            for sibling in directory.glob("*.parquet"):
                if sibling not in finals and retire(sibling.name):
                    sibling.unlink(missing_ok=True)

    def uri(self, path: PurePath) -> str:
        return str(path)


# Publishes files anywhere on the local disk (by their full paths): for writers outside a
# warehouse (the benches, tests of the writer itself).
LOCAL_FILES = LocalStorage(Path("/"))
