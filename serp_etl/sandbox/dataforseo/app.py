"""The built-in DataForSEO sandbox: the endpoints the pipeline uses, with real HTTP semantics.

HTTP Basic auth (HTTP 401 and status 40100 without it), status codes in the body as the live
service sends them, per-minute rate limits (40202), at most 30 simultaneous requests (40209),
prices from the price table, tasks that become ready a little after posting (40602 before),
40401 for unknown ids and 40403 thirty days after posting. Its state (posted tasks, calls for
the rate limits, money spent) is SQLite under the data dir, so it survives restarts and is
shared by every process, as the live service's is.
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from serp_etl.providers.dataforseo import settings
from serp_etl.providers.dataforseo.client import DATETIME_FORMAT
from serp_etl.sandbox.dataforseo import reference
from serp_etl.sandbox.dataforseo.serp_generator import generate_result, is_empty_serp, seed_for
from serp_etl.sandbox.state import DRIFT_ENV, SandboxState
from serp_etl.sandbox.wsgi import Request, Response, wsgi_app

LOGIN = "sandbox"
PASSWORD = "sandbox"
STARTING_BALANCE_USD = 50.0
API_VERSION = "0.1.20251120"
DAY = 86400.0

_STATE = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, login TEXT NOT NULL, tag TEXT, posted_at REAL NOT NULL,
    ready_at REAL NOT NULL, collected_at REAL, cost REAL NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (login, collected_at, ready_at);
"""
# One task in this many is re-parsed by the sandbox, this long after it is ready: tasks_fixed
# lists it for a day, and task_get answers the new revision.
FIXED_ONE_IN = 20
FIXED_AFTER_SECONDS = 3600.0

_REQUIRED = {
    "image_url": ("image_url",),
    "location": ("location_code", "location_name", "location_coordinate"),
    "language": ("language_code", "language_name"),
}
# A task's location and language must be one of the lists' own, exactly.
_REFERENCE = {
    "location_code": {loc["location_code"] for loc in reference.locations()},
    "location_name": {loc["location_name"] for loc in reference.locations()},
    "language_code": {lang["language_code"] for lang in reference.languages()},
    "language_name": {lang["language_name"] for lang in reference.languages()},
}
_KNOWN_FIELDS = {
    "image_url",
    "location_code",
    "location_name",
    "location_coordinate",
    "language_code",
    "language_name",
    "priority",
    "max_crawl_pages",
    "se_domain",
    "calculate_rectangles",
    "browser_screen_width",
    "browser_screen_height",
    "browser_screen_resolution_ratio",
    "search_param",
    "tag",
    "pingback_url",
    "postback_url",
    "postback_data",
    "device",
    "os",
}


