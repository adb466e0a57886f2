"""The warehouse in an S3-compatible bucket, through fsspec (s3fs).

S3 has no rename, but it has create-only writes (``If-None-Match: *``; s3fs ``open(key,
"xb")``): of writers racing to create one key, exactly one wins and keeps its bytes, and an
object is invisible until its upload completes. So:

- a part is uploaded under a name no other upload uses (``<name>~<random>.parquet``), create-only;
- a day's parts of a provider become visible together through one small commit object,
  ``<provider>/_commits/date=D/<n>.json``, created only if ``n`` is new: it lists every table's
  published parts of the day. Readers read the latest commit and open the parts it names, never
  a listing of the day's parts: a publisher killed before its commit changed nothing they see;
- two publishers racing for the same ``n``: one wins; the other reads the winner's commit,
  applies its own change to it, and tries ``n + 1`` (a flatten replaces the whole table again,
  a new raw part is added beside the winner's);
- parts a commit replaced stay an hour, listed in it as retired (a reader that read the commit
  before may still open them), then a later commit of the day drops them and its publisher
  deletes them; uploads no commit names (a killed publisher's) are deleted by a later publish
  of that table's day once a day old (a live publisher's are younger). A killed multipart
  upload leaves no object but its parts in the bucket: the bucket's lifecycle rule
  ``AbortIncompleteMultipartUpload`` (README) removes them.

Commit objects are never deleted: a publisher that read an old commit as the latest must find
its ``n + 1`` taken, whatever came after.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath, PurePosixPath

import s3fs

from serp_etl.core.parquet import STALE_TEMP_SECONDS
from serp_etl.storage.base import Retire

COMMITS = "_commits"
_UNIQUE = re.compile(r"~[0-9a-f]{12}(?=\.parquet$)")
_COMMIT = re.compile(r"\d{10}\.json")
UPLOAD_BLOCK = 16 * 1024 * 1024
COMMIT_ATTEMPTS = 20
# How long a part a commit replaced stays readable: a reader (a views refresh, a query through
# serp-etl's views) that read the commit before opens it meanwhile.
RETIRED_GRACE_SECONDS = 3600


class CommitConflict(RuntimeError):
    """A day's commit kept losing the race to other publishers."""


def logical_name(name: str) -> str:
    """A part's name without the random tail its upload got: ``s1a2b3c4d-part-0.parquet``."""
    return _UNIQUE.sub("", name)


def _unique(name: str) -> str:
    return f"{name.removesuffix('.parquet')}~{uuid.uuid4().hex[:12]}.parquet"


