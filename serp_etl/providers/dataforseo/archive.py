"""Saved task_get/advanced responses, one document at a time (files: ``core.archive``).

Each task of an envelope becomes one raw response, kept as an envelope around that task: the
received bytes themselves when the envelope held one task (what task_get returns); otherwise
the received envelope with its ``tasks`` array narrowed to that task, every byte of the
envelope's own fields and of the task kept as it was.
"""

from __future__ import annotations

from pathlib import Path

from serp_etl.core.archive import ArchivedResponse, Document, DocumentRejected, ImportReport
from serp_etl.core.archive import import_archives as core_import
from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import json_number
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.responses import (
    InvalidTaskId,
    answered_outcome,
    check_task_id,
    final_state,
    response_meta,
)
from serp_etl.providers.dataforseo.settings import Outcome, classify
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.state.ledger import Ledger


class _Task:
    """What ``response_meta`` reads of a task."""

    def __init__(self, task: dict, task_id: str) -> None:
        data = task["data"] if isinstance(task.get("data"), dict) else {}
        cost, count, tag = task.get("cost"), task.get("result_count"), data.get("tag")
        self.task_id = task_id
        self.tag = tag if isinstance(tag, str) else None
        self.status_code = task.get("status_code")
        self.outcome, self.status_message = answered_outcome(
            classify(self.status_code, task.get("status_message")),
            task.get("status_message"),
            task.get("result"),
        )
        self.cost = json_number(cost)
        self.result_count = count if type(count) is int else None
        self.repairs = ()


def _task(where: str, task: object) -> _Task:
    if type(task) is not dict:
        raise DocumentRejected(f"{where}: a task must be an object")
    try:
        task_id = check_task_id(task.get("id"))
    except InvalidTaskId as error:
        raise DocumentRejected(f"{where}: {error}") from None
    if type(task.get("status_code")) is not int:
        raise DocumentRejected(f"{where}: task {task_id} has no integer status_code")
    result = task.get("result")
    if result is not None and type(result) is not list:
        raise DocumentRejected(f"{where}: task {task_id}: result must be an array or null")
    return _Task(task, task_id)


def split(document: Document) -> list[ArchivedResponse]:
    """Every task response of an envelope but the not-ready ones (they hold no result)."""
    envelope = document.value
    if type(envelope) is not dict or type(envelope.get("tasks")) is not list:
        raise DocumentRejected("not a task_get response (no 'tasks' array)")
    top = classify(envelope.get("status_code"), envelope.get("status_message"))
    if top is not Outcome.SUCCESS:
        raise DocumentRejected(
            f"the response is an error, status "
            f"{envelope.get('status_code')} "
            f"{envelope.get('status_message')!r}"
        )
    tasks = envelope["tasks"]
    spans = array_spans(document.data, ("tasks",)) if len(tasks) > 1 else None
    responses = []
    for position, task in enumerate(tasks):
        about = _task(f"task {position}", task)
        if about.outcome is Outcome.NOT_READY:
            continue
        if spans is None:
            body, parsed = document.data, envelope
        else:
            (start, end), elements = spans
            first, last = elements[position]
            body = (
                document.data[:start]
                + b"["
                + document.data[first:last]
                + b"]"
                + document.data[end:]
            )
            parsed = {**envelope, "tasks": [task]}
        meta = response_meta(about, None, "import")
        responses.append(
            ArchivedResponse(
                about.task_id, meta, body, final_state(about.outcome, about.status_code), parsed
            )
        )
    if not responses:
        raise DocumentRejected("holds no task response with a result or a final status")
    return responses


def import_archives(
    paths: list[Path],
    partition: str,
    ledger: Ledger,
    warehouse: Warehouse,
    scope: str = TABLES.name,
    **options,
) -> ImportReport:
    """Load archived task_get responses into the raw and flattened tables of ``partition`` of
    the provider instance ``scope`` (options: ``core.archive.import_archives``)."""
    tables = TABLES.instance(scope)
    return core_import(tables, split, paths, partition, ledger, warehouse, **options)
