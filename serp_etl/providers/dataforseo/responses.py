"""DataForSEO's answers as the raw layer keeps them: task ids, final states, and the raw
table's columns of one response. No HTTP here: the client and the importer share it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TypeGuard

from serp_etl.core.jsondecode import json_text
from serp_etl.providers.dataforseo import settings
from serp_etl.providers.dataforseo.settings import Outcome
from serp_etl.state.ledger import TaskState

_HEX = "[0-9a-fA-F]"
_TASK_ID = re.compile(f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}")


class InvalidTaskId(ValueError):
    def __init__(self, task_id: object) -> None:
        super().__init__(f"not a DataForSEO task id (UUID expected): {task_id!r}")


def is_task_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _TASK_ID.fullmatch(value) is not None


def check_task_id(task_id: object) -> str:
    if not is_task_id(task_id):
        raise InvalidTaskId(task_id)
    return task_id


def answered_outcome(outcome: Outcome, message: object, result: object) -> tuple[Outcome, object]:
    """A task's outcome and message, read with its result: a success whose result holds no
    SERP (``null``, ``[]``, ``[null]``) is not one. It is named in the message, and is an
    answer this version does not know (kept, and asked again in later runs)."""
    if outcome is not Outcome.SUCCESS or (
        type(result) is list and result and type(result[0]) is dict
    ):
        return outcome, message
    shown = json_text(result)
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    said = f"{message} " if isinstance(message, str) else ""
    return Outcome.UNKNOWN, f"{said}(but the result holds no SERP: {shown})"


def final_state(outcome: Outcome, status_code: object) -> TaskState:
    """Where a task with a final answer stands."""
    if outcome is Outcome.SUCCESS:
        return TaskState.FETCHED
    if outcome is Outcome.BILLED_EMPTY:
        return TaskState.EMPTY
    return TaskState.EXPIRED if status_code == settings.RESULTS_EXPIRED else TaskState.FAILED


def response_meta(response, fetched_at: datetime | None, source: str) -> dict:
    """The raw table's columns for one response (a fetched or an archived task), but its
    body."""
    code, message = response.status_code, response.status_message
    return {
        "tag": response.tag,
        "fetched_at": fetched_at.isoformat() if fetched_at else None,
        "status_code": code if type(code) is int else None,
        "status_message": message if isinstance(message, str) else None,
        "outcome": str(response.outcome),
        "cost": response.cost,
        "result_count": response.result_count,
        "source": source,
        "repairs": list(response.repairs),
    }
