"""Response bodies waiting in a shared ledger's inbox, kept in the bucket.

On a shared deployment (state in Postgres, warehouse in a bucket) at ~100 GB of answers a day,
Postgres ``bytea`` was the slowest path measured for bodies (stored 3.3x, read 21x slower than
SQLite's blobs), and every body goes through its WAL and TOAST. An object costs a request,
though: a GET per body, one after another, was 20x slower than ``bytea`` for 100 KB bodies
(``bench/state_bench.py``). So a body of ``INBOX_OBJECT_BYTES`` or more (where a request's
cost is small beside the body's) waits as an object named by a hash
of its task and its exact bytes, ``<root>/_inbox/<provider>/<hash>``, and its inbox row holds
the key. An object is written before its row commits, create-only: one that exists already
holds the same bytes. It is deleted with its row, once the raw part holding it is published (a
task's version that was published is never stored in the inbox again, so no later row names
it); a crash in between leaves an object no row names, which a later clearing of that
provider's inbox removes once it is a day old.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

INBOX = "_inbox"
INBOX_OBJECT_BYTES = 1024 * 1024
# Bodies fetched ahead of the one being read, in parallel: at most this many, and this many
# bytes besides the one being read.
PREFETCH_BODIES = 16
PREFETCH_BYTES = 64 * 1024 * 1024
ORPHAN_SECONDS = 24 * 3600


class InboxBodies:
    def __init__(self, filesystem, root: PurePath) -> None:
        self.filesystem = filesystem
        self.root = root

    def put(self, provider: str, task_id: str, body: bytes) -> str:
        """Store ``body``, a version of ``task_id``; its key."""
        digest = hashlib.blake2b(task_id.encode(), digest_size=20)
        digest.update(b"\0")
        digest.update(body)
        key = str(self.root / INBOX / provider / digest.hexdigest())
        try:
            with self.filesystem.open(key, "xb") as target:
                target.write(body)
        except FileExistsError:
            pass  # named by its bytes: the same body is there
        return key

    def get(self, key: str) -> bytes:
        return self.filesystem.cat_file(key)

    def with_bodies(self, rows: Iterable[tuple]) -> Iterator[tuple]:
        """``(task_id, meta, body, body_key, body_size)`` rows as ``(task_id, meta, body)``,
        each body read from the bucket where a key names it, a few ahead of the one yielded,
        in parallel (a GET at a time would wait on each request in turn)."""
        ahead: deque = deque()
        held = 0
        with ThreadPoolExecutor(PREFETCH_BODIES) as pool:
            for task_id, meta, body, key, size in rows:
                if key:
                    ahead.append((task_id, meta, pool.submit(self.get, key), size or 0))
                    held += size or 0
                else:
                    ahead.append((task_id, meta, bytes(body), 0))
                while ahead and (len(ahead) > PREFETCH_BODIES or held > PREFETCH_BYTES):
                    held -= ahead[0][3]
                    yield _ready(ahead.popleft())
            while ahead:
                yield _ready(ahead.popleft())

    def remove(self, keys: list[str]) -> None:
        if keys:
            self.filesystem.rm(keys)

    def unreferenced(self, provider: str, named: set[str]) -> list[str]:
        """The provider's body objects that ``named`` (the keys rows hold) lacks, a day old."""
        cutoff = datetime.now(UTC) - timedelta(seconds=ORPHAN_SECONDS)
        try:
            listing = self.filesystem.ls(
                str(self.root / INBOX / provider), detail=True, refresh=True
            )
        except FileNotFoundError:
            return []
        return [
            info["name"]
            for info in listing
            if info["name"] not in named
            and info.get("LastModified") is not None
            and info["LastModified"] < cutoff
        ]


def _ready(entry: tuple) -> tuple:
    task_id, meta, body, _ = entry
    return task_id, meta, body.result() if isinstance(body, Future) else body
