"""Archived task_get/advanced responses: one JSON envelope per file, newline-delimited
envelopes, or a JSON array of envelopes; any of them gzip-compressed.

A file is read whole before anything of it lands: an invalid one raises ``ArchiveError`` naming
the file and what is wrong with it, and contributes nothing.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from serp_etl.providers.dataforseo.client import InvalidTaskId, check_task_id
from serp_etl.providers.dataforseo.settings import Outcome, classify

_GZIP_MAGIC = b"\x1f\x8b"


class ArchiveError(ValueError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ArchivedTask:
    task_id: str
    tag: str | None
    status_code: int
    status_message: str | None
    outcome: Outcome
    cost: float | None
    result_count: int | None
    body: bytes


def _envelopes(path: Path, raw: bytes) -> list[tuple[dict, bytes]]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as whole_error:
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) < 2:
            raise ArchiveError(path, f"not valid JSON ({whole_error})") from None
        envelopes = []
        for number, line in enumerate(lines, start=1):
            try:
                envelopes.append((orjson.loads(line), line))
            except orjson.JSONDecodeError as error:
                raise ArchiveError(path, f"line {number} is not valid JSON ({error})") from None
        return envelopes
    if type(document) is list:
        return [(envelope, orjson.dumps(envelope)) for envelope in document]
    return [(document, raw)]


def _task(path: Path, where: str, task: object, envelope: dict, body: bytes) -> ArchivedTask:
    if type(task) is not dict:
        raise ArchiveError(path, f"{where}: a task must be an object")
    try:
        task_id = check_task_id(task.get("id"))
    except InvalidTaskId as error:
        raise ArchiveError(path, f"{where}: {error}") from None
    code, message = task.get("status_code"), task.get("status_message")
    if type(code) is not int:
        raise ArchiveError(path, f"{where}: task {task_id} has no integer status_code")
    result = task.get("result")
    if result is not None and type(result) is not list:
        raise ArchiveError(path, f"{where}: task {task_id}: result must be an array or null")
    data = task.get("data") if type(task.get("data")) is dict else {}
    if len(envelope["tasks"]) > 1:
        # One row per task in the raw layer: keep the envelope around this task only.
        body = orjson.dumps({**envelope, "tasks": [task], "tasks_count": 1})
    cost, count, tag = task.get("cost"), task.get("result_count"), data.get("tag")
    return ArchivedTask(
        task_id=task_id,
        tag=tag if isinstance(tag, str) else None,
        status_code=code,
        status_message=message if isinstance(message, str) else None,
        outcome=classify(code, message),
        cost=float(cost) if type(cost) in (int, float) else None,
        result_count=count if type(count) is int else None,
        body=body,
    )


def read_archive(path: Path) -> list[ArchivedTask]:
    """Every task response in the file, except the not-ready ones (they hold no result)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ArchiveError(path, f"cannot read: {error.strerror or error}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ArchiveError(path, f"corrupt or truncated gzip ({error})") from None
    if not raw.strip():
        raise ArchiveError(path, "empty file")
    tasks: list[ArchivedTask] = []
    for number, (envelope, body) in enumerate(_envelopes(path, raw), start=1):
        where = f"envelope {number}"
        if type(envelope) is not dict or type(envelope.get("tasks")) is not list:
            raise ArchiveError(path, f"{where}: not a task_get response (no 'tasks' array)")
        top = classify(envelope.get("status_code"), envelope.get("status_message"))
        if top is not Outcome.SUCCESS:
            raise ArchiveError(path, f"{where}: the response is an error, status "
                                     f"{envelope.get('status_code')} "
                                     f"{envelope.get('status_message')!r}")
        for position, task in enumerate(envelope["tasks"]):
            archived = _task(path, f"{where}, task {position}", task, envelope, body)
            if archived.outcome is not Outcome.NOT_READY:
                tasks.append(archived)
    if not tasks:
        raise ArchiveError(path, "holds no task response with a result or a final status")
    return tasks
