"""The receiver of SemScraper's ``callback_url`` deliveries: a Starlette app, served by uvicorn
(``serp-etl callbacks serve``), which reads HTTP/1.1 with chunked bodies and keep-alive.

Each delivery, in this order:
1. its body is read up to the size cap (413 beyond: a signature can only be checked on a whole
   body, so the cap comes first);
2. ``X-Signature`` must be the hex HMAC-SHA256 of the raw body under the account's HMAC key,
   compared in constant time (401 otherwise);
3. it must be JSON (decoded leniently, ``core.jsondecode``) with a valid SERP ``id`` (400);
4. a finished SERP (status ``done``, with ``results``) of a scrape this project created is
   stored in the ledger's inbox, and its scrape marked collected, in one transaction; a replay
   of what is already kept changes nothing (its first fetch time stands);
5. anything else that is validly signed (an id the ledger does not know, a SERP not finished)
   is kept in the quarantine, never in the SERP tables.

One log line per delivery (id, outcome, size), never its body or the key.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from serp_etl.core.flatten import as_number
from serp_etl.core.jsondecode import Undecodable, decode
from serp_etl.providers.semscraper import settings
from serp_etl.providers.semscraper.settings import HMAC_KEY_ENV, signature
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.state.ledger import Ledger, TaskState
from serp_etl.storage.bodies import InboxBodies

MAX_CALLBACK_BYTES = 8 * 1024 * 1024  # a depth-10 SERP is a few hundred KB
log = logging.getLogger("serp_etl.callbacks")


class _TooLarge(Exception):
    pass


class CallbackReceiver:
    def __init__(
        self,
        hmac_key: str | bytes,
        state: Path | str,
        max_body: int = MAX_CALLBACK_BYTES,
        bodies: InboxBodies | None = None,
    ) -> None:
        """``state``: where the ledger lives (a SQLite path, or a Postgres URL); ``bodies``:
        where its large inbox bodies wait (``state.ledger.inbox_bodies``)."""
        if not hmac_key:
            raise ValueError(f"an HMAC key is required ({HMAC_KEY_ENV})")
        self._key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        self._state = state
        self._bodies = bodies
        self._max_body = max_body
        self.app = Starlette(routes=[Route("/{path:path}", self.receive, methods=["POST"])])

    async def _read(self, request: Request) -> bytes:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body:
                raise _TooLarge
        return bytes(body)

    async def receive(self, request: Request) -> Response:
        try:
            body = await self._read(request)
        except _TooLarge:
            log.info("delivery refused: body over %d bytes", self._max_body)
            return PlainTextResponse("Payload too large", 413)
        given = request.headers.get(settings.SIGNATURE_HEADER, "").strip().lower()
        if not hmac.compare_digest(signature(body, self._key).encode(), given.encode()):
            log.info("delivery refused: invalid signature (%d bytes)", len(body))
            return PlainTextResponse("Invalid signature", 401)
        try:
            serp, repairs = decode(body, duplicates=True)
        except Undecodable as error:
            log.info("delivery refused: not JSON (%d bytes)", len(body))
            return PlainTextResponse(f"Invalid body: not JSON ({error})", 400)
        serp_id = serp.get("id") if type(serp) is dict else None
        if not isinstance(serp_id, str) or not settings.SCRAPE_ID.match(serp_id):
            log.info("delivery refused: no valid id (%d bytes)", len(body))
            return PlainTextResponse("Not a SERP: expected an object with a valid 'id'", 400)
        received_at = datetime.now(UTC).isoformat()
        # SQLite blocks: off the event loop.
        outcome = await run_in_threadpool(self._keep, serp, body, repairs, received_at)
        log.info("delivery id=%s outcome=%s bytes=%d", serp_id, outcome, len(body))
        return JSONResponse(
            {"status": "ok", "echo": serp_id, "outcome": outcome, "received_at": received_at}
        )

    def _keep(self, serp: dict, body: bytes, repairs: tuple[str, ...], received_at: str) -> str:
        """stored, duplicate, or quarantined."""
        serp_id = serp["id"]
        with Ledger(self._state, self._bodies) as ledger:
            # Whichever instance created it (instances of one account share the receiver).
            owner = ledger.task_instance(settings.PROVIDER, serp_id)
            finished = serp.get("status") == "done" and type(serp.get("results")) is list
            if owner is None or not finished:
                reason = (
                    "not a scrape of this project"
                    if owner is None
                    else f"not a finished SERP (status {serp.get('status')!r})"
                )
                ledger.quarantine(settings.PROVIDER, serp_id, reason, body, received_at)
                return "quarantined"
            meta = TABLES.version(
                body,
                {
                    "fetched_at": received_at,
                    "status": "done",
                    "cost": as_number(serp.get("cost")),
                    "source": "callback",
                    "html": None,
                    "envelope": None,
                    "repairs": list(repairs),
                },
            )
            scope, partition = owner
            stored = ledger.store_response(scope, partition, serp_id, meta, body, TaskState.FETCHED)
        return "stored" if stored else "duplicate"
