"""The built-in SemScraper sandbox: every endpoint of the reference, with real HTTP semantics.

Bearer auth (401 without it), 100 GET and 100 POST calls a minute (429 beyond), at most 100
scrapes per POST and 100 ids per retrieve (400 beyond, with a message naming what is wrong),
scrapes that go pending -> processing -> done over time (higher priority first), credit spent
by every scrape, JSON and HTML output, and callbacks signed with the account's HMAC key and
POSTed to ``callback_url`` once a scrape is done. Its state is SQLite under the data dir.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from serp_etl.providers.semscraper import settings
from serp_etl.sandbox.semscraper.serp_generator import generate_results, render_html
from serp_etl.sandbox.state import SandboxState
from serp_etl.sandbox.wsgi import Request, Response, wsgi_app

API_KEY = "sandbox-api-key"
HMAC_KEY = "sandbox-hmac-key"
STARTING_CREDIT_EUR = 100.50
CALLBACK_TIMEOUT_SECONDS = 5.0
MAX_CALLBACK_ATTEMPTS = 5

LOCATIONS = [
    ("en", "en", "google.com", "World Wide Web"),
    ("us", "en", "google.com", "United States"),
    ("uk", "en", "google.co.uk", "United Kingdom"),
    ("fr", "fr", "google.fr", "France"),
    ("be", "fr", "google.be", "Belgique"),
    ("ch", "fr", "google.ch", "Suisse"),
    ("ca", "fr", "google.ca", "Canada"),
    ("de", "de", "google.de", "Deutschland"),
    ("es", "es", "google.es", "España"),
    ("it", "it", "google.it", "Italia"),
    ("br", "pt", "google.com.br", "Brasil"),
    ("jp", "ja", "google.co.jp", "日本"),
]
PAYMENT_METHODS = [
    {
        "id": 1,
        "name": "Perso",
        "num": "-4242",
        "expiration": "1226",
        "type": "Visa",
        "master": False,
    },
    {
        "id": 30,
        "name": "Pro",
        "num": "-4444",
        "expiration": "1227",
        "type": "Mastercard",
        "master": True,
    },
]

_STATE = """
CREATE TABLE IF NOT EXISTS scrapes (
    id TEXT PRIMARY KEY, api_key TEXT NOT NULL, request TEXT NOT NULL, cost REAL NOT NULL,
    created_at REAL NOT NULL, processing_at REAL NOT NULL, done_at REAL NOT NULL,
    fetched INTEGER NOT NULL DEFAULT 0, callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_delivered_at REAL
);
"""


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, error: str, message: str) -> Response:
    return Response.json(status, {"error": error, "message": message, "code": status})


class BadRequest(Exception):
    pass


def validate_scrape(position: int, scrape: object) -> dict:
    """One element of a create call, checked as the API checks it; BadRequest names the field."""
    where = f"element {position}"
    if type(scrape) is not dict:
        raise BadRequest(f"{where}: must be an object")
    known = {
        "search_engine",
        "keyword",
        "device",
        "depth",
        "location",
        "language",
        "geolocation",
        "priority",
        "callback_url",
    }
    unknown = sorted(set(scrape) - known)
    if unknown:
        raise BadRequest(f"{where}: unknown field(s) {', '.join(unknown)}")
    for name in ("search_engine", "keyword", "device", "depth", "location", "language"):
        if scrape.get(name) in (None, ""):
            raise BadRequest(f"{where}: {name} is required")
    if scrape["search_engine"] not in settings.SEARCH_ENGINES:
        raise BadRequest(f"{where}: search_engine must be one of {settings.SEARCH_ENGINES}")
    if scrape["device"] not in settings.DEVICES:
        raise BadRequest(f"{where}: device must be one of {settings.DEVICES}")
    for name, (low, high) in (
        ("depth", settings.DEPTH_RANGE),
        ("priority", settings.PRIORITY_RANGE),
    ):
        value = scrape.get(name, low)
        if type(value) is not int or not low <= value <= high:
            raise BadRequest(f"{where}: {name} must be an integer from {low} to {high}")
    for name in ("keyword", "location", "language", "geolocation", "callback_url"):
        if scrape.get(name) is not None and not isinstance(scrape[name], str):
            raise BadRequest(f"{where}: {name} must be a string")
    url = scrape.get("callback_url")
    if url and not url.startswith(("http://", "https://")):
        raise BadRequest(f"{where}: callback_url must be an http(s) URL")
    return scrape


class SemScraperSandbox(SandboxState):
    def __init__(
        self,
        state_path: Path | str,
        *,
        ready_seconds: float | None = None,
        clock=time.time,
        callback_transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(state_path, _STATE, clock, ready_seconds)
        self._callback_transport = callback_transport
        self.app = wsgi_app(self.handle)

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token != API_KEY:
            return _error(401, "Unauthorized", "A valid Bearer API key is required.")
        if request.method not in ("GET", "POST"):
            return _error(405, "Method Not Allowed", f"{request.method} is not supported.")
        limit = (
            settings.POST_CALLS_PER_MINUTE
            if request.method == "POST"
            else settings.GET_CALLS_PER_MINUTE
        )
        wait = self.rate_limit_wait(API_KEY, request.method, limit)
        if wait is not None:
            refused = _error(
                429, "Too Many Requests", f"At most 100 {request.method} calls a minute."
            )
            return replace(refused, headers=(("Retry-After", str(math.ceil(wait))),))
        self.deliver_due_callbacks()
        routes = {
            ("GET", settings.LOCATIONS): self._locations,
            ("POST", settings.SERPS): self._create,
            ("GET", settings.SERPS): self._serps,
            ("GET", settings.STATUS): self._status,
            ("GET", settings.CREDIT): self._credit,
            ("GET", settings.PAYMENT_METHODS): self._payment_methods,
        }
        # The live API lives under /v1: accept the same URLs.
        route = routes.get((request.method, request.path.removeprefix("/v1")))
        if route is None:
            return _error(404, "Not Found", f"No endpoint {request.method} {request.path}.")
        try:
            data, extra = route(request)
        except BadRequest as error:
            return _error(400, "InvalidParameter", str(error))
        body = {
            "status": "success",
            "request_ms": int((time.perf_counter() - started) * 1000),
            "count": len(data),
            **extra,
            "data": data,
        }
        return Response.json(200, body)

    # -- scrape rows -------------------------------------------------------------------------

    def _rows(self, where: str = "1", params: tuple = ()) -> list[dict]:
        cursor = self.db().execute(
            f"SELECT * FROM scrapes WHERE {where} ORDER BY created_at, id", params
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def _status_of(self, row: dict) -> str:
        now = self.clock()
        if now >= row["done_at"]:
            return "done"
        return "processing" if now >= row["processing_at"] else "pending"

    def _summary(self, row: dict, cost_as_text: bool) -> dict:
        request = orjson.loads(row["request"])
        summary = {
            "id": row["id"],
            "status": self._status_of(row),
            "keyword": request["keyword"],
            "device": request["device"],
            "location": request["location"],
            "language": request["language"],
            "depth": request.get("depth", 1),
            "geolocation": request.get("geolocation") or False,
            "priority": request.get("priority", 1),
            "callback_url": request.get("callback_url") or ("" if cost_as_text else None),
            # Created scrapes carry a number, listed and retrieved ones a decimal string.
            "cost": f"{row['cost']:.5f}" if cost_as_text else row["cost"],
            "_links": {
                fmt: {
                    "href": f"{settings.SERPS}?ids={row['id']}&output={fmt}",
                    "method": "GET",
                    "type": "application/json",
                }
                for fmt in settings.OUTPUTS
            },
        }
        return summary

    def serp(self, row: dict) -> dict:
        """A done scrape as retrieve-by-ids and callbacks deliver it."""
        request = orjson.loads(row["request"])
        day = datetime.fromtimestamp(row["created_at"], UTC).date().isoformat()
        serp = self._summary(row, cost_as_text=True)
        del serp["_links"]
        serp.update(
            {
                "created_at": _iso(row["created_at"]),
                "scraped_at": _iso(row["done_at"]),
                "duration_ms": int((row["done_at"] - row["processing_at"]) * 1000) + 1200,
                "results": generate_results(
                    request["keyword"],
                    request["device"],
                    request["location"],
                    request["language"],
                    request.get("depth", 1),
                    day,
                ),
            }
        )
        return serp

    # -- endpoints ---------------------------------------------------------------------------

    def _locations(self, request: Request) -> tuple[list, dict]:
        return [
            {"location": loc, "language": lang, "host": host, "name": name}
            for loc, lang, host, name in LOCATIONS
        ], {}

    def _create(self, request: Request) -> tuple[list, dict]:
        try:
            scrapes = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise BadRequest("the body must be a JSON array of scrapes") from None
        if type(scrapes) is not list or not scrapes:
            raise BadRequest("the body must be a non-empty JSON array of scrapes")
        if len(scrapes) > settings.MAX_SCRAPES_PER_POST:
            raise BadRequest(
                f"at most {settings.MAX_SCRAPES_PER_POST} scrapes per call, got {len(scrapes)}"
            )
        valid = [validate_scrape(position, s) for position, s in enumerate(scrapes)]
        known = {loc for loc, _, _, _ in LOCATIONS}
        for position, scrape in enumerate(valid):
            if scrape["location"] not in known:
                raise BadRequest(
                    f"element {position}: unknown location {scrape['location']!r};"
                    f" see {settings.LOCATIONS}"
                )
        total = round(sum(settings.scrape_price(s.get("depth", 1)) for s in valid), 8)
        if total > self.stats()["balance_eur"]:
            raise BadRequest(f"insufficient credit: {total} EUR needed")
        now = self.clock()
        rows = []
        for scrape in valid:
            # Priority 10 is done in a tenth of the time priority 1 takes.
            done_after = self.ready_seconds * (11 - scrape.get("priority", 1)) / 10
            rows.append(
                (
                    uuid.uuid4().hex,
                    API_KEY,
                    orjson.dumps(scrape).decode(),
                    settings.scrape_price(scrape.get("depth", 1)),
                    now,
                    now + done_after / 2,
                    now + done_after,
                )
            )
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO scrapes (id, api_key, request, cost, created_at,"
            " processing_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
        by_id = {
            r["id"]: r
            for r in self._rows(f"id IN ({','.join('?' * len(rows))})", tuple(r[0] for r in rows))
        }
        # In the order posted: clients pair the answer with their request by position.
        created = [self._summary(by_id[r[0]], cost_as_text=False) for r in rows]
        return created, {"currency": settings.CURRENCY, "total_cost": total}

    def _serps(self, request: Request) -> tuple[list, dict]:
        if "ids" not in request.query:
            done = [r for r in self._rows("fetched = 0") if self._status_of(r) == "done"]
            return [self._summary(r, cost_as_text=True) for r in done], {}
        ids = [i for i in ",".join(request.query["ids"]).split(",") if i]
        output = (request.query.get("output") or ["json"])[0]
        if output not in settings.OUTPUTS:
            raise BadRequest(f"output must be one of {settings.OUTPUTS}")
        if not ids or len(ids) > settings.MAX_IDS_PER_GET:
            raise BadRequest(f"ids: 1 to {settings.MAX_IDS_PER_GET} ids, got {len(ids)}")
        bad = [i for i in ids if not settings.SCRAPE_ID.match(i)]
        if bad:
            raise BadRequest(f"ids: invalid id(s) {', '.join(map(repr, bad[:5]))}")
        rows = self._rows(f"id IN ({','.join('?' * len(ids))})", tuple(ids))
        data = []
        for row in rows:
            if self._status_of(row) != "done":
                data.append({k: v for k, v in self._summary(row, True).items() if k != "_links"})
                continue
            serp = self.serp(row)
            if output == "html":
                serp = {
                    "id": row["id"],
                    "status": "done",
                    "html": render_html(serp["keyword"], serp["results"]),
                }
            data.append(serp)
        done_ids = [r["id"] for r in rows if self._status_of(r) == "done"]
        if done_ids:
            self.db().execute(
                f"UPDATE scrapes SET fetched = 1 WHERE id IN ({','.join('?' * len(done_ids))})",
                tuple(done_ids),
            )
        return data, {}

    def _status(self, request: Request) -> tuple[list, dict]:
        counts = {
            ("done", True): 0,
            ("done", False): 0,
            ("processing", None): 0,
            ("pending", None): 0,
        }
        for row in self._rows():
            status = self._status_of(row)
            key = (status, bool(row["fetched"])) if status == "done" else (status, None)
            counts[key] += 1
        return [
            {"status": status, **({} if fetched is None else {"fetched": fetched}), "count": count}
            for (status, fetched), count in counts.items()
        ], {}

    def _credit(self, request: Request) -> tuple[list, dict]:
        return [{"balance": self.stats()["balance_eur"]}], {}

    def _payment_methods(self, request: Request) -> tuple[list, dict]:
        return PAYMENT_METHODS, {}

    # -- callbacks ---------------------------------------------------------------------------

    def deliver_due_callbacks(self) -> int:
        """POST every done, undelivered scrape with a callback_url to it, signed; returns how
        many were accepted. Failed deliveries are retried, up to five attempts."""
        due = [
            r
            for r in self._rows(
                "callback_delivered_at IS NULL AND callback_attempts < ?", (MAX_CALLBACK_ATTEMPTS,)
            )
            if orjson.loads(r["request"]).get("callback_url") and self._status_of(r) == "done"
        ]
        delivered = 0
        for row in due:
            url = orjson.loads(row["request"])["callback_url"]
            body = orjson.dumps(self.serp(row))
            headers = {
                settings.SIGNATURE_HEADER: settings.signature(body, HMAC_KEY.encode()),
                "Content-Type": "application/json",
            }
            try:
                with httpx.Client(
                    transport=self._callback_transport, timeout=CALLBACK_TIMEOUT_SECONDS
                ) as client:
                    accepted = client.post(url, content=body, headers=headers).status_code == 200
            except httpx.HTTPError:
                accepted = False
            self.db().execute(
                "UPDATE scrapes SET callback_attempts = callback_attempts + 1,"
                " callback_delivered_at = ? WHERE id = ?",
                (self.clock() if accepted else None, row["id"]),
            )
            delivered += accepted
        return delivered

    # -- for `serp-etl sandbox stats` --------------------------------------------------------

    def stats(self) -> dict:
        billed, spent, fetched, delivered = (
            self.db()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(cost), 0), COALESCE(SUM(fetched), 0),"
                " COUNT(callback_delivered_at) FROM scrapes"
            )
            .fetchone()
        )
        return {
            "billed_scrapes": billed,
            "spent_eur": round(spent, 8),
            "balance_eur": round(STARTING_CREDIT_EUR - spent, 8),
            "fetched_scrapes": fetched,
            "callbacks_delivered": delivered,
        }