class PartsS3FileSystem(s3fs.S3FileSystem):
    """s3fs, answering what it is asked about a committed part from the commit that named it.

    A part never changes once uploaded (its name is its own), so what a commit says of it
    (its size, when) stays true. DuckDB asks for every file of a view's list before it prunes
    them by date: on 365 days, 365 HEAD requests (a second) for a one-day query.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.committed: dict[str, dict] = {}  # key -> its info

    async def _info(self, path, *args, **kwargs):
        known = self.committed.get(self._strip_protocol(path))
        if known is not None:
            return dict(known)
        return await super()._info(path, *args, **kwargs)

    # Sync answers, without a trip through fsspec's event loop thread (0.1 ms a call): DuckDB
    # globs each file of a list.
    def info(self, path, *args, **kwargs):
        known = self.committed.get(self._strip_protocol(path))
        if known is not None:
            return dict(known)
        return super().info(path, *args, **kwargs)

    def glob(self, path, *args, **kwargs):
        known = self.committed.get(self._strip_protocol(path))
        if known is not None and not kwargs.get("detail"):
            return [known["name"]]
        return super().glob(path, *args, **kwargs)


class ObjectStorage:
    shared = True

    def __init__(
        self,
        url: str,
        data_dir: Path,
        filesystem: PartsS3FileSystem,
        stale_seconds: float = STALE_TEMP_SECONDS,
        retired_grace_seconds: float = RETIRED_GRACE_SECONDS,
    ) -> None:
        self.url = url.rstrip("/")
        self._stale = timedelta(seconds=stale_seconds)  # an upload no commit names, this old
        self._grace = timedelta(seconds=retired_grace_seconds)
        self.root = PurePosixPath(self.url.split("://", 1)[1])
        self.filesystem = filesystem
        self._staging = data_dir / "staging"
        self._commits: dict[str, dict] = {}  # key -> content: a commit never changes

    # -- commits -----------------------------------------------------------------------------

    def _commit_dir(self, provider: str, day: str) -> PurePosixPath:
        return self.root / provider / COMMITS / f"date={day}"

    def _read_commit(self, key: str) -> dict:
        if key not in self._commits:
            self._commits[key] = json.loads(self.filesystem.cat_file(key))
        return self._commits[key]

    def _latest(self, provider: str, day: str) -> tuple[int, dict]:
        """The day's latest commit: its number (0: none yet) and its content."""
        try:
            names = self.filesystem.ls(
                str(self._commit_dir(provider, day)), detail=False, refresh=True
            )
        except FileNotFoundError:
            names = []
        numbered = sorted(n for n in names if _COMMIT.fullmatch(PurePosixPath(n).name))
        if not numbered:
            return 0, {"tables": {}}
        return int(PurePosixPath(numbered[-1]).stem), self._read_commit(numbered[-1])

    def _locate(self, path: PurePath) -> tuple[str, str, str]:
        """Provider, table and day of a table's day folder, or of a part in it."""
        provider, table, day_dir, *_ = path.relative_to(self.root).parts
        return provider, table, day_dir.removeprefix("date=")

    # -- reading -----------------------------------------------------------------------------

    def parts(self, directory: PurePath) -> list[PurePath]:
        provider, table, day = self._locate(directory)
        _, content = self._latest(provider, day)
        return self._listed(
            directory, content["tables"].get(table, []), content.get("committed_at")
        )

    def _listed(
        self, directory: PurePath, entries: list[dict], committed_at: str | None
    ) -> list[PurePath]:
        found = []
        when = datetime.fromisoformat(committed_at) if committed_at else None
        for entry in sorted(entries, key=lambda e: e["name"]):
            part = directory / entry["name"]
            self.filesystem.committed[str(part)] = {
                "name": str(part),
                "size": entry["size"],
                "Size": entry["size"],
                "type": "file",
                "LastModified": when,
            }
            found.append(part)
        return found

    def size(self, part: PurePath) -> tuple[int, int]:
        return self.filesystem.info(str(part))["size"], 0  # from its commit, once read

    def _days(self, provider: str) -> dict[str, str]:
        """Day -> the key of its latest commit, from one listing of the provider's commits."""
        try:
            keys = self.filesystem.find(str(self.root / provider / COMMITS))
        except FileNotFoundError:
            keys = []
        latest: dict[str, str] = {}
        for key in keys:
            path = PurePosixPath(key)
            if _COMMIT.fullmatch(path.name) and path.parent.name.startswith("date="):
                day = path.parent.name.removeprefix("date=")
                latest[day] = max(latest.get(day, ""), key)
        return latest

    def providers(self) -> list[str]:
        try:
            names = [
                PurePosixPath(p).name
                for p in self.filesystem.ls(str(self.root), detail=False, refresh=True)
            ]
        except FileNotFoundError:
            return []
        return sorted(name for name in names if not name.startswith("_"))  # _inbox: bodies

    def days(self, provider: str, table: str | None = None) -> list[str]:
        latest = self._days(provider)
        if table is None:
            return sorted(latest)
        self._fetch(list(latest.values()))
        return sorted(
            day for day, key in latest.items() if self._read_commit(key)["tables"].get(table)
        )

    def _fetch(self, keys: list[str]) -> None:
        """Read the commits of ``keys`` not read yet, in one round trip for many days."""
        missing = [key for key in keys if key not in self._commits]
        if missing:
            for key, body in self.filesystem.cat(missing).items():
                self._commits[key] = json.loads(body)

    def latest_commits(self) -> dict[str, dict[str, str]]:
        """Provider -> day -> its latest commit's key: what the warehouse holds, by name."""
        return {provider: self._days(provider) for provider in self.providers()}

    def tables(self) -> dict[tuple[str, str], list[PurePath]]:
        found: dict[tuple[str, str], list[PurePath]] = {}
        for provider, latest in self.latest_commits().items():
            self._fetch(list(latest.values()))
            for day, key in sorted(latest.items()):
                content = self._read_commit(key)
                for table, entries in content["tables"].items():
                    directory = self.root / provider / table / f"date={day}"
                    found.setdefault((provider, table), []).extend(
                        self._listed(directory, entries, content["committed_at"])
                    )
        return dict(sorted(found.items()))

    # -- publishing --------------------------------------------------------------------------

    def staging_dir(self, directory: PurePath) -> Path:
        staging = self._staging / directory.relative_to(self.root)
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def publish(self, staged: Mapping[Path, PurePath], retire: Retire | None = None) -> None:
        by_day: dict[tuple[str, str], dict[str, list[dict]]] = {}
        for temp, final in staged.items():
            provider, table, day = self._locate(final)
            key = final.with_name(_unique(final.name))
            with open(temp, "rb") as source, self.filesystem.open(str(key), "xb") as target:
                shutil.copyfileobj(source, target, UPLOAD_BLOCK)
            by_day.setdefault((provider, day), {}).setdefault(table, []).append(
                {"name": key.name, "size": temp.stat().st_size}
            )
        for (provider, day), added in by_day.items():
            expired = self._commit(provider, day, added, retire)
            self._remove(
                [
                    str(self.root / provider / entry["table"] / f"date={day}" / entry["name"])
                    for entry in expired
                ]
            )
            self._sweep(provider, day, list(added))
        for temp in staged:
            temp.unlink(missing_ok=True)

    def _commit(
        self, provider: str, day: str, added: dict[str, list[dict]], retire: Retire | None
    ) -> list[dict]:
        """Create the day's next commit with ``added``. The parts it replaces are listed as
        retired, with the time, and kept a while (``RETIRED_GRACE_SECONDS``): a reader that read the
        commit before may still open them. Returns the retired parts whose time is up (this
        commit no longer lists them): the caller deletes them."""
        for _ in range(COMMIT_ATTEMPTS):
            number, content = self._latest(provider, day)
            now = datetime.now(UTC)
            tables = {table: list(entries) for table, entries in content["tables"].items()}
            retired = []
            for table, entries in added.items():
                kept = []
                for entry in tables.get(table, []):
                    if retire is not None and retire(logical_name(entry["name"])):
                        retired.append(
                            {"table": table, "name": entry["name"], "at": now.isoformat()}
                        )
                    else:
                        kept.append(entry)
                tables[table] = kept + entries
            cutoff = now - self._grace
            earlier = content.get("retired", [])
            expired = [r for r in earlier if datetime.fromisoformat(r["at"]) < cutoff]
            retired += [r for r in earlier if r not in expired]
            key = str(self._commit_dir(provider, day) / f"{number + 1:010d}.json")
            body = json.dumps(
                {
                    "provider": provider,
                    "day": day,
                    "number": number + 1,
                    "committed_at": now.isoformat(),
                    "tables": tables,
                    "retired": retired,
                },
                indent=1,
            ).encode()
            try:
                with self.filesystem.open(key, "xb") as target:
                    target.write(body)
            except FileExistsError:
                continue  # another publisher's commit came first: apply ours to it
            self._commits[key] = json.loads(body)
            return expired
        raise CommitConflict(
            f"{provider} {day}: {COMMIT_ATTEMPTS} publishers committed while "
            "this one tried; nothing of it is visible, publish again"
        )

    def _sweep(self, provider: str, day: str, tables: list[str]) -> None:
        """Remove uploads of ``tables``' day that the latest commit names neither as parts nor
        as retired, once a day old (a live publisher's uploads are younger)."""
        _, content = self._latest(provider, day)
        cutoff = datetime.now(UTC) - self._stale
        stale = []
        for table in tables:
            named = {entry["name"] for entry in content["tables"].get(table, [])} | {
                entry["name"] for entry in content.get("retired", []) if entry["table"] == table
            }
            directory = str(self.root / provider / table / f"date={day}")
            try:
                listing = self.filesystem.ls(directory, detail=True, refresh=True)
            except FileNotFoundError:
                continue
            for info in listing:
                modified = info.get("LastModified")
                if (
                    PurePosixPath(info["name"]).name not in named
                    and modified is not None
                    and modified < cutoff
                ):
                    stale.append(info["name"])
        self._remove(stale)

    def _remove(self, keys: list[str]) -> None:
        if keys:
            self.filesystem.rm(keys)
            for key in keys:
                self.filesystem.committed.pop(key, None)

    def uri(self, path: PurePath) -> str:
        return f"{self.url.split('://', 1)[0]}://{path}"
