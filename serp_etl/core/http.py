"""What every provider client shares: a rate limiter shared by the account's processes, and a
retry policy that obeys ``Retry-After``.

Both take their clock and sleep as arguments so that tests drive time instead of waiting.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Self, TypeVar

import httpx
import sqlalchemy as sa

from serp_etl.state.database import TEXT, Database
from serp_etl.state.location import state_location

Clock = Callable[[], float]
Sleep = Callable[[float], None]
T = TypeVar("T")
log = logging.getLogger(__name__)


_LIMITS = sa.MetaData()
sa.Table(
    "calls",
    _LIMITS,
    sa.Column("account", TEXT, nullable=False),
    sa.Column("bucket", TEXT, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("calls_by_bucket", "account", "bucket", "at"),
)
sa.Table(
    "pauses",
    _LIMITS,
    sa.Column("account", TEXT, primary_key=True),
    sa.Column("bucket", TEXT, primary_key=True),
    sa.Column("until", sa.Float, nullable=False),
)


class RateLimiter(Database):
    """At most ``limits[bucket]`` calls in any ``period`` seconds per bucket of one account, and
    none while a bucket is paused; counted in one state database, so that every process and
    thread that opens it (the runs of a schedule, a backfill and a manual run; on Postgres,
    every host) shares the account's limits. ``location=None`` keeps the count in memory, for
    this object alone.

    A sliding window is never looser than the provider's own window, whether that one is fixed
    (per calendar minute) or sliding. On Postgres the window is read on the database's clock,
    so hosts whose clocks differ still count one window. Hand-written rather than
    pyrate-limiter's buckets: those read the wall clock themselves, so tests could check them
    only by sleeping, and have no shared pause, which ``Retry-After`` needs (when the API tells
    one process to wait, every process of the account must).
    """

    def __init__(
        self,
        location: Path | str | None,
        account: str,
        limits: Mapping[str, int],
        *,
        period: float = 60.0,
        clock: Clock | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.account = account
        self.limits = dict(limits)
        self.period = period
        self._sleep = sleep
        # Shared by the client's threads: one at a time, under ``_lock``.
        super().__init__(location, _LIMITS, check_same_thread=False)
        self._clock = clock or self.now
        self._lock = threading.Lock()

    def _take(self, bucket: str, now: float) -> float:
        """Take a slot now if one is free (returns 0), else return how long to wait."""
        key = {"account": self.account, "bucket": bucket}
        with self.transaction(serialize=f"serp-etl rate limit {self.account} {bucket}"):
            self.execute(
                "DELETE FROM calls WHERE account = :account AND bucket = :bucket AND at <= :since",
                {**key, "since": now - self.period},
            )
            paused = self.execute(
                "SELECT until FROM pauses WHERE account = :account AND bucket = :bucket", key
            ).scalar_one_or_none()
            if paused is not None and paused > now:
                return paused - now
            count, oldest = self.execute(
                "SELECT count(*), min(at) FROM calls WHERE account = :account AND bucket = :bucket",
                key,
            ).one()
            if count < self.limits[bucket]:
                self.execute(
                    "INSERT INTO calls VALUES (:account, :bucket, :now)", {**key, "now": now}
                )
                return 0.0
            return oldest + self.period - now

    def acquire(self, bucket: str) -> float:
        """Wait for a free slot of ``bucket`` and take it; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            while delay := self._take(bucket, self._clock()):
                if delay >= 1:
                    log.info(
                        "%s: the account's rate limit is reached; waiting %.0f s", bucket, delay
                    )
                self._sleep(delay)
                waited += delay
        return waited

    def pause(self, bucket: str, seconds: float) -> None:
        """No call of ``bucket``, from any process of the account, for ``seconds``."""
        with self._lock, self.transaction():
            self.execute(
                "INSERT INTO pauses VALUES (:account, :bucket, :until)"
                " ON CONFLICT (account, bucket) DO UPDATE SET until = CASE"
                " WHEN pauses.until > excluded.until THEN pauses.until ELSE excluded.until END",
                {"account": self.account, "bucket": bucket, "until": self._clock() + seconds},
            )


def rate_limits_location(data_dir: Path | str) -> Path | str:
    """Where the accounts' calls are counted: ``SERP_ETL_STATE_URL``'s database (every host of
    a deployment), else ``<data dir>/state/rate_limits.sqlite`` (every process of the host)."""
    return state_location(data_dir, "rate_limits")


