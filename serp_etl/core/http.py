"""What every provider client shares: a per-endpoint rate limiter and a retry policy.

Both take their clock and sleep as arguments so that tests drive time instead of waiting.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Self, TypeVar

import httpx

Clock = Callable[[], float]
Sleep = Callable[[float], None]
T = TypeVar("T")


class SlidingWindowLimiter:
    """At most ``calls`` calls in any ``period`` seconds.

    A sliding window is never looser than the provider's own window, whether that one is fixed
    (per calendar minute) or sliding, so the client stays under the documented limit.
    """

    def __init__(self, calls: int, period: float = 60.0, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        self.calls = calls
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a free slot and take it; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.period:
                    self._stamps.popleft()
                if len(self._stamps) < self.calls:
                    self._stamps.append(now)
                    return waited
                delay = self._stamps[0] + self.period - now
                self._sleep(delay)
                waited += delay


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


def with_retries(policy: RetryPolicy, sleep: Sleep, attempt: Callable[[], T], *,
                 gave_up: Callable[[str], Exception]) -> T:
    """Run ``attempt`` until it returns, backing off between tries; anything it raises but
    ``Retry`` ends the call at once. After the last try, raises ``gave_up(message)``."""
    last: Retry | None = None
    for number in range(policy.attempts):
        if number:
            sleep(policy.delay(number - 1))
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


class RateLimitedClient:
    """What every provider client shares: one httpx client, a limiter per rate-limit bucket
    that every request waits on, and a retry policy for the calls that may be repeated."""

    def __init__(self, http: httpx.Client, calls_per_minute: Mapping[str, int], *,
                 retry: RetryPolicy, clock: Clock, sleep: Sleep) -> None:
        self._http = http
        self._retry = retry
        self._sleep = sleep
        self._limiters = {bucket: SlidingWindowLimiter(calls, clock=clock, sleep=sleep)
                          for bucket, calls in calls_per_minute.items()}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, bucket: str, method: str, path: str, **kwargs) -> httpx.Response:
        self._limiters[bucket].acquire()
        return self._http.request(method, path, **kwargs)

    def _retrying(self, attempt: Callable[[], T], gave_up: Callable[[str], Exception]) -> T:
        return with_retries(self._retry, self._sleep, attempt, gave_up=gave_up)
