"""Archived task_get/advanced responses (file formats: ``serp_etl.core.archive``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from serp_etl.core.archive import ArchiveError, read_documents
from serp_etl.providers.dataforseo.client import InvalidTaskId, check_task_id
from serp_etl.providers.dataforseo.settings import Outcome, classify


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
    tasks: list[ArchivedTask] = []
    for number, (envelope, body) in enumerate(read_documents(path), start=1):
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
