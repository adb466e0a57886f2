"""HTTP client for DataForSEO v3 Google Search by Image (and the built-in sandbox).

Money rules: ``post_tasks`` is sent once. It is retried only when the request certainly never
reached the server (connection refused) or was refused whole (top-level 40202/40209); any other
failure after sending raises ``PostOutcomeUnknown`` and the caller must look the tasks up
(tasks_ready, id_list) before anything is posted again. Free calls retry with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from serp_etl.core.http import (
    DEFAULT_MAX_RESPONSE_MB,
    NOT_SENT_ERRORS,
    TRANSIENT_ERRORS,
    Clock,
    RateLimitedClient,
    RateLimiter,
    Retry,
    RetryPolicy,
    Sleep,
    default_timeout,
)
from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import Undecodable, decode, json_bytes, json_number
from serp_etl.providers.dataforseo import settings
from serp_etl.providers.dataforseo.responses import answered_outcome, check_task_id, is_task_id
from serp_etl.providers.dataforseo.settings import Outcome, classify

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S +00:00"
DEFAULT_RETRY = RetryPolicy()


# httpx's words for a body that ended before its announced length (or its last chunk).
_TRUNCATED = "without sending complete message body"


class DataForSEOError(Exception):
    """Base class of every error this client raises."""


class ApiError(DataForSEOError):
    def __init__(self, endpoint: str, status_code: object, status_message: object) -> None:
        self.endpoint = endpoint
        self.status_code = status_code
        self.status_message = status_message
        super().__init__(f"{endpoint}: DataForSEO status {status_code} ({status_message})")


class MalformedResponse(DataForSEOError):
    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"{endpoint}: malformed response: {reason}")


class UndecodableResponse(DataForSEOError):
    """The API answered, every time, with a body that is not JSON even for a lenient reader
    (truncated, say); the last one is kept in ``body``."""

    def __init__(self, endpoint: str, reason: str, body: bytes) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.reason = reason
        self.body = body


class PostOutcomeUnknown(DataForSEOError):
    """task_post was sent but its outcome is unknown: the tasks may exist and be billed."""


def _listed_id(entry: dict) -> str | None:
    return entry["id"] if is_task_id(entry.get("id")) else None


@dataclass(frozen=True)
class PostedTask:
    tag: str | None
    task_id: str | None
    status_code: int | None  # as ``task_status`` keeps them
    status_message: str | None
    cost: float | None
    outcome: Outcome


@dataclass(frozen=True)
class ReadyTask:
    task_id: str | None  # None: the provider listed an id that is not a task id
    tag: str | None


@dataclass(frozen=True)
class ListedTask:
    task_id: str | None  # None: the provider listed an id that is not a task id
    tag: str | None
    datetime_posted: str | None
    cost: float | None


@dataclass(frozen=True)
class FetchedTask:
    task_id: str
    tag: str | None
    status_code: int | None  # as ``task_status`` keeps them
    status_message: str | None
    outcome: Outcome
    cost: float | None
    result_count: int | None
    body: bytes
    fetched_at: datetime
    repairs: tuple[str, ...] = ()  # what decoding the body had to repair (core.jsondecode)


def task_status(code: object, message: object) -> tuple[int | None, str | None]:
    """A task's status as the ledger keeps it, whatever its shape: an integer code (one of
    another type, or out of a database integer's range, is named in the message instead) and
    a text message (anything else as its JSON text). Nothing the provider said is dropped."""
    text = message if message is None or isinstance(message, str) else json_bytes(message).decode()
    if code is None or (type(code) is int and -(2**31) <= code < 2**31):
        return code, text
    odd = f"status_code {code!r}"
    return None, f"{text} ({odd})" if text else odd


def skeleton(body: bytes) -> bytes:
    """A large task_get body with its items array emptied (the body itself if it has none):
    what the client needs of it is its codes, cost and counts."""
    if len(body) <= settings.SKELETON_ABOVE_BYTES:
        return body
    found = array_spans(body, settings.ITEMS_PATH)
    if found is None:
        return body
    (start, end), _ = found
    return body[:start] + b"[]" + body[end:]


def _parse(endpoint: str, response: httpx.Response) -> tuple[dict, tuple[str, ...]]:
    """The envelope, decoded leniently (``core.jsondecode``), and the repairs it needed."""
    try:
        envelope, repairs = decode(skeleton(response.content), duplicates=True)
    except Undecodable as error:
        reason = f"HTTP {response.status_code}, not JSON: {error}"
        raise MalformedResponse(endpoint, reason) from None
    if type(envelope) is not dict or type(envelope.get("tasks", [])) is not list:
        raise MalformedResponse(endpoint, "expected an object with a 'tasks' array")
    return envelope, repairs


def _only_task(endpoint: str, envelope: dict) -> dict:
    tasks = envelope.get("tasks") or []
    if len(tasks) != 1 or type(tasks[0]) is not dict:
        raise MalformedResponse(endpoint, f"expected exactly one task, got {len(tasks)}")
    return tasks[0]


class DataForSEOClient(RateLimitedClient):
    error = DataForSEOError

    def __init__(
        self,
        base_url: str,
        login: str,
        password: str,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        max_response_mb: int = DEFAULT_MAX_RESPONSE_MB,
    ) -> None:
        """``limiter``: the account's shared one (see ``RateLimiter``); by default, one for this
        client alone. Answers over ``max_response_mb`` are refused, naming the cap."""
        http = httpx.Client(
            base_url=base_url,
            auth=(login, password),
            transport=transport,
            timeout=timeout or default_timeout(),
            headers={"Content-Type": "application/json"},
        )
        # One rate-limit bucket per endpoint.
        limiter = limiter or RateLimiter(
            None, login, settings.CALLS_PER_MINUTE, clock=clock, sleep=sleep
        )
        super().__init__(http, limiter, retry=retry, sleep=sleep, max_response_mb=max_response_mb)

    def _send(self, method: str, endpoint: str, path: str, body: object = None) -> httpx.Response:
        content = None if body is None else orjson.dumps(body)
        return self._request(endpoint, method, path, content=content)

    def _call_free(
        self,
        method: str,
        endpoint: str,
        path: str,
        body: object = None,
        *,
        retry_task_codes: bool = True,
    ) -> tuple[dict, httpx.Response, tuple[str, ...]]:
        """A free, repeatable call, retried with backoff on every transient failure: transport
        errors, HTTP 5xx/429, unparsable bodies, retryable codes at the top level, and (with
        ``retry_task_codes``) in the call's single task. Returns the envelope, the response
        and what decoding it had to repair.

        Bodies that stay undecodable raise ``UndecodableResponse`` with the last one."""
        undecodable: list[tuple[str, bytes]] = []  # the last attempt's, if its body was

        def attempt() -> tuple[dict, httpx.Response, tuple[str, ...]]:
            undecodable.clear()
            try:
                response = self._send(method, endpoint, path, body)
            except TRANSIENT_ERRORS as error:
                if _TRUNCATED in str(error):
                    # An answer cut short in transit: undecodable, like a truncated body (its
                    # bytes are lost with the connection); a run counts it as an attempt.
                    undecodable.append((f"truncated in transit ({error})", b""))
                raise Retry(error) from error
            if response.status_code >= 500 or response.status_code == 429:
                self._obey_retry_after(endpoint, response)
                raise Retry(f"HTTP {response.status_code}")
            try:
                envelope, repairs = _parse(endpoint, response)
            except MalformedResponse as error:
                undecodable.append((str(error), response.content))
                raise Retry(error) from error  # a truncated body is worth another try
            code, message = envelope.get("status_code"), envelope.get("status_message")
            outcome = classify(code, message)
            tasks = envelope.get("tasks") or []
            if (
                retry_task_codes
                and outcome is Outcome.SUCCESS
                and len(tasks) == 1
                and type(tasks[0]) is dict
            ):
                code, message = tasks[0].get("status_code"), tasks[0].get("status_message")
                if classify(code, message) is Outcome.RETRYABLE:
                    outcome = Outcome.RETRYABLE
            if outcome is Outcome.RETRYABLE:
                raise Retry(ApiError(endpoint, code, message))
            if outcome is not Outcome.SUCCESS:
                raise ApiError(endpoint, code, message)
            return envelope, response, repairs

        def gave_up(why: str) -> DataForSEOError:
            if undecodable:
                reason, content = undecodable[-1]
                return UndecodableResponse(endpoint, reason, content)
            return DataForSEOError(f"{path}: {why}")

        return self._retrying(attempt, gave_up=gave_up)

    # -- endpoints ---------------------------------------------------------------------------

    def post_tasks(self, tasks: list[dict]) -> list[PostedTask]:
        """Post at most 100 tasks in one call. Billed: never re-sent when the outcome is unknown."""
        endpoint = settings.TASK_POST
        if not 0 < len(tasks) <= settings.MAX_TASKS_PER_POST:
            raise ValueError(f"task_post takes 1 to 100 tasks per call, got {len(tasks)}")

        def attempt() -> list[PostedTask]:
            try:
                response = self._send("POST", endpoint, endpoint, tasks)
            except NOT_SENT_ERRORS as error:
                raise Retry(error) from error  # nothing reached the server: cannot double-bill
            except TRANSIENT_ERRORS as error:
                raise PostOutcomeUnknown(
                    f"{endpoint}: {type(error).__name__} after sending: {error}"
                ) from error
            if response.status_code == 429:
                # Refused whole by the rate limit: nothing was created.
                self._obey_retry_after(endpoint, response)
                raise Retry(f"HTTP 429 at {endpoint}")
            if response.status_code >= 500:
                raise PostOutcomeUnknown(f"{endpoint}: HTTP {response.status_code} after sending")
            try:
                envelope, _ = _parse(endpoint, response)
            except MalformedResponse as error:
                raise PostOutcomeUnknown(str(error)) from error
            code, message = envelope.get("status_code"), envelope.get("status_message")
            if code in (40202, 40209):
                # The whole request was refused before any task was created.
                raise Retry(ApiError(endpoint, code, message))
            if classify(code, message) is not Outcome.SUCCESS:
                raise ApiError(endpoint, code, message)
            return [self._posted(task) for task in envelope["tasks"]]

        return self._retrying(
            attempt, gave_up=lambda why: DataForSEOError(f"{endpoint}: nothing was posted, {why}")
        )

    @staticmethod
    def _posted(task: object) -> PostedTask:
        if type(task) is not dict:
            return PostedTask(None, None, None, "task is not an object", None, Outcome.UNKNOWN)
        data = task["data"] if isinstance(task.get("data"), dict) else {}
        tag = data.get("tag")
        task_id = task.get("id")
        code, message = task.get("status_code"), task.get("status_message")
        status_code, status_message = task_status(code, message)
        return PostedTask(
            tag=tag if isinstance(tag, str) else None,
            task_id=task_id if is_task_id(task_id) else None,
            status_code=status_code,
            status_message=status_message,
            cost=json_number(task.get("cost")),
            outcome=classify(code, message),
        )

    def tasks_ready(self) -> list[ReadyTask]:
        """Completed, not yet collected tasks of the last three days (up to 1000 a call)."""
        return self._listed(settings.TASKS_READY)

    def tasks_fixed(self) -> list[ReadyTask]:
        """Tasks DataForSEO re-parsed in the last 24 hours: their results changed."""
        return self._listed(settings.TASKS_FIXED)

    def _listed(self, endpoint: str) -> list[ReadyTask]:
        task = _only_task(endpoint, self._call_free("GET", endpoint, endpoint)[0])
        listed = []
        for entry in task.get("result") or ():
            if type(entry) is dict and "id" in entry:
                tag = entry.get("tag")
                listed.append(ReadyTask(_listed_id(entry), tag if isinstance(tag, str) else None))
        return listed

    def task_get(self, task_id: str) -> FetchedTask:
        """The advanced result of one task, its body kept byte for byte. A server or unknown
        code in the task is returned as it is (the caller counts such answers across runs);
        a body that stays undecodable raises ``UndecodableResponse``."""
        endpoint = settings.TASK_GET_ADVANCED
        envelope, response, repairs = self._call_free(
            "GET", endpoint, endpoint + check_task_id(task_id), retry_task_codes=False
        )
        task = _only_task(endpoint, envelope)
        code, message = task.get("status_code"), task.get("status_message")
        outcome, message = answered_outcome(classify(code, message), message, task.get("result"))
        status_code, status_message = task_status(code, message)
        data = task["data"] if isinstance(task.get("data"), dict) else {}
        tag = data.get("tag")
        result_count = task.get("result_count")
        return FetchedTask(
            task_id=task_id,
            tag=tag if isinstance(tag, str) else None,
            status_code=status_code,
            status_message=status_message,
            outcome=outcome,
            cost=json_number(task.get("cost")),
            result_count=result_count if type(result_count) is int else None,
            body=response.content,
            fetched_at=datetime.now(UTC),
            repairs=repairs,
        )

    def id_list(self, since: datetime, until: datetime) -> Iterator[ListedTask]:
        """Every task posted in [since, until], with the tag it was posted with."""
        endpoint = settings.ID_LIST
        # The API takes whole seconds: round the end up so a task posted in its last second
        # stays inside the window.
        until = until.replace(microsecond=0) + timedelta(seconds=1 if until.microsecond else 0)
        offset = 0
        while True:
            body = [
                {
                    "datetime_from": since.astimezone(UTC).strftime(DATETIME_FORMAT),
                    "datetime_to": until.astimezone(UTC).strftime(DATETIME_FORMAT),
                    "limit": settings.MAX_ID_LIST_LIMIT,
                    "offset": offset,
                    "sort": "asc",
                    "include_metadata": True,
                }
            ]
            task = _only_task(endpoint, self._call_free("POST", endpoint, endpoint, body)[0])
            entries = [e for e in task.get("result") or () if type(e) is dict]
            for entry in entries:
                metadata = entry["metadata"] if isinstance(entry.get("metadata"), dict) else {}
                tag = metadata.get("tag")
                if "id" in entry:
                    yield ListedTask(
                        task_id=_listed_id(entry),
                        tag=tag if isinstance(tag, str) else None,
                        datetime_posted=entry.get("datetime_posted"),
                        cost=json_number(entry.get("cost")),
                    )
            if len(entries) < settings.MAX_ID_LIST_LIMIT:
                return
            offset += len(entries)

    def locations(self) -> list[dict]:
        """Google SERP locations (free): location_code, location_name, location_code_parent,
        country_iso_code, location_type."""
        return self._reference(settings.LOCATIONS)

    def languages(self) -> list[dict]:
        """Google SERP languages (free): language_name, language_code."""
        return self._reference(settings.LANGUAGES)

    def _reference(self, endpoint: str) -> list[dict]:
        task = _only_task(endpoint, self._call_free("GET", endpoint, endpoint)[0])
        return [entry for entry in task.get("result") or () if type(entry) is dict]

    def user_data(self) -> dict:
        endpoint = settings.USER_DATA
        task = _only_task(endpoint, self._call_free("GET", endpoint, endpoint)[0])
        results = task.get("result") or [{}]
        return results[0] if type(results[0]) is dict else {}