def _fmt(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(DATETIME_FORMAT)


def _unset_nulls(fields: dict) -> dict:
    """``fields`` without those set to null. The official client (``dataforseo-client``) sends
    every field it was not given as null, and the live API takes that as unset."""
    return {name: value for name, value in fields.items() if value is not None}


def _parse_datetime(value: object) -> float | None:
    """``yyyy-mm-dd hh:mm:ss +00:00``, the format of every DataForSEO datetime."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").timestamp()
    except ValueError:
        return None


def envelope(
    tasks: list[dict], code: int = 20000, message: str = "Ok.", started: float | None = None
) -> dict:
    """The envelope every DataForSEO response shares."""
    elapsed = 0.0 if started is None else time.perf_counter() - started
    return {
        "version": API_VERSION,
        "status_code": code,
        "status_message": message,
        "time": f"{elapsed:.4f} sec.",
        "cost": round(sum(t.get("cost") or 0 for t in tasks), 8),
        "tasks_count": len(tasks),
        "tasks_error": sum(1 for t in tasks if t["status_code"] >= 40000),
        "tasks": tasks,
    }


def task_object(
    task_id: str,
    code: int,
    message: str,
    path: str,
    *,
    cost: float = 0,
    data: dict | None = None,
    result: list | None = None,
) -> dict:
    return {
        "id": task_id,
        "status_code": code,
        "status_message": message,
        "time": "0.0100 sec.",
        "cost": cost,
        "result_count": len(result) if result else 0,
        "path": [p for p in path.split("/") if p],
        "data": data or {},
        "result": result,
    }


def advanced_task(
    task_id: str, data: dict, day: str, cost: float, revision: int = 0, drift: bool = False
) -> dict:
    """The task object task_get/advanced answers for a ready task posted on ``day`` (with
    ``drift``: see ``serp_generator``)."""
    path = settings.TASK_GET_ADVANCED + task_id
    data = {**data, "function": "task_get"}
    location = data.get("location_code") or data.get("location_name")
    language = data.get("language_code") or data.get("language_name")
    if is_empty_serp(data["image_url"], location, language, day):
        return task_object(task_id, 40102, "No Search Results.", path, cost=cost, data=data)
    return task_object(
        task_id,
        20000,
        "Ok.",
        path,
        cost=cost,
        data=data,
        result=[generate_result(data, day, revision, drift)],
    )


class DataForSEOSandbox(SandboxState):
    """The sandbox's behaviour; ``app`` is its WSGI application."""

    def __init__(
        self,
        state_path: Path | str,
        *,
        ready_seconds: float | None = None,
        clock=time.time,
        drift: bool | None = None,
    ) -> None:
        super().__init__(state_path, _STATE, clock, ready_seconds)
        # Undocumented item types and fields in its SERPs: only when asked.
        self.drift = (
            os.environ.get(DRIFT_ENV, "") in ("1", "true", "yes") if drift is None else drift
        )
        if "fixed_at" not in {row[1] for row in self.db().execute("PRAGMA table_info(tasks)")}:
            self.db().execute("ALTER TABLE tasks ADD COLUMN fixed_at REAL")  # older state
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self.app = wsgi_app(self.handle)

    def _new_id(self, now: float) -> str:
        moment = datetime.fromtimestamp(now, UTC)
        # The shape of live ids: MMDDHHMM-SScc-0066-0000-<12 hex>.
        centis, tail = moment.microsecond // 10000, random.getrandbits(48)
        return f"{moment:%m%d%H%M}-{moment:%S}{centis:02d}-0066-0000-{tail:012x}"

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        credentials = request.basic_auth()
        if credentials != (LOGIN, PASSWORD):
            return Response.json(
                401, envelope([], 40100, "You are not authorized to access this resource.", started)
            )
        route = self._route(request)
        if route is None:
            return Response.json(404, envelope([], 40400, "Not Found.", started))
        endpoint, handler = route
        with self._in_flight_lock:
            self._in_flight += 1
            crowded = self._in_flight > settings.MAX_SIMULTANEOUS_REQUESTS
        try:
            if crowded:
                return Response.json(
                    200,
                    envelope(
                        [], 40209, "Too many requests at once: at most 30 simultaneous.", started
                    ),
                )
            if (
                self.rate_limit_wait(credentials[0], endpoint, settings.CALLS_PER_MINUTE[endpoint])
                is not None
            ):
                return Response.json(
                    200, envelope([], 40202, "Rate limit per minute exceeded.", started)
                )
            return Response.json(200, handler(request, credentials[0], started))
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _route(self, request: Request):
        path, method = request.path, request.method
        if path == settings.TASK_POST and method == "POST":
            return settings.TASK_POST, self._task_post
        if path == settings.TASKS_READY and method == "GET":
            return settings.TASKS_READY, self._tasks_ready
        if path == settings.TASKS_FIXED and method == "GET":
            return settings.TASKS_FIXED, self._tasks_fixed
        if path.startswith(settings.TASK_GET_ADVANCED) and method == "GET":
            return settings.TASK_GET_ADVANCED, self._task_get
        if path == settings.ID_LIST and method == "POST":
            return settings.ID_LIST, self._id_list
        if path == settings.USER_DATA and method == "GET":
            return settings.USER_DATA, self._user_data
        locations = path == settings.LOCATIONS or path.startswith(settings.LOCATIONS + "/")
        if locations and method == "GET":  # all, or one country's: .../locations/{iso code}
            return settings.LOCATIONS, self._locations
        if path == settings.LANGUAGES and method == "GET":
            return settings.LANGUAGES, self._languages
        return None

    # -- endpoints ---------------------------------------------------------------------------

    def _task_post(self, request: Request, login: str, started: float) -> dict:
        try:
            posted = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return envelope([], 40503, "Invalid POST data: not JSON.", started)
        if type(posted) is not list or not posted:
            return envelope([], 40503, "POST data should be a non-empty array.", started)
        now = self.clock()
        tasks, rows = [], []
        for position, task in enumerate(posted):
            task_id = self._new_id(now)
            if position >= settings.MAX_TASKS_PER_POST:
                tasks.append(
                    task_object(
                        task_id, 40006, "You can set only 100 tasks at a time.", request.path
                    )
                )
                continue
            if type(task) is dict:
                task = _unset_nulls(task)
            error = self._invalid(task)
            if error:
                tasks.append(
                    task_object(
                        task_id, *error, request.path, data=task if type(task) is dict else {}
                    )
                )
                continue
            cost = settings.task_price(
                int(task.get("priority") or 1),
                int(task.get("max_crawl_pages") or 1),
                bool(task.get("calculate_rectangles")),
            )
            data = {
                "api": "serp",
                "function": "task_post",
                "se": "google",
                "se_type": "search_by_image",
                **task,
                "device": "desktop",
                "os": "windows",
            }
            jitter = 0.5 + (seed_for(task_id) % 100) / 100
            ready_at = now + self.ready_seconds * jitter
            fixed_at = (
                ready_at + FIXED_AFTER_SECONDS
                if seed_for(task_id, "fixed") % FIXED_ONE_IN == 0
                else None
            )
            rows.append(
                (
                    task_id,
                    login,
                    task.get("tag"),
                    now,
                    ready_at,
                    cost,
                    orjson.dumps(data).decode(),
                    fixed_at,
                )
            )
            tasks.append(
                task_object(task_id, 20100, "Task Created.", request.path, cost=cost, data=data)
            )
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO tasks (id, login, tag, posted_at, ready_at, cost, data,"
            " fixed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
        return envelope(tasks, started=started)

    @staticmethod
    def _invalid(task: object) -> tuple[int, str] | None:
        if type(task) is not dict:
            return 40501, "Invalid Field: a task must be an object."
        for name, options in _REQUIRED.items():
            if not any(task.get(option) not in (None, "") for option in options):
                return 40501, f"Invalid Field: '{name}' is required."
        unknown = sorted(set(task) - _KNOWN_FIELDS)
        if unknown:
            return 40506, f"Unknown Fields in POST Data: {', '.join(unknown)}."
        url = task["image_url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return 40501, "Invalid Field: 'image_url'."
        for field, known in _REFERENCE.items():
            if field in task and task[field] not in known:
                return 40501, f"Invalid Field: '{field}'."
        if task.get("priority") not in (None, 1, 2):
            return 40501, "Invalid Field: 'priority'."
        pages = task.get("max_crawl_pages")
        if pages is not None and (type(pages) is not int or not 1 <= pages <= 100):
            return 40501, "Invalid Field: 'max_crawl_pages'."
        tag = task.get("tag")
        if tag is not None and (not isinstance(tag, str) or len(tag) > settings.TAG_MAX_LENGTH):
            return 40501, "Invalid Field: 'tag'."
        return None

    def _tasks_ready(self, request: Request, login: str, started: float) -> dict:
        now = self.clock()
        rows = (
            self.db()
            .execute(
                "SELECT id, tag, posted_at FROM tasks WHERE login = ? AND collected_at IS NULL"
                " AND ready_at <= ? AND ready_at > ? ORDER BY ready_at LIMIT ?",
                (login, now, now - settings.TASKS_READY_DAYS * DAY, settings.MAX_TASKS_READY),
            )
            .fetchall()
        )
        return self._task_list(request, started, now, "tasks_ready", "date_posted", rows)

    def _tasks_fixed(self, request: Request, login: str, started: float) -> dict:
        now = self.clock()
        rows = (
            self.db()
            .execute(
                "SELECT id, tag, fixed_at FROM tasks WHERE login = ? AND fixed_at <= ?"
                " AND fixed_at > ? ORDER BY fixed_at LIMIT ?",
                (login, now, now - DAY, settings.MAX_TASKS_READY),
            )
            .fetchall()
        )
        return self._task_list(request, started, now, "tasks_fixed", "date_fixed", rows)

    def _task_list(
        self,
        request: Request,
        started: float,
        now: float,
        function: str,
        date_key: str,
        rows: list[tuple],
    ) -> dict:
        """The answer of tasks_ready or tasks_fixed: one entry per (id, tag, time) row."""
        base = "/v3/serp/google/search_by_image/task_get"
        result = [
            {
                "id": task_id,
                "se": "google",
                "se_type": "search_by_image",
                date_key: _fmt(at),
                "tag": tag,
                "endpoint_regular": None,
                "endpoint_advanced": f"{base}/advanced/{task_id}",
                "endpoint_html": f"{base}/html/{task_id}",
            }
            for task_id, tag, at in rows
        ]
        task = task_object(
            self._new_id(now),
            20000,
            "Ok.",
            request.path,
            data={
                "api": "serp",
                "function": function,
                "se": "google",
                "se_type": "search_by_image",
            },
            result=[],
        )
        task["result"], task["result_count"] = result, len(result)
        return envelope([task], started=started)

    def fix_task(self, task_id: str) -> None:
        """Re-parse a task now, as DataForSEO sometimes does (for tests and demonstrations)."""
        self.db().execute("UPDATE tasks SET fixed_at = ? WHERE id = ?", (self.clock(), task_id))

    def _task_get(self, request: Request, login: str, started: float) -> dict:
        task_id = request.path[len(settings.TASK_GET_ADVANCED) :]
        now = self.clock()
        row = (
            self.db()
            .execute(
                "SELECT posted_at, ready_at, cost, data, fixed_at FROM tasks WHERE id = ?"
                " AND login = ?",
                (task_id, login),
            )
            .fetchone()
        )
        if row is None:
            task = task_object(task_id, 40401, "Task Not Found.", request.path)
            return envelope([task], started=started)
        posted_at, ready_at, cost, data_text, fixed_at = row
        data = orjson.loads(data_text)
        if now - posted_at > settings.RESULTS_KEPT_DAYS * DAY:
            task = task_object(task_id, 40403, "Results Expired.", request.path, data=data)
        elif now < ready_at:
            handed = now >= posted_at + (ready_at - posted_at) / 2
            code, message = (40601, "Task Handed.") if handed else (40602, "Task In Queue.")
            task = task_object(task_id, code, message, request.path, data=data)
        else:
            day = datetime.fromtimestamp(posted_at, UTC).date().isoformat()
            fixed = fixed_at is not None and now >= fixed_at
            task = advanced_task(
                task_id, data, day, cost, revision=1 if fixed else 0, drift=self.drift
            )
            self.db().execute(
                "UPDATE tasks SET collected_at = ? WHERE id = ? AND collected_at IS NULL",
                (now, task_id),
            )
        return envelope([task], started=started)

    def _id_list(self, request: Request, login: str, started: float) -> dict:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return envelope([], 40503, "Invalid POST data: not JSON.", started)
        now = self.clock()
        query = (
            _unset_nulls(body[0]) if type(body) is list and body and type(body[0]) is dict else None
        )
        since = _parse_datetime(query.get("datetime_from")) if query else None
        until = _parse_datetime(query.get("datetime_to")) if query else None
        limit, offset = (query or {}).get("limit", 100), (query or {}).get("offset", 0)
        if (
            since is None
            or until is None
            or until < since
            or since < now - 183 * DAY
            or type(limit) is not int
            or not 1 <= limit <= settings.MAX_ID_LIST_LIMIT
            or type(offset) is not int
            or offset < 0
        ):
            task = task_object(
                self._new_id(now),
                40501,
                "Invalid Field: id_list window, limit or offset.",
                request.path,
                data=query or {},
            )
            return envelope([task], started=started)
        assert query is not None  # since and until were read from it
        order = "DESC" if query.get("sort") == "desc" else "ASC"
        rows = (
            self.db()
            .execute(
                "SELECT id, posted_at, ready_at, cost, data FROM tasks"
                f" WHERE login = ? AND posted_at BETWEEN ? AND ? ORDER BY posted_at {order}, id"
                " LIMIT ? OFFSET ?",
                (login, since, until, limit, offset),
            )
            .fetchall()
        )
        result = []
        for task_id, posted_at, ready_at, cost, data in rows:
            entry = {
                "id": task_id,
                "url": settings.TASK_POST,
                "datetime_posted": _fmt(posted_at),
                "datetime_done": _fmt(ready_at) if ready_at <= now else None,
                "status": "Ok." if ready_at <= now else "In Queue.",
                "cost": cost,
            }
            if query.get("include_metadata") and now - posted_at <= 31 * DAY:
                entry["metadata"] = orjson.loads(data)
            result.append(entry)
        task = task_object(self._new_id(now), 20000, "Ok.", request.path, data=query)
        task["result"], task["result_count"] = result, len(result)
        return envelope([task], started=started)

    def _locations(self, request: Request, login: str, started: float) -> dict:
        country = request.path[len(settings.LOCATIONS) :].strip("/").upper()
        result = [
            loc
            for loc in reference.locations()
            if not country or loc["country_iso_code"] == country
        ]
        return self._reference_answer(request, "locations", result, started)

    def _languages(self, request: Request, login: str, started: float) -> dict:
        return self._reference_answer(request, "languages", reference.languages(), started)

    def _reference_answer(
        self, request: Request, function: str, result: list[dict], started: float
    ) -> dict:
        task = task_object(
            self._new_id(self.clock()),
            20000,
            "Ok.",
            request.path,
            data={"api": "serp", "function": function, "se": "google"},
            result=[],
        )
        task["result"], task["result_count"] = result, len(result)
        return envelope([task], started=started)

    def _user_data(self, request: Request, login: str, started: float) -> dict:
        stats = self.stats()
        now = self.clock()
        task = task_object(
            self._new_id(now),
            20000,
            "Ok.",
            request.path,
            data={"api": "appendix", "function": "user_data"},
        )
        task["result"] = [
            {
                "login": login,
                "timezone": "UTC",
                "rates": {
                    "limits": {
                        "minute": {
                            "serp": {
                                "task_post": settings.CALLS_PER_MINUTE[settings.TASK_POST],
                                "tasks_ready": settings.CALLS_PER_MINUTE[settings.TASKS_READY],
                                "id_list": settings.CALLS_PER_MINUTE[settings.ID_LIST],
                            }
                        }
                    }
                },
                "money": {"total": STARTING_BALANCE_USD, "balance": stats["balance_usd"]},
            }
        ]
        task["result_count"] = 1
        return envelope([task], started=started)

    # -- for `serp-etl sandbox stats` --------------------------------------------------------

    def stats(self) -> dict:
        billed, spent, collected = (
            self.db()
            .execute("SELECT COUNT(*), COALESCE(SUM(cost), 0), COUNT(collected_at) FROM tasks")
            .fetchone()
        )
        return {
            "billed_tasks": billed,
            "spent_usd": round(spent, 8),
            "balance_usd": round(STARTING_BALANCE_USD - spent, 8),
            "collected_tasks": collected,
            "uncollected_tasks": billed - collected,
        }