def account_key(provider: str, identity: str) -> str:
    """The limiter's name for an account: never the credential itself."""
    return f"{provider}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number, or an HTTP date), if the response carries one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, for calls that are free and safe to repeat."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class Retry(Exception):
    """Raised by one attempt of a call: it failed in a way another attempt may not."""

    def __init__(self, reason: object) -> None:
        super().__init__(str(reason))
        self.reason = reason


def with_retries(
    policy: RetryPolicy,
    sleep: Sleep,
    attempt: Callable[[], T],
    *,
    gave_up: Callable[[str], Exception],
) -> T:
    """Run ``attempt`` until it returns, backing off between tries; anything it raises but
    ``Retry`` ends the call at once. After the last try, raises ``gave_up(message)``."""
    last: Retry | None = None
    for number in range(policy.attempts):
        if number:
            delay = policy.delay(number - 1)
            log.warning(
                "%s; trying again in %.1f s (attempt %d of %d)",
                last,
                delay,
                number + 1,
                policy.attempts,
            )
            sleep(delay)
        try:
            return attempt()
        except Retry as retry:
            last = retry
    raise gave_up(f"gave up after {policy.attempts} attempts: {last}") from last


# Transport failures where the request certainly never reached the server.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport failures after which a free GET may simply be tried again.
TRANSIENT_ERRORS = (httpx.TransportError,)


def default_timeout() -> httpx.Timeout:
    # task_get responses run to several MB; reading them may take a while, connecting may not.
    return httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)


# The longest Retry-After a call waits out; a longer one fails the call (a run would sit idle for
# it), and the pause still holds every process of the account back.
MAX_RETRY_AFTER = 600.0
# The largest answer read, unless a client is told otherwise: beyond it, a call fails clearly
# rather than taking the machine's memory (a 100-page SERP is a few tens of MB).
DEFAULT_MAX_RESPONSE_MB = 256
_READ_CHUNK = 1 << 20
_DECODED_AWAY = {"content-encoding", "content-length", "transfer-encoding"}


class RateLimitedClient:
    """What every provider client shares: one httpx client, a limiter that every request waits
    on, and a retry policy for the calls that may be repeated."""

    error: type[Exception] = Exception  # the base of the provider's typed errors

    def __init__(
        self,
        http: httpx.Client,
        limiter: RateLimiter,
        *,
        retry: RetryPolicy,
        sleep: Sleep,
        max_response_mb: int = DEFAULT_MAX_RESPONSE_MB,
    ) -> None:
        self._http = http
        self._retry = retry
        self._sleep = sleep
        self._limiter = limiter
        self._max_response_bytes = max_response_mb * 2**20

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, bucket: str, method: str, path: str, **kwargs) -> httpx.Response:
        """One request; its answer read whole, up to the size cap (over it: the client's
        error, naming the cap, and nothing more is read)."""
        self._limiter.acquire(bucket)
        request = self._http.build_request(method, path, **kwargs)
        response = self._http.send(request, stream=True)
        try:
            body = self._read_capped(path, response)
        finally:
            response.close()
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in _DECODED_AWAY
        ]  # the body below is decoded already
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    def _read_capped(self, path: str, response: httpx.Response) -> bytes:
        cap = self._max_response_bytes
        declared = response.headers.get("content-length", "")
        if (
            declared.isdigit()
            and int(declared) > cap
            and "content-encoding" not in response.headers
        ):
            raise self.error(self._too_large(path, cap))
        body = bytearray()
        for chunk in response.iter_bytes(_READ_CHUNK):
            body += chunk
            if len(body) > cap:
                raise self.error(self._too_large(path, cap))
        return bytes(body)

    @staticmethod
    def _too_large(path: str, cap: int) -> str:
        return (
            f"{path}: the answer is over the size cap of {cap // 2**20} MB "
            "(max_response_mb): not read"
        )

    def _obey_retry_after(self, bucket: str, response: httpx.Response) -> None:
        """Pause ``bucket`` for every process of the account as long as the API asks."""
        seconds = retry_after(response)
        if seconds is None:
            return
        self._limiter.pause(bucket, seconds)
        log.warning(
            "%s: HTTP %d, the API asks to wait %.0f s: no call of %s from any process until then",
            response.request.url.path,
            response.status_code,
            seconds,
            bucket,
        )
        if seconds > MAX_RETRY_AFTER:
            raise self.error(
                f"{response.request.url.path}: HTTP {response.status_code}, the "
                f"API asks to retry after {seconds:.0f} s: not waiting that long"
            )

    def _retrying(self, attempt: Callable[[], T], gave_up: Callable[[str], Exception]) -> T:
        return with_retries(self._retry, self._sleep, attempt, gave_up=gave_up)
