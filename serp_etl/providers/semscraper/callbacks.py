"""The receiver of SemScraper's ``callback_url`` deliveries.

Each delivery is checked before anything else is done with it: the ``X-Signature`` header must
be the hex HMAC-SHA256 of the raw body under the account's HMAC key, compared in constant time
(401 otherwise), and the body must fit the size cap (413). Only then is it parsed (400 if it is
not a SERP object). The SERP is stored in the ledger's inbox and its scrape marked collected in
one transaction, so it reaches the raw layer exactly once however often it is delivered, and
polling does not fetch it again.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import orjson

from serp_etl.core.flatten import as_number
from serp_etl.core.ledger import Ledger, TaskState
from serp_etl.providers.semscraper import settings
from serp_etl.providers.semscraper.settings import HMAC_KEY_ENV
from serp_etl.sandbox.wsgi import Request, Response, wsgi_app

MAX_CALLBACK_BYTES = 8 * 1024 * 1024  # a depth-10 SERP is a few hundred KB


def signature(body: bytes, key: bytes) -> str:
    """How SemScraper signs a delivery: hex HMAC-SHA256 of the raw body."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _text(status: int, message: str) -> Response:
    return Response(status, message.encode(), "text/plain; charset=utf-8")


class CallbackReceiver:
    def __init__(self, hmac_key: str | bytes, ledger_path: Path,
                 max_body: int = MAX_CALLBACK_BYTES) -> None:
        if not hmac_key:
            raise ValueError(f"an HMAC key is required ({HMAC_KEY_ENV})")
        self._key = hmac_key.encode() if isinstance(hmac_key, str) else hmac_key
        self._ledger_path = ledger_path
        self.app = wsgi_app(self.handle, max_body=max_body)

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return _text(405, "POST only")
        given = request.headers.get(settings.SIGNATURE_HEADER.lower(), "")
        expected = signature(request.body, self._key)
        if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
            return _text(401, "Invalid signature")
        try:
            serp = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return _text(400, "Invalid JSON")
        serp_id = serp.get("id") if type(serp) is dict else None
        if not isinstance(serp_id, str) or not settings.SCRAPE_ID.match(serp_id):
            return _text(400, "Not a SERP: expected an object with a valid 'id'")
        received_at = datetime.now(UTC)
        with Ledger(self._ledger_path) as ledger:
            known = ledger.task_partition(settings.PROVIDER, serp_id)
            partition = known or received_at.date().isoformat()
            status = serp.get("status")
            meta = {"fetched_at": received_at.isoformat(),
                    "status": status if isinstance(status, str) else None,
                    "cost": as_number(serp.get("cost")), "source": "callback"}
            stored = ledger.store_response(settings.PROVIDER, partition, serp_id, meta,
                                           request.body, TaskState.FETCHED)
        return Response.json(200, {"status": "ok", "echo": serp_id, "duplicate": not stored,
                                   "received_at": received_at.isoformat()})
